/*
 * test_store_upload.c — which queued invoice the uploader gets next
 * (store_next_upload), in a real store file: the head of the queue in issue
 * order when it is due, a refused invoice (which stepped out of the order)
 * when it is due even while the head waits out its backoff, and any time
 * further ahead than the uploader ever schedules as due (the clock was set
 * back).  The rows are written with SQL, as the uploader's own failures
 * would leave them.
 */
#include <sqlite3.h>
#include <stdio.h>
#include "engine/store.h"
#include "tests/unit/unit.h"

#define NOW 1764900000
static const struct store_due due = { 38, 601 };

/* invoice id's queue row: refused or in order, due at next_at */
static void set_row(sqlite3 *db, int id, int refused, int64_t next_at)
{
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE upload_queue SET refused = %d, next_at = %lld, attempts = 3"
             " WHERE invoice_id = %d", refused, (long long)next_at, id);
    CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s", sql);
}

/* "ID" or "ID out-of-order" for the next upload, or "none" */
static const char *next(store_t *s, int64_t after_id)
{
    static char buf[32];
    struct store_upload u;
    enum fa_err err = store_next_upload(s, NOW, &due, after_id, &u);

    if (err != FA_OK)
        snprintf(buf, sizeof buf, err == FA_NOTFOUND ? "none" : "error");
    else
        snprintf(buf, sizeof buf, "%lld%s", (long long)u.invoice_id,
                 u.out_of_order ? " out-of-order" : "");
    store_upload_free(&u);
    return buf;
}

int main(void)
{
    char dir[] = "/tmp/fapiaofs-upload-XXXXXX", path[64], why[256] = "";
    store_t *s = NULL;
    sqlite3 *db = NULL;
    int i;

    if (!unit_store_path(dir, path, sizeof path))
        return 1;
    CHECK(store_open(path, &s, why, sizeof why) == FA_OK, "store_open: %s", why);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK, "a second connection");
    sqlite3_busy_timeout(db, 5000);
    for (i = 1; i <= 3; i++) {
        char sql[400];
        snprintf(sql, sizeof sql, "INSERT INTO invoices(id, code, number, name, period, issued_at,"
                 " draft_id, draft_hash, total_fen, json) VALUES(%d, '031001900111', '0000000%d',"
                 " '031001900111-0000000%d.json', '2025-12', %d, %d, 'h', 100, '{}');"
                 "INSERT INTO upload_queue(invoice_id) VALUES(%d);", i, i, i, NOW, i, i);
        CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "invoice %d queued", i);
    }

    CHECK_STR(next(s, 0), "1");
    set_row(db, 1, 0, NOW + 20);
    CHECK_STR(next(s, 0), "none");   /* the head waits: nothing after it goes */
    set_row(db, 2, 1, NOW - 1);
    CHECK_STR(next(s, 0), "2 out-of-order");   /* a refused one that is due goes past it */
    set_row(db, 2, 1, NOW + 100);
    CHECK_STR(next(s, 0), "none");   /* not yet due: the refused one waits its 10 minutes */
    set_row(db, 2, 1, NOW + 5000);
    CHECK_STR(next(s, 0), "2 out-of-order");   /* further ahead than 601 s: the clock went back */
    set_row(db, 1, 0, NOW + 5000);
    set_row(db, 2, 1, NOW + 100);
    CHECK_STR(next(s, 0), "1");   /* the head too */
    set_row(db, 1, 0, NOW - 1);
    set_row(db, 2, 1, NOW - 1);
    CHECK_STR(next(s, 0), "1");   /* both due: issue order */
    CHECK_STR(next(s, 1), "2");   /* after the head (accepted, not yet marked): 2 is not past 3 */
    set_row(db, 1, 1, NOW - 1);
    set_row(db, 2, 0, NOW + 20);
    CHECK_STR(next(s, 0), "1");   /* a refused one before the head is not out of order */
    set_row(db, 1, 1, NOW + 100);
    CHECK_STR(next(s, 0), "none");
    CHECK_STR(next(s, 2), "3");   /* after 2 (accepted, not yet marked): 3 is the next in order */

    sqlite3_close(db);
    store_close(s);
    unit_remove_tree(dir);
    return unit_done();
}
