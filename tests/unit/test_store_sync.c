/*
 * test_store_sync.c — which of the store's commits are synced, in a real
 * store file.  A received draft may wait for the next synced commit (its
 * close() has not returned); a rejection, which close() reports at once,
 * may not.  Checked through the connection's PRAGMA synchronous after each
 * commit, in the order that matters: the first commits after open, and a
 * durable one right after commits that waited.
 */
#include <stdio.h>
#include "engine/store.h"
#include "tests/unit/unit.h"

enum { NORMAL = 1, FULL = 2 };

static const char body[] = "{\"seller\": {}}";

static enum fa_err receive(store_t *s, int64_t *draft)
{
    return store_add_draft(s, "x.json", body, sizeof body - 1, 1764900000, 0, draft);
}

static enum fa_err refuse(store_t *s, int64_t draft)
{
    int64_t id;
    return store_put_rejection(s, draft, "x.json", body, sizeof body - 1, "{\"error\": \"no\"}\n",
                               1764900000, &id);
}

int main(void)
{
    char dir[] = "/tmp/fapiaofs-sync-XXXXXX", path[64], why[256];
    store_t *s = NULL;
    int64_t draft = 0;
    int round;

    if (!unit_store_path(dir, path, sizeof path))
        return 1;
    CHECK(store_open(path, &s, why, sizeof why) == FA_OK, "store_open: %s", why);
    CHECK_INT(store_synchronous(s), FULL);
    for (round = 1; round <= 3; round++) {
        CHECK(receive(s, &draft) == FA_OK, "round %d: a draft received", round);
        CHECK(store_synchronous(s) == NORMAL, "round %d: its commit waits for the next synced one",
              round);
        CHECK(receive(s, &draft) == FA_OK && store_synchronous(s) == NORMAL,
              "round %d: so does a second one", round);
        CHECK(refuse(s, draft) == FA_OK, "round %d: the draft rejected", round);
        CHECK(store_synchronous(s) == FULL, "round %d: the rejection's commit is synced", round);
    }
    store_close(s);

    /* reopened: the first commits after an open are where a PRAGMA prepared
     * at open could still be unused */
    CHECK(store_open(path, &s, why, sizeof why) == FA_OK, "store_open again: %s", why);
    CHECK(receive(s, &draft) == FA_OK && store_synchronous(s) == NORMAL,
          "after reopening, a received draft waits");
    CHECK(refuse(s, draft) == FA_OK && store_synchronous(s) == FULL,
          "after reopening, a rejection is synced");
    store_close(s);

    unit_remove_tree(dir);
    return unit_done();
}
