/*
 * test_readahead.c — engine/readahead.c against a real store file: a big
 * month is read ahead over all its ids, once per READAHEAD_STRIDE, by
 * threads beside a writer; a small month is left alone; a read-ahead under
 * way may be abandoned, by another month or by closing.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "engine/readahead.h"
#include "engine/store.h"
#include "tests/unit/unit.h"

#define BIG 40000                 /* ids 1..BIG in 2026-11 */
#define SMALL 100                 /* the next ones in 2026-12 */
#define STRIDE 32                 /* READAHEAD_STRIDE */

static int add_invoices(sqlite3 *db, const char *period, int from, int count)
{
    sqlite3_stmt *q;
    int rc, i;

    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO invoices(id, code, number, name, period, issued_at,"
                            " draft_id, draft_hash, total_fen, json, size)"
                            " VALUES(?1, '031001900111', printf('%08d', ?1),"
                            " printf('031001900111-%08d.json', ?1), ?2, 0, ?1, '', 100, '{}', 2)",
                            -1, &q, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (i = from; rc == SQLITE_OK && i < from + count; i++) {
        sqlite3_bind_int(q, 1, i);
        sqlite3_bind_text(q, 2, period, -1, SQLITE_STATIC);
        rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(q);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(q);
    return rc;
}

int main(void)
{
    char dir[] = "/tmp/fapiaofs-readahead-XXXXXX", path[64], why[256];
    struct readahead *ra = NULL;
    store_t *store = NULL;
    sqlite3 *db = NULL;
    uint64_t before;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/fapiaofs.db", dir);
    CHECK(store_open(path, &store, why, sizeof why) == FA_OK, "store_open: %s", why);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK, "a writer's connection");
    CHECK(add_invoices(db, "2026-11", 1, BIG) == SQLITE_OK, "%d invoices in 2026-11", BIG);
    CHECK(add_invoices(db, "2026-12", BIG + 1, SMALL) == SQLITE_OK, "%d in 2026-12", SMALL);

    CHECK(readahead_open(path, &ra) == FA_OK, "readahead_open");
    readahead_month(ra, "2026-11");
    readahead_wait(ra);
    /* each of the threads seeks its slice from its first id: at most one
     * seek more per thread than the month's ids divided by the stride */
    CHECK(readahead_probes(ra) >= BIG / STRIDE &&
          readahead_probes(ra) <= BIG / STRIDE + READAHEAD_THREADS,
          "a big month is read ahead once per %d ids (%llu seeks)", STRIDE,
          (unsigned long long)readahead_probes(ra));

    before = readahead_probes(ra);
    readahead_month(ra, "2026-12");
    readahead_wait(ra);
    CHECK(readahead_probes(ra) == before, "a month of %d invoices is left alone", SMALL);
    readahead_month(ra, "2025-01");
    readahead_wait(ra);
    CHECK(readahead_probes(ra) == before, "a month without invoices: nothing to read");

    /* a writer goes on while it runs (WAL: readers do not block it) */
    readahead_month(ra, "2026-11");
    CHECK(add_invoices(db, "2026-12", BIG + SMALL + 1, 10) == SQLITE_OK,
          "a commit while the read-ahead runs");
    readahead_wait(ra);
    CHECK(readahead_probes(ra) - before >= BIG / STRIDE, "the same month read ahead again");

    /* abandoned: by another month at once, then by closing under way */
    readahead_month(ra, "2026-11");
    readahead_month(ra, "2026-12");
    readahead_wait(ra);
    readahead_month(ra, "2026-11");
    readahead_close(ra);
    CHECK(1, "readahead_close with a read-ahead under way returns");
    readahead_month(NULL, "2026-11");
    readahead_wait(NULL);
    CHECK(readahead_probes(NULL) == 0, "no read-ahead (NULL): nothing happens");

    ra = (struct readahead *)1;
    CHECK(readahead_open("/nonexistent/fapiaofs.db", &ra) != FA_OK && ra == NULL,
          "readahead_open of a missing store fails, and leaves nothing");

    sqlite3_close(db);
    store_close(store);
    unit_remove_tree(dir);
    return unit_done();
}
