/*
 * loopback.c — the in-process Bulk-Only device; see loopback.h.
 *
 * Two halves: the BOT state machine of a device (CBW → data → CSW, with the
 * halts, residues and reset behaviour of the specification), and the
 * command server that turns a decoded CDB and request into calls on the
 * wrapped `struct device` and encodes the answer.  The server answers a
 * command whose vtable entry is NULL (a device that does not implement it
 * yet) with FA_INVAL rather than crashing, as a firmware would answer an
 * unsupported command.
 *
 * Query commands run when their CBW arrives; requests run when their last
 * data-out byte arrives, and their response is kept for FETCH until the next
 * request — across reset recovery too, since a reset is exactly when a host
 * wants to read it again.
 */
#include <stdlib.h>
#include <string.h>
#include "device/loopback.h"
#include "device/proto.h"

enum lb_state { LB_CBW, LB_DATA_OUT, LB_DATA_IN, LB_CSW };

/* Where in the conversation a fault fires. */
enum lb_point { P_NONE, P_CSW, P_DATA_IN, P_DATA_OUT, P_CBW, P_BULK_IN, P_ANY };

struct loopback {
    struct bot_transport base;
    struct device *dev;
    enum lb_state state;
    bool halt_in, halt_out;
    bool need_reset;              /* invalid CBW: halts hold until reset recovery */
    bool unplugged;

    struct bot_cbw cbw;           /* the command in progress */
    struct proto_cdb cdb;
    uint8_t csw_status;
    uint32_t residue;

    uint8_t *req;                 /* data-out of a request */
    size_t req_len, req_got;
    uint8_t resp[PROTO_RESP_MAX]; /* data-in of a query or FETCH */
    size_t resp_len, resp_off;

    uint8_t pending[PROTO_RESP_MAX];  /* the last request's response, for FETCH */
    size_t pending_len;
    uint8_t pending_cmd;
    uint32_t pending_exchange;
    bool pending_valid;

    enum loopback_fault fault;
    unsigned fault_skip, fault_times;
    struct loopback_stats stats;
};

/* ---- faults -------------------------------------------------------------- */

static enum lb_point fault_point(enum loopback_fault f)
{
    switch (f) {
    case LOOPBACK_CSW_SIGNATURE:
    case LOOPBACK_CSW_TAG:
    case LOOPBACK_CSW_SIZE:
    case LOOPBACK_CSW_RESIDUE:
    case LOOPBACK_CSW_PHASE:
    case LOOPBACK_STALL_CSW:        return P_CSW;
    case LOOPBACK_SHORT_DATA:
    case LOOPBACK_SHORT_DATA_LIE:
    case LOOPBACK_STALL_DATA_END:
    case LOOPBACK_STALL_DATA_START: return P_DATA_IN;
    case LOOPBACK_STALL_DATA_OUT:   return P_DATA_OUT;
    case LOOPBACK_CBW_INVALID:      return P_CBW;
    case LOOPBACK_TIMEOUT:          return P_BULK_IN;
    case LOOPBACK_UNPLUG:           return P_ANY;
    case LOOPBACK_FAULT_NONE:       return P_NONE;
    }
    return P_NONE;
}

/* The armed fault if it fires at this point now, else LOOPBACK_FAULT_NONE. */
static enum loopback_fault fault_take(struct loopback *lb, enum lb_point point)
{
    enum loopback_fault f = lb->fault;

    if (f == LOOPBACK_FAULT_NONE || fault_point(f) != point || lb->fault_times == 0)
        return LOOPBACK_FAULT_NONE;
    if (lb->fault_skip) {
        lb->fault_skip--;
        return LOOPBACK_FAULT_NONE;
    }
    if (--lb->fault_times == 0)
        lb->fault = LOOPBACK_FAULT_NONE;
    lb->stats.faults_fired++;
    return f;
}

void loopback_inject(struct bot_transport *t, enum loopback_fault fault, unsigned skip, unsigned times)
{
    struct loopback *lb = (struct loopback *)t;
    lb->fault = fault;
    lb->fault_skip = skip;
    lb->fault_times = fault == LOOPBACK_FAULT_NONE ? 0 : times ? times : 1;
}

void loopback_get_stats(struct bot_transport *t, struct loopback_stats *out)
{
    *out = ((struct loopback *)t)->stats;
}

/* ---- the command server -------------------------------------------------- */

/* Each serve_* runs one command on the device and, on FA_OK, encodes the
 * full response; on an error the caller encodes a header-only answer. */

static enum fa_err serve_info(struct device *dev, uint8_t *out, size_t cap, size_t *len)
{
    struct device_info info;
    enum fa_err err;

    if (!dev->ops->get_info)
        return FA_INVAL;
    memset(&info, 0, sizeof info);
    err = dev->ops->get_info(dev, &info);
    if (err == FA_OK && proto_enc_resp_info(&info, out, cap, len))
        err = FA_DEV_IO;
    return err;
}

static enum fa_err serve_status(struct device *dev, uint8_t *out, size_t cap, size_t *len)
{
    struct device_status st;
    enum fa_err err;

    if (!dev->ops->get_status)
        return FA_INVAL;
    memset(&st, 0, sizeof st);
    err = dev->ops->get_status(dev, &st);
    if (err == FA_OK && proto_enc_resp_devstatus(&st, out, cap, len))
        err = FA_DEV_IO;
    return err;
}

static enum fa_err serve_rolls(struct device *dev, uint8_t *out, size_t cap, size_t *len)
{
    struct device_roll rolls[DEVICE_MAX_ROLLS];
    int n = 0;
    enum fa_err err;

    if (!dev->ops->list_rolls)
        return FA_INVAL;
    memset(rolls, 0, sizeof rolls);
    err = dev->ops->list_rolls(dev, rolls, DEVICE_MAX_ROLLS, &n);
    if (err == FA_OK && proto_enc_resp_rolls(rolls, n, out, cap, len))
        err = FA_DEV_IO;
    return err;
}

static enum fa_err serve_journal(struct device *dev, const struct proto_cdb *c, uint8_t *out, size_t cap,
                                 size_t *len)
{
    struct device_journal_entry entries[PROTO_JOURNAL_BATCH];
    int n = 0;
    enum fa_err err;

    if (!dev->ops->read_journal)
        return FA_INVAL;
    memset(entries, 0, sizeof entries);
    err = dev->ops->read_journal(dev, c->from, entries, (int)c->count, &n);
    if (err == FA_OK && (n > (int)c->count || proto_enc_resp_journal(entries, n, out, cap, len)))
        err = FA_DEV_IO;
    return err;
}

static enum fa_err serve_summary(struct device *dev, const struct proto_cdb *c, uint8_t *out, size_t cap,
                                 size_t *len)
{
    struct device_summary *s;
    enum fa_err err;

    if (!dev->ops->period_summary)
        return FA_INVAL;
    s = calloc(1, sizeof *s);
    if (!s)
        return FA_DEV_IO;
    err = dev->ops->period_summary(dev, c->period, s);
    if (err == FA_OK && proto_enc_resp_summary(s, out, cap, len))
        err = FA_DEV_IO;
    free(s);
    return err;
}

static enum fa_err serve_set_clock(struct device *dev, const struct proto_cdb *c, uint8_t *out, size_t cap,
                                   size_t *len)
{
    enum fa_err err;

    if (!dev->ops->set_clock)
        return FA_INVAL;
    err = dev->ops->set_clock(dev, c->now);
    if (err == FA_OK && proto_enc_resp_empty(PROTO_SET_CLOCK, FA_OK, out, cap, len))
        err = FA_DEV_IO;
    return err;
}

static enum fa_err serve_verify_pin(struct device *dev, const uint8_t *req, size_t req_len, uint8_t *out,
                                    size_t cap, size_t *len)
{
    char pin[PROTO_PIN_MAX + 1];
    enum fa_err err;

    if (!dev->ops->verify_pin || proto_dec_verify_pin(req, req_len, pin))
        return FA_INVAL;
    err = dev->ops->verify_pin(dev, pin);
    memset(pin, 0, sizeof pin);
    if (err == FA_OK && proto_enc_resp_empty(PROTO_VERIFY_PIN, FA_OK, out, cap, len))
        err = FA_DEV_IO;
    return err;
}

static enum fa_err serve_issue_begin(struct device *dev, const uint8_t *req, size_t req_len, uint8_t *out,
                                     size_t cap, size_t *len)
{
    struct device_issue_req ir;
    struct device_issue_fields f;
    char type[4];
    enum fa_err err;

    if (!dev->ops->issue_begin || proto_dec_issue_begin(req, req_len, &ir, type))
        return FA_INVAL;
    memset(&f, 0, sizeof f);
    err = dev->ops->issue_begin(dev, &ir, &f);
    if (err == FA_OK && proto_enc_resp_issue_fields(&f, out, cap, len))
        err = FA_DEV_IO;
    return err;
}

static enum fa_err serve_issue_sign(struct device *dev, const uint8_t *req, size_t req_len, uint8_t *out,
                                    size_t cap, size_t *len)
{
    char code[16], number[16], sig[CRYPTO_SIG_B64_MAX] = "";
    const uint8_t *bytes;
    size_t n;
    enum fa_err err;

    if (!dev->ops->issue_sign || proto_dec_issue_sign(req, req_len, code, number, &bytes, &n))
        return FA_INVAL;
    err = dev->ops->issue_sign(dev, code, number, bytes, n, sig);
    if (err == FA_OK && proto_enc_resp_signature(sig, out, cap, len))
        err = FA_DEV_IO;
    return err;
}

static enum fa_err serve_clearance(struct device *dev, const uint8_t *req, size_t req_len, uint8_t *out,
                                   size_t cap, size_t *len)
{
    const uint8_t *answer;
    char *text;
    size_t n;
    enum fa_err err;

    if (!dev->ops->apply_clearance || proto_dec_clearance(req, req_len, &answer, &n))
        return FA_INVAL;
    /* NUL-terminated, so that a device that parses it as a C string cannot overrun */
    text = malloc(n + 1);
    if (!text)
        return FA_DEV_IO;
    if (n)
        memcpy(text, answer, n);
    text[n] = 0;
    err = dev->ops->apply_clearance(dev, text, n);
    free(text);
    if (err == FA_OK && proto_enc_resp_empty(PROTO_APPLY_CLEARANCE, FA_OK, out, cap, len))
        err = FA_DEV_IO;
    return err;
}

/* Run command c (with its request, if any) and encode the response. */
static void serve(struct device *dev, const struct proto_cdb *c, const uint8_t *req, size_t req_len,
                  uint8_t *out, size_t cap, size_t *len)
{
    enum fa_err err = FA_INVAL;

    *len = 0;
    switch (c->cmd) {
    case PROTO_GET_INFO:        err = serve_info(dev, out, cap, len); break;
    case PROTO_GET_STATUS:      err = serve_status(dev, out, cap, len); break;
    case PROTO_LIST_ROLLS:      err = serve_rolls(dev, out, cap, len); break;
    case PROTO_READ_JOURNAL:    err = serve_journal(dev, c, out, cap, len); break;
    case PROTO_PERIOD_SUMMARY:  err = serve_summary(dev, c, out, cap, len); break;
    case PROTO_SET_CLOCK:       err = serve_set_clock(dev, c, out, cap, len); break;
    case PROTO_VERIFY_PIN:      err = serve_verify_pin(dev, req, req_len, out, cap, len); break;
    case PROTO_ISSUE_BEGIN:     err = serve_issue_begin(dev, req, req_len, out, cap, len); break;
    case PROTO_ISSUE_SIGN:      err = serve_issue_sign(dev, req, req_len, out, cap, len); break;
    case PROTO_APPLY_CLEARANCE: err = serve_clearance(dev, req, req_len, out, cap, len); break;
    default:                    break;
    }
    if (err != FA_OK)
        proto_enc_resp_empty(c->cmd, err, out, cap, len);
}

/* ---- the Bulk-Only device ------------------------------------------------ */

static void lb_drop_request(struct loopback *lb)
{
    free(lb->req);
    lb->req = NULL;
    lb->req_len = lb->req_got = 0;
}

/* The command block is refused: no data moves, the data phase ends with a
 * stall of its pipe (§6.7: the device's way of saying "nothing here"), and
 * the CSW says "failed". */
static void lb_refuse(struct loopback *lb)
{
    lb->csw_status = BOT_CSW_FAILED;
    lb->residue = lb->cbw.data_len;
    if (lb->cbw.data_len) {
        if (lb->cbw.flags & BOT_CBW_FLAG_IN)
            lb->halt_in = true;
        else
            lb->halt_out = true;
    }
    lb->state = LB_CSW;
}

/* A query or FETCH: its response is the data-in phase. */
static void lb_run_query(struct loopback *lb)
{
    const struct proto_cdb *c = &lb->cdb;

    if (c->cmd != PROTO_FETCH) {
        serve(lb->dev, c, NULL, 0, lb->resp, sizeof lb->resp, &lb->resp_len);
    } else if (lb->pending_valid && lb->pending_cmd == c->fetch_cmd && lb->pending_exchange == c->exchange) {
        memcpy(lb->resp, lb->pending, lb->pending_len);
        lb->resp_len = lb->pending_len;
    } else {
        /* no such response: the echo says FETCH, which the host will not take for an answer */
        proto_enc_resp_empty(PROTO_FETCH, FA_INVAL, lb->resp, sizeof lb->resp, &lb->resp_len);
    }
}

static void lb_take_cbw(struct loopback *lb, const uint8_t *buf, size_t len)
{
    bool in;

    if (fault_take(lb, P_CBW) == LOOPBACK_CBW_INVALID ||
        bot_cbw_decode(buf, len, &lb->cbw) != BOT_WRAP_OK) {
        /* §6.6.1: an invalid CBW halts both pipes until reset recovery */
        lb->need_reset = lb->halt_in = lb->halt_out = true;
        return;
    }
    lb->stats.commands++;
    lb->csw_status = BOT_CSW_PASSED;
    lb->residue = lb->cbw.data_len;
    lb->resp_len = lb->resp_off = 0;
    lb_drop_request(lb);
    in = (lb->cbw.flags & BOT_CBW_FLAG_IN) != 0;
    /* Every command of ours moves data, in the direction of its kind, of
     * the length its CDB names; anything else (other opcodes too) is refused. */
    if (proto_cdb_decode(lb->cbw.cb, lb->cbw.cb_len, &lb->cdb) || lb->cdb.length != lb->cbw.data_len ||
        lb->cbw.data_len == 0 || in == proto_cmd_is_request(lb->cdb.cmd)) {
        lb_refuse(lb);
        return;
    }
    if (!in) {
        lb->req = malloc(lb->cbw.data_len);
        if (!lb->req) {
            lb_refuse(lb);
            return;
        }
        lb->req_len = lb->cbw.data_len;
        lb->state = LB_DATA_OUT;
        return;
    }
    lb_run_query(lb);
    if (lb->resp_len > lb->cbw.data_len) {
        /* §6.7.2 case 7 (Hi < Di): the host asked for less than the answer */
        lb->resp_len = 0;
        lb->csw_status = BOT_CSW_PHASE_ERROR;
        lb->halt_in = true;
        lb->state = LB_CSW;
        return;
    }
    lb->state = LB_DATA_IN;
}

static bool lb_gone(struct loopback *lb)
{
    if (!lb->unplugged && fault_take(lb, P_ANY) == LOOPBACK_UNPLUG)
        lb->unplugged = true;
    return lb->unplugged;
}

static enum bot_io lb_bulk_out(struct bot_transport *t, const uint8_t *buf, size_t len, size_t *done,
                               unsigned timeout_ms)
{
    struct loopback *lb = (struct loopback *)t;
    size_t n;

    (void)timeout_ms;
    *done = 0;
    if (lb_gone(lb))
        return BOT_IO_NO_DEVICE;
    if (lb->halt_out)
        return BOT_IO_STALL;
    switch (lb->state) {
    case LB_CBW:
        *done = len;
        lb_take_cbw(lb, buf, len);
        return BOT_IO_OK;
    case LB_DATA_OUT:
        if (lb->req_got == 0 && fault_take(lb, P_DATA_OUT) == LOOPBACK_STALL_DATA_OUT) {
            lb_drop_request(lb);
            lb_refuse(lb);
            return BOT_IO_STALL;
        }
        n = len < lb->req_len - lb->req_got ? len : lb->req_len - lb->req_got;
        memcpy(lb->req + lb->req_got, buf, n);
        lb->req_got += n;
        *done = n;
        if (lb->req_got == lb->req_len) {
            serve(lb->dev, &lb->cdb, lb->req, lb->req_len, lb->pending, sizeof lb->pending, &lb->pending_len);
            lb->pending_cmd = lb->cdb.cmd;
            lb->pending_exchange = lb->cdb.exchange;
            lb->pending_valid = true;
            lb->residue = 0;
            lb_drop_request(lb);
            lb->state = LB_CSW;
        }
        return BOT_IO_OK;
    default:
        /* the device expects nothing from the host now: it NAKs until the host gives up */
        return BOT_IO_TIMEOUT;
    }
}

static enum bot_io lb_data_in(struct loopback *lb, uint8_t *buf, size_t len, size_t *done)
{
    enum loopback_fault f = lb->resp_off == 0 ? fault_take(lb, P_DATA_IN) : LOOPBACK_FAULT_NONE;
    size_t left = lb->resp_len - lb->resp_off;
    size_t n = len < left ? len : left;   /* what this transfer carries */
    size_t counted;                       /* what the CSW residue will say was sent */
    enum bot_io io = BOT_IO_OK;
    bool end;

    if ((f == LOOPBACK_SHORT_DATA || f == LOOPBACK_SHORT_DATA_LIE) && n > lb->resp_len / 2)
        n = lb->resp_len / 2;
    if (f == LOOPBACK_STALL_DATA_START)
        n = 0;
    memcpy(buf, lb->resp + lb->resp_off, n);
    *done = n;
    lb->resp_off += n;
    counted = lb->resp_off;
    /* a short packet ends the phase, as does having sent everything */
    end = n < len || lb->resp_off == lb->resp_len;
    if (f == LOOPBACK_SHORT_DATA_LIE)
        counted = lb->resp_len;
    if (f == LOOPBACK_STALL_DATA_START)
        lb->csw_status = BOT_CSW_FAILED;
    if (f == LOOPBACK_STALL_DATA_START || f == LOOPBACK_STALL_DATA_END) {
        lb->halt_in = true;
        io = BOT_IO_STALL;
    }
    if (end || io == BOT_IO_STALL || f != LOOPBACK_FAULT_NONE) {
        lb->residue = lb->cbw.data_len - (uint32_t)counted;
        lb->state = LB_CSW;
    }
    return io;
}

static enum bot_io lb_csw(struct loopback *lb, uint8_t *buf, size_t len, size_t *done)
{
    enum loopback_fault f = fault_take(lb, P_CSW);
    struct bot_csw csw = { lb->cbw.tag, lb->residue, lb->csw_status };
    uint8_t out[BOT_CSW_LEN];
    size_t n = f == LOOPBACK_CSW_SIZE ? BOT_CSW_LEN - 1 : BOT_CSW_LEN;

    if (f == LOOPBACK_STALL_CSW) {
        lb->halt_in = true;           /* the CSW stays pending for after the clear-halt */
        return BOT_IO_STALL;
    }
    if (f == LOOPBACK_CSW_TAG)
        csw.tag = lb->cbw.tag + 1;
    if (f == LOOPBACK_CSW_RESIDUE)
        csw.residue = lb->cbw.data_len + 1;
    if (f == LOOPBACK_CSW_PHASE)
        csw.status = BOT_CSW_PHASE_ERROR;
    bot_csw_encode(&csw, out);
    if (f == LOOPBACK_CSW_SIGNATURE)
        out[3] ^= 0x20;               /* "USBs" */
    if (len < n)
        return BOT_IO_ERROR;          /* babble: more than the host asked for */
    memcpy(buf, out, n);
    *done = n;
    lb->state = LB_CBW;
    return BOT_IO_OK;
}

static enum bot_io lb_bulk_in(struct bot_transport *t, uint8_t *buf, size_t len, size_t *done,
                              unsigned timeout_ms)
{
    struct loopback *lb = (struct loopback *)t;

    (void)timeout_ms;
    *done = 0;
    if (lb_gone(lb))
        return BOT_IO_NO_DEVICE;
    if (lb->halt_in)
        return BOT_IO_STALL;
    if (fault_take(lb, P_BULK_IN) == LOOPBACK_TIMEOUT)
        return BOT_IO_TIMEOUT;
    switch (lb->state) {
    case LB_DATA_IN:
        return lb_data_in(lb, buf, len, done);
    case LB_CSW:
        return lb_csw(lb, buf, len, done);
    default:
        /* nothing to send while a CBW or data-out is awaited: NAK until the host gives up */
        return BOT_IO_TIMEOUT;
    }
}

static enum bot_io lb_clear_halt(struct bot_transport *t, enum bot_endpoint ep)
{
    struct loopback *lb = (struct loopback *)t;

    if (lb->unplugged)
        return BOT_IO_NO_DEVICE;
    lb->stats.clear_halts++;
    /* §6.6.1: after an invalid CBW only reset recovery lifts the halts */
    if (!lb->need_reset) {
        if (ep == BOT_EP_IN)
            lb->halt_in = false;
        else
            lb->halt_out = false;
    }
    return BOT_IO_OK;
}

static enum bot_io lb_reset_recovery(struct bot_transport *t)
{
    struct loopback *lb = (struct loopback *)t;

    if (lb->unplugged)
        return BOT_IO_NO_DEVICE;
    lb->stats.resets++;
    lb->need_reset = lb->halt_in = lb->halt_out = false;
    lb_drop_request(lb);
    lb->resp_len = lb->resp_off = 0;
    lb->state = LB_CBW;
    return BOT_IO_OK;
}

static void lb_close(struct bot_transport *t)
{
    struct loopback *lb = (struct loopback *)t;
    lb_drop_request(lb);
    free(lb);
}

static const struct bot_transport_ops loopback_ops = {
    .bulk_out = lb_bulk_out,
    .bulk_in = lb_bulk_in,
    .clear_halt = lb_clear_halt,
    .reset_recovery = lb_reset_recovery,
    .close = lb_close,
};

enum fa_err loopback_open(struct device *dev, struct bot_transport **out)
{
    struct loopback *lb;

    *out = NULL;
    if (!dev)
        return FA_INVAL;
    lb = calloc(1, sizeof *lb);
    if (!lb)
        return FA_NOMEM;
    bot_transport_init(&lb->base, &loopback_ops);
    lb->dev = dev;
    lb->state = LB_CBW;
    *out = &lb->base;
    return FA_OK;
}
