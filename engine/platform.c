/*
 * platform.c — the client side of the platform API (SPEC §6); see platform.h.
 *
 * A client is one libcurl easy handle plus the configuration it needs,
 * copied (the caller's struct config may not outlive it).  The handle is
 * reused from call to call, so the connection to the platform stays alive
 * and a busy uploader does not pay a TCP (and TLS) handshake per invoice.
 *
 * The trade-off: one handle per thread, not one shared.  A curl handle may
 * be used by one thread at a time, so each user (the uploader thread, a
 * clearing) opens its own client, and the platform sees a connection from
 * each.  One shared handle would save that connection at the price of a
 * lock held for a whole call: a clearing would wait behind an upload that
 * is waiting out its timeout, and the reverse.  Sharing only curl's
 * connection cache (CURLSH) would avoid that wait, but buys little for a
 * handful of connections and adds lock callbacks; a handle is cheap.
 *
 * Signing: the signed path is the path the platform receives, which
 * includes any prefix of the configured url ("https://h/api" + "/v1/x"
 * signs "/api/v1/x").  X-Timestamp is the real time(), not clock_now(): it
 * is a wire-level freshness stamp that a real platform checks against its
 * own real clock, whatever clock the tests give the rest of fapiaofs.
 *
 * Abandoning: platform_client_abandon() sets a flag that curl's progress
 * callback reads at least once a second, so a call in progress (even one
 * waiting out a 5 s timeout) ends within about a second instead of running
 * to its end; later calls end at once.
 */
#include "engine/platform.h"

#include <assert.h>
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

#include "engine/platform_auth.h"

#define DEFAULT_TIMEOUT_MS   5000L
#define URL_MAX              2048    /* the configured url plus a request path */
#define REPLY_FIRST_CHUNK    4096    /* first allocation of an answer's buffer */

struct platform_client {
    /* Configuration, copied. */
    char base_url[512];           /* without trailing '/'; "" when not configured */
    char app_key[128];
    char app_secret[256];
    char ca_file[PATH_MAX];
    long timeout_ms;

    atomic_bool abandoned;        /* also read by curl's progress callback */

    /* Used by the calling thread only. */
    CURL *curl;                   /* NULL when not configured */
    char curl_error[CURL_ERROR_SIZE];
    char url[URL_MAX];            /* of the call in progress */
    struct platform_reply *reply; /* the answer being received */
    size_t reply_cap;
    bool reply_oom;
};

/* ---- libcurl, once per process --------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_global_result = CURLE_FAILED_INIT;

/* curl_global_init is not thread-safe with every TLS backend: once, here. */
static void init_curl_once(void)
{
    curl_global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- small helpers --------------------------------------------------- */

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
 * one to sign, including any prefix in the configured url.  fallback is for
 * a URL without any '/' after its host (not one we build). */
static const char *url_path(const char *url, const char *fallback)
{
    const char *scheme_end = strstr(url, "://");
    const char *start = scheme_end != NULL ? scheme_end + 3 : url;
    const char *slash = strchr(start, '/');

    return slash != NULL ? slash : fallback;
}

/* Writes r->error, cut to its size: a sentence naming a url near its
 * 511-byte limit may not fit, which is fine for a message.  (Through
 * vsnprintf, -Wformat-truncation does not flag every %s of the url.) */
static void set_reply_error(struct platform_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_reply_error(struct platform_reply *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

/* What the callers ask of every answer, from one parse: whether it is a
 * JSON object, and its "error" member, if any. */
static void reply_read_json(struct platform_reply *r)
{
    json_t *doc = json_loadb(r->body, r->len, 0, NULL);
    const char *code = json_string_value(json_object_get(doc, "error"));

    r->json_object = json_is_object(doc);
    snprintf(r->code, sizeof r->code, "%s", code != NULL ? code : "");
    json_decref(doc);
}

/* Whether member key of doc is the string want. */
static bool member_is(json_t *doc, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(doc, key));
    return v != NULL && strcmp(v, want) == 0;
}

bool platform_answered_success(const struct platform_reply *r)
{
    return (r->http == 200 || r->http == 201) && r->json_object;
}

/* Whether a read-back answer is the invoice sent: the same bytes, the same
 * JSON, or the same JSON as its "invoice" member (a copy with its state). */
static bool copy_matches(const struct platform_reply *got, const void *body, size_t len)
{
    json_t *copy, *sent;
    bool same;

    if (got->body != NULL && got->len == len && memcmp(got->body, body, len) == 0)
        return true;
    copy = got->body != NULL ? json_loadb(got->body, got->len, 0, NULL) : NULL;
    sent = copy != NULL ? json_loadb(body, len, 0, NULL) : NULL;
    same = sent != NULL && (json_equal(copy, sent) || json_equal(json_object_get(copy, "invoice"), sent));
    json_decref(copy);
    json_decref(sent);
    return same;
}

/* GET /v1/invoices/CODE/NUMBER holds the invoice sent; if not, what it gave,
 * in words, into gave. */
static bool platform_holds(platform_client_t *pc, const char *code, const char *number,
                           const void *body, size_t len, char *gave, size_t size)
{
    struct platform_reply r;
    char path[96];
    bool same = false;

    snprintf(path, sizeof path, "/v1/invoices/%s/%s", code, number);
    if (platform_call(pc, "GET", path, NULL, 0, &r) != 0)
        snprintf(gave, size, "no answer (%.300s)", r.error);
    else if (r.http != 200)
        snprintf(gave, size, "HTTP %ld", r.http);
    else if (!(same = copy_matches(&r, body, len)))
        snprintf(gave, size, "something other than the invoice sent");
    platform_reply_free(&r);
    return same;
}

bool platform_upload_accepted(platform_client_t *pc, const struct platform_reply *r, const char *code,
                              const char *number, const void *body, size_t len, char *why,
                              size_t whylen)
{
    json_t *doc;
    bool ours, named;
    char gave[400];

    if (r->http != 200 && r->http != 201) {
        platform_upload_error(r, code, number, why, whylen);
        return false;
    }
    ours = r->json_object;
    doc = ours ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    named = member_is(doc, "code", code) && member_is(doc, "number", number);
    json_decref(doc);
    if (named || platform_holds(pc, code, number, body, len, gave, sizeof gave))
        return true;
    if (ours)
        snprintf(why, whylen, "HTTP %ld without %s-%s in the answer, and reading it back (GET "
                 "/v1/invoices/%s/%s) gave %s; it stays queued", r->http, code, number, code, number,
                 gave);
    else
        snprintf(why, whylen, "HTTP %ld, but the answer is not JSON and reading %s-%s back gave %s: "
                 "is something other than the platform answering at its url?", r->http, code, number,
                 gave);
    return false;
}

bool platform_refuses_invoice(long http)
{
    return http == 409 || http == 400 || http == 413;
}

bool platform_refuses_credentials(long http)
{
    return http == 401 || http == 403;
}

void platform_upload_error(const struct platform_reply *r, const char *code, const char *number,
                           char *buf, size_t size)
{
    const char *why = r->code;

    switch (r->http) {
    case 409:
        snprintf(buf, size, "HTTP 409: the platform has other bytes for %s-%s (integrity alarm)",
                 code, number);
        break;
    case 400:
        snprintf(buf, size, "HTTP 400: the platform found %s-%s invalid%s%s%s", code, number,
                 why[0] ? " (" : "", why, why[0] ? ")" : "");
        break;
    case 401:
    case 403:
        snprintf(buf, size, "HTTP %ld: the platform refused our credentials%s%s%s; check app_key and "
                 "app_secret", r->http, why[0] ? " (" : "", why, why[0] ? ")" : "");
        break;
    case 413:
        snprintf(buf, size, "HTTP 413: %s-%s is too large for the platform", code, number);
        break;
    default:
        snprintf(buf, size, "HTTP %ld from platform", r->http);
        break;
    }
}

/* ---- libcurl callbacks ----------------------------------------------- */

/* Keeps the answer up to PLATFORM_REPLY_MAX bytes and drops the rest. */
static size_t keep_reply(char *data, size_t size, size_t nmemb, void *arg)
{
    struct platform_client *pc = arg;
    struct platform_reply *r = pc->reply;
    size_t n = size * nmemb, room = PLATFORM_REPLY_MAX - r->len;
    size_t take = n < room ? n : room;

    if (take == 0)
        return n;
    if (r->len + take + 1 > pc->reply_cap) {
        size_t cap = pc->reply_cap > 0 ? pc->reply_cap : REPLY_FIRST_CHUNK;
        char *grown;

        while (cap < r->len + take + 1)
            cap *= 2;
        if (cap > PLATFORM_REPLY_MAX + 1)
            cap = PLATFORM_REPLY_MAX + 1;
        grown = realloc(r->body, cap);
        if (grown == NULL) {
            pc->reply_oom = true;
            return 0;   /* anything but n ends the transfer (CURLE_WRITE_ERROR) */
        }
        r->body = grown;
        pc->reply_cap = cap;
    }
    memcpy(r->body + r->len, data, take);
    r->len += take;
    r->body[r->len] = '\0';
    return n;
}

/* Called by libcurl at least once a second during a transfer, including
 * while it waits to connect: non-zero abandons the transfer. */
static int abandon_if_asked(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                            curl_off_t ultotal, curl_off_t ulnow)
{
    struct platform_client *pc = arg;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&pc->abandoned) ? 1 : 0;
}

/* The options that stay the same for every call. */
static int setup_curl(struct platform_client *pc)
{
    CURL *c = curl_easy_init();
    int bad = 0;

    if (c == NULL)
        return -1;
    pc->curl = c;
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;   /* we are a thread */
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, pc->timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, pc->timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    if (pc->ca_file[0] != '\0')
        bad |= curl_easy_setopt(c, CURLOPT_CAINFO, pc->ca_file) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
#endif
    bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "fapiaofs") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, pc->curl_error) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_reply) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, pc) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abandon_if_asked) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_XFERINFODATA, pc) != CURLE_OK;
    return bad ? -1 : 0;
}

/* A sentence for a call that got no HTTP answer. */
static void describe_transport_error(struct platform_client *pc, CURLcode cc, struct platform_reply *r)
{
    long os_errno = 0;
    const char *detail = pc->curl_error[0] != '\0' ? pc->curl_error : curl_easy_strerror(cc);

    curl_easy_getinfo(pc->curl, CURLINFO_OS_ERRNO, &os_errno);
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        if (os_errno == ECONNREFUSED)
            set_reply_error(r, "connection refused to %s", pc->base_url);
        else
            set_reply_error(r, "cannot connect to %s: %s", pc->base_url, detail);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        set_reply_error(r, "no answer from %s within %ld ms", pc->base_url, pc->timeout_ms);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        set_reply_error(r, "cannot resolve the host of %s", pc->base_url);
        break;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        set_reply_error(r, "%s closed the connection without an answer", pc->base_url);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        set_reply_error(r, "TLS failure with %s: %s", pc->base_url, detail);
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        set_reply_error(r, "the call to %s was abandoned", pc->base_url);
        break;
    case CURLE_WRITE_ERROR:
        if (pc->reply_oom) {
            set_reply_error(r, "out of memory for the answer of %s", pc->base_url);
            break;
        }
        /* fall through */
    default:
        set_reply_error(r, "%s: %s", pc->base_url, detail);
        break;
    }
}

/* The four signature headers of SPEC §6, then the fixed ones; NULL when out
 * of memory or when signing failed (r->error says which). */
static struct curl_slist *signed_headers(struct platform_client *pc, const char *method,
                                         const char *signed_path, const void *body, size_t len,
                                         bool with_body, struct platform_reply *r)
{
    char timestamp[24], nonce[33], signature[PLATFORM_SIG_MAX];
    char line[sizeof pc->app_key + PLATFORM_SIG_MAX + 32];
    struct curl_slist *headers = NULL, *grown;
    const char *fixed[] = { "Content-Type: application/json",
                            "Expect:" };   /* no 100-continue round trip */
    int count = with_body ? 6 : 4;

    snprintf(timestamp, sizeof timestamp, "%lld", (long long)time(NULL));
    if (make_nonce(nonce) != 0 ||
        platform_sign(pc->app_secret, method, signed_path, timestamp, nonce, body, len,
                      signature) != 0) {
        set_reply_error(r, "%s: cannot sign the request (OpenSSL failed)", pc->base_url);
        return NULL;
    }
    for (int i = 0; i < count; i++) {
        switch (i) {
        case 0: snprintf(line, sizeof line, "X-App-Key: %s", pc->app_key); break;
        case 1: snprintf(line, sizeof line, "X-Timestamp: %s", timestamp); break;
        case 2: snprintf(line, sizeof line, "X-Nonce: %s", nonce); break;
        case 3: snprintf(line, sizeof line, "X-Signature: %s", signature); break;
        default: snprintf(line, sizeof line, "%s", fixed[i - 4]); break;
        }
        grown = curl_slist_append(headers, line);
        if (grown == NULL) {
            curl_slist_free_all(headers);
            set_reply_error(r, "%s: out of memory for the request", pc->base_url);
            return NULL;
        }
        headers = grown;
    }
    return headers;
}

/* ---- the interface --------------------------------------------------- */

int platform_client_open(const struct config *c, platform_client_t **out)
{
    struct platform_client *pc;
    size_t len;

    *out = NULL;
    pc = calloc(1, sizeof *pc);
    if (pc == NULL)
        return -1;
    atomic_init(&pc->abandoned, false);
    snprintf(pc->base_url, sizeof pc->base_url, "%s", c->platform_url);
    len = strlen(pc->base_url);
    while (len > 0 && pc->base_url[len - 1] == '/')
        pc->base_url[--len] = '\0';
    snprintf(pc->app_key, sizeof pc->app_key, "%s", c->app_key);
    snprintf(pc->app_secret, sizeof pc->app_secret, "%s", c->app_secret);
    snprintf(pc->ca_file, sizeof pc->ca_file, "%s", c->ca_file);
    pc->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : DEFAULT_TIMEOUT_MS;

    /* Not configured: a client without curl, whose every call says so. */
    if (pc->base_url[0] != '\0') {
        pthread_once(&curl_once, init_curl_once);
        if (curl_global_result != CURLE_OK || setup_curl(pc) != 0) {
            platform_client_close(pc);
            return -1;
        }
    }
    *out = pc;
    return 0;
}

void platform_client_close(platform_client_t *pc)
{
    if (pc == NULL)
        return;
    if (pc->curl != NULL)
        curl_easy_cleanup(pc->curl);
    OPENSSL_cleanse(pc->app_secret, sizeof pc->app_secret);
    free(pc);
}

bool platform_configured(const platform_client_t *pc)
{
    return pc != NULL && pc->base_url[0] != '\0';
}

const char *platform_url(const platform_client_t *pc)
{
    return pc != NULL ? pc->base_url : "";
}

void platform_client_abandon(platform_client_t *pc)
{
    if (pc != NULL)
        atomic_store(&pc->abandoned, true);
}

int platform_call(platform_client_t *pc, const char *method, const char *path, const void *body,
                  size_t len, struct platform_reply *r)
{
    bool is_get = strcmp(method, "GET") == 0;
    size_t base_len, path_len;
    struct curl_slist *headers = NULL;
    CURLcode cc;
    int rc = -1;

    assert(path[0] == '/');
    assert(!is_get || len == 0);   /* a GET has no body */
    memset(r, 0, sizeof *r);
    if (!platform_configured(pc)) {
        set_reply_error(r, "no platform url configured");
        return -1;
    }
    if (atomic_load(&pc->abandoned)) {
        set_reply_error(r, "the call to %s was abandoned", pc->base_url);
        return -1;
    }
    base_len = strlen(pc->base_url);
    path_len = strlen(path);
    if (base_len + path_len >= sizeof pc->url) {
        set_reply_error(r, "%s: the request path is too long", pc->base_url);
        return -1;
    }
    memcpy(pc->url, pc->base_url, base_len);
    memcpy(pc->url + base_len, path, path_len + 1);
    if (body == NULL)
        body = "";
    headers = signed_headers(pc, method, url_path(pc->url, path), body, len, !is_get, r);
    if (headers == NULL)
        return -1;

    pc->curl_error[0] = '\0';
    pc->reply = r;
    pc->reply_cap = 0;
    pc->reply_oom = false;
    curl_easy_setopt(pc->curl, CURLOPT_URL, pc->url);
    curl_easy_setopt(pc->curl, CURLOPT_HTTPHEADER, headers);
    if (is_get) {
        curl_easy_setopt(pc->curl, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(pc->curl, CURLOPT_POSTFIELDS, (const char *)body);
        curl_easy_setopt(pc->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(pc->curl, CURLOPT_CUSTOMREQUEST, method);
    }
    cc = curl_easy_perform(pc->curl);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(pc->curl, CURLINFO_RESPONSE_CODE, &r->http);
        if (r->body == NULL)
            r->body = calloc(1, 1);   /* an empty answer is "", not NULL */
        if (r->body != NULL)
            reply_read_json(r);
        rc = 0;
    } else {
        describe_transport_error(pc, cc, r);
        free(r->body);   /* part of an answer is no answer */
        r->body = NULL;
        r->len = 0;
    }
    /* The handle outlives all of these: do not leave it pointing at them. */
    curl_easy_setopt(pc->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(pc->curl, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(pc->curl, CURLOPT_CUSTOMREQUEST, NULL);
    pc->reply = NULL;
    curl_slist_free_all(headers);
    return rc;
}

void platform_reply_free(struct platform_reply *r)
{
    if (r == NULL)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
