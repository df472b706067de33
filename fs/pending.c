/*
 * pending.c — pending/ in memory; see pending.h.
 *
 * Entries are kept in an array ordered by their id, which is also their
 * inode id and their readdir cursor.  Ids come from the store in blocks
 * (store_reserve_entries), never twice for one state directory, and a draft
 * keeps its id in the store: a waiting draft has the same st_ino after a
 * remount (SPEC §2.2), and a new file never takes the number of an old one.
 * Waiting drafts are retried in arrival order (earliest_waiting), which is
 * not the array's: a file may be handed over long after it was created.
 *
 * An entry is reference counted: one reference while it is in the folder,
 * one per open handle, so a draft processed (and removed) while another
 * descriptor still has it open stays readable through that descriptor.
 *
 * Processing runs without the folder's lock held: the engine may take a
 * while (device, fsync), and other writers must not wait for it.  While it
 * runs the entry is `busy`, and that is what keeps a draft from being taken
 * twice: a second descriptor closed at the same moment waits for the first
 * one's outcome and returns it instead of submitting the bytes again (two
 * invoices for one file); writes and truncation are refused, so nothing is
 * added that the outcome would not include; `rm` of a waiting draft waits
 * for a retry in progress, which would otherwise overwrite the cancel; and a
 * create of the same name waits, then makes a new file if the old one left.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "engine/clock.h"
#include "engine/draft.h"
#include "engine/text.h"
#include "fs/afterglow.h"
#include "fs/fs.h"
#include "fs/notify.h"
#include "fs/pending.h"
#include "fs/render.h"

enum entry_state {
    ENTRY_OPEN,      /* being written, or a scratch file */
    ENTRY_WAITING,   /* handed to the engine, waits for the device (read-only) */
    ENTRY_DONE,      /* handed to the engine and left pending/ (still open somewhere) */
};

struct pending_entry {
    uint64_t id;
    char name[256];
    unsigned char *data;
    size_t size, cap;
    int64_t mtime;
    enum entry_state state;
    int64_t draft_id;          /* ENTRY_WAITING */
    char reason[256];          /* ENTRY_WAITING */
    bool waits_for_amount;     /* ENTRY_WAITING for the offline amount: blue drafts queue behind */
    int refs;
    bool linked;               /* still in the folder */
    bool too_big;              /* a write went past 1 MiB: dropped at close */
    bool busy;                 /* process_entry() runs for it */
    bool renamed;              /* renamed to a draft name while open: processed at a close */
    int outcome;               /* the errno of its last processing */
    struct pending_dir *dir;
};

struct pending_handle {
    struct pending_dir *dir;
    struct pending_entry *e;
    bool wrote;                /* a write since the last flush */
};

struct pending_dir {
    struct engine *engine;
    pthread_mutex_t lock;
    struct pending_entry **v;
    size_t n, cap;
    /* unlinked entries still open somewhere: fstat works until the last close */
    struct pending_entry **orphans;
    size_t norphans, cap_orphans;
    uint64_t next_id, block_end;  /* ids not yet given: [next_id, block_end) */
    size_t held;                  /* bytes of memory holding file contents */
    /* the retry thread for waiting drafts */
    pthread_t retry_thread;
    bool retry_running, stopping;
    pthread_cond_t retry_cond;
    pthread_cond_t idle;          /* an entry stopped being busy */
    pthread_cond_t released;      /* a handle was released: renames_waiting wait for it */
    int renames_waiting;
    struct afterglow *glow;       /* drafts issued at a close, as their writers still see them */
    _Atomic int announced_month;  /* of the last invoice announced, y*12+m-1; -1 before */
};

#define RETRY_SECONDS 2
/* how long a rename waits for the releases of a file's closed handles */
#define RENAME_WAIT_MS 100
/* ids reserved at a time: one store write per this many files */
#define ID_BLOCK 4096
/* What pending/ may hold in memory, all files together: without a bound, a
 * writer could fill the daemon's memory with scratch files. */
#define PENDING_MEMORY_MAX ((size_t)256 << 20)
/* Files being written or kept under scratch names, at once: empty ones hold
 * no content but ~600 bytes each, and names are found by a walk of the
 * folder.  Waiting drafts do not count: the store has them, and their
 * contents count in PENDING_MEMORY_MAX. */
#define PENDING_OPEN_MAX 16384

bool pending_is_draft_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 5 && !strcasecmp(name + n - 5, ".json");
}

/*
 * A draft's buffer grows by realloc up to 1 MiB, and processing one makes a
 * few more of its size (the engine's copy, the decoded text, the parse tree).
 * glibc's mmap threshold is dynamic: after the first large buffer is freed it
 * rises to that size, and later large buffers come from the arenas, where they
 * stay resident when freed and fragment (test_badinput under load: RSS
 * swinging +19..+39 MiB from round to round).  A fixed threshold sends
 * buffers of LARGE_BUFFER and more to mmap, and a trim after processing a
 * draft that large returns what the engine left in the arenas: +4..+10 MiB,
 * flat.  Drafts are small; both are rare.
 */
#define LARGE_BUFFER (256 * 1024)

void pending_setup_malloc(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER);
#endif
}

/* lock held */
static void entry_unref(struct pending_entry *e)
{
    struct pending_dir *d = e->dir;
    size_t i;

    if (--e->refs)
        return;
    for (i = 0; i < d->norphans; i++)
        if (d->orphans[i] == e) {
            d->orphans[i] = d->orphans[--d->norphans];
            break;
        }
    d->held -= e->cap;
    free(e->data);
    free(e);
}

/* Room for cap bytes of content; 0, ENOSPC past PENDING_MEMORY_MAX, ENOMEM.
 * Lock held. */
static int grow_entry(struct pending_dir *d, struct pending_entry *e, size_t cap)
{
    unsigned char *p;

    if (cap <= e->cap)
        return 0;
    if (d->held - e->cap + cap > PENDING_MEMORY_MAX)
        return ENOSPC;
    p = realloc(e->data, cap);
    if (!p)
        return ENOMEM;
    d->held += cap - e->cap;
    e->data = p;
    e->cap = cap;
    return 0;
}

/* Index of the entry named `name`, or -1; lock held. */
static ssize_t find_name(struct pending_dir *d, const char *name)
{
    size_t i;
    for (i = 0; i < d->n; i++)
        if (!strcmp(d->v[i]->name, name))
            return (ssize_t)i;
    return -1;
}

static ssize_t find_id(struct pending_dir *d, uint64_t id)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {   /* ids are increasing: binary search */
        size_t mid = (lo + hi) / 2;
        if (d->v[mid]->id == id)
            return (ssize_t)mid;
        if (d->v[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void unlink_at(struct pending_dir *d, size_t i)
{
    struct pending_entry *e = d->v[i];
    if (e->refs > 1) {   /* still open: keep it findable by inode until the last close */
        if (d->norphans == d->cap_orphans) {
            size_t cap = d->cap_orphans ? d->cap_orphans * 2 : 16;
            struct pending_entry **o = realloc(d->orphans, cap * sizeof *o);
            if (o) {
                d->orphans = o;
                d->cap_orphans = cap;
            }
        }
        if (d->norphans < d->cap_orphans)
            d->orphans[d->norphans++] = e;
    }
    memmove(&d->v[i], &d->v[i + 1], (d->n - i - 1) * sizeof *d->v);
    d->n--;
    e->linked = false;
    entry_unref(e);
}

static void unlink_entry(struct pending_dir *d, struct pending_entry *e)
{
    ssize_t i;
    if (e->linked && (i = find_id(d, e->id)) >= 0)
        unlink_at(d, (size_t)i);
}

/* A new entry's id (0 or an errno); lock held.  Ids increase within a
 * mount, and each block is above every earlier one, so the array stays
 * ordered when entries are appended. */
static int take_id(struct pending_dir *d, uint64_t *id)
{
    if (d->next_id == d->block_end) {
        uint64_t first;
        enum fa_err err = store_reserve_entries(engine_store(d->engine), ID_BLOCK, &first);
        if (err)
            return fa_err_errno(err);
        assert(first >= d->block_end);
        d->next_id = first;
        d->block_end = first + ID_BLOCK;
    }
    *id = d->next_id++;
    return 0;
}

/* Appended with the given id: the caller keeps the array ordered. */
static struct pending_entry *add_entry(struct pending_dir *d, const char *name, uint64_t id)
{
    struct pending_entry *e;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        struct pending_entry **v = realloc(d->v, cap * sizeof *v);
        if (!v)
            return NULL;
        d->v = v;
        d->cap = cap;
    }
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->id = id;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->mtime = clock_now();
    e->refs = 1;
    e->linked = true;
    e->dir = d;
    d->v[d->n++] = e;
    return e;
}

/* Until no processing of e runs; lock held (released while waiting), and a
 * reference to e, or it could be freed while we wait. */
static void wait_idle(struct pending_dir *d, struct pending_entry *e)
{
    while (e->busy)
        pthread_cond_wait(&d->idle, &d->lock);
}

/* The same for an entry found by name, without a reference of our own. */
static void wait_idle_found(struct pending_dir *d, struct pending_entry *e)
{
    e->refs++;
    wait_idle(d, e);
    entry_unref(e);
}

/* Whether e's content may change: not while it is processed or after. */
static bool entry_writable(const struct pending_entry *e)
{
    return !e->busy && e->state == ENTRY_OPEN;
}

static void entry_stat(const struct pending_entry *e, struct stat *st)
{
    fill_attr(st, ino_make(SPACE_PENDING, e->id),
              S_IFREG | (e->state == ENTRY_WAITING ? 0444 : 0664), e->size, e->mtime);
    if (!e->linked)
        st->st_nlink = 0;
}

/* The arrival of the last draft.  Scratch files live in memory only and
 * vanish at a remount, so they do not move the folder's time: the time
 * stays put across remounts and a second rsync -a finds nothing to do. */
int64_t pending_mtime(struct pending_dir *d)
{
    return store_last_draft_time(engine_store(d->engine));
}

/* ---- processing ---------------------------------------------------------- */

/* Tell the kernel what an outcome changed (before the reply: notify.h).  issued/
 * itself changes only when a month begins (its listing, and its mtime, the
 * first issue time of the newest month): racing announces at a month's end
 * at worst send it twice. */
static void announce(struct pending_dir *d, uint64_t ino, const struct engine_outcome *out,
                     int err)
{
    int y, m;

    render_invalidate();   /* status, device/ and platform/ files show the change at once */
    notify_inode(ino);     /* a waiting draft is now read-only; a processed one is gone */
    if (err == FA_OK && out->kind == OUTCOME_WAITING)
        return;
    notify_inode(FIXED_PENDING);
    if (err == FA_OK) {
        notify_inode(FIXED_RECEIPTS);
        if (out->kind == OUTCOME_ISSUED && sscanf(out->period, "%4d-%2d", &y, &m) == 2) {
            if (atomic_exchange(&d->announced_month, y * 12 + m - 1) != y * 12 + m - 1)
                notify_inode(FIXED_ISSUED);
            notify_inode(ino_make(SPACE_MONTH, (uint64_t)(y * 12 + m - 1)));
        }
    } else if (err == FA_REJECTED) {
        notify_inode(FIXED_REJECTED);
    }
}

/* The end of processing e: its outcome is known; lock held. */
static int entry_idle(struct pending_dir *d, struct pending_entry *e, int rc)
{
    e->busy = false;
    e->outcome = rc;
    pthread_cond_broadcast(&d->idle);
    return rc;
}

/* The waiting draft that arrived first, or NULL; lock held.  Arrival is
 * when the draft was handed to the engine (its drafts.id), not when its file
 * was made (the entry's id, the array's order): a file may be held open, or
 * written under a scratch name and renamed, long after it was created. */
static struct pending_entry *earliest_waiting(struct pending_dir *d)
{
    struct pending_entry *first = NULL;
    size_t i;

    for (i = 0; i < d->n; i++)
        if (d->v[i]->state == ENTRY_WAITING && (!first || d->v[i]->draft_id < first->draft_id))
            first = d->v[i];
    return first;
}

/* Hand entry e (a reference held by the caller, marked busy by it under the
 * lock) to the engine and apply the outcome.  Returns the errno for
 * close()/rename().  closed_by: the thread whose close() it is, 0 for a
 * rename or a retry (an issued draft glows for its writer after a close
 * only: afterglow.h). */
static int process_entry(struct pending_dir *d, struct pending_entry *e, pid_t closed_by)
{
    struct pending_entry *first;
    struct engine_outcome out;
    unsigned char *copy;
    size_t len;
    char name[256], behind[256], when[32];
    uint64_t left_size = 0;
    int64_t left_mtime = 0;
    enum fa_err err;
    bool retry;
    int rc;

    pthread_mutex_lock(&d->lock);
    assert(e->busy);
    retry = e->state == ENTRY_WAITING;
    len = e->size;
    copy = malloc(len ? len : 1);
    if (copy && len)
        memcpy(copy, e->data, len);
    memcpy(name, e->name, sizeof name);
    behind[0] = 0;
    /* the earliest waiting draft, if it waits for the offline amount (engine.h) */
    if (e->state == ENTRY_OPEN && (first = earliest_waiting(d)) && first->waits_for_amount)
        memcpy(behind, first->name, sizeof behind);   /* its line in status says why */
    if (!copy)
        entry_idle(d, e, ENOMEM);
    pthread_mutex_unlock(&d->lock);
    if (!copy)
        return ENOMEM;

    err = retry ? engine_retry(d->engine, e->draft_id, name, copy, len, &out)
                : engine_submit(d->engine, name, copy, len, e->id, behind[0] ? behind : NULL, &out);
    free(copy);

    pthread_mutex_lock(&d->lock);
    if (err == FA_OK && out.kind == OUTCOME_WAITING) {
        e->state = ENTRY_WAITING;
        e->draft_id = out.draft_id;
        e->waits_for_amount = out.waits_for_amount;
        snprintf(e->reason, sizeof e->reason, "%s", out.reason);
        rc = 0;
    } else if (retry && err != FA_OK && err != FA_REJECTED) {
        /* Its writer was told 0 long ago: a retry that could store nothing
         * (a full disk, the device unplugged mid-way) leaves it waiting. */
        const char *why = out.reason[0] ? out.reason : fa_err_str(err);
        snprintf(e->reason, sizeof e->reason, "tried again at %s and could not be stored: %.*s; "
                 "tried again every %d s", clock_iso_cst(clock_now(), when),
                 (int)text_utf8_cut(why, 160), why, RETRY_SECONDS);
        rc = fa_err_errno(err);
    } else {
        /* issued, rejected, or not stored at all: it leaves pending/ */
        e->state = ENTRY_DONE;
        unlink_entry(d, e);
        rc = err == FA_OK ? 0 : fa_err_errno(err);
        left_size = e->size;
        left_mtime = e->mtime;
    }
    entry_idle(d, e, rc);
    pthread_mutex_unlock(&d->lock);
    if (closed_by && err == FA_OK && out.kind != OUTCOME_WAITING)   /* before close() returns */
        afterglow_add(d->glow, name, closed_by, afterglow_process_of(closed_by), left_size,
                      left_mtime);
    announce(d, ino_make(SPACE_PENDING, e->id), &out, err);
    if (err == FA_OK && out.kind == OUTCOME_WAITING)
        pthread_cond_signal(&d->retry_cond);
#ifdef __GLIBC__
    if (len >= LARGE_BUFFER)
        malloc_trim(0);   /* without the folder's lock: other writers go on */
#endif
    return rc;
}

/* Retry waiting drafts in arrival order; stop at the first still waiting. */
static void retry_waiting(struct pending_dir *d)
{
    for (;;) {
        struct pending_entry *e;
        bool still_waiting;
        int rc;

        pthread_mutex_lock(&d->lock);
        e = earliest_waiting(d);
        if (e && e->busy) {
            /* an rm of it cancels it in the store: see what that leaves */
            wait_idle_found(d, e);
            pthread_mutex_unlock(&d->lock);
            continue;
        }
        if (e) {
            e->refs++;
            e->busy = true;
        }
        pthread_mutex_unlock(&d->lock);
        if (!e)
            return;
        rc = process_entry(d, e, 0);
        pthread_mutex_lock(&d->lock);
        still_waiting = e->linked && e->state == ENTRY_WAITING;
        entry_unref(e);
        pthread_mutex_unlock(&d->lock);
        if (still_waiting || rc == EIO || rc == ENOSPC || rc == ENOMEM)
            return;
    }
}

void pending_retry_now(struct pending_dir *d)
{
    pthread_mutex_lock(&d->lock);
    pthread_cond_signal(&d->retry_cond);
    pthread_mutex_unlock(&d->lock);
}

static void *retry_main(void *arg)
{
    struct pending_dir *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += RETRY_SECONDS;
        pthread_cond_timedwait(&d->retry_cond, &d->lock, &ts);
        if (d->stopping)
            break;
        pthread_mutex_unlock(&d->lock);
        /* first: a waiting draft whose invoice it restores is then issued at once */
        engine_retry_restore(d->engine);
        retry_waiting(d);
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* ---- life cycle ---------------------------------------------------------- */

struct pending_dir *pending_new(struct engine *e, struct afterglow *glow)
{
    struct pending_dir *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->engine = e;
    d->glow = glow;
    atomic_init(&d->announced_month, -1);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->retry_cond, NULL);
    pthread_cond_init(&d->idle, NULL);
    pthread_cond_init(&d->released, NULL);
    return d;
}

static int load_waiting(void *ctx, struct store_draft *sd)
{
    struct pending_dir *d = ctx;
    struct pending_entry *e = add_entry(d, sd->name, sd->entry);   /* 0: given one after */
    if (!e) {
        free(sd->body);
        return 1;
    }
    e->data = sd->body;
    e->size = e->cap = sd->len;
    d->held += e->cap;
    e->mtime = sd->received_at;
    e->state = ENTRY_WAITING;
    e->draft_id = sd->id;
    /* the cause may be gone: the retry thread tries it soon, and says why again */
    snprintf(e->reason, sizeof e->reason, "waiting since the last mount%s%.*s",
             sd->reason[0] ? "; before it: " : "", (int)text_utf8_cut(sd->reason, 200), sd->reason);
    return 0;
}

static int by_id(const void *a, const void *b)
{
    const struct pending_entry *x = *(struct pending_entry *const *)a;
    const struct pending_entry *y = *(struct pending_entry *const *)b;
    return (x->id > y->id) - (x->id < y->id);
}

int pending_start(struct pending_dir *d)
{
    enum fa_err err;
    size_t i;
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    err = store_list_waiting(engine_store(d->engine), load_waiting, d);
    /* ids for drafts stored without one (not the store's own doing), then
     * the array in id order (find_id); earliest_waiting keeps arrival order */
    for (i = 0; !err && !rc && i < d->n; i++)
        if (!d->v[i]->id)
            rc = take_id(d, &d->v[i]->id);
    if (d->n > 1)
        qsort(d->v, d->n, sizeof *d->v, by_id);
    pthread_mutex_unlock(&d->lock);
    if (err)
        return fa_err_errno(err);
    if (rc)
        return rc;
    if (pthread_create(&d->retry_thread, NULL, retry_main, d))
        return EAGAIN;
    pthread_setname_np(d->retry_thread, "fapiaofs-retry");   /* for top -H, perf */
    d->retry_running = true;
    return 0;
}

void pending_free(struct pending_dir *d)
{
    if (!d)
        return;
    if (d->retry_running) {
        pthread_mutex_lock(&d->lock);
        d->stopping = true;
        pthread_cond_signal(&d->retry_cond);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->retry_thread, NULL);
    }
    while (d->n)
        unlink_at(d, d->n - 1);
    free(d->v);
    free(d->orphans);
    pthread_cond_destroy(&d->retry_cond);
    pthread_cond_destroy(&d->idle);
    pthread_cond_destroy(&d->released);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* ---- operations ---------------------------------------------------------- */

int pending_lookup(struct pending_dir *d, const char *name, struct stat *st)
{
    ssize_t i;
    pthread_mutex_lock(&d->lock);
    i = find_name(d, name);
    if (i >= 0)
        entry_stat(d->v[i], st);
    pthread_mutex_unlock(&d->lock);
    return i >= 0 ? 0 : ENOENT;
}

int pending_stat(struct pending_dir *d, uint64_t id, struct stat *st)
{
    ssize_t i;
    size_t k;
    int rc = ENOENT;

    pthread_mutex_lock(&d->lock);
    i = find_id(d, id);
    if (i >= 0) {
        entry_stat(d->v[i], st);
        rc = 0;
    }
    for (k = 0; rc && k < d->norphans; k++)
        if (d->orphans[k]->id == id) {
            entry_stat(d->orphans[k], st);
            rc = 0;
        }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static struct pending_handle *handle_new(struct pending_dir *d, struct pending_entry *e)
{
    struct pending_handle *h = calloc(1, sizeof *h);
    if (h) {
        h->dir = d;
        h->e = e;
        e->refs++;
    }
    return h;
}

/* Files in the folder not handed to the engine; lock held. */
static size_t count_open(const struct pending_dir *d)
{
    size_t i, n = 0;
    for (i = 0; i < d->n; i++)
        n += d->v[i]->state == ENTRY_OPEN;
    return n;
}

int pending_create(struct pending_dir *d, const char *name, struct pending_handle **h,
                   struct stat *st)
{
    struct pending_entry *e;
    ssize_t i;
    int rc = 0;

    if (strlen(name) > 255)
        return ENAMETOOLONG;
    pthread_mutex_lock(&d->lock);
    /* a draft of that name being processed: its outcome first (it may leave) */
    while ((i = find_name(d, name)) >= 0 && d->v[i]->busy)
        wait_idle_found(d, d->v[i]);
    if (i >= 0) {
        e = d->v[i];
        if (e->state == ENTRY_WAITING) {
            rc = EACCES;
            goto out;
        }
        e->size = 0;   /* O_CREAT on an existing file that was just truncated by the kernel */
    } else {
        uint64_t id;
        if (d->n >= PENDING_OPEN_MAX && count_open(d) >= PENDING_OPEN_MAX) {
            rc = ENOSPC;   /* a writer creating files and never closing them as drafts */
            goto out;
        }
        if ((rc = take_id(d, &id)) != 0)
            goto out;
        if (!(e = add_entry(d, name, id))) {
            rc = ENOMEM;
            goto out;
        }
    }
    *h = handle_new(d, e);
    if (!*h)
        rc = ENOMEM;
    else
        entry_stat(e, st);
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int pending_open(struct pending_dir *d, uint64_t id, int flags, struct pending_handle **h)
{
    struct pending_entry *e;
    ssize_t i;
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    i = find_id(d, id);
    if (i < 0) {
        rc = ENOENT;
        goto out;
    }
    e = d->v[i];
    if (((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) && e->state == ENTRY_WAITING) {
        rc = EACCES;   /* a waiting draft is already handed over */
        goto out;
    }
    if ((flags & O_TRUNC) && !entry_writable(e)) {
        rc = EBUSY;    /* being processed: its bytes are the engine's now */
        goto out;
    }
    if (flags & O_TRUNC) {
        e->size = 0;
        e->mtime = clock_now();
    }
    *h = handle_new(d, e);
    if (!*h)
        rc = ENOMEM;
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

size_t pending_read(struct pending_handle *h, char *buf, size_t size, off_t off)
{
    struct pending_dir *d = h->dir;
    size_t n = 0;
    pthread_mutex_lock(&d->lock);
    if (off >= 0 && (size_t)off < h->e->size) {
        n = h->e->size - (size_t)off;
        if (n > size)
            n = size;
        memcpy(buf, h->e->data + off, n);
    }
    pthread_mutex_unlock(&d->lock);
    return n;
}

ssize_t pending_write(struct pending_handle *h, const char *buf, size_t size, off_t off)
{
    struct pending_dir *d = h->dir;
    struct pending_entry *e = h->e;
    size_t end;
    ssize_t rc = (ssize_t)size;

    pthread_mutex_lock(&d->lock);
    /* first: a draft handed to the engine is not dropped for a write to it */
    if (!entry_writable(e)) {
        rc = -EACCES;   /* handed to the engine (waiting, being processed, or done) */
        goto out;
    }
    if (off < 0 || (size_t)off > DRAFT_MAX_BYTES || size > DRAFT_MAX_BYTES - (size_t)off) {
        e->too_big = true;
        rc = -EFBIG;
        goto out;
    }
    end = (size_t)off + size;
    if (end > e->cap) {
        size_t cap = e->cap ? e->cap : 4096;
        int err;
        while (cap < end)
            cap *= 2;
        err = grow_entry(d, e, cap);
        if (err) {
            rc = -err;
            goto out;
        }
    }
    if ((size_t)off > e->size)   /* a hole reads as zeros */
        memset(e->data + e->size, 0, (size_t)off - e->size);
    memcpy(e->data + off, buf, size);
    if (end > e->size)
        e->size = end;
    e->mtime = clock_now();
    h->wrote = true;
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int pending_flush(struct pending_handle *h, pid_t closed_by)
{
    struct pending_dir *d = h->dir;
    bool process;
    int rc;

    /* Only a descriptor that wrote triggers processing: a shell's
     * duplicated descriptor is closed before anything is written. */
    pthread_mutex_lock(&d->lock);
    if (h->e->too_big && h->e->linked && entry_writable(h->e)) {
        /* nothing partial is left behind: the writer learns EFBIG again */
        uint64_t ino = ino_make(SPACE_PENDING, h->e->id);
        unlink_entry(d, h->e);
        pthread_mutex_unlock(&d->lock);
        notify_inode(ino);   /* its link count, for other open descriptors */
        notify_inode(FIXED_PENDING);
        return EFBIG;
    }
    if (h->wrote || h->e->renamed) {
        /* Another descriptor's close is processing it: that outcome includes
         * what this one wrote (writes stop while it runs), and is ours too. */
        if (h->e->busy) {
            wait_idle(d, h->e);
            if (h->e->state != ENTRY_OPEN) {
                h->wrote = false;
                /* a waiting draft is stored, whatever its last retry met */
                rc = h->e->state == ENTRY_WAITING ? 0 : h->e->outcome;
                pthread_mutex_unlock(&d->lock);
                return rc;
            }
        }
    }
    process = (h->wrote || h->e->renamed) && h->e->linked && h->e->state == ENTRY_OPEN &&
              pending_is_draft_name(h->e->name);
    h->wrote = false;
    if (process) {
        h->e->busy = true;
        h->e->renamed = false;
    }
    pthread_mutex_unlock(&d->lock);
    return process ? process_entry(d, h->e, closed_by) : 0;
}

/* A file renamed to a draft name while a handle of it was open, that no
 * handle holds any more; lock held.  refs counts the folder's reference and
 * the caller's. */
static bool renamed_and_closed(const struct pending_entry *e)
{
    return e->refs == 2 && e->renamed && e->linked && e->state == ENTRY_OPEN && !e->busy &&
           pending_is_draft_name(e->name);
}

void pending_release(struct pending_handle *h)
{
    struct pending_dir *d = h->dir;
    struct pending_entry *e = h->e;
    bool process;

    free(h);
    pthread_mutex_lock(&d->lock);
    /* The kernel sends RELEASE after close() has returned, so a rename that
     * followed the close may have come first and found the file open; if it
     * gave up waiting for us (pending_rename), the draft is processed here. */
    process = renamed_and_closed(e);
    if (process) {
        e->busy = true;
        e->renamed = false;
        pthread_mutex_unlock(&d->lock);
        process_entry(d, e, 0);   /* its outcome is in receipts/ and status */
        pthread_mutex_lock(&d->lock);
    }
    entry_unref(e);
    if (d->renames_waiting)
        pthread_cond_broadcast(&d->released);
    pthread_mutex_unlock(&d->lock);
}

/* lock held */
static int truncate_entry(struct pending_entry *e, off_t size, struct stat *st)
{
    int err;

    if (size < 0 || size > DRAFT_MAX_BYTES)
        return EFBIG;
    if (!entry_writable(e))
        return EACCES;
    err = grow_entry(e->dir, e, (size_t)size);
    if (err)
        return err;
    if ((size_t)size > e->size)
        memset(e->data + e->size, 0, (size_t)size - e->size);
    e->size = (size_t)size;
    e->mtime = clock_now();
    entry_stat(e, st);
    return 0;
}

int pending_truncate(struct pending_dir *d, uint64_t id, off_t size, struct stat *st)
{
    ssize_t i;
    int rc;

    pthread_mutex_lock(&d->lock);
    i = find_id(d, id);
    rc = i < 0 ? ENOENT : truncate_entry(d->v[i], size, st);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int pending_handle_truncate(struct pending_handle *h, off_t size, struct stat *st)
{
    int rc;
    pthread_mutex_lock(&h->dir->lock);
    rc = truncate_entry(h->e, size, st);
    pthread_mutex_unlock(&h->dir->lock);
    return rc;
}

void pending_handle_stat(struct pending_handle *h, struct stat *st)
{
    pthread_mutex_lock(&h->dir->lock);
    entry_stat(h->e, st);
    pthread_mutex_unlock(&h->dir->lock);
}

int pending_touch(struct pending_dir *d, uint64_t id, int64_t mtime, struct stat *st)
{
    ssize_t i;
    pthread_mutex_lock(&d->lock);
    i = find_id(d, id);
    if (i >= 0) {
        d->v[i]->mtime = mtime;
        entry_stat(d->v[i], st);
    }
    pthread_mutex_unlock(&d->lock);
    return i >= 0 ? 0 : ENOENT;
}

int pending_unlink(struct pending_dir *d, const char *name)
{
    struct pending_entry *e;
    ssize_t i;
    enum fa_err err = FA_OK;

    pthread_mutex_lock(&d->lock);
    /* a retry in progress would write its outcome over the cancel: wait for
     * it (the draft may be issued by then, and gone) */
    while ((i = find_name(d, name)) >= 0 && d->v[i]->busy)
        wait_idle_found(d, d->v[i]);
    if (i < 0) {
        pthread_mutex_unlock(&d->lock);
        return ENOENT;
    }
    e = d->v[i];
    if (e->state != ENTRY_WAITING) {
        unlink_at(d, (size_t)i);
        pthread_mutex_unlock(&d->lock);
        return 0;
    }
    /* rm of a waiting draft cancels it in the store first, busy meanwhile
     * (no retry takes it): if that fails (a full disk; a number the device
     * signed for it, EBUSY) the file stays, as what the store says */
    e->refs++;
    e->busy = true;
    pthread_mutex_unlock(&d->lock);
    err = engine_cancel(d->engine, e->draft_id);
    pthread_mutex_lock(&d->lock);
    if (err == FA_OK)
        unlink_entry(d, e);
    entry_idle(d, e, fa_err_errno(err));
    entry_unref(e);
    pthread_mutex_unlock(&d->lock);
    return fa_err_errno(err);
}

/* The handles of e that its writers have closed are released in the
 * background: wait a little for them, so that a rename right after a close
 * finds the file closed, as its caller does; lock held, and a reference. */
static void wait_released(struct pending_dir *d, struct pending_entry *e)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += RENAME_WAIT_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    d->renames_waiting++;
    while (e->refs > 2 && e->linked && e->state == ENTRY_OPEN && !d->stopping)
        if (pthread_cond_timedwait(&d->released, &d->lock, &until))
            break;   /* still open: processed at its next close, or its release */
    d->renames_waiting--;
}

int pending_rename(struct pending_dir *d, const char *from, const char *to, unsigned flags)
{
    struct pending_entry *e = NULL;
    ssize_t i, j;
    bool process = false;
    int rc = 0;

    if (strlen(to) > 255)
        return ENAMETOOLONG;
    if (flags & ~RENAME_NOREPLACE)
        return EINVAL;   /* RENAME_EXCHANGE and others: not for drafts */
    pthread_mutex_lock(&d->lock);
    i = find_name(d, from);
    j = find_name(d, to);
    if (i < 0) {
        rc = ENOENT;
    } else if (i == j) {
        rc = 0;
    } else if (d->v[i]->state == ENTRY_WAITING || d->v[i]->busy) {
        rc = EBUSY;    /* handed to the engine: its name is its identity */
    } else if (j >= 0 && (flags & RENAME_NOREPLACE)) {
        rc = EEXIST;
    } else if (j >= 0 && (d->v[j]->state == ENTRY_WAITING || d->v[j]->busy)) {
        rc = EBUSY;    /* never silently replace a draft that waits or is processed */
    } else {
        e = d->v[i];
        if (j >= 0) {
            unlink_at(d, (size_t)j);
        }
        snprintf(e->name, sizeof e->name, "%s", to);
        /* A closed scratch file renamed to a draft name is processed now;
         * one still open at the next close of a descriptor on it (which may
         * be a reader's, or have written before the rename: a write's own
         * flag was spent at a close while the name was a scratch name). */
        e->refs++;
        e->renamed = pending_is_draft_name(to);
        if (e->renamed && e->refs > 2)
            wait_released(d, e);
        process = renamed_and_closed(e);
        if (process) {
            e->busy = true;
            e->renamed = false;
        } else {
            entry_unref(e);
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (process) {
        rc = process_entry(d, e, 0);
        pthread_mutex_lock(&d->lock);
        entry_unref(e);
        pthread_mutex_unlock(&d->lock);
    }
    return rc;
}

void pending_list(struct pending_dir *d, uint64_t after, pending_entry_cb cb, void *ctx)
{
    size_t i;
    pthread_mutex_lock(&d->lock);
    for (i = 0; i < d->n; i++)
        if (d->v[i]->id > after && cb(ctx, d->v[i]->id, d->v[i]->name))
            break;
    pthread_mutex_unlock(&d->lock);
}

static int by_arrival(const void *a, const void *b)
{
    const struct pending_entry *x = *(struct pending_entry *const *)a;
    const struct pending_entry *y = *(struct pending_entry *const *)b;
    return (x->draft_id > y->draft_id) - (x->draft_id < y->draft_id);
}

/* In arrival order, as they will be issued: the first line is the next. */
char *pending_waiting_text(struct pending_dir *d, int max)
{
    struct pending_entry **waiting;
    char *out = NULL, when[32];
    size_t len = 0, i, n = 0;
    FILE *f;

    pthread_mutex_lock(&d->lock);
    waiting = malloc((d->n ? d->n : 1) * sizeof *waiting);
    f = waiting ? open_memstream(&out, &len) : NULL;
    for (i = 0; f && i < d->n; i++)
        if (d->v[i]->state == ENTRY_WAITING)
            waiting[n++] = d->v[i];
    if (n > 1)
        qsort(waiting, n, sizeof *waiting, by_arrival);
    for (i = 0; f && i < n && i < (size_t)max; i++)
        fprintf(f, "waiting_draft: %s since %s: %s\n", waiting[i]->name,
                clock_iso_cst(waiting[i]->mtime, when), waiting[i]->reason);
    pthread_mutex_unlock(&d->lock);
    if (f && n > (size_t)max)
        fprintf(f, "waiting_more: %zu\n", n - (size_t)max);
    if (f)
        fclose(f);
    free(waiting);
    return out;
}
