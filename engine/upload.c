/*
 * upload.c — the background uploader of SPEC §6; see upload.h.
 *
 * One thread, one reused libcurl easy handle (so the connection to the
 * platform stays alive between invoices), and the store's queue as the only
 * memory of what is left to do: the thread keeps no list of its own, so a
 * crash or a restart loses nothing and the order is the store's (strict issue
 * order: only the head of the queue goes, when it is due).
 *
 * Retrying is scheduled in the store too.  A failed attempt writes next_at =
 * now (the first failure), then 2^(attempts-1) seconds (capped at 30) plus up to 25% random jitter, so
 * that many machines coming back after the same outage do not all call at
 * once.  Because only the head may go, its backoff is also the pause of the
 * whole queue: while the platform is down we call it at that slowing pace and
 * no faster, however many invoices are issued meanwhile (a kick only makes the
 * thread look at the queue again; it does not bring a retry forward).
 *
 * Times: due times and "now" come from clock_now(), the clock the store and
 * the rest of fapiaofs use (tests may replace it with a file).  Waiting is
 * done in real seconds on CLOCK_MONOTONIC and never longer than 30 s, so a
 * test clock that jumps is noticed soon.  X-Timestamp alone is the real
 * time(): it is a wire-level freshness stamp that a real platform checks
 * against its own real clock.
 *
 * Stopping: uploader_stop() sets a flag that curl's progress callback reads,
 * so a call in progress (even one waiting out a 5 s timeout) is abandoned
 * within about a second instead of running to its end.
 */
#include "engine/upload.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "engine/clock.h"
#include "engine/platform_auth.h"

#define DEFAULT_TIMEOUT_MS   5000L
#define BACKOFF_CAP_S        30   /* a platform back after an outage is noticed within ~40 s */
#define IDLE_WAIT_S          30      /* look at the queue at least this often */
#define STORE_ERROR_WAIT_S   5       /* after the store itself failed */
#define REPLY_KEEP           2048    /* bytes of an answer kept for the error text */
#define INVOICES_PATH        "/v1/invoices"
#define SENTENCE_MAX         1024    /* an error sentence before it meets status */

struct uploader {
    store_t *store;

    /* Configuration, copied: the caller's struct config may not outlive us. */
    char base_url[512];           /* the platform url without trailing '/' */
    char invoices_url[600];
    char invoices_path[600];      /* the path part of invoices_url, as signed */
    char app_key[128];
    char app_secret[256];
    char ca_file[PATH_MAX];
    long timeout_ms;

    pthread_t thread;
    bool thread_running;
    atomic_bool stopping;         /* also read by curl's progress callback */

    pthread_mutex_t lock;         /* guards kicked and status */
    pthread_cond_t wake;          /* CLOCK_MONOTONIC */
    bool kicked;
    struct platform_status status;

    /* Used by the thread only. */
    CURL *curl;
    char curl_error[CURL_ERROR_SIZE];
    char reply[REPLY_KEEP + 1];
    size_t reply_len;
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
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
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

static int make_nonce(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];

    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
    return 0;
}

/* The path a URL asks for: "https://h:1/api/v1/x" -> "/api/v1/x".  The
 * platform verifies the signature over the path it receives, so that is the
 * one to sign, including any prefix in the configured url. */
static const char *url_path(const char *url)
{
    const char *scheme_end = strstr(url, "://");
    const char *start = scheme_end != NULL ? scheme_end + 3 : url;
    const char *slash = strchr(start, '/');

    return slash != NULL ? slash : INVOICES_PATH;
}

/* The "error" member of a JSON answer, if any, into buf ("" otherwise). */
static void reply_error_code(const char *reply, size_t len, char *buf, size_t size)
{
    json_t *doc = json_loadb(reply, len, 0, NULL);
    const char *code = json_string_value(json_object_get(doc, "error"));

    snprintf(buf, size, "%s", code != NULL ? code : "");
    json_decref(doc);
}

/* ---- libcurl callbacks ----------------------------------------------- */

/* Keeps the beginning of the answer, for the error text; drops the rest. */
static size_t keep_reply(char *data, size_t size, size_t nmemb, void *arg)
{
    struct uploader *u = arg;
    size_t n = size * nmemb, room = REPLY_KEEP - u->reply_len;
    size_t take = n < room ? n : room;

    memcpy(u->reply + u->reply_len, data, take);
    u->reply_len += take;
    u->reply[u->reply_len] = '\0';
    return n;
}

/* Called by libcurl at least once a second during a transfer, including
 * while it waits to connect: non-zero abandons the transfer. */
static int abandon_if_stopping(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                               curl_off_t ultotal, curl_off_t ulnow)
{
    struct uploader *u = arg;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&u->stopping) ? 1 : 0;
}

static int setup_curl(struct uploader *u)
{
    CURL *c = curl_easy_init();
    int bad = 0;

    if (c == NULL)
        return -1;
    u->curl = c;
    bad |= curl_easy_setopt(c, CURLOPT_URL, u->invoices_url) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;   /* we are a thread */
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, u->timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, u->timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    if (u->ca_file[0] != '\0')
        bad |= curl_easy_setopt(c, CURLOPT_CAINFO, u->ca_file) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
#endif
    bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "fapiaofs") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, u->curl_error) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_reply) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, u) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abandon_if_stopping) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_XFERINFODATA, u) != CURLE_OK;
    return bad ? -1 : 0;
}

/* ---- one upload ------------------------------------------------------ */

/* A sentence for a call that got no HTTP answer. */
static void describe_transport_error(struct uploader *u, CURLcode cc, char *buf, size_t size)
{
    long os_errno = 0;
    const char *detail = u->curl_error[0] != '\0' ? u->curl_error : curl_easy_strerror(cc);

    curl_easy_getinfo(u->curl, CURLINFO_OS_ERRNO, &os_errno);
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        if (os_errno == ECONNREFUSED)
            snprintf(buf, size, "connection refused to %s", u->base_url);
        else
            snprintf(buf, size, "cannot connect to %s: %s", u->base_url, detail);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(buf, size, "no answer from %s within %ld ms", u->base_url, u->timeout_ms);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(buf, size, "cannot resolve the host of %s", u->base_url);
        break;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        snprintf(buf, size, "%s closed the connection without an answer", u->base_url);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        snprintf(buf, size, "TLS failure with %s: %s", u->base_url, detail);
        break;
    default:
        snprintf(buf, size, "%s: %s", u->base_url, detail);
        break;
    }
}

/* A sentence for an HTTP answer other than 200/201. */
static void describe_http_error(struct uploader *u, long http, const struct store_upload *item,
                                char *buf, size_t size)
{
    char code[64];

    reply_error_code(u->reply, u->reply_len, code, sizeof code);
    switch (http) {
    case 409:
        snprintf(buf, size, "HTTP 409: the platform has other bytes for %s-%s (integrity alarm)",
                 item->code, item->number);
        break;
    case 400:
        snprintf(buf, size, "HTTP 400: the platform found %s-%s invalid%s%s%s", item->code,
                 item->number, code[0] ? " (" : "", code, code[0] ? ")" : "");
        break;
    case 401:
    case 403:
        snprintf(buf, size, "HTTP %ld: the platform refused our credentials%s%s%s; "
                 "check app_key and app_secret", http, code[0] ? " (" : "", code,
                 code[0] ? ")" : "");
        break;
    case 413:
        snprintf(buf, size, "HTTP 413: %s-%s is too large for the platform", item->code, item->number);
        break;
    default:
        snprintf(buf, size, "HTTP %ld from platform", http);
        break;
    }
}

/* POSTs one invoice, signed (SPEC §6).  Returns the curl result; *http is
 * the status when there was an HTTP answer. */
static CURLcode post_invoice(struct uploader *u, const struct store_upload *item, long *http)
{
    char timestamp[24], nonce[33], signature[PLATFORM_SIG_MAX];
    char line[sizeof u->app_key + PLATFORM_SIG_MAX + 32];
    struct curl_slist *headers = NULL, *grown;
    const char *fixed[] = { "Content-Type: application/json",
                            "Expect:" };   /* no 100-continue round trip */
    CURLcode cc = CURLE_OUT_OF_MEMORY;

    *http = 0;
    snprintf(timestamp, sizeof timestamp, "%lld", (long long)time(NULL));
    if (make_nonce(nonce) != 0 ||
        platform_sign(u->app_secret, "POST", u->invoices_path, timestamp, nonce,
                      item->json, item->len, signature) != 0) {
        snprintf(u->curl_error, sizeof u->curl_error, "cannot sign the request (OpenSSL failed)");
        return CURLE_FAILED_INIT;
    }
    for (int i = 0; i < 6; i++) {
        switch (i) {
        case 0: snprintf(line, sizeof line, "X-App-Key: %s", u->app_key); break;
        case 1: snprintf(line, sizeof line, "X-Timestamp: %s", timestamp); break;
        case 2: snprintf(line, sizeof line, "X-Nonce: %s", nonce); break;
        case 3: snprintf(line, sizeof line, "X-Signature: %s", signature); break;
        default: snprintf(line, sizeof line, "%s", fixed[i - 4]); break;
        }
        grown = curl_slist_append(headers, line);
        if (grown == NULL)
            goto out;
        headers = grown;
    }
    u->curl_error[0] = '\0';
    u->reply_len = 0;
    u->reply[0] = '\0';
    curl_easy_setopt(u->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDS, (const char *)item->json);
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)item->len);
    cc = curl_easy_perform(u->curl);
    if (cc == CURLE_OK)
        curl_easy_getinfo(u->curl, CURLINFO_RESPONSE_CODE, http);
    /* The handle outlives both: do not leave it pointing at freed memory. */
    curl_easy_setopt(u->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDS, NULL);
out:
    curl_slist_free_all(headers);
    return cc;
}

/* One attempt at the head of the queue, with its bookkeeping in the store
 * and in the status. */
static enum attempt upload_one(struct uploader *u, const struct store_upload *item)
{
    char error[SENTENCE_MAX];
    long http = 0;
    CURLcode cc;
    int64_t now, next_at;
    enum fa_err err;

    cc = post_invoice(u, item, &http);
    if (atomic_load(&u->stopping))
        return ATTEMPT_STOPPED;   /* not the platform's doing: no failure recorded */
    now = clock_now();
    if (cc == CURLE_OK && (http == 200 || http == 201)) {
        err = store_upload_done(u->store, item->invoice_id, now);
        pthread_mutex_lock(&u->lock);
        u->status.reachable = true;
        u->status.last_contact = now;
        u->status.next_retry = 0;
        if (err == FA_OK) {
            u->status.uploaded++;
            u->status.last_error[0] = '\0';
        } else {
            /* Accepted, but still queued here: the next attempt gets 200. */
            snprintf(u->status.last_error, sizeof u->status.last_error,
                     "%s-%s was accepted but the store could not record it: %s",
                     item->code, item->number, fa_err_str(err));
        }
        pthread_mutex_unlock(&u->lock);
        return err == FA_OK ? ATTEMPT_ACCEPTED : ATTEMPT_STORE_FAILED;
    }

    if (cc == CURLE_OK)
        describe_http_error(u, http, item, error, sizeof error);
    else
        describe_transport_error(u, cc, error, sizeof error);
    /* attempts counts the earlier failures: this one makes it attempts + 1. */
    next_at = now + backoff_seconds(item->attempts + 1);
    err = store_upload_failed(u->store, item->invoice_id, next_at, error);
    pthread_mutex_lock(&u->lock);
    u->status.reachable = cc == CURLE_OK;
    if (cc == CURLE_OK)
        u->status.last_contact = now;
    u->status.next_retry = next_at;
    if (strncmp(u->status.last_error, error, sizeof u->status.last_error - 1))
        /* each new kind of failure once in the log, not every retry */
        fprintf(stderr, "fapiaofs: upload of %s-%s failed: %s (retrying)\n", item->code,
                item->number, error);
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

        err = store_next_upload(u->store, now, &item);
        if (err == FA_OK) {
            enum attempt a = upload_one(u, &item);

            store_upload_free(&item);
            if (a == ATTEMPT_STORE_FAILED)
                sleep_for(u, STORE_ERROR_WAIT_S, false);
        } else if (err == FA_NOTFOUND) {
            wait_for_work(u, now);
        } else {
            set_status_error(u, "cannot read the upload queue: %s", fa_err_str(err));
            sleep_for(u, STORE_ERROR_WAIT_S, false);
        }
    }
    return NULL;
}

/* ---- the interface --------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_global_result = CURLE_FAILED_INIT;

static void init_curl_once(void)
{
    curl_global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void uploader_free(struct uploader *u)
{
    if (u->curl != NULL)
        curl_easy_cleanup(u->curl);
    pthread_cond_destroy(&u->wake);
    pthread_mutex_destroy(&u->lock);
    OPENSSL_cleanse(u->app_secret, sizeof u->app_secret);
    free(u);
}

int uploader_start(store_t *s, const struct config *c, uploader_t **out)
{
    struct uploader *u;
    pthread_condattr_t attr;
    size_t len;
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

    snprintf(u->base_url, sizeof u->base_url, "%s", c->platform_url);
    len = strlen(u->base_url);
    while (len > 0 && u->base_url[len - 1] == '/')
        u->base_url[--len] = '\0';
    snprintf(u->status.url, sizeof u->status.url, "%s", u->base_url);
    if (u->base_url[0] == '\0') {
        /* Not configured: an uploader that never uploads; status shows it. */
        *out = u;
        return 0;
    }
    snprintf(u->invoices_url, sizeof u->invoices_url, "%s" INVOICES_PATH, u->base_url);
    snprintf(u->invoices_path, sizeof u->invoices_path, "%s", url_path(u->invoices_url));
    snprintf(u->app_key, sizeof u->app_key, "%s", c->app_key);
    snprintf(u->app_secret, sizeof u->app_secret, "%s", c->app_secret);
    snprintf(u->ca_file, sizeof u->ca_file, "%s", c->ca_file);
    u->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : DEFAULT_TIMEOUT_MS;

    pthread_once(&curl_once, init_curl_once);
    if (curl_global_result != CURLE_OK || setup_curl(u) != 0) {
        uploader_free(u);
        return -1;
    }
    if (pthread_create(&u->thread, NULL, uploader_main, u) != 0) {
        uploader_free(u);
        return -1;
    }
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
