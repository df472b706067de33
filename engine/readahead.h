/*
 * readahead.h — warm the page cache with a month's listing before the
 * listing reaches it.
 *
 * A month of issued/ is listed from the store's covering index
 * invoices_list.  Its leaf pages were allocated between the invoices' own
 * pages as the month grew, so in a store of a million invoices they lie one
 * every ~90 pages across gigabytes: read cold, each is a random read of its
 * own, and a READDIR waits for it while ls waits for the READDIR.  When a
 * big month is listed from its start, a few threads with read-only
 * connections of their own read slices of that index at once, so that the
 * disk serves many reads in parallel and the listing finds them cached.
 * They seek once per leaf page rather than step through its entries, so a
 * month already in the cache costs them little; months under
 * READAHEAD_MIN_SPAN invoices are left alone.
 *
 * An optimisation only: when it cannot start, listings work as before.
 */
#ifndef FAPIAO_READAHEAD_H
#define FAPIAO_READAHEAD_H

#include <stdbool.h>
#include <stdint.h>
#include "engine/err.h"

#define READAHEAD_THREADS 4         /* reads in flight: what a virtio or SSD queue takes well */
#define READAHEAD_MIN_SPAN 16384    /* invoice ids: smaller months list fast enough cold */

struct readahead;

/* Start the threads, each with a read-only connection to the store at path. */
enum fa_err readahead_open(const char *path, struct readahead **out);
/* Stop the threads (an unfinished read-ahead is abandoned) and free; NULL is fine. */
void readahead_close(struct readahead *ra);

/* Read period's ("YYYY-MM") listing index ahead, in the background; returns
 * at once.  A read-ahead of another month is abandoned for it; one of the
 * same month already under way goes on.  NULL ra: nothing. */
void readahead_month(struct readahead *ra, const char *period);

/* For tests: wait until no read-ahead is under way; the index positions
 * sought so far (one per READAHEAD_STRIDE ids of the months read ahead). */
void readahead_wait(struct readahead *ra);
uint64_t readahead_probes(struct readahead *ra);

#endif
