/* dir.c — readdir with cursor offsets; see dir.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/clock.h"
#include "engine/readahead.h"
#include "fs/dir.h"
#include "fs/pending.h"

#define KEY_BASE 3
#define STORE_BATCH 256

struct dirbuf {
    fuse_req_t req;
    char *buf;
    size_t size, pos;
    bool full;
    bool plus;                    /* readdirplus: entries carry attributes */
};

/* Add one entry with its attributes (readdirplus) when attr is not NULL;
 * false (and full) when it does not fit. */
static bool emit_attr(struct dirbuf *b, const char *name, uint64_t ino, mode_t mode, off_t next,
                      const struct stat *attr, double timeout)
{
    struct fuse_entry_param e = { .attr = { .st_ino = ino, .st_mode = mode } };
    size_t need;

    if (!b->plus) {
        need = fuse_add_direntry(b->req, NULL, 0, name, NULL, 0);
        if (b->pos + need > b->size)
            goto full;
        fuse_add_direntry(b->req, b->buf + b->pos, b->size - b->pos, name, &e.attr, next);
    } else {
        /* ino 0: "no attributes for this one", and the kernel looks it up as usual */
        if (attr) {
            e.ino = ino;
            e.attr = *attr;
            e.attr_timeout = e.entry_timeout = timeout;
        }
        need = fuse_add_direntry_plus(b->req, NULL, 0, name, NULL, 0);
        if (b->pos + need > b->size)
            goto full;
        fuse_add_direntry_plus(b->req, b->buf + b->pos, b->size - b->pos, name, &e, next);
    }
    b->pos += need;
    return true;
full:
    b->full = true;
    return false;
}

static bool emit(struct dirbuf *b, const char *name, uint64_t ino, mode_t mode, off_t next)
{
    return emit_attr(b, name, ino, mode, next, NULL, 0);
}

struct coll_walk {
    struct dirbuf *b;
    enum ino_space space;
    int64_t last_id;
    int count;
};

static int coll_entry(void *ctx, const struct store_entry *e)
{
    struct coll_walk *w = ctx;
    uint64_t ino = ino_make(w->space, (uint64_t)e->id);
    struct stat st;

    w->count++;
    w->last_id = e->id;
    if (w->space != SPACE_INVOICE)
        return !emit(w->b, e->name, ino, S_IFREG, (off_t)e->id + KEY_BASE);
    /* Invoices never change: with their attributes in the listing, ls -l,
     * tar and rsync of a month need no lookup per file. */
    fill_attr(&st, ino, S_IFREG | 0444, e->size, e->mtime);
    return !emit_attr(w->b, e->name, ino, S_IFREG, (off_t)e->id + KEY_BASE, &st, TIMEOUT_IMMUTABLE);
}

/* List a store collection from cursor `after` in batches until the buffer is full. */
static enum fa_err list_collection(struct dirbuf *b, enum store_coll c, const char *scope,
                                   enum ino_space space, int64_t after)
{
    struct coll_walk w = { .b = b, .space = space, .last_id = after };
    enum fa_err err;
    do {
        w.count = 0;
        err = store_list(engine_store(g_fs.engine), c, scope, w.last_id, STORE_BATCH, coll_entry,
                         &w);
    } while (err == FA_OK && !b->full && w.count == STORE_BATCH);
    return err;
}

/* rejected/: two entries per row, keys 2·id (the draft) and 2·id+1 (.error). */
struct reject_walk {
    struct dirbuf *b;
    int64_t after_key, last_id;
    int count;
};

static int reject_entry(void *ctx, const struct store_entry *e)
{
    struct reject_walk *w = ctx;
    int64_t key = 2 * e->id;
    char name[sizeof e->name + sizeof STORE_ERROR_SUFFIX];
    w->count++;
    w->last_id = e->id;
    if (key > w->after_key &&
        !emit(w->b, e->name, ino_make(SPACE_REJECT_BODY, (uint64_t)e->id), S_IFREG,
              (off_t)key + KEY_BASE))
        return 1;
    snprintf(name, sizeof name, "%s" STORE_ERROR_SUFFIX, e->name);
    return !emit(w->b, name, ino_make(SPACE_REJECT_ERROR, (uint64_t)e->id), S_IFREG,
                 (off_t)key + 1 + KEY_BASE);
}

static enum fa_err list_rejected(struct dirbuf *b, int64_t after_key)
{
    struct reject_walk w = { .b = b, .after_key = after_key };
    enum fa_err err;
    /* after an odd key the row is done; after an even key its .error is still to come */
    if (after_key >= 0)
        w.last_id = after_key % 2 ? after_key / 2 : after_key / 2 - 1;
    do {
        w.count = 0;
        err = store_list(engine_store(g_fs.engine), COLL_REJECT_BODY, NULL, w.last_id,
                         STORE_BATCH, reject_entry, &w);
    } while (err == FA_OK && !b->full && w.count == STORE_BATCH);
    return err;
}

static int month_entry(void *ctx, int month)
{
    struct dirbuf *b = ctx;
    char period[8];
    return !emit(b, clock_month_period(month, period), ino_make(SPACE_MONTH, (uint64_t)month),
                 S_IFDIR, (off_t)month + KEY_BASE);
}

static int report_entry(void *ctx, int month)
{
    struct dirbuf *b = ctx;
    char period[8], name[16];
    snprintf(name, sizeof name, "%s.csv", clock_month_period(month, period));
    return !emit(b, name, ino_make(SPACE_REPORT, (uint64_t)month), S_IFREG, (off_t)month + KEY_BASE);
}

static int pending_entry(void *ctx, uint64_t id, const char *name)
{
    return !emit(ctx, name, ino_make(SPACE_PENDING, id), S_IFREG, (off_t)(id + KEY_BASE));
}

void dir_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
    struct dirbuf b = { .req = req, .size = size, .plus = plus };
    int64_t after = off >= KEY_BASE ? (int64_t)off - KEY_BASE : -1;
    uint64_t parent = FIXED_ROOT, i;
    enum fa_err err = FA_OK;
    char period[8];

    if (size > 1 << 20)
        size = b.size = 1 << 20;
    b.buf = malloc(size);
    if (!b.buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (ino_space(ino) == SPACE_MONTH)
        parent = FIXED_ISSUED;
    else
        fixed_name(ino, &parent);
    if (off < 1)
        emit(&b, ".", ino, S_IFDIR, 1);
    if (off < 2 && !b.full)
        emit(&b, "..", parent, S_IFDIR, 2);
    if (b.full)
        goto reply;

    if (ino_space(ino) == SPACE_MONTH) {
        if (off == 0)   /* a listing starts (ls, find, tar, rsync): read its index ahead */
            readahead_month(g_fs.readahead, clock_month_period((int)ino_id(ino), period));
        err = list_collection(&b, COLL_INVOICE, clock_month_period((int)ino_id(ino), period),
                              SPACE_INVOICE, after < 0 ? 0 : after);
    } else switch (ino) {
    case FIXED_PENDING:
        pending_list(g_fs.pending, after < 0 ? 0 : (uint64_t)after, pending_entry, &b);
        break;
    case FIXED_RECEIPTS:
        err = list_collection(&b, COLL_RECEIPT, NULL, SPACE_RECEIPT, after < 0 ? 0 : after);
        break;
    case FIXED_REJECTED:
        err = list_rejected(&b, after);
        break;
    case FIXED_ISSUED:
        err = store_list_periods(engine_store(g_fs.engine), after < 0 ? -1 : (int)after,
                                 month_entry, &b);
        break;
    case FIXED_REPORTS:   /* one report per period with invoices */
        err = store_list_periods(engine_store(g_fs.engine), after < 0 ? -1 : (int)after,
                                 report_entry, &b);
        break;
    default:
        for (i = 1; i < FIXED_COUNT && !b.full; i++) {
            uint64_t p;
            const char *name = fixed_name(i, &p);
            if (i != FIXED_ROOT && p == ino && (int64_t)i > after)
                emit(&b, name, i, fixed_is_dir(i) ? S_IFDIR : S_IFREG, (off_t)i + KEY_BASE);
        }
    }
reply:
    if (err && b.pos == 0)
        fuse_reply_err(req, fa_err_errno(err));
    else
        fuse_reply_buf(req, b.buf, b.pos);
    free(b.buf);
}
