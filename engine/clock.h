/*
 * clock.h — the one clock of fapiaofs, and China Standard Time.
 *
 * Normally the system clock.  With [clock] file set (tests only) the time is
 * read from that file, an ISO 8601 time, at every call, so a test can move
 * time across a month end while mounted.  Periods and printed times are
 * always UTC+08:00 (China has no daylight saving time), whatever TZ says.
 */
#ifndef FAPIAO_CLOCK_H
#define FAPIAO_CLOCK_H

#include <stdint.h>
#include <time.h>

#define CST_OFFSET (8 * 3600)

void    clock_set_file(const char *path); /* NULL or "": system clock */
int64_t clock_now(void);                  /* seconds since the epoch */

/* "2024-11-22T10:03:05+08:00"; buf of 32 bytes. */
char *clock_iso_cst(int64_t t, char buf[32]);
/* "2024-11"; buf of 8 bytes. */
char *clock_period(int64_t t, char buf[8]);
/* Parse ISO 8601 with Z or ±hh:mm offset; 0 on success. */
int   clock_parse_iso(const char *s, int64_t *out);
/* Month index (year*12 + month-1) of t in CST, and back to "YYYY-MM". */
int   clock_month_index(int64_t t);
char *clock_month_period(int month_index, char buf[8]);
/* "YYYY-MM" to a month index; 0, or -1 if it is not a period. */
int   clock_parse_period(const char *period, int *month_index);

#endif
