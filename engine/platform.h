/*
 * platform.h — the client side of the platform API (SPEC §6): one signed
 * HTTP call at a time over libcurl.
 *
 * A client owns one curl easy handle (the connection stays alive between
 * calls) and is used by one thread at a time: the uploader has its own,
 * and so does a clearing.  Every request carries X-App-Key, X-Timestamp,
 * X-Nonce and X-Signature (engine/platform_auth.h); TLS is verified (with
 * [platform] ca_file when set); timeouts are [platform] timeout_ms.
 */
#ifndef FAPIAO_PLATFORM_H
#define FAPIAO_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include "engine/config.h"

typedef struct platform_client platform_client_t;

#define PLATFORM_REPLY_MAX (1024 * 1024)   /* an answer longer than this is cut */

struct platform_reply {
    long http;            /* the HTTP status; 0 when there was no HTTP answer */
    char *body;           /* the answer, NUL-terminated, malloc'd (may be NULL) */
    size_t len;
    char code[64];        /* the "error" member of a JSON answer, or "" */
    bool json_object;     /* the answer is a JSON object (the platform's answers all are) */
    char error[512];      /* http == 0: why, in words ("connection refused to URL") */
};

/* A client for the configured platform.  0, or -1 (out of memory, curl). */
int platform_client_open(const struct config *c, platform_client_t **out);
void platform_client_close(platform_client_t *pc);
/* Whether a platform url is configured at all. */
bool platform_configured(const platform_client_t *pc);
/* The configured url without a trailing '/', for messages. */
const char *platform_url(const platform_client_t *pc);
/* Makes the call in progress (and any later one) give up within about a
 * second: for stopping a thread that may be waiting out a timeout. */
void platform_client_abandon(platform_client_t *pc);

/* One signed call.  path is relative to the configured url and starts with
 * '/' ("/v1/periods/2026-11/summary"); body may be NULL for GET.  Returns 0
 * when an HTTP answer came (whatever its status: see r->http), -1 when none
 * did (r->error says why; also when no url is configured).  Free r with
 * platform_reply_free() in both cases. */
int platform_call(platform_client_t *pc, const char *method, const char *path, const void *body,
                  size_t len, struct platform_reply *r);
void platform_reply_free(struct platform_reply *r);

/* Whether an answer is a success the platform itself gave: 200 or 201 with a
 * JSON object (every answer of its API is one).  An HTML page with 200 comes
 * from something else at the platform's url: a captive portal, a proxy. */
bool platform_answered_success(const struct platform_reply *r);
/* Whether answer r (r->http != 0) to POST /v1/invoices of invoice
 * CODE-NUMBER (body, len) accepts it: 201 or 200 with a JSON object whose
 * "code" and "number" are the invoice's; or, for any other 200/201 (an empty
 * body, an envelope of the platform's own), GET /v1/invoices/CODE/NUMBER
 * (SPEC §6: "for verification") gives back the invoice sent (its bytes, its
 * JSON, or its JSON as an "invoice" member).  A proxy's or a captive
 * portal's page is no proof that the platform holds the invoice: it stays
 * queued.  If not accepted, why gets a sentence (platform_upload_error's
 * for other statuses). */
bool platform_upload_accepted(platform_client_t *pc, const struct platform_reply *r, const char *code,
                              const char *number, const void *body, size_t len, char *why,
                              size_t whylen);
/* Whether an answer to POST /v1/invoices refuses that invoice for good: 409
 * (the platform holds other bytes for its number), 400 (invalid) or 413 (too
 * large).  Sending the same bytes again cannot change it; other answers
 * (5xx, 401/403 credentials, 404 a wrong url, 429) are about the platform or
 * our configuration and hold for every invoice alike. */
bool platform_refuses_invoice(long http);
/* Whether such an answer refuses our credentials (401, 403): every invoice alike. */
bool platform_refuses_credentials(long http);
/* A sentence for an answer other than 200/201 (r->http != 0) to the upload
 * of invoice CODE-NUMBER: "HTTP 409: the platform has other bytes for ...". */
void platform_upload_error(const struct platform_reply *r, const char *code, const char *number,
                           char *buf, size_t size);

#endif
