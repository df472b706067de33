/*
 * readahead.c — the month read-ahead threads; see readahead.h.
 *
 * Jobs are numbered (gen).  Each worker takes its slice of the month's ids
 * and reads it in chunks of READAHEAD_CHUNK ids, each chunk a read
 * transaction of its own: one long read transaction would keep the issuing
 * path's checkpoints from restarting the WAL for seconds.
 * Between chunks a worker looks whether its job is still the current one.
 */
#include <assert.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/readahead.h"

#define READAHEAD_CHUNK 8192     /* ids per read transaction */
#define READAHEAD_STRIDE 32      /* ids between seeks: under half a leaf page's entries */

struct worker {
    struct readahead *ra;
    int index;
    sqlite3 *db;
    sqlite3_stmt *range, *seek, *begin, *commit;
    pthread_t thread;
};

struct readahead {
    pthread_mutex_t lock;
    pthread_cond_t work;          /* a new job, or stopping */
    pthread_cond_t idle;          /* busy fell to 0 */
    char period[8];               /* the current job's month */
    uint64_t gen;                 /* the current job; 0: none yet */
    int busy;                     /* workers not done with the current job */
    bool stopping;
    uint64_t probes;              /* index positions sought, all jobs */
    int started;                  /* threads running */
    struct worker w[READAHEAD_THREADS];
};

static bool job_is_stale(struct readahead *ra, uint64_t gen)
{
    bool stale;
    pthread_mutex_lock(&ra->lock);
    stale = ra->stopping || ra->gen != gen;
    pthread_mutex_unlock(&ra->lock);
    return stale;
}

/* Touch this worker's slice of period's index: a seek every READAHEAD_STRIDE
 * ids reads each leaf page (~65 entries) without stepping through its
 * entries, so a warm month costs a few thousand seeks, not a million steps.
 * The positions sought, counted. */
static uint64_t read_slice(struct worker *w, const char *period, uint64_t gen)
{
    int64_t lo, hi, span, from, to, at, id, end;
    uint64_t probes = 0;
    int rc;

    sqlite3_bind_text(w->range, 1, period, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(w->range);
    if (rc != SQLITE_ROW || sqlite3_column_type(w->range, 0) == SQLITE_NULL) {
        sqlite3_reset(w->range);
        return 0;
    }
    lo = sqlite3_column_int64(w->range, 0);
    hi = sqlite3_column_int64(w->range, 1);
    sqlite3_reset(w->range);
    if (hi - lo < READAHEAD_MIN_SPAN)
        return 0;
    span = (hi - lo) / READAHEAD_THREADS + 1;
    from = lo + span * w->index;
    to = w->index == READAHEAD_THREADS - 1 ? hi + 1 : from + span;
    sqlite3_bind_text(w->seek, 1, period, -1, SQLITE_TRANSIENT);
    for (at = from; at < to && !job_is_stale(w->ra, gen); at = end) {
        end = to - at > READAHEAD_CHUNK ? at + READAHEAD_CHUNK : to;
        if (sqlite3_step(w->begin) != SQLITE_DONE) {
            sqlite3_reset(w->begin);
            break;
        }
        sqlite3_reset(w->begin);
        for (id = at; id < end; id += READAHEAD_STRIDE) {
            sqlite3_bind_int64(w->seek, 2, id);
            sqlite3_step(w->seek);
            sqlite3_reset(w->seek);
            probes++;
        }
        sqlite3_step(w->commit);
        sqlite3_reset(w->commit);
    }
    return probes;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct readahead *ra = w->ra;
    uint64_t taken = 0, probes;   /* the last job this worker took */
    char period[sizeof ra->period];

    pthread_mutex_lock(&ra->lock);
    for (;;) {
        while (!ra->stopping && ra->gen == taken)
            pthread_cond_wait(&ra->work, &ra->lock);
        if (ra->stopping)
            break;
        taken = ra->gen;
        memcpy(period, ra->period, sizeof period);
        pthread_mutex_unlock(&ra->lock);
        probes = read_slice(w, period, taken);
        pthread_mutex_lock(&ra->lock);
        ra->probes += probes;
        if (ra->gen == taken && --ra->busy == 0)   /* an abandoned job is no longer counted */
            pthread_cond_broadcast(&ra->idle);
    }
    pthread_mutex_unlock(&ra->lock);
    return NULL;
}

static int worker_open(struct worker *w, const char *path)
{
    int rc = sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(w->db, 1000);
    /* The OS page cache is what is being filled: a small cache of our own. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(w->db, "PRAGMA cache_size = 16", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(w->db,   /* min() and max() apart: each one index seek */
                                "SELECT (SELECT min(id) FROM invoices INDEXED BY invoices_list"
                                "        WHERE period = ?1),"
                                "       (SELECT max(id) FROM invoices INDEXED BY invoices_list"
                                "        WHERE period = ?1)",
                                -1, &w->range, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(w->db,
                                "SELECT id FROM invoices INDEXED BY invoices_list"
                                " WHERE period = ?1 AND id >= ?2 ORDER BY id LIMIT 1",
                                -1, &w->seek, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(w->db, "BEGIN", -1, &w->begin, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(w->db, "COMMIT", -1, &w->commit, NULL);
    return rc;
}

static void worker_close(struct worker *w)
{
    sqlite3_finalize(w->range);
    sqlite3_finalize(w->seek);
    sqlite3_finalize(w->begin);
    sqlite3_finalize(w->commit);
    sqlite3_close(w->db);
}

enum fa_err readahead_open(const char *path, struct readahead **out)
{
    struct readahead *ra = calloc(1, sizeof *ra);
    enum fa_err err = FA_OK;
    int i;

    *out = NULL;
    if (!ra)
        return FA_NOMEM;
    pthread_mutex_init(&ra->lock, NULL);
    pthread_cond_init(&ra->work, NULL);
    pthread_cond_init(&ra->idle, NULL);
    for (i = 0; i < READAHEAD_THREADS; i++) {
        ra->w[i].ra = ra;
        ra->w[i].index = i;
        if (worker_open(&ra->w[i], path) != SQLITE_OK) {
            err = FA_IO;
            goto fail;
        }
    }
    for (; ra->started < READAHEAD_THREADS; ra->started++) {
        struct worker *w = &ra->w[ra->started];
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            err = FA_NOMEM;
            goto fail;
        }
        pthread_setname_np(w->thread, "fapiaofs-ra");   /* for top -H, perf */
    }
    *out = ra;
    return FA_OK;
fail:
    readahead_close(ra);
    return err;
}

void readahead_close(struct readahead *ra)
{
    int i;
    if (!ra)
        return;
    pthread_mutex_lock(&ra->lock);
    ra->stopping = true;
    pthread_cond_broadcast(&ra->work);
    pthread_mutex_unlock(&ra->lock);
    for (i = 0; i < ra->started; i++)
        pthread_join(ra->w[i].thread, NULL);
    for (i = 0; i < READAHEAD_THREADS; i++)
        worker_close(&ra->w[i]);   /* NULL handles (a failed open) are fine */
    pthread_cond_destroy(&ra->idle);
    pthread_cond_destroy(&ra->work);
    pthread_mutex_destroy(&ra->lock);
    free(ra);
}

void readahead_month(struct readahead *ra, const char *period)
{
    if (!ra)
        return;
    pthread_mutex_lock(&ra->lock);
    if (ra->busy == 0 || strncmp(ra->period, period, sizeof ra->period)) {
        snprintf(ra->period, sizeof ra->period, "%s", period);
        ra->gen++;
        ra->busy = ra->started;
        assert(ra->busy == READAHEAD_THREADS);
        pthread_cond_broadcast(&ra->work);
    }
    pthread_mutex_unlock(&ra->lock);
}

void readahead_wait(struct readahead *ra)
{
    if (!ra)
        return;
    pthread_mutex_lock(&ra->lock);
    while (ra->busy > 0)
        pthread_cond_wait(&ra->idle, &ra->lock);
    pthread_mutex_unlock(&ra->lock);
}

uint64_t readahead_probes(struct readahead *ra)
{
    uint64_t n = 0;
    if (ra) {
        pthread_mutex_lock(&ra->lock);
        n = ra->probes;
        pthread_mutex_unlock(&ra->lock);
    }
    return n;
}
