/*
 * upload.c — the background uploader of SPEC §6; see upload.h.
 *
 * One thread, its own platform client (engine/platform.c: one reused curl
 * handle, so the connection stays alive between invoices), and the store's
 * queue as the memory of what is left to do, so the order is the store's
 * (strict issue order: only the head of the queue goes, when it is due).
 * The thread keeps only the ids of up to MARKS_MAX invoices the platform
 * accepted and the store has not yet marked, to mark them in one commit; a
 * crash loses those marks, not the invoices: they are sent again, and the
 * platform answers 200 for the same bytes.
 *
 * Retrying is scheduled in the store too.  A failed attempt writes next_at =
 * now (the first failure), then 2^(attempts-1) seconds (capped at 30) plus
 * up to 25% random jitter, so that many machines coming back after the same
 * outage do not all call at once.  Because only the head may go, its backoff
 * is also the pause of the whole queue: while the platform is down we call it
 * at that slowing pace and no faster, however many invoices are issued
 * meanwhile (a kick only makes the thread look at the queue again; it does
 * not bring a retry forward).
 *
 * The one exception to the order: an invoice the platform refuses for good
 * (platform_refuses_invoice: 409, 400, 413) steps out of it.  Waiting for it
 * would hold back every later invoice for ever.  It stays queued (it is
 * offline: the platform has not accepted it, and once it is older than the
 * offline hours limit issuing stops, as SPEC §5.3 says), is tried again every
 * REFUSED_RETRY_S in case the platform's side was mended, and status and the
 * waiting drafts' reason name it.
 *
 * Times: due times and "now" come from clock_now(), the clock the store and
 * the rest of fapiaofs use (tests may replace it with a file).  Waiting is
 * done in real seconds on CLOCK_MONOTONIC and never longer than 30 s, so a
 * test clock that jumps is noticed soon.  A clock set back (NTP after a
 * drift, an administrator) leaves due times further ahead than any backoff;
 * the store counts those as due (struct store_due).  (The request's X-Timestamp is the
 * real time(): platform.c says why.)
 *
 * Stopping: uploader_stop() abandons the client (platform_client_abandon),
 * so a call in progress (even one waiting out a 5 s timeout) ends within
 * about a second instead of running to its end, and records no failure.
 */
#include "engine/upload.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "engine/clock.h"
#include "engine/platform.h"
#include "engine/text.h"

#define BACKOFF_CAP_S        30   /* a platform back after an outage is noticed within ~40 s */
#define IDLE_WAIT_S          30      /* look at the queue at least this often */
#define STORE_ERROR_WAIT_S   5       /* after the store itself failed */
#define INVOICES_PATH        "/v1/invoices"
#define SENTENCE_MAX         1024    /* an error sentence before it meets status */
#define MARKS_MAX            32      /* accepted invoices marked in one commit */
#define REFUSED_RETRY_S      600     /* a refused invoice is tried again this often */

struct uploader {
    store_t *store;

    platform_client_t *pc;        /* used by the thread only */

    pthread_t thread;
    bool thread_running;
    atomic_bool stopping;

    pthread_mutex_t lock;         /* guards kicked and status */
    pthread_cond_t wake;          /* CLOCK_MONOTONIC */
    bool kicked;
    struct platform_status status;

    /* accepted by the platform, not yet marked in the store (thread only):
     * marked together when the queue is drained, a call fails, or there
     * are MARKS_MAX — one commit instead of one per invoice */
    int64_t accepted[MARKS_MAX];
    int naccepted;
};

/* How one attempt ended. */
enum attempt { ATTEMPT_ACCEPTED, ATTEMPT_FAILED, ATTEMPT_STOPPED, ATTEMPT_STORE_FAILED };

/* ---- small helpers --------------------------------------------------- */

static void set_status_error(struct uploader *u, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_status_error(struct uploader *u, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&u->lock);
    va_start(ap, fmt);
    vsnprintf(u->status.last_error, sizeof u->status.last_error, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&u->lock);
}

/* Copies src into dst[size], cutting it if need be: an error sentence is
 * whole in the store and may be shortened in status. */
static void copy_cut(char *dst, size_t size, const char *src)
{
    size_t n = text_utf8_cut(src, size - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
}

static uint32_t random_u32(void)
{
    uint32_t r = 0;

    /* Without randomness the jitter is simply 0: still a correct backoff. */
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = 0;
    return r;
}

/* Delay before the next attempt after `failures` failed ones (>= 1): the
 * first failure is retried at once (a lost packet, one 503 of a flaky
 * front end), then 2, 4, 8 ... seconds up to the cap, plus up to 25 %
 * jitter so that many clients do not come back in step. */
static int64_t backoff_seconds(int failures)
{
    int64_t base;

    if (failures <= 1)
        return 0;
    base = failures >= 10 ? BACKOFF_CAP_S : (int64_t)1 << (failures - 1);
    if (base > BACKOFF_CAP_S)
        base = BACKOFF_CAP_S;
    return base + (int64_t)(random_u32() % (uint32_t)(base / 4 + 1));
}

/* ---- one upload ------------------------------------------------------ */

/* The accepted invoices leave the queue, in one commit. */
static enum attempt marks_flush(struct uploader *u)
{
    enum fa_err err;

    if (u->naccepted == 0)
        return ATTEMPT_ACCEPTED;
    err = store_uploads_done(u->store, u->accepted, u->naccepted, clock_now());
    pthread_mutex_lock(&u->lock);
    if (err == FA_OK)
        u->status.uploaded += u->naccepted;
    else   /* accepted, but still queued here: the next attempts get 200 */
        snprintf(u->status.last_error, sizeof u->status.last_error,
                 "%d invoices were accepted but the store could not record that: %s", u->naccepted,
                 fa_err_str(err));
    pthread_mutex_unlock(&u->lock);
    u->naccepted = 0;
    return err == FA_OK ? ATTEMPT_ACCEPTED : ATTEMPT_STORE_FAILED;
}

/* One attempt at the head of the queue (after the accepted ones not yet
 * marked), with its bookkeeping in the store and in the status. */
static enum attempt upload_one(struct uploader *u, const struct store_upload *item)
{
    char error[SENTENCE_MAX];
    struct platform_reply r;
    bool answered, accepted, refused, reached;
    int64_t now, next_at;
    enum fa_err err;

    answered = platform_call(u->pc, "POST", INVOICES_PATH, item->json, item->len, &r) == 0;
    accepted = answered && platform_upload_accepted(u->pc, &r, item->code, item->number, item->json,
                                                    item->len, error, sizeof error);
    if (atomic_load(&u->stopping)) {
        platform_reply_free(&r);
        return ATTEMPT_STOPPED;   /* not the platform's doing: no failure recorded */
    }
    now = clock_now();
    if (accepted) {
        platform_reply_free(&r);
        assert(u->naccepted < MARKS_MAX);
        u->accepted[u->naccepted++] = item->invoice_id;
        pthread_mutex_lock(&u->lock);
        u->status.reachable = true;
        u->status.last_contact = now;
        u->status.next_retry = 0;
        u->status.last_error[0] = '\0';
        pthread_mutex_unlock(&u->lock);
        /* an invoice from past the head must not become the next after_id */
        return u->naccepted == MARKS_MAX || item->out_of_order ? marks_flush(u) : ATTEMPT_ACCEPTED;
    }

    if (!answered)   /* else platform_upload_accepted said why */
        copy_cut(error, sizeof error, r.error);
    refused = answered && platform_refuses_invoice(r.http);
    /* a 200 that is not the platform's (a portal's page) is no contact with it */
    reached = answered && ((r.http != 200 && r.http != 201) || platform_answered_success(&r));
    platform_reply_free(&r);
    /* attempts counts the earlier failures: this one makes it attempts + 1. */
    next_at = now + (refused ? REFUSED_RETRY_S : backoff_seconds(item->attempts + 1));
    err = store_upload_failed(u->store, item->invoice_id, next_at, refused, error);
    pthread_mutex_lock(&u->lock);
    u->status.reachable = reached;
    if (reached)
        u->status.last_contact = now;
    u->status.next_retry = next_at;
    if (strncmp(u->status.last_error, error, sizeof u->status.last_error - 1))
        /* each new kind of failure once in the log, not every retry */
        fprintf(stderr, "fapiaofs: upload of %s-%s failed: %s (%s)\n", item->code, item->number,
                error, refused ? "refused: the invoices after it go on; tried again every 10 minutes"
                               : "retrying");
    copy_cut(u->status.last_error, sizeof u->status.last_error, error);
    pthread_mutex_unlock(&u->lock);
    return err == FA_OK ? ATTEMPT_FAILED : ATTEMPT_STORE_FAILED;
}

/* ---- the thread ------------------------------------------------------ */

/* Sleeps up to `seconds`; a kick ends the sleep early when kick_wakes, and
 * uploader_stop always does. */
static void sleep_for(struct uploader *u, int64_t seconds, bool kick_wakes)
{
    struct timespec deadline;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&u->lock);
    while (rc != ETIMEDOUT && !atomic_load(&u->stopping) && !(kick_wakes && u->kicked))
        rc = pthread_cond_timedwait(&u->wake, &u->lock, &deadline);
    pthread_mutex_unlock(&u->lock);
}

/* Nothing is due: sleep until the head of the queue is, or a kick. */
static void wait_for_work(struct uploader *u, int64_t now)
{
    int64_t due = 0, wait = IDLE_WAIT_S;

    if (store_upload_next_due(u->store, &due) != FA_OK)
        due = 0;
    if (due > 0) {
        wait = due - now;
        /* At least 1 s: a head that is due by our clock but was not handed
         * out (the clock moved between calls) must not make us spin. */
        if (wait < 1)
            wait = 1;
        if (wait > IDLE_WAIT_S)
            wait = IDLE_WAIT_S;
    }
    pthread_mutex_lock(&u->lock);
    u->status.next_retry = due > now ? due : 0;
    pthread_mutex_unlock(&u->lock);
    sleep_for(u, wait, true);
}

static void *uploader_main(void *arg)
{
    /* the longest wait backoff_seconds() gives, and a refused invoice's */
    static const struct store_due due = { BACKOFF_CAP_S + BACKOFF_CAP_S / 4 + 1, REFUSED_RETRY_S + 1 };
    struct uploader *u = arg;

    while (!atomic_load(&u->stopping)) {
        struct store_upload item;
        int64_t now = clock_now();
        enum fa_err err;

        /* Cleared before looking, so a kick that comes while we look is
         * not lost: it ends the wait below at once. */
        pthread_mutex_lock(&u->lock);
        u->kicked = false;
        pthread_mutex_unlock(&u->lock);

        err = store_next_upload(u->store, now, &due, u->naccepted ? u->accepted[u->naccepted - 1] : 0,
                                &item);
        if (err == FA_OK) {
            enum attempt a = upload_one(u, &item);

            store_upload_free(&item);
            if (a == ATTEMPT_FAILED)
                a = marks_flush(u);
            if (a == ATTEMPT_STORE_FAILED)
                sleep_for(u, STORE_ERROR_WAIT_S, false);
        } else if (marks_flush(u) == ATTEMPT_STORE_FAILED) {
            sleep_for(u, STORE_ERROR_WAIT_S, false);
        } else if (err == FA_NOTFOUND) {
            wait_for_work(u, now);
        } else {
            set_status_error(u, "cannot read the upload queue: %s", fa_err_str(err));
            sleep_for(u, STORE_ERROR_WAIT_S, false);
        }
    }
    marks_flush(u);   /* the platform has them: not sending them again at the next mount */
    return NULL;
}

/* ---- the interface --------------------------------------------------- */

static void uploader_free(struct uploader *u)
{
    platform_client_close(u->pc);
    pthread_cond_destroy(&u->wake);
    pthread_mutex_destroy(&u->lock);
    free(u);
}

int uploader_start(store_t *s, const struct config *c, uploader_t **out)
{
    struct uploader *u;
    pthread_condattr_t attr;
    int rc;

    *out = NULL;
    u = calloc(1, sizeof *u);
    if (u == NULL)
        return -1;
    u->store = s;
    atomic_init(&u->stopping, false);
    if (pthread_mutex_init(&u->lock, NULL) != 0) {
        free(u);
        return -1;
    }
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&u->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_destroy(&u->lock);
        free(u);
        return -1;
    }

    if (platform_client_open(c, &u->pc) != 0) {
        uploader_free(u);
        return -1;
    }
    snprintf(u->status.url, sizeof u->status.url, "%s", platform_url(u->pc));
    if (!platform_configured(u->pc)) {
        /* Not configured: an uploader that never uploads; status shows it. */
        *out = u;
        return 0;
    }
    if (pthread_create(&u->thread, NULL, uploader_main, u) != 0) {
        uploader_free(u);
        return -1;
    }
    pthread_setname_np(u->thread, "fapiaofs-upload");   /* for top -H, perf */
    u->thread_running = true;
    *out = u;
    return 0;
}

void uploader_kick(uploader_t *u)
{
    if (u == NULL || !u->thread_running)
        return;
    pthread_mutex_lock(&u->lock);
    u->kicked = true;
    pthread_cond_signal(&u->wake);
    pthread_mutex_unlock(&u->lock);
}

void uploader_stop(uploader_t *u)
{
    if (u == NULL)
        return;
    pthread_mutex_lock(&u->lock);
    atomic_store(&u->stopping, true);
    pthread_cond_broadcast(&u->wake);
    pthread_mutex_unlock(&u->lock);
    platform_client_abandon(u->pc);
    if (u->thread_running)
        pthread_join(u->thread, NULL);
    uploader_free(u);
}

void uploader_status(uploader_t *u, struct platform_status *st)
{
    memset(st, 0, sizeof *st);
    if (u == NULL)
        return;
    pthread_mutex_lock(&u->lock);
    *st = u->status;
    pthread_mutex_unlock(&u->lock);
}
