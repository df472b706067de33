/*
 * test_store_lookup.c — finding a file of rejected/ by name in a real store
 * file: NAME and NAME.error are the same row, each found by the rejects_name
 * index (store_scan_steps stays 0), names that are not there are not found,
 * and a rejection replaced by a newer one of the same name shows the newer.
 * And the listings of issued/ and receipts/ are planned from a covering
 * index: the store's own SQL, as store_list runs it, never the table rows.
 * And no other statement of the store reads a whole table or index, but for
 * the few below, each of which is bounded for its own reason: a statement
 * added with a scan, or a plan that turns into one, fails here, and so does
 * an allowance no plan needs any more.  All from one reading of the plans of
 * the statements the store prepared (store_plan_steps).  (The triggers'
 * statements are not in these plans; each finds its row by key.)
 */
#include <stdio.h>
#include <string.h>
#include "engine/store.h"
#include "tests/unit/unit.h"

#define REJECTS 500

static enum fa_err reject(store_t *s, const char *name, const char *error, int64_t *id)
{
    static const char body[] = "{\"seller\": {}}";
    int64_t draft;
    enum fa_err err = store_add_draft(s, name, body, sizeof body - 1, 1764900000, 0, &draft);

    if (err == FA_OK)
        err = store_put_rejection(s, draft, name, body, sizeof body - 1, error, 1764900000, id);
    return err;
}

/* The scans in the store's plans that do not grow with the store.  Each is
 * a step of EXPLAIN QUERY PLAN and a piece of the statement it belongs to. */
static const struct allowed_scan {
    const char *step, *sql, *why;
} allowed_scans[] = {
    { "SCAN drafts USING INDEX drafts_waiting", "FROM drafts WHERE state = 'waiting'",
      "a partial index of the waiting drafts only" },
    { "SCAN intents", "FROM intents WHERE code = ?1 AND number = ?2",
      "intents holds the drafts in flight: deleted at their invoice's commit" },
    { "SCAN i", "FROM intents i JOIN drafts d", "the same table of drafts in flight" },
    { "SCAN drafts", "FROM drafts ORDER BY id DESC LIMIT 1", "the last row by rowid" },
    { "SCAN invoices", "FROM invoices ORDER BY id DESC LIMIT 1", "the last row by rowid" },
    { "SCAN receipts", "FROM receipts ORDER BY id DESC LIMIT 1", "the last row by rowid" },
    { "SCAN rejects", "FROM rejects ORDER BY id DESC LIMIT 1", "the last row by rowid" },
    { "SCAN tallies", "FROM tallies", "one row" },
    { "SCAN q", "FROM upload_queue q JOIN invoices i ON i.id = q.invoice_id ORDER BY q.invoice_id"
      " LIMIT 1", "the first row by rowid" },
    { "SCAN upload_queue", "FROM upload_queue WHERE refused = 0 ORDER BY invoice_id LIMIT 1",
      "the first row by rowid, past the refused ones" },
    { "SCAN (subquery-1)", "SELECT min(n) FROM (", "two rows: the head's due time and the refused ones'" },
    { "SCAN q USING INDEX upload_refused", "WHERE q.refused = 1",
      "invoices the platform refused for good (an alarm each): few, from a partial index" },
    { "SCAN upload_queue USING INDEX upload_refused", "FROM upload_queue WHERE refused = 1",
      "the same: counted from the partial index" },
    { "SCAN rejects USING COVERING INDEX rejects_name", "SELECT count(*) FROM rejects",
      "status only, and rejections are few: one index entry each" },
    { "SCAN device_log", "FROM device_log", "status only; a line per device operation, not per invoice" },
};
#define ALLOWED_SCANS (int)(sizeof allowed_scans / sizeof allowed_scans[0])

/* What the plans of all the store's statements showed (store_plan_steps). */
struct plans {
    int allowed_seen[ALLOWED_SCANS];
    int list_steps[COLL_COUNT], list_covered[COLL_COUNT];   /* store_list's statements */
};

static void read_step(void *ctx, const char *sql, const char *step)
{
    struct plans *p = ctx;
    int i;

    for (i = 0; i < COLL_COUNT; i++)
        if (!strcmp(sql, store_list_sql((enum store_coll)i))) {
            p->list_steps[i]++;
            p->list_covered[i] = strstr(step, "USING COVERING INDEX") != NULL;
        }
    if (strncmp(step, "SCAN ", 5) || !strcmp(step, "SCAN CONSTANT ROW"))
        return;
    for (i = 0; i < ALLOWED_SCANS; i++)
        if (!strcmp(step, allowed_scans[i].step) && strstr(sql, allowed_scans[i].sql)) {
            p->allowed_seen[i]++;
            return;
        }
    CHECK(0, "no full scan (%s) in: %s", step, sql);
}

int main(void)
{
    char dir[] = "/tmp/fapiaofs-lookup-XXXXXX", path[64], why[256], name[64], error[96];
    int64_t id = 0, id7 = 0, newer = 0;
    store_t *s = NULL;
    struct store_entry e;
    struct plans plans = { 0 };
    enum fa_err err = FA_OK;
    int i;

    if (!unit_store_path(dir, path, sizeof path))
        return 1;
    CHECK(store_open(path, &s, why, sizeof why) == FA_OK, "store_open: %s", why);
    for (i = 1; i <= REJECTS && err == FA_OK; i++) {
        snprintf(name, sizeof name, "bad-%03d.json", i);
        snprintf(error, sizeof error, "{\"error\": \"seller.tax_id: not the device's (%d)\"}\n", i);
        err = reject(s, name, error, &id);
        if (i == 7)
            id7 = id;
    }
    CHECK(err == FA_OK, "%d rejections stored", REJECTS);

    CHECK(store_lookup(s, COLL_REJECT_BODY, NULL, "bad-007.json", &e) == FA_OK && e.id == id7 &&
          !strcmp(e.name, "bad-007.json"), "rejected/bad-007.json is found");
    snprintf(error, sizeof error, "{\"error\": \"seller.tax_id: not the device's (%d)\"}\n", 7);
    CHECK(store_lookup(s, COLL_REJECT_ERROR, NULL, "bad-007.json.error", &e) == FA_OK &&
          e.id == id7 && !strcmp(e.name, "bad-007.json.error") && e.size == strlen(error),
          "rejected/bad-007.json.error is the same row, its size that of the reason");
    CHECK(store_lookup(s, COLL_REJECT_ERROR, NULL, "bad-007.json", &e) == FA_NOTFOUND,
          "a name without .error is not an error file");
    CHECK(store_lookup(s, COLL_REJECT_ERROR, NULL, ".error", &e) == FA_NOTFOUND,
          "\".error\" alone is not found");
    CHECK(store_lookup(s, COLL_REJECT_ERROR, NULL, "bad-007.json.err", &e) == FA_NOTFOUND,
          "a truncated suffix is not found");
    CHECK(store_lookup(s, COLL_REJECT_ERROR, NULL, "bad-999.json.error", &e) == FA_NOTFOUND,
          "the error file of a draft never rejected is not found");
    CHECK(store_lookup(s, COLL_REJECT_BODY, NULL, "bad-007.json.error", &e) == FA_NOTFOUND,
          "an error file is not a rejected draft");

    CHECK(reject(s, "bad-007.json", "{\"error\": \"again\"}\n", &newer) == FA_OK && newer != id7,
          "bad-007.json rejected again");
    CHECK(store_lookup(s, COLL_REJECT_ERROR, NULL, "bad-007.json.error", &e) == FA_OK &&
          e.id == newer && e.size == strlen("{\"error\": \"again\"}\n"),
          "its error file is the newer reason");

    CHECK(store_scan_steps(s) == 0,
          "every lookup found its row by an index (%llu rows stepped by full scans)",
          (unsigned long long)store_scan_steps(s));

    CHECK(store_plan_steps(s, read_step, &plans) > 0, "every statement's plan was read");
    CHECK(plans.list_steps[COLL_INVOICE] == 1 && plans.list_covered[COLL_INVOICE],
          "issued/PERIOD is listed from a covering index");
    CHECK(plans.list_steps[COLL_RECEIPT] == 1 && plans.list_covered[COLL_RECEIPT],
          "receipts/ is listed from a covering index");
    for (i = 0; i < ALLOWED_SCANS; i++)
        CHECK(plans.allowed_seen[i] > 0, "allowed scan \"%s\" (%s) still happens, else drop it",
              allowed_scans[i].step, allowed_scans[i].why);

    store_close(s);
    unit_remove_tree(dir);
    return unit_done();
}
