/*
 * remote.c — the device vtable over Bulk-Only Transport; see remote.h.
 *
 * One mutex serialises the commands: Bulk-Only is strictly one command at a
 * time, and a request and its FETCH must not be split by another command
 * (the device keeps only the last response).  The response buffer is part
 * of the device, sized for the largest response; request buffers are
 * allocated per call only for the two requests that can be large (issue_sign,
 * apply_clearance).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device/proto.h"
#include "device/remote.h"

#define REMOTE_TIMEOUT_MS 5000
/* Requests and set_clock write the device's flash before the CSW comes. */
#define REMOTE_SLOW_TIMEOUT_MS 30000

struct remote {
    struct device base;
    struct bot_transport *t;
    pthread_mutex_t lock;
    uint32_t exchange;            /* id of the last request; FETCH names it */
    char why[256];
    uint8_t resp[PROTO_RESP_MAX];
};

/* One BOT command; a failure is described in r->why. */
static enum fa_err remote_bot(struct remote *r, uint8_t cmd, const uint8_t cdb[PROTO_CDB_LEN],
                              enum bot_dir dir, const uint8_t *data, size_t len, size_t *moved,
                              unsigned timeout)
{
    /* bot_command takes one buffer type for both directions; it only reads a data-out buffer */
    enum fa_err err = bot_command(r->t, cdb, PROTO_CDB_LEN, dir, (void *)data, len, moved, timeout);
    if (err)
        snprintf(r->why, sizeof r->why, "%s: %s", proto_cmd_name(cmd), bot_why(r->t));
    return err;
}

/* A data-in command whose data is a response to `cmd`: its header checked. */
static enum fa_err remote_response(struct remote *r, uint8_t cmd, const uint8_t cdb[PROTO_CDB_LEN],
                                   unsigned timeout, enum fa_err *answer, const uint8_t **body,
                                   size_t *body_len)
{
    size_t got = 0;
    enum fa_err err = remote_bot(r, cmd, cdb, BOT_DIR_IN, r->resp, proto_resp_max(cmd), &got, timeout);
    if (err == FA_OK && proto_dec_resp(cmd, r->resp, got, answer, body, body_len)) {
        snprintf(r->why, sizeof r->why, "%s: malformed response header from the device (%zu bytes)",
                 proto_cmd_name(cmd), got);
        err = FA_DEV_IO;
    }
    return err;
}

/* One command: a query (query_cdb given) or a request and its FETCH (req
 * given).  The body of an FA_OK answer, the device's refusal, or a
 * transport or framing failure described in r->why. */
static enum fa_err remote_call(struct remote *r, uint8_t cmd, const uint8_t *query_cdb,
                               const uint8_t *req, size_t req_len, const uint8_t **body, size_t *body_len)
{
    uint8_t cdb[PROTO_CDB_LEN];
    unsigned timeout = proto_cmd_is_request(cmd) || cmd == PROTO_SET_CLOCK ? REMOTE_SLOW_TIMEOUT_MS
                                                                            : REMOTE_TIMEOUT_MS;
    size_t sent = 0;
    enum fa_err err, answer = FA_DEV_IO;
    int attempt;

    r->why[0] = 0;
    *body = NULL;
    *body_len = 0;
    if (!proto_cmd_is_request(cmd)) {
        err = remote_response(r, cmd, query_cdb, timeout, &answer, body, body_len);
        goto out;
    }
    err = proto_cdb_request(cmd, ++r->exchange, req_len, cdb);
    if (err)
        goto out;
    err = remote_bot(r, cmd, cdb, BOT_DIR_OUT, req, req_len, &sent, timeout);
    if (err == FA_OK && sent != req_len) {
        snprintf(r->why, sizeof r->why, "%s: the device took %zu of %zu request bytes", proto_cmd_name(cmd),
                 sent, req_len);
        err = FA_DEV_IO;
    }
    if (err)
        goto out;
    err = proto_cdb_fetch(cmd, r->exchange, cdb);
    /* The device keeps the response until the next request: a response
     * lost in transit is read once more instead of failing a signed invoice. */
    for (attempt = 0; err == FA_OK && attempt < 2; attempt++) {
        err = remote_response(r, cmd, cdb, REMOTE_TIMEOUT_MS, &answer, body, body_len);
        if (err != FA_DEV_IO)
            break;
        if (attempt == 0)
            err = FA_OK;
    }
out:
    return err ? err : answer;
}

/* A body the device sent with FA_OK that does not decode: the device is at fault. */
static enum fa_err remote_bad_body(struct remote *r, uint8_t cmd)
{
    snprintf(r->why, sizeof r->why, "%s: malformed response body from the device", proto_cmd_name(cmd));
    return FA_DEV_IO;
}

static enum fa_err remote_get_info(struct device *d, struct device_info *out)
{
    struct remote *r = (struct remote *)d;
    uint8_t cdb[PROTO_CDB_LEN];
    const uint8_t *body;
    size_t n;
    enum fa_err err;

    pthread_mutex_lock(&r->lock);
    proto_cdb_query(PROTO_GET_INFO, cdb);
    err = remote_call(r, PROTO_GET_INFO, cdb, NULL, 0, &body, &n);
    if (err == FA_OK && proto_dec_info(body, n, out))
        err = remote_bad_body(r, PROTO_GET_INFO);
    if (err == FA_OK)
        snprintf(out->kind, sizeof out->kind, "usb");
    pthread_mutex_unlock(&r->lock);
    return err;
}

static enum fa_err remote_get_status(struct device *d, struct device_status *out)
{
    struct remote *r = (struct remote *)d;
    uint8_t cdb[PROTO_CDB_LEN];
    const uint8_t *body;
    size_t n;
    enum fa_err err;

    pthread_mutex_lock(&r->lock);
    proto_cdb_query(PROTO_GET_STATUS, cdb);
    err = remote_call(r, PROTO_GET_STATUS, cdb, NULL, 0, &body, &n);
    if (err == FA_OK && proto_dec_devstatus(body, n, out))
        err = remote_bad_body(r, PROTO_GET_STATUS);
    pthread_mutex_unlock(&r->lock);
    return err;
}

static enum fa_err remote_list_rolls(struct device *d, struct device_roll *out, int max, int *n)
{
    struct remote *r = (struct remote *)d;
    struct device_roll rolls[DEVICE_MAX_ROLLS];
    uint8_t cdb[PROTO_CDB_LEN];
    const uint8_t *body;
    size_t len;
    int count = 0, i;
    enum fa_err err;

    *n = 0;
    if (max < 0 || (max && !out))
        return FA_INVAL;
    pthread_mutex_lock(&r->lock);
    proto_cdb_query(PROTO_LIST_ROLLS, cdb);
    err = remote_call(r, PROTO_LIST_ROLLS, cdb, NULL, 0, &body, &len);
    if (err == FA_OK && proto_dec_rolls(body, len, rolls, &count))
        err = remote_bad_body(r, PROTO_LIST_ROLLS);
    for (i = 0; err == FA_OK && i < count && i < max; i++)
        out[i] = rolls[i];
    if (err == FA_OK)
        *n = i;
    pthread_mutex_unlock(&r->lock);
    return err;
}

static enum fa_err remote_verify_pin(struct device *d, const char *pin)
{
    struct remote *r = (struct remote *)d;
    uint8_t req[PROTO_PIN_REQ_MAX];
    const uint8_t *body;
    size_t len, n;
    enum fa_err err;

    if (proto_enc_verify_pin(pin, req, sizeof req, &len))
        return FA_DEV_PIN;   /* longer than any PIN: it cannot be the right one */
    pthread_mutex_lock(&r->lock);
    err = remote_call(r, PROTO_VERIFY_PIN, NULL, req, len, &body, &n);
    pthread_mutex_unlock(&r->lock);
    return err;
}

static enum fa_err remote_issue_begin(struct device *d, const struct device_issue_req *req,
                                      struct device_issue_fields *out)
{
    struct remote *r = (struct remote *)d;
    uint8_t buf[PROTO_BEGIN_REQ_MAX];
    const uint8_t *body;
    size_t len, n;
    enum fa_err err;

    if (proto_enc_issue_begin(req, buf, sizeof buf, &len))
        return FA_INVAL;
    pthread_mutex_lock(&r->lock);
    err = remote_call(r, PROTO_ISSUE_BEGIN, NULL, buf, len, &body, &n);
    if (err == FA_OK && proto_dec_issue_fields(body, n, out))
        err = remote_bad_body(r, PROTO_ISSUE_BEGIN);
    pthread_mutex_unlock(&r->lock);
    return err;
}

static enum fa_err remote_issue_sign(struct device *d, const char *code, const char *number,
                                     const void *bytes, size_t len, char sig_b64[CRYPTO_SIG_B64_MAX])
{
    struct remote *r = (struct remote *)d;
    size_t cap = PROTO_SIGN_REQ_OVERHEAD + len, reqlen, n;
    uint8_t *req = NULL;
    const uint8_t *body;
    enum fa_err err;

    if (len > PROTO_SIGN_DATA_MAX)
        return FA_INVAL;
    req = malloc(cap);
    if (!req)
        return FA_NOMEM;
    err = proto_enc_issue_sign(code, number, bytes, len, req, cap, &reqlen);
    if (err)
        goto out;
    pthread_mutex_lock(&r->lock);
    err = remote_call(r, PROTO_ISSUE_SIGN, NULL, req, reqlen, &body, &n);
    if (err == FA_OK && proto_dec_signature(body, n, sig_b64))
        err = remote_bad_body(r, PROTO_ISSUE_SIGN);
    pthread_mutex_unlock(&r->lock);
out:
    free(req);
    return err;
}

static enum fa_err remote_read_journal(struct device *d, uint64_t from, struct device_journal_entry *out,
                                       int max, int *n)
{
    struct remote *r = (struct remote *)d;
    struct device_journal_entry batch[PROTO_JOURNAL_BATCH];
    uint8_t cdb[PROTO_CDB_LEN];
    const uint8_t *body;
    uint64_t next = from;
    size_t len;
    int got = 0, want, k, i;
    enum fa_err err = FA_OK;

    *n = 0;
    if (max < 0 || (max && !out))
        return FA_INVAL;
    pthread_mutex_lock(&r->lock);
    while (got < max) {
        want = max - got < PROTO_JOURNAL_BATCH ? max - got : PROTO_JOURNAL_BATCH;
        err = proto_cdb_read_journal(next, (unsigned)want, cdb);
        if (err == FA_OK)
            err = remote_call(r, PROTO_READ_JOURNAL, cdb, NULL, 0, &body, &len);
        if (err)
            break;
        if (proto_dec_journal(body, len, batch, &k) || k > want) {
            err = remote_bad_body(r, PROTO_READ_JOURNAL);
            break;
        }
        /* Entries come in signing order from `next` on; anything else would
         * make reconciliation skip or repeat invoices. */
        for (i = 0; i < k; i++) {
            if (batch[i].seq < next) {
                snprintf(r->why, sizeof r->why, "read_journal: entry %llu out of order (expected >= %llu)",
                         (unsigned long long)batch[i].seq, (unsigned long long)next);
                err = FA_DEV_IO;
                goto out;
            }
            next = batch[i].seq + 1;
            out[got++] = batch[i];
        }
        if (k < want || next == 0)
            break;   /* the end of the journal (or of the seq space) */
    }
out:
    if (err == FA_OK)
        *n = got;
    pthread_mutex_unlock(&r->lock);
    return err;
}

static enum fa_err remote_period_summary(struct device *d, const char *period, struct device_summary *out)
{
    struct remote *r = (struct remote *)d;
    uint8_t cdb[PROTO_CDB_LEN];
    const uint8_t *body;
    size_t len;
    enum fa_err err;

    if (proto_cdb_period_summary(period, cdb))
        return FA_INVAL;
    pthread_mutex_lock(&r->lock);
    err = remote_call(r, PROTO_PERIOD_SUMMARY, cdb, NULL, 0, &body, &len);
    if (err == FA_OK && proto_dec_summary(body, len, out))
        err = remote_bad_body(r, PROTO_PERIOD_SUMMARY);
    pthread_mutex_unlock(&r->lock);
    return err;
}

static enum fa_err remote_apply_clearance(struct device *d, const char *answer, size_t len)
{
    struct remote *r = (struct remote *)d;
    size_t cap = 4 + len, reqlen, n;
    const uint8_t *body;
    uint8_t *req = NULL;
    enum fa_err err;

    if (len > PROTO_CLEARANCE_MAX)
        return FA_INVAL;
    req = malloc(cap);
    if (!req)
        return FA_NOMEM;
    err = proto_enc_clearance(answer, len, req, cap, &reqlen);
    if (err)
        goto out;
    pthread_mutex_lock(&r->lock);
    err = remote_call(r, PROTO_APPLY_CLEARANCE, NULL, req, reqlen, &body, &n);
    pthread_mutex_unlock(&r->lock);
out:
    free(req);
    return err;
}

static enum fa_err remote_set_clock(struct device *d, int64_t now)
{
    struct remote *r = (struct remote *)d;
    uint8_t cdb[PROTO_CDB_LEN];
    const uint8_t *body;
    size_t len;
    enum fa_err err;

    pthread_mutex_lock(&r->lock);
    proto_cdb_set_clock(now, cdb);
    err = remote_call(r, PROTO_SET_CLOCK, cdb, NULL, 0, &body, &len);
    pthread_mutex_unlock(&r->lock);
    return err;
}

static void remote_close(struct device *d)
{
    struct remote *r = (struct remote *)d;
    if (!r)
        return;
    bot_transport_close(r->t);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static const struct device_ops remote_ops = {
    .get_info = remote_get_info,
    .get_status = remote_get_status,
    .list_rolls = remote_list_rolls,
    .verify_pin = remote_verify_pin,
    .issue_begin = remote_issue_begin,
    .issue_sign = remote_issue_sign,
    .read_journal = remote_read_journal,
    .period_summary = remote_period_summary,
    .apply_clearance = remote_apply_clearance,
    .set_clock = remote_set_clock,
    .close = remote_close,
};

enum fa_err remote_open(struct bot_transport *t, struct device **out)
{
    struct remote *r;

    *out = NULL;
    if (!t)
        return FA_INVAL;
    r = calloc(1, sizeof *r);
    if (!r)
        return FA_NOMEM;
    r->base.ops = &remote_ops;
    r->t = t;
    pthread_mutex_init(&r->lock, NULL);
    *out = &r->base;
    return FA_OK;
}

const char *remote_why(struct device *d)
{
    struct remote *r = (struct remote *)d;
    return r->why;
}
