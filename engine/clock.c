/*
 * clock.c — system clock or the test clock file; CST formatting.
 *
 * The test clock file is re-read at every call: tests write a new time into
 * it while the filesystem is mounted.  An unreadable file falls back to the
 * system clock rather than stopping issuance.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/clock.h"

static char clock_file_path[4096];

void clock_set_file(const char *path)
{
    if (!path)
        path = "";
    snprintf(clock_file_path, sizeof clock_file_path, "%s", path);
}

int64_t clock_now(void)
{
    char buf[64];
    int64_t t;
    FILE *f;
    size_t n;

    if (!clock_file_path[0])
        return (int64_t)time(NULL);
    f = fopen(clock_file_path, "r");
    if (!f)
        return (int64_t)time(NULL);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = 0;
    if (clock_parse_iso(buf, &t))
        return (int64_t)time(NULL);
    return t;
}

static void cst_tm(int64_t t, struct tm *tm)
{
    time_t shifted = (time_t)(t + CST_OFFSET);
    gmtime_r(&shifted, tm);
}

char *clock_iso_cst(int64_t t, char buf[32])
{
    struct tm tm;
    cst_tm(t, &tm);
    if (!strftime(buf, 32, "%Y-%m-%dT%H:%M:%S+08:00", &tm))
        buf[0] = 0;
    return buf;
}

char *clock_period(int64_t t, char buf[8])
{
    struct tm tm;
    cst_tm(t, &tm);
    if (!strftime(buf, 8, "%Y-%m", &tm))
        buf[0] = 0;
    return buf;
}

int clock_month_index(int64_t t)
{
    struct tm tm;
    cst_tm(t, &tm);
    return (tm.tm_year + 1900) * 12 + tm.tm_mon;
}

int clock_parse_iso(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
    struct tm tm = { 0 };
    const char *z;
    int64_t off = 0;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return -1;
    z = s + n;
    if (*z == '.')   /* fractional seconds are ignored */
        for (z++; *z >= '0' && *z <= '9'; z++)
            ;
    if (!strcmp(z, "Z")) {
        off = 0;
    } else if ((*z == '+' || *z == '-') && sscanf(z + 1, "%2d:%2d", &oh, &om) == 2 &&
               strlen(z) == 6) {
        off = (int64_t)(oh * 3600 + om * 60) * (*z == '-' ? -1 : 1);
    } else {
        return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = (int64_t)timegm(&tm) - off;
    return 0;
}

char *clock_month_period(int month_index, char buf[8])
{
    unsigned idx = month_index < 0 ? 0u : (unsigned)month_index;
    snprintf(buf, 8, "%04u-%02u", (idx / 12) % 10000u, (idx % 12 + 1) % 100u);
    return buf;
}

int clock_parse_period(const char *period, int *month_index)
{
    int i;

    if (!period || strlen(period) != 7 || period[4] != '-')
        return -1;
    for (i = 0; i < 7; i++)
        if (i != 4 && (period[i] < '0' || period[i] > '9'))
            return -1;
    i = (period[5] - '0') * 10 + (period[6] - '0');
    if (i < 1 || i > 12)
        return -1;
    *month_index = ((period[0] - '0') * 1000 + (period[1] - '0') * 100 + (period[2] - '0') * 10 +
                    (period[3] - '0')) * 12 + i - 1;
    return 0;
}
