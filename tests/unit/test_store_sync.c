/*
 * test_store_sync.c — which of the store's commits are synced, in a real
 * store file.  A received draft may wait for the next synced commit (its
 * close() has not returned); a rejection, which close() reports at once,
 * may not.  Checked through the connection's PRAGMA synchronous after each
 * commit, in the order that matters: the first commits after open, and a
 * durable one right after commits that waited.  And that an invoice commit,
 * which is not synced, starts the writeback of the WAL it wrote, so that the
 * next synced commit finds it under way (store.c, wal_writeback_start):
 * this program's own sync_file_range stands in for libc's and notes the
 * file it was called on.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "device/device.h"
#include "engine/store.h"
#include "tests/unit/unit.h"

enum { NORMAL = 1, FULL = 2 };

static const char body[] = "{\"seller\": {}}";

static struct stat writeback_of;   /* the file of the last sync_file_range */
static int writebacks;

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags)
{
    (void)offset;
    (void)nbytes;
    if (flags == SYNC_FILE_RANGE_WRITE && fstat(fd, &writeback_of) == 0)
        writebacks++;
    return 0;
}

static enum fa_err put_invoice(store_t *s, int64_t draft)
{
    struct device_summary lines;
    struct store_issued v = {
        .draft_id = draft, .draft_name = "x.json", .code = "031001900111", .number = "00000001",
        .period = "2025-12", .issued_at = 1764900000, .draft_hash = "00", .total_fen = 100,
        .json = body, .json_len = sizeof body - 1, .receipt = body, .receipt_len = sizeof body - 1,
        .lines = &lines,
    };
    int64_t invoice, receipt;

    memset(&lines, 0, sizeof lines);
    return store_put_invoices(s, &v, 1, &invoice, &receipt);
}


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

    /* an invoice commit starts the writeback of the store's WAL */
    CHECK(store_open(path, &s, why, sizeof why) == FA_OK, "store_open for an invoice: %s", why);
    CHECK(receive(s, &draft) == FA_OK, "a draft to issue received");
    CHECK_INT(writebacks, 0);
    CHECK(put_invoice(s, draft) == FA_OK && store_synchronous(s) == NORMAL,
          "its invoice committed, not synced");
    {
        char wal[80];
        struct stat st;
        snprintf(wal, sizeof wal, "%s-wal", path);
        CHECK(writebacks == 1 && stat(wal, &st) == 0 && st.st_ino == writeback_of.st_ino &&
              st.st_dev == writeback_of.st_dev, "the commit started the writeback of %s", wal);
    }
    store_close(s);

    unit_remove_tree(dir);
    return unit_done();
}
