/*
 * ll.c — the low-level FUSE operations of fapiaofs.
 *
 * Design trade-off: the low-level API, because inode numbers are ours to
 * choose (fs/inode.h computes them from store ids, so they are stable across
 * remounts and need no table), and because flush() — the place where close()
 * gets its return value — must run the whole issuing pipeline and answer
 * with its result.  Every handler sends exactly one reply, and enum fa_err
 * becomes an errno only here.
 *
 * Caching: invoices never change, so the kernel may keep their entries,
 * attributes and pages for a day, and their OPEN puts the pages there
 * (prefill.h).  Folders get a second, and a change
 * invalidates those it touched before the request that made it is answered
 * (notify.h).  Everything else (the names in pending/, receipts/ and
 * rejected/, the generated files) gets zero timeouts: the next stat after a
 * change reaches the daemon, so nothing stale is shown.  The one exception
 * is the attributes a CREATE answers with (fa_create).  The writeback
 * cache stays off: the daemon must see every write() as it happens to
 * enforce the 1 MiB limit and to process at close.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include "engine/clock.h"
#include "fs/afterglow.h"
#include "fs/control.h"
#include "fs/dir.h"
#include "fs/fs.h"
#include "fs/prefill.h"
#include "fs/pending.h"
#include "fs/render.h"

struct fs g_fs;

/* ---- the fixed tree ------------------------------------------------------ */

static const struct fixed {
    const char *name;
    uint64_t parent;
    mode_t mode;
} fixed_nodes[FIXED_COUNT] = {
    [FIXED_ROOT] = { "", FIXED_ROOT, S_IFDIR | 0755 },
    [FIXED_README] = { "README", FIXED_ROOT, S_IFREG | 0444 },
    [FIXED_STATUS] = { "status", FIXED_ROOT, S_IFREG | 0444 },
    [FIXED_PENDING] = { "pending", FIXED_ROOT, S_IFDIR | 0775 },
    [FIXED_RECEIPTS] = { "receipts", FIXED_ROOT, S_IFDIR | 0755 },
    [FIXED_REJECTED] = { "rejected", FIXED_ROOT, S_IFDIR | 0755 },
    [FIXED_ISSUED] = { "issued", FIXED_ROOT, S_IFDIR | 0555 },
    [FIXED_REPORTS] = { "reports", FIXED_ROOT, S_IFDIR | 0555 },
    [FIXED_DEVICE] = { "device", FIXED_ROOT, S_IFDIR | 0555 },
    [FIXED_DEVICE_TAG] = { "CACHEDIR.TAG", FIXED_DEVICE, S_IFREG | 0444 },
    [FIXED_DEVICE_INFO] = { "info", FIXED_DEVICE, S_IFREG | 0444 },
    [FIXED_DEVICE_STATUS] = { "status", FIXED_DEVICE, S_IFREG | 0444 },
    [FIXED_DEVICE_ROLLS] = { "rolls", FIXED_DEVICE, S_IFREG | 0444 },
    [FIXED_PLATFORM] = { "platform", FIXED_ROOT, S_IFDIR | 0555 },
    [FIXED_PLATFORM_TAG] = { "CACHEDIR.TAG", FIXED_PLATFORM, S_IFREG | 0444 },
    [FIXED_PLATFORM_STATUS] = { "status", FIXED_PLATFORM, S_IFREG | 0444 },
    [FIXED_DEVICE_LOG] = { "log", FIXED_DEVICE, S_IFREG | 0444 },
    /* owner rw, the configured group rw, others nothing (SPEC §2.3) */
    [FIXED_DEVICE_CLEAR] = { "clear", FIXED_DEVICE, S_IFREG | 0660 },
};

static bool is_fixed(uint64_t ino)
{
    return ino_space(ino) == SPACE_FIXED && ino >= FIXED_ROOT && ino < FIXED_COUNT;
}

const char *fixed_name(uint64_t ino, uint64_t *parent)
{
    if (!is_fixed(ino))
        return NULL;
    *parent = fixed_nodes[ino].parent;
    return fixed_nodes[ino].name;
}

bool fixed_is_dir(uint64_t ino)
{
    return is_fixed(ino) && S_ISDIR(fixed_nodes[ino].mode);
}

uint64_t fixed_lookup(uint64_t parent, const char *name)
{
    uint64_t i;
    for (i = FIXED_README; i < FIXED_COUNT; i++)
        if (fixed_nodes[i].parent == parent && !strcmp(fixed_nodes[i].name, name))
            return i;
    return 0;
}

void fill_attr(struct stat *st, uint64_t ino, mode_t mode, uint64_t size, int64_t mtime)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_mode = mode;
    st->st_nlink = S_ISDIR(mode) ? 2 : 1;
    st->st_uid = g_fs.uid;
    st->st_gid = g_fs.gid;
    st->st_size = (off_t)size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((size + 511) / 512);
    st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = (time_t)mtime;
    /* A folder's ctime stays the store's: tar compares a folder's ctime
     * before and after reading it, and drafts arrive during backups. */
    if (S_ISDIR(mode))
        st->st_ctim.tv_sec = (time_t)g_fs.created_at;
}

/* Folders show when their contents last changed, from the store, so that
 * their times stay put across remounts (rsync -a finds nothing to do). */
static int64_t fixed_dir_mtime(uint64_t ino)
{
    struct store_times t;
    int64_t m = 0;

    /* pending/ is stat'ed before every draft is created: it must not wait
     * for the store's lock, which an issuing commit may hold */
    if (ino == FIXED_PENDING)
        m = pending_mtime(g_fs.pending);
    else if ((ino == FIXED_RECEIPTS || ino == FIXED_REJECTED || ino == FIXED_ISSUED) &&
             store_last_times(engine_store(g_fs.engine), &t) == FA_OK)
        m = ino == FIXED_RECEIPTS ? t.receipt
          : ino == FIXED_REJECTED ? t.reject
                                  : t.newest_period_first;   /* when the newest month appeared */
    /* root, reports/, device/, platform/: fixed contents */
    return m ? m : g_fs.created_at;
}

bool fixed_stat(uint64_t ino, pid_t pid, struct stat *st)
{
    uint64_t size = 0;
    int64_t mtime;
    mode_t mode;
    if (!is_fixed(ino))
        return false;
    mode = fixed_nodes[ino].mode;
    if (ino == FIXED_DEVICE_CLEAR && !engine_config(g_fs.engine)->fs_group[0])
        mode &= ~(mode_t)S_IRWXG;   /* no group configured: the owner only */
    if (S_ISDIR(mode))
        mtime = fixed_dir_mtime(ino);
    else
        render_meta(ino, pid, &size, &mtime);
    fill_attr(st, ino, mode, size, mtime);
    return true;
}

/* ---- attributes of any inode ---------------------------------------------- */

/* Invoices never change (read-only, cached a day); receipts and rejections
 * may be removed or replaced by a newer outcome of the same name. */
static mode_t coll_mode(enum store_coll c)
{
    return S_IFREG | (c == COLL_INVOICE ? 0444 : 0644);
}

static double coll_timeout(enum store_coll c)
{
    return c == COLL_INVOICE ? TIMEOUT_IMMUTABLE : 0;
}

static int coll_stat(enum store_coll c, uint64_t ino, struct stat *st, double *timeout)
{
    struct store_entry e;
    enum fa_err err = store_stat(engine_store(g_fs.engine), c, (int64_t)ino_id(ino), &e);
    if (err)
        return fa_err_errno(err);
    fill_attr(st, ino, coll_mode(c), e.size, e.mtime);
    *timeout = coll_timeout(c);
    return 0;
}

/* 0 or errno; *timeout is how long the kernel may trust the answer.  pid is
 * the process asking (generated files: see render.h). */
static int stat_ino(uint64_t ino, pid_t pid, struct stat *st, double *timeout)
{
    char period[8];

    *timeout = 0;
    switch (ino_space(ino)) {
    case SPACE_FIXED:
        if (!fixed_stat(ino, pid, st))
            return ENOENT;
        if (S_ISDIR(st->st_mode))
            *timeout = 1.0;
        return 0;
    case SPACE_MONTH:
        if (!store_has_period(engine_store(g_fs.engine), (int)ino_id(ino)))
            return ENOENT;
        fill_attr(st, ino, S_IFDIR | 0555, 0,
                  store_period_last(engine_store(g_fs.engine),
                                    clock_month_period((int)ino_id(ino), period)));
        *timeout = 1.0;
        return 0;
    case SPACE_INVOICE:
        return coll_stat(COLL_INVOICE, ino, st, timeout);
    case SPACE_RECEIPT:
        return coll_stat(COLL_RECEIPT, ino, st, timeout);
    case SPACE_REJECT_BODY:
        return coll_stat(COLL_REJECT_BODY, ino, st, timeout);
    case SPACE_REJECT_ERROR:
        return coll_stat(COLL_REJECT_ERROR, ino, st, timeout);
    case SPACE_PENDING:
        return pending_stat(g_fs.pending, ino_id(ino), st);
    case SPACE_GHOST:   /* only GETATTR asks: the draft has left, see afterglow.h */
        return afterglow_end(g_fs.afterglow, ino_id(ino));
    case SPACE_REPORT: {
        uint64_t size;
        int64_t mtime;
        if (!store_has_period(engine_store(g_fs.engine), (int)ino_id(ino)))
            return ENOENT;
        render_meta(ino, pid, &size, &mtime);
        fill_attr(st, ino, S_IFREG | 0444, size, mtime);
        return 0;
    }
    }
    return ENOENT;
}

static pid_t req_pid(fuse_req_t req)
{
    return fuse_req_ctx(req)->pid;
}

static int64_t req_uid(fuse_req_t req)
{
    return (int64_t)fuse_req_ctx(req)->uid;
}

static void reply_entry(fuse_req_t req, uint64_t ino)
{
    struct fuse_entry_param e = { .ino = ino };
    double timeout;
    int rc = stat_ino(ino, req_pid(req), &e.attr, &timeout);
    if (rc) {
        fuse_reply_err(req, rc);
        return;
    }
    e.attr_timeout = e.entry_timeout = timeout;
    fuse_reply_entry(req, &e);
}

struct open_file {
    char *buf;                 /* a snapshot or the stored content */
    uint64_t snap_ino;         /* buf is a render_snapshot() of this file ... */
    pid_t snap_pid;            /* ... for this process (0: not a snapshot) */
    size_t len;
    struct pending_handle *ph; /* pending/ files */
    struct control_buf *cb;    /* device/clear opened for writing */
    bool invoice;              /* an invoice, counted by prefill_opened ... */
    uint64_t invoice_id;       /* ... of this id */
    struct open_file *prev, *next;   /* in open_files */
};

/* Every handle given to the kernel and not yet released.  A RELEASE is sent
 * asynchronously after the last close(), and at unmount the kernel aborts the
 * connection and drops the requests the daemon has not read yet: a file closed
 * just before `fusermount -u` is never released.  ll_release_all() frees
 * those after the session loop. */
static struct {
    pthread_mutex_t lock;
    struct open_file *head;
} open_files = { PTHREAD_MUTEX_INITIALIZER, NULL };

static struct open_file *of_of(struct fuse_file_info *fi)
{
    return (struct open_file *)(uintptr_t)fi->fh;
}

/* Hand of to the kernel as fi's handle. */
static void of_give(struct open_file *of, struct fuse_file_info *fi)
{
    pthread_mutex_lock(&open_files.lock);
    of->prev = NULL;
    of->next = open_files.head;
    if (of->next)
        of->next->prev = of;
    open_files.head = of;
    pthread_mutex_unlock(&open_files.lock);
    fi->fh = (uint64_t)(uintptr_t)of;
}

/* Free a handle, given to the kernel (tracked) or not. */
static void of_free(struct open_file *of, bool tracked)
{
    if (tracked) {
        pthread_mutex_lock(&open_files.lock);
        if (of->prev)
            of->prev->next = of->next;
        else
            open_files.head = of->next;
        if (of->next)
            of->next->prev = of->prev;
        pthread_mutex_unlock(&open_files.lock);
    }
    if (of->invoice)
        prefill_closed(of->invoice_id);
    if (of->ph)
        pending_release(of->ph);
    if (of->snap_pid)
        render_closed(of->snap_ino, of->snap_pid);
    control_free(of->cb);
    free(of->buf);
    free(of);
}

/* of's content: the snapshot of generated file ino that process pid sees. */
static int open_snapshot(struct open_file *of, uint64_t ino, pid_t pid)
{
    int rc = render_snapshot(ino, pid, &of->buf, &of->len);

    if (rc == 0) {
        of->snap_ino = ino;
        of->snap_pid = pid;
    }
    return rc;
}

void ll_release_all(void)
{
    while (open_files.head)
        of_free(open_files.head, true);
    prefill_free();
}

/* ---- lookup --------------------------------------------------------------- */

static int parse_period(const char *name)
{
    int y, m, i;

    /* exactly DDDD-DD: sscanf alone would take "2026-+3" and "2026- 3", other
     * names for the same directory inode, which the kernel must never see */
    if (strlen(name) != 7 || name[4] != '-')
        return -1;
    for (i = 0; i < 7; i++)
        if (i != 4 && (name[i] < '0' || name[i] > '9'))
            return -1;
    y = (name[0] - '0') * 1000 + (name[1] - '0') * 100 + (name[2] - '0') * 10 + (name[3] - '0');
    m = (name[5] - '0') * 10 + (name[6] - '0');
    if (m < 1 || m > 12 || y < 1000)
        return -1;
    return y * 12 + m - 1;
}

/* A name in a collection: the row found by name gives the attributes too,
 * so one query answers (and for an invoice from the covering index, without
 * its 3.5 KB row: rsync and find stat a million of them). */
static int lookup_coll(enum store_coll c, const char *scope, const char *name,
                       enum ino_space space, struct fuse_entry_param *ep)
{
    struct store_entry e;
    enum fa_err err = store_lookup(engine_store(g_fs.engine), c, scope, name, &e);
    if (err)
        return fa_err_errno(err);
    ep->ino = ino_make(space, (uint64_t)e.id);
    fill_attr(&ep->attr, ep->ino, coll_mode(c), e.size, e.mtime);
    ep->attr_timeout = ep->entry_timeout = coll_timeout(c);
    return 0;
}

static void fa_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param ep = { 0 };   /* ino 0: the attributes are still to be read */
    uint64_t ino = 0;
    size_t n = strlen(name);
    char period[8];
    int rc = 0, month;

    if (ino_space(parent) == SPACE_MONTH) {
        rc = lookup_coll(COLL_INVOICE, clock_month_period((int)ino_id(parent), period), name,
                         SPACE_INVOICE, &ep);
    } else if (parent == FIXED_PENDING) {
        /* from the answer itself: a ghost's GETATTR would end it (afterglow.h) */
        rc = pending_lookup(g_fs.pending, name, &ep.attr);
        if (rc == ENOENT)
            rc = afterglow_lookup(g_fs.afterglow, name, req_pid(req), &ep.attr);
        ep.ino = rc ? 0 : ep.attr.st_ino;   /* timeouts 0: names here come and go */
    } else if (parent == FIXED_RECEIPTS) {
        rc = lookup_coll(COLL_RECEIPT, NULL, name, SPACE_RECEIPT, &ep);
    } else if (parent == FIXED_REJECTED) {
        enum store_coll c = store_reject_coll(name, n);
        rc = lookup_coll(c, NULL, name,
                         c == COLL_REJECT_ERROR ? SPACE_REJECT_ERROR : SPACE_REJECT_BODY, &ep);
    } else if (parent == FIXED_REPORTS) {
        char period_name[8];
        month = -1;
        if (n == 11 && !strcmp(name + 7, ".csv")) {
            memcpy(period_name, name, 7);
            period_name[7] = 0;
            month = parse_period(period_name);
        }
        if (month < 0 || !store_has_period(engine_store(g_fs.engine), month))
            rc = ENOENT;
        else
            ino = ino_make(SPACE_REPORT, (uint64_t)month);
    } else if (parent == FIXED_ISSUED) {
        month = parse_period(name);
        if (month < 0 || !store_has_period(engine_store(g_fs.engine), month))
            rc = ENOENT;
        else
            ino = ino_make(SPACE_MONTH, (uint64_t)month);
    } else {
        ino = fixed_lookup(parent, name);
        rc = ino ? 0 : ENOENT;
    }
    if (rc)
        fuse_reply_err(req, rc);
    else if (ep.ino)
        fuse_reply_entry(req, &ep);
    else
        reply_entry(req, ino);
}

/* The kernel dropped ino (its pages too).  Inode numbers are computed, not
 * kept in a table, so only the prefill record has anything to forget. */
static void fa_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    (void)nlookup;
    if (ino_space(ino) == SPACE_INVOICE)
        prefill_forget(ino_id(ino));
    fuse_reply_none(req);
}

static void fa_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    double timeout;
    int rc = 0;

    /* An open pending/ file answers from its handle: its name may be gone
     * (unlinked, or processed) while the descriptor still works. */
    if (fi && ino_space(ino) == SPACE_PENDING && of_of(fi)->ph) {
        pending_handle_stat(of_of(fi)->ph, &st);
        timeout = 0;
    } else {
        rc = stat_ino(ino, req_pid(req), &st, &timeout);
    }
    if (rc)
        fuse_reply_err(req, rc);
    else
        fuse_reply_attr(req, &st, timeout);
}

/* ---- open files ------------------------------------------------------------ */

static bool in_issued(uint64_t ino)
{
    return ino == FIXED_ISSUED || ino_space(ino) == SPACE_MONTH ||
           ino_space(ino) == SPACE_INVOICE;
}

static void fa_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct open_file *of = calloc(1, sizeof *of);
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
    enum fa_err err = FA_OK;
    int rc = 0;

    if (!of) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    switch (ino_space(ino)) {
    case SPACE_PENDING:
        rc = pending_open(g_fs.pending, ino_id(ino), fi->flags, &of->ph);
        break;
    case SPACE_GHOST:
        rc = afterglow_end(g_fs.afterglow, ino_id(ino));
        break;
    case SPACE_FIXED:
        if (writing && ino == FIXED_DEVICE_CLEAR) {
            of->cb = control_new();
            rc = of->cb ? control_open(req_uid(req)) : ENOMEM;
        } else {
            rc = writing ? EACCES : 0;
        }
        if (!rc && (fi->flags & O_ACCMODE) != O_WRONLY)
            rc = open_snapshot(of, ino, req_pid(req));
        /* each reader has its own snapshot (render.h): reads must come here,
         * not from a page cache or an i_size another reader's stat left */
        fi->direct_io = 1;
        break;
    case SPACE_REPORT:
        rc = writing ? EACCES : open_snapshot(of, ino, req_pid(req));
        fi->direct_io = 1;
        break;
    case SPACE_INVOICE:
        if (writing)
            rc = EROFS;
        else
            err = store_read(engine_store(g_fs.engine), COLL_INVOICE, (int64_t)ino_id(ino),
                             (unsigned char **)&of->buf, &of->len);
        fi->keep_cache = 1;   /* immutable: cached pages stay valid */
        break;
    case SPACE_RECEIPT:
    case SPACE_REJECT_BODY:
    case SPACE_REJECT_ERROR:
        if (writing)
            rc = EACCES;
        else
            err = store_read(engine_store(g_fs.engine),
                             ino_space(ino) == SPACE_RECEIPT ? COLL_RECEIPT
                             : ino_space(ino) == SPACE_REJECT_BODY ? COLL_REJECT_BODY
                                                                   : COLL_REJECT_ERROR,
                             (int64_t)ino_id(ino), (unsigned char **)&of->buf, &of->len);
        break;
    default:
        rc = EISDIR;
    }
    if (!rc && err)
        rc = fa_err_errno(err);
    if (rc) {
        of_free(of, false);
        fuse_reply_err(req, rc);
        return;
    }
    /* FLUSH matters only where close() does something: a draft being
     * written, device/clear.  Elsewhere FOPEN_NOFLUSH spares cat, tar and
     * rsync one round trip per file (the kernel honours it without the
     * writeback cache, which is off). */
    fi->noflush = !of->ph && !of->cb;
    if (ino_space(ino) == SPACE_INVOICE) {
        prefill_opened(ino, ino_id(ino), of->buf, of->len);   /* before the answer */
        of->invoice = true;
        of->invoice_id = ino_id(ino);
    }
    of_give(of, fi);
    fuse_reply_open(req, fi);
}


static void fa_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct open_file *of = of_of(fi);
    (void)ino;
    if (of->ph) {
        char *buf = malloc(size ? size : 1);
        if (!buf) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        fuse_reply_buf(req, buf, pending_read(of->ph, buf, size, off));
        free(buf);
    } else if (off < 0 || (size_t)off >= of->len) {
        fuse_reply_buf(req, NULL, 0);
    } else {
        /* Reply from a copy: once the reply is written the kernel may finish
         * the read, the reader may close, and release() may free of->buf on
         * another thread while this one is still returning from the write. */
        size_t n = of->len - (size_t)off;
        char *copy;
        n = n < size ? n : size;
        copy = malloc(n);
        if (copy)
            memcpy(copy, of->buf + off, n);
        if (copy)
            fuse_reply_buf(req, copy, n);
        else
            fuse_reply_err(req, ENOMEM);
        free(copy);
    }
}

static void fa_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct open_file *of = of_of(fi);
    ssize_t n;
    (void)ino;
    if (!of->ph && !of->cb) {
        fuse_reply_err(req, EBADF);
        return;
    }
    /* a command's result is the result of the write() that ends it */
    n = of->cb ? control_write(of->cb, buf, size, req_uid(req))
               : pending_write(of->ph, buf, size, off);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_write(req, (size_t)n);
}

/* flush() is called at every close() of a descriptor; its answer is what
 * close() returns, which is how a writer learns the draft's outcome. */
static void fa_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct open_file *of = of_of(fi);
    (void)ino;
    fuse_reply_err(req, of->ph ? pending_flush(of->ph, req_pid(req))
                        : of->cb ? control_flush(of->cb, req_uid(req)) : 0);
}

static void fa_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    of_free(of_of(fi), true);
    fuse_reply_err(req, 0);
}

static void fa_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    struct fuse_entry_param e = { 0 };
    struct open_file *of;
    int rc;

    (void)mode;
    if (parent != FIXED_PENDING) {
        fuse_reply_err(req, in_issued(parent) ? EROFS : EACCES);
        return;
    }
    of = calloc(1, sizeof *of);
    rc = of ? pending_create(g_fs.pending, name, &of->ph, &e.attr) : ENOMEM;
    if (rc) {
        free(of);
        fuse_reply_err(req, rc);
        return;
    }
    e.ino = e.attr.st_ino;
    /* The new draft's attributes may be kept a second (its name may not):
     * while it is open only its writer changes it, and the kernel tracks
     * its own writes; processing it invalidates them before the reply
     * (pending.c, announce).  With zero, the kernel asks GETATTR again to
     * check the open's permission: one round trip of seven per draft. */
    e.attr_timeout = TIMEOUT_NEW_DRAFT;
    of_give(of, fi);
    fuse_reply_create(req, &e, fi);
}

/* ---- changes to names and attributes ---------------------------------------- */

static void fa_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    struct stat st;
    double timeout;
    bool have_st = false;
    int rc = 0;

    if (in_issued(ino)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    /* chown to the owner and group a file already has is what copying
     * tools do; anything else would be a lie we cannot keep */
    if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != g_fs.uid) ||
        ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != g_fs.gid)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    if (ino_space(ino) == SPACE_GHOST) {
        /* a draft its writer's close just issued (afterglow.h): the chmod or
         * utime of install -m, shutil.copy2 changes nothing and succeeds */
        rc = (to_set & FUSE_SET_ATTR_SIZE) ? EACCES : afterglow_stat(g_fs.afterglow, ino_id(ino), &st);
        have_st = true;
    } else if (ino_space(ino) == SPACE_PENDING) {
        bool by_handle = fi && of_of(fi)->ph;
        if (to_set & FUSE_SET_ATTR_SIZE)
            rc = by_handle ? pending_handle_truncate(of_of(fi)->ph, attr->st_size, &st)
                           : pending_truncate(g_fs.pending, ino_id(ino), attr->st_size, &st);
        if (!rc && (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)))
            rc = pending_touch(g_fs.pending, ino_id(ino),
                               (to_set & FUSE_SET_ATTR_MTIME_NOW) ? clock_now()
                                                                  : attr->st_mtim.tv_sec, &st);
    } else if ((to_set & FUSE_SET_ATTR_SIZE) && ino != FIXED_DEVICE_CLEAR) {
        rc = EACCES;   /* device/clear: `>` truncates before writing a command; nothing to do */
    }
    if (!rc && !have_st && fi && ino_space(ino) == SPACE_PENDING && of_of(fi)->ph)
        pending_handle_stat(of_of(fi)->ph, &st);
    else if (!rc && !have_st)
        rc = stat_ino(ino, req_pid(req), &st, &timeout);
    if (rc)
        fuse_reply_err(req, rc);
    else
        fuse_reply_attr(req, &st, 0);
}

static void fa_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    enum store_coll c = COLL_RECEIPT;
    struct store_entry e;
    enum fa_err err;
    size_t n = strlen(name);
    int rc;

    if (parent == FIXED_PENDING) {
        fuse_reply_err(req, pending_unlink(g_fs.pending, name));
        return;
    }
    if (parent == FIXED_REJECTED)
        c = store_reject_coll(name, n);
    else if (parent != FIXED_RECEIPTS) {
        fuse_reply_err(req, in_issued(parent) ? EROFS : EPERM);
        return;
    }
    /* rm acknowledges an outcome: hidden from the folder, kept in the store */
    err = store_lookup(engine_store(g_fs.engine), c, NULL, name, &e);
    if (err == FA_OK)
        err = store_hide(engine_store(g_fs.engine), c, e.id);
    rc = fa_err_errno(err);
    fuse_reply_err(req, rc);
}

static void fa_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    int rc;
    if (parent == FIXED_PENDING && newparent == FIXED_PENDING)
        rc = pending_rename(g_fs.pending, name, newname, flags);
    else if (in_issued(parent) || in_issued(newparent))
        rc = EROFS;
    else if (parent == FIXED_PENDING || newparent == FIXED_PENDING)
        rc = EXDEV;   /* mv falls back to copy + unlink */
    else
        rc = EPERM;
    fuse_reply_err(req, rc);
}

static int no_new_nodes(fuse_ino_t parent)
{
    return in_issued(parent) ? EROFS : EPERM;
}

static void fa_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)name;
    (void)mode;
    fuse_reply_err(req, no_new_nodes(parent));
}

static void fa_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)name;
    (void)mode;
    (void)rdev;
    fuse_reply_err(req, no_new_nodes(parent));
}

static void fa_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    (void)link;
    (void)name;
    fuse_reply_err(req, no_new_nodes(parent));
}

static void fa_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino;
    (void)newname;
    fuse_reply_err(req, no_new_nodes(newparent));
}

static void fa_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)name;
    fuse_reply_err(req, no_new_nodes(parent));
}

/* ---- folders, statfs, xattrs ------------------------------------------------- */

static void fa_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    double timeout;
    struct stat st;
    int rc = stat_ino(ino, req_pid(req), &st, &timeout);
    if (!rc && !S_ISDIR(st.st_mode))
        rc = ENOTDIR;
    if (rc)
        fuse_reply_err(req, rc);
    else
        fuse_reply_open(req, fi);
}

static void fa_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)fi;
    dir_readdir(req, ino, size, off, false);
}

static void fa_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)fi;
    dir_readdir(req, ino, size, off, true);
}

static void fa_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    char dir[PATH_MAX];
    (void)ino;
    snprintf(dir, sizeof dir, "%s", engine_config(g_fs.engine)->store_path);
    if (statvfs(dirname(dir), &sv))
        fuse_reply_err(req, errno);
    else
        fuse_reply_statfs(req, &sv);
}

/* No file here has extended attributes.  ENOSYS rather than ENODATA: the
 * kernel then remembers that this mount has none (fc->no_getxattr) and
 * answers every later getxattr itself with EOPNOTSUPP — ls -l asks two per
 * file (security.selinux, system.posix_acl_access) and every write() asks
 * for security.capability, each a round trip to the daemon otherwise. */
static void fa_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    (void)ino;
    (void)name;
    (void)size;
    fuse_reply_err(req, ENOSYS);
}

static void fa_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    (void)ino;
    if (size == 0)
        fuse_reply_xattr(req, 0);
    else
        fuse_reply_buf(req, NULL, 0);
}

static void fa_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    (void)ino;
    (void)name;
    (void)value;
    (void)size;
    (void)flags;
    fuse_reply_err(req, ENOTSUP);
}

static void fa_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)ino;
    (void)name;
    fuse_reply_err(req, ENODATA);
}

static void fa_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* the daemon must see every write: no writeback cache, anywhere */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

const struct fuse_lowlevel_ops fapiaofs_ops = {
    .init = fa_init,
    .lookup = fa_lookup,
    .forget = fa_forget,
    .getattr = fa_getattr,
    .setattr = fa_setattr,
    .open = fa_open,
    .read = fa_read,
    .write = fa_write,
    .flush = fa_flush,
    .release = fa_release,
    .create = fa_create,
    .unlink = fa_unlink,
    .rename = fa_rename,
    .mkdir = fa_mkdir,
    .mknod = fa_mknod,
    .symlink = fa_symlink,
    .link = fa_link,
    .rmdir = fa_rmdir,
    .opendir = fa_opendir,
    .readdir = fa_readdir,
    .readdirplus = fa_readdirplus,
    .statfs = fa_statfs,
    .getxattr = fa_getxattr,
    .listxattr = fa_listxattr,
    .setxattr = fa_setxattr,
    .removexattr = fa_removexattr,
};
