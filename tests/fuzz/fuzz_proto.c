/*
 * fuzz_proto.c — libFuzzer target for the device protocol: the Bulk-Only
 * wrappers (device/bot.h) and our command set (device/proto.h), as the
 * device decodes requests and as the host decodes responses.  Built and run
 * by `make fuzz` / `make fuzz-smoke`; seeds come from tests/fuzz/make_seeds.c.
 *
 * The first byte (modulo 17) picks what the rest of the input is:
 *    0  a CBW (device side)
 *    1  a CSW, after the tag and dCBWDataTransferLength it must answer (host side)
 *    2  a CDB (device side)
 *    3..6  a request: verify_pin, issue_begin, issue_sign, apply_clearance (device side)
 *    7  a response: the command it answers, then the response (host side)
 *    8..14  a response body: info, status, rolls, issue fields, signature,
 *       journal, summary (host side)
 *   15  a session of the host: the remote device (device/remote.c) runs
 *       commands over a transport that plays a hostile device from the input
 *   16  a session of the device: the loopback BOT device (device/loopback.c)
 *       serves a stub device to a host script from the input
 * (FUZZ_TRACE=1 in the environment shows what the two sessions did.)
 *
 * Besides what ASan and UBSan catch, it traps (so libFuzzer saves the input)
 * when a promise of bot.h or proto.h is broken:
 *   - whatever a decoder accepts re-encodes to exactly the bytes it was
 *     given (the encoding is canonical, so "decodes the same" follows), and
 *     its strings end with a NUL inside their fields;
 *   - a refused response or body leaves nothing a caller could take for
 *     an answer (no body, 0 rolls, entries or lines); a CSW of 13 bytes is
 *     filled in whether valid or not, any other size refused for its size;
 *   - the host only ever sends valid CBWs and CDBs, tags grow by one, a
 *     request (its exchange id) is never sent twice, FETCH names the last
 *     request, and a command's result is an answer a device can give,
 *     FA_DEV_IO or FA_DEV_ABSENT (sticky once unplugged);
 *   - the device only hands its commands well-formed, NUL-terminated
 *     arguments, answers with valid CSWs, and every complete response it
 *     sends decodes on the host side.
 */
#include <stdlib.h>
#include "device/bot.h"
#include "device/loopback.h"
#include "device/proto.h"
#include "device/remote.h"

#define FUZZ_NAME "fuzz_proto"
#include "tests/fuzz/fuzz.h"

enum mode {
    M_CBW, M_CSW, M_CDB, M_PIN, M_BEGIN, M_SIGN, M_CLEARANCE, M_RESP, M_INFO, M_STATUS, M_ROLLS,
    M_FIELDS, M_SIGNATURE, M_JOURNAL, M_SUMMARY, M_HOST, M_DEVICE, M_COUNT
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The bytes an encoder wrote are exactly the ones a decoder accepted. */
static void same_bytes(const char *what, enum fa_err enc, const uint8_t *out, size_t out_len,
                       const uint8_t *in, size_t in_len)
{
    FUZZ_CHECK(enc == FA_OK, "%s: accepted by the decoder, refused by the encoder", what);
    FUZZ_CHECK(out_len == in_len && !memcmp(out, in, in_len),
               "%s: re-encodes to other bytes (%zu, was %zu)", what, out_len, in_len);
}

/* ---- wrappers ------------------------------------------------------------ */

static void fuzz_cbw(const uint8_t *p, size_t n)
{
    struct bot_cbw c;
    uint8_t back[BOT_CBW_LEN];
    enum bot_wrap_check rc = bot_cbw_decode(p, n, &c);

    FUZZ_CHECK(bot_wrap_check_str(rc) != NULL, "CBW: no words for check %d", (int)rc);
    if (rc != BOT_WRAP_OK)
        return;
    FUZZ_CHECK(n == BOT_CBW_LEN && le32(p) == BOT_CBW_SIGNATURE, "CBW: accepted %zu bytes", n);
    FUZZ_CHECK(!(c.flags & ~BOT_CBW_FLAG_IN) && c.lun <= 15 && c.cb_len >= 1 && c.cb_len <= BOT_CB_MAX,
               "CBW: accepted flags 0x%02x, lun %u, cb_len %u", c.flags, c.lun, c.cb_len);
    bot_cbw_encode(&c, back);
    FUZZ_CHECK(!memcmp(back, p, BOT_CBW_LEN), "CBW: re-encodes to other bytes");
}

static void fuzz_csw(const uint8_t *p, size_t n)
{
    struct fz in = { p, n, 0 };
    uint32_t tag = fz_u32(&in), data_len = fz_u32(&in);
    size_t len = fz_left(&in);
    const uint8_t *w = p + in.off;
    struct bot_csw c;
    uint8_t back[BOT_CSW_LEN];
    enum bot_wrap_check rc = bot_csw_decode(w, len, tag, data_len, &c);

    FUZZ_CHECK(bot_wrap_check_str(rc) != NULL, "CSW: no words for check %d", (int)rc);
    if (len == BOT_CSW_LEN)   /* filled whenever 13 bytes were there */
        FUZZ_CHECK(c.tag == le32(w + 4) && c.residue == le32(w + 8) && c.status == w[12],
                   "CSW: 13 bytes, fields not filled (check %d)", (int)rc);
    else
        FUZZ_CHECK(rc == BOT_WRAP_SIZE, "CSW: %zu bytes not refused for their size", len);
    if (rc != BOT_WRAP_OK)
        return;
    FUZZ_CHECK(le32(w) == BOT_CSW_SIGNATURE && c.tag == tag && c.residue <= data_len &&
               c.status <= BOT_CSW_PHASE_ERROR, "CSW: accepted tag %u residue %u status %u", c.tag,
               c.residue, c.status);
    bot_csw_encode(&c, back);
    FUZZ_CHECK(!memcmp(back, w, BOT_CSW_LEN), "CSW: re-encodes to other bytes");
}

/* ---- CDBs ---------------------------------------------------------------- */

static void fuzz_cdb(const uint8_t *p, size_t n)
{
    struct proto_cdb c;
    uint8_t back[PROTO_CDB_LEN];
    enum fa_err enc = FA_OK;

    if (proto_cdb_decode(p, n, &c) != FA_OK)
        return;
    FUZZ_CHECK(n == PROTO_CDB_LEN && p[0] == PROTO_OPCODE, "CDB: accepted %zu bytes", n);
    FUZZ_CHECK(strcmp(proto_cmd_name(c.cmd), "unknown") != 0, "CDB: accepted command 0x%02x", c.cmd);
    FUZZ_CHECK(FUZZ_STR_OK(c.period), "CDB: period not NUL-terminated");
    if (proto_cmd_is_request(c.cmd))
        FUZZ_CHECK(c.length >= 1 && c.length <= proto_req_max(c.cmd), "CDB: request of %u bytes",
                   c.length);
    else
        FUZZ_CHECK(c.length >= PROTO_RESP_HDR, "CDB: data-in of %u bytes, no room for a header",
                   c.length);
    switch (c.cmd) {
    case PROTO_GET_INFO:
    case PROTO_GET_STATUS:
    case PROTO_LIST_ROLLS:
        proto_cdb_query(c.cmd, back);
        break;
    case PROTO_READ_JOURNAL:
        FUZZ_CHECK(c.count >= 1 && c.count <= PROTO_JOURNAL_BATCH, "CDB: journal count %u", c.count);
        enc = proto_cdb_read_journal(c.from, c.count, back);
        break;
    case PROTO_PERIOD_SUMMARY:
        FUZZ_CHECK(c.period[0] && strlen(c.period) <= PROTO_PERIOD_MAX, "CDB: period \"%s\"", c.period);
        enc = proto_cdb_period_summary(c.period, back);
        break;
    case PROTO_SET_CLOCK:
        proto_cdb_set_clock(c.now, back);
        break;
    case PROTO_FETCH:
        FUZZ_CHECK(proto_cmd_is_request(c.fetch_cmd), "CDB: FETCH of command 0x%02x", c.fetch_cmd);
        enc = proto_cdb_fetch(c.fetch_cmd, c.exchange, back);
        break;
    default:
        enc = proto_cdb_request(c.cmd, c.exchange, c.length, back);
        break;
    }
    /* the host's encoders put the command's maximum in the length; the device takes any */
    back[4] = (uint8_t)c.length;
    back[5] = (uint8_t)(c.length >> 8);
    back[6] = (uint8_t)(c.length >> 16);
    back[7] = (uint8_t)(c.length >> 24);
    same_bytes("CDB", enc, back, sizeof back, p, n);
}

/* ---- requests (device side) ---------------------------------------------- */

/* A decoded blob points into the bytes it came from. */
static bool inside(const uint8_t *blob, size_t blob_len, const uint8_t *p, size_t n)
{
    return blob_len == 0 || (blob >= p && blob_len <= n && blob - p <= (ptrdiff_t)(n - blob_len));
}

static void fuzz_request(enum mode m, const uint8_t *p, size_t n)
{
    uint8_t *back = malloc(n ? n : 1);   /* exactly the size: an encoder writing past it is caught */
    size_t len = 0, blob_len = (size_t)-1;
    const uint8_t *blob = NULL;
    char pin[PROTO_PIN_MAX + 1], type[4], code[16], number[16];
    struct device_issue_req req;
    enum fa_err enc;

    if (!back)
        return;
    switch (m) {
    case M_PIN:
        if (proto_dec_verify_pin(p, n, pin) != FA_OK)
            break;
        FUZZ_CHECK(FUZZ_STR_OK(pin), "verify_pin: PIN not NUL-terminated");
        enc = proto_enc_verify_pin(pin, back, n, &len);
        same_bytes("verify_pin request", enc, back, len, p, n);
        break;
    case M_BEGIN:
        if (proto_dec_issue_begin(p, n, &req, type) != FA_OK)
            break;
        FUZZ_CHECK(req.type == type && FUZZ_STR_OK(type), "issue_begin: type not in its field");
        FUZZ_CHECK(req.nrates >= 0 && req.nrates <= DEVICE_MAX_RATES, "issue_begin: %d rates", req.nrates);
        enc = proto_enc_issue_begin(&req, back, n, &len);
        same_bytes("issue_begin request", enc, back, len, p, n);
        break;
    case M_SIGN:
        if (proto_dec_issue_sign(p, n, code, number, &blob, &blob_len) != FA_OK)
            break;
        FUZZ_CHECK(FUZZ_STR_OK(code) && FUZZ_STR_OK(number), "issue_sign: code or number not terminated");
        FUZZ_CHECK(blob_len <= PROTO_SIGN_DATA_MAX && inside(blob, blob_len, p, n),
                   "issue_sign: the signed bytes are not inside the request");
        enc = proto_enc_issue_sign(code, number, blob, blob_len, back, n, &len);
        same_bytes("issue_sign request", enc, back, len, p, n);
        break;
    case M_CLEARANCE:
        if (proto_dec_clearance(p, n, &blob, &blob_len) != FA_OK)
            break;
        FUZZ_CHECK(blob_len <= PROTO_CLEARANCE_MAX && inside(blob, blob_len, p, n),
                   "apply_clearance: the answer is not inside the request");
        enc = proto_enc_clearance((const char *)blob, blob_len, back, n, &len);
        same_bytes("apply_clearance request", enc, back, len, p, n);
        break;
    default:
        break;
    }
    free(back);
}

/* ---- responses (host side) ----------------------------------------------- */

static void fuzz_resp(const uint8_t *p, size_t n)
{
    uint8_t cmd = n ? p[0] : 0, *back;
    const uint8_t *r = p + (n ? 1 : 0), *body = (const uint8_t *)"x";
    size_t len = n ? n - 1 : 0, body_len = 1, back_len = 0;
    enum fa_err answer = FA_OK;

    if (proto_dec_resp(cmd, r, len, &answer, &body, &body_len) != FA_OK) {
        FUZZ_CHECK(answer == FA_DEV_IO && !body && !body_len, "response: refused, yet an answer is left");
        return;
    }
    FUZZ_CHECK(len >= PROTO_RESP_HDR && r[1] == cmd && r[2] == PROTO_VERSION, "response: accepted a header"
               " of %zu bytes for 0x%02x", len, cmd);
    FUZZ_CHECK(body == r + PROTO_RESP_HDR && body_len == len - PROTO_RESP_HDR, "response: body misplaced");
    FUZZ_CHECK(answer == FA_OK || body_len == 0, "response: a refusal with a body");
    FUZZ_CHECK(answer == proto_err_from_status(r[0]), "response: answer is not the status byte's");
    if (body_len || proto_status_from_err(answer) != r[0])
        return;   /* only known codes survive the round trip to enum fa_err */
    back = malloc(len);
    if (!back)
        return;
    same_bytes("empty response", proto_enc_resp_empty(cmd, answer, back, len, &back_len), back, back_len,
               r, len);
    free(back);
}

/* Response bodies: decode, check the fields, encode again (header and all)
 * into a buffer of exactly the size, compare the body. */
static void fuzz_body(enum mode m, const uint8_t *p, size_t n)
{
    static struct device_journal_entry journal[PROTO_JOURNAL_BATCH];
    static struct device_roll rolls[DEVICE_MAX_ROLLS];
    static struct device_summary sum;
    struct device_info info;
    struct device_status st;
    struct device_issue_fields f;
    char sig[CRYPTO_SIG_B64_MAX];
    size_t cap = n + PROTO_RESP_HDR, len = 0;
    uint8_t *back = malloc(cap);
    enum fa_err dec, enc = FA_INVAL;
    int count = -1, i;

    if (!back)
        return;
    switch (m) {
    case M_INFO:
        if ((dec = proto_dec_info(p, n, &info)) != FA_OK)
            break;
        FUZZ_CHECK(FUZZ_STR_OK(info.model) && FUZZ_STR_OK(info.machine_number) &&
                   FUZZ_STR_OK(info.seller_tax_id) && FUZZ_STR_OK(info.seller_name) &&
                   FUZZ_STR_OK(info.seller_address_phone) && FUZZ_STR_OK(info.seller_bank_account) &&
                   FUZZ_STR_OK(info.taxpayer_kind) && FUZZ_STR_OK(info.public_key),
                   "info: a string not NUL-terminated");
        enc = proto_enc_resp_info(&info, back, cap, &len);
        break;
    case M_STATUS:
        if ((dec = proto_dec_devstatus(p, n, &st)) != FA_OK)
            break;
        FUZZ_CHECK(FUZZ_STR_OK(st.cleared_through), "status: cleared_through not NUL-terminated");
        enc = proto_enc_resp_devstatus(&st, back, cap, &len);
        break;
    case M_ROLLS:
        dec = proto_dec_rolls(p, n, rolls, &count);
        FUZZ_CHECK(count >= 0 && count <= DEVICE_MAX_ROLLS && (dec == FA_OK || count == 0),
                   "rolls: %d rolls (decoder said %d)", count, (int)dec);
        if (dec != FA_OK)
            break;
        for (i = 0; i < count; i++)
            FUZZ_CHECK(FUZZ_STR_OK(rolls[i].type) && FUZZ_STR_OK(rolls[i].code), "rolls[%d]: not terminated",
                       i);
        enc = proto_enc_resp_rolls(rolls, count, back, cap, &len);
        break;
    case M_FIELDS:
        if ((dec = proto_dec_issue_fields(p, n, &f)) != FA_OK)
            break;
        FUZZ_CHECK(FUZZ_STR_OK(f.code) && FUZZ_STR_OK(f.number) && FUZZ_STR_OK(f.machine_number) &&
                   FUZZ_STR_OK(f.check_code) && FUZZ_STR_OK(f.cipher), "issue fields: not terminated");
        enc = proto_enc_resp_issue_fields(&f, back, cap, &len);
        break;
    case M_SIGNATURE:
        if ((dec = proto_dec_signature(p, n, sig)) != FA_OK)
            break;
        FUZZ_CHECK(FUZZ_STR_OK(sig), "signature: not NUL-terminated");
        enc = proto_enc_resp_signature(sig, back, cap, &len);
        break;
    case M_JOURNAL:
        dec = proto_dec_journal(p, n, journal, &count);
        FUZZ_CHECK(count >= 0 && count <= PROTO_JOURNAL_BATCH && (dec == FA_OK || count == 0),
                   "journal: %d entries (decoder said %d)", count, (int)dec);
        if (dec != FA_OK)
            break;
        for (i = 0; i < count; i++)
            FUZZ_CHECK(FUZZ_STR_OK(journal[i].code) && FUZZ_STR_OK(journal[i].number) &&
                       FUZZ_STR_OK(journal[i].type) && FUZZ_STR_OK(journal[i].sm3_hex) &&
                       FUZZ_STR_OK(journal[i].signature), "journal[%d]: not terminated", i);
        enc = proto_enc_resp_journal(journal, count, back, cap, &len);
        break;
    case M_SUMMARY:
        dec = proto_dec_summary(p, n, &sum);
        FUZZ_CHECK(sum.nlines >= 0 && sum.nlines <= DEVICE_SUMMARY_LINES && (dec == FA_OK || sum.nlines == 0),
                   "summary: %d lines (decoder said %d)", sum.nlines, (int)dec);
        if (dec != FA_OK)
            break;
        FUZZ_CHECK(FUZZ_STR_OK(sum.period) && FUZZ_STR_OK(sum.machine_number) && FUZZ_STR_OK(sum.signature),
                   "summary: not terminated");
        for (i = 0; i < sum.nlines; i++)
            FUZZ_CHECK(FUZZ_STR_OK(sum.lines[i].type), "summary line %d: type not terminated", i);
        enc = proto_enc_resp_summary(&sum, back, cap, &len);
        break;
    default:
        dec = FA_INVAL;
        break;
    }
    if (dec == FA_OK) {
        FUZZ_CHECK(enc == FA_OK && len >= PROTO_RESP_HDR, "body %d: decoded, not encoded again", (int)m);
        same_bytes("response body", enc, back + PROTO_RESP_HDR, len - PROTO_RESP_HDR, p, n);
        FUZZ_CHECK(le32(back + 4) == n, "body %d: header length %u for %zu bytes", (int)m, le32(back + 4), n);
    } else {
        FUZZ_CHECK(dec == FA_DEV_IO, "body %d: refused with %d, not FA_DEV_IO", (int)m, (int)dec);
    }
    free(back);
}

/* ---- the host, facing a hostile device ----------------------------------- */

/* The transport's bytes all come from the input: for each call one control
 * byte (bits 0-2: what happened on the wire, 0 and 5-7 ok, 1 stall,
 * 2 timeout, 3 unplugged, 4 error; bit 6: half the bytes moved), then:
 *   CSW read:   bit 4 set: a valid CSW for the last CBW with status bits 5-6;
 *               else a count byte and that many raw bytes (bit 3: the right tag
 *               patched in);
 *   data-in:    bit 4 set: a response header for the command (status byte from
 *               the input), then a u16 length and the body;
 *               else a u16 length and the raw bytes.
 * When the input runs out the device is unplugged, so every session ends. */
struct hostile {
    struct bot_transport base;
    struct fz *in;
    bool expect_cbw;
    uint32_t tag, data_len, moved;   /* of the command in progress */
    uint8_t cmd;                     /* the command a data-in answers */
    bool any_tag, any_request;
    uint32_t last_tag, exchange;     /* of the last CBW and the last request */
    uint8_t request_cmd;
};

static enum bot_io wire(unsigned b)
{
    switch (b & 7) {
    case 1:  return BOT_IO_STALL;
    case 2:  return BOT_IO_TIMEOUT;
    case 3:  return BOT_IO_NO_DEVICE;
    case 4:  return BOT_IO_ERROR;
    default: return BOT_IO_OK;
    }
}

/* What the host sends as a CBW must be one a device takes. */
static void host_cbw(struct hostile *h, const uint8_t *buf, size_t len)
{
    struct bot_cbw c;
    struct proto_cdb cdb;
    bool in;

    FUZZ_CHECK(len == BOT_CBW_LEN && bot_cbw_decode(buf, len, &c) == BOT_WRAP_OK,
               "host: sent an invalid CBW (%zu bytes)", len);
    FUZZ_CHECK(proto_cdb_decode(c.cb, c.cb_len, &cdb) == FA_OK, "host: sent an invalid CDB");
    in = (c.flags & BOT_CBW_FLAG_IN) != 0;
    FUZZ_CHECK(cdb.length == c.data_len && c.data_len > 0 && in != proto_cmd_is_request(cdb.cmd),
               "host: CBW and CDB disagree on the data phase");
    FUZZ_CHECK(!h->any_tag || c.tag == h->last_tag + 1, "host: tag %u after %u", c.tag, h->last_tag);
    if (proto_cmd_is_request(cdb.cmd)) {
        FUZZ_CHECK(!h->any_request || cdb.exchange > h->exchange, "host: request with exchange %u sent "
                   "again (last %u): a request must never be sent twice", cdb.exchange, h->exchange);
        h->any_request = true;
        h->exchange = cdb.exchange;
        h->request_cmd = cdb.cmd;
    } else if (cdb.cmd == PROTO_FETCH) {
        FUZZ_CHECK(h->any_request && cdb.exchange == h->exchange && cdb.fetch_cmd == h->request_cmd,
                   "host: FETCH of exchange %u, the last request was %u", cdb.exchange, h->exchange);
    }
    h->any_tag = true;
    h->last_tag = h->tag = c.tag;
    h->data_len = c.data_len;
    h->moved = 0;
    h->cmd = cdb.cmd == PROTO_FETCH ? cdb.fetch_cmd : cdb.cmd;
    h->expect_cbw = false;
}

static enum bot_io h_bulk_out(struct bot_transport *t, const uint8_t *buf, size_t len, size_t *done,
                              unsigned timeout_ms)
{
    struct hostile *h = (struct hostile *)t;
    bool cbw = h->expect_cbw;
    unsigned b;

    (void)timeout_ms;
    *done = 0;
    if (cbw)
        host_cbw(h, buf, len);
    if (!fz_left(h->in))
        return BOT_IO_NO_DEVICE;
    b = fz_u8(h->in);
    *done = b & 0x40 ? len / 2 : len;
    if (!cbw)
        h->moved = (uint32_t)*done;
    return wire(b);
}

static enum bot_io h_bulk_in(struct bot_transport *t, uint8_t *buf, size_t len, size_t *done,
                             unsigned timeout_ms)
{
    struct hostile *h = (struct hostile *)t;
    const uint8_t *p;
    size_t got, want;
    unsigned b;

    (void)timeout_ms;
    *done = 0;
    if (len == BOT_CSW_LEN)
        h->expect_cbw = true;     /* a CSW read ends the command, whatever it brings */
    if (!fz_left(h->in))
        return BOT_IO_NO_DEVICE;
    b = fz_u8(h->in);
    if (len == BOT_CSW_LEN && (b & 0x10)) {
        struct bot_csw csw = { h->tag, h->data_len - (h->moved < h->data_len ? h->moved : h->data_len),
                               (uint8_t)((b >> 5) & 3) };
        bot_csw_encode(&csw, buf);
        *done = BOT_CSW_LEN;
    } else if (len == BOT_CSW_LEN) {
        want = fz_u8(h->in);
        p = fz_bytes(h->in, want < len ? want : len, &got);
        memcpy(buf, p, got);
        if ((b & 0x08) && got >= 8)
            memcpy(buf + 4, (uint8_t[4]){ (uint8_t)h->tag, (uint8_t)(h->tag >> 8), (uint8_t)(h->tag >> 16),
                                          (uint8_t)(h->tag >> 24) }, 4);
        *done = got;
    } else if ((b & 0x10) && len >= PROTO_RESP_HDR) {
        buf[0] = (uint8_t)fz_u8(h->in);
        buf[1] = h->cmd;
        buf[2] = PROTO_VERSION;
        buf[3] = 0;
        want = fz_u16(h->in);
        p = fz_bytes(h->in, want < len - PROTO_RESP_HDR ? want : len - PROTO_RESP_HDR, &got);
        memcpy(buf + PROTO_RESP_HDR, p, got);
        buf[4] = (uint8_t)got;
        buf[5] = (uint8_t)(got >> 8);
        buf[6] = buf[7] = 0;
        *done = PROTO_RESP_HDR + got;
    } else {
        want = fz_u16(h->in);
        p = fz_bytes(h->in, want < len ? want : len, &got);
        memcpy(buf, p, got);
        *done = got;
    }
    if (b & 0x40)
        *done /= 2;
    if (len != BOT_CSW_LEN)
        h->moved = (uint32_t)*done;
    return wire(b);
}

static enum bot_io h_clear_halt(struct bot_transport *t, enum bot_endpoint ep)
{
    struct hostile *h = (struct hostile *)t;

    (void)ep;
    return fz_left(h->in) ? wire(fz_u8(h->in)) : BOT_IO_NO_DEVICE;
}

static enum bot_io h_reset_recovery(struct bot_transport *t)
{
    struct hostile *h = (struct hostile *)t;

    h->expect_cbw = true;
    return fz_left(h->in) ? wire(fz_u8(h->in)) : BOT_IO_NO_DEVICE;
}

static void h_close(struct bot_transport *t)
{
    (void)t;
}

static const struct bot_transport_ops hostile_ops = {
    .bulk_out = h_bulk_out,
    .bulk_in = h_bulk_in,
    .clear_halt = h_clear_halt,
    .reset_recovery = h_reset_recovery,
    .close = h_close,
};

/* The results a command may have: a device's answer, or a broken exchange. */
static bool host_result_ok(enum fa_err err)
{
    unsigned st;

    if (err == FA_DEV_ABSENT || err == FA_NOMEM)
        return true;
    for (st = 0; st < 256; st++)
        if (proto_err_from_status((uint8_t)st) == err)
            return true;
    return false;
}

#define HOST_OPS 12
#define HOST_JOURNAL_MAX 40

static void fuzz_host(const uint8_t *p, size_t n)
{
    static struct device_journal_entry journal[HOST_JOURNAL_MAX];
    static struct device_summary sum;
    static const char long_pin[] = "1234567890123456789012345678901234567890123456789012345678901234";
    struct fz in = { p, n, 0 };
    struct hostile h = { .in = &in, .expect_cbw = true };
    struct device *d = NULL;
    struct device_info info;
    struct device_status st;
    struct device_roll rolls[DEVICE_MAX_ROLLS + 2];
    struct device_issue_fields f;
    struct device_issue_req req = { .type = "026", .total_fen = 11300, .issued_at = 1795000000,
                                    .nrates = 1, .rates = { { 130, 10000, 1300 } } };
    char sig[CRYPTO_SIG_B64_MAX];
    int op, i, count, max;
    uint64_t from;
    enum fa_err err;
    bool gone, io, trace = getenv("FUZZ_TRACE") != NULL;

    bot_transport_init(&h.base, &hostile_ops);
    if (remote_open(&h.base, &d) != FA_OK)
        return;
    for (op = 0; op < HOST_OPS && fz_left(&in); op++) {
        unsigned which = fz_u8(&in) % 10;

        gone = h.base.gone;
        io = true;
        count = 0;
        switch (which) {
        case 0:
            err = device_get_info(d, &info);
            if (err == FA_OK)
                FUZZ_CHECK(FUZZ_STR_OK(info.model) && FUZZ_STR_OK(info.public_key) &&
                           !strcmp(info.kind, "usb"), "host: get_info gave unterminated strings");
            break;
        case 1:
            err = device_get_status(d, &st);
            if (err == FA_OK)
                FUZZ_CHECK(FUZZ_STR_OK(st.cleared_through), "host: get_status: cleared_through");
            break;
        case 2:
            max = (int)(fz_u8(&in) % (DEVICE_MAX_ROLLS + 3));
            err = device_list_rolls(d, rolls, max, &count);
            FUZZ_CHECK(count >= 0 && count <= max && count <= DEVICE_MAX_ROLLS && (err == FA_OK || !count),
                       "host: list_rolls gave %d rolls for at most %d", count, max);
            for (i = 0; i < count; i++)
                FUZZ_CHECK(FUZZ_STR_OK(rolls[i].type) && FUZZ_STR_OK(rolls[i].code), "host: roll %d", i);
            break;
        case 3:
            io = !(fz_u8(&in) & 1);
            err = device_verify_pin(d, io ? "12345678" : long_pin);
            if (!io)
                FUZZ_CHECK(err == FA_DEV_PIN, "host: a PIN too long to send is not refused");
            break;
        case 4:
            err = device_issue_begin(d, &req, &f);
            if (err == FA_OK)
                FUZZ_CHECK(FUZZ_STR_OK(f.code) && FUZZ_STR_OK(f.number) && FUZZ_STR_OK(f.cipher) &&
                           FUZZ_STR_OK(f.check_code) && FUZZ_STR_OK(f.machine_number), "host: issue fields");
            break;
        case 5:
            err = device_issue_sign(d, "031001900111", "00000001", "{\"a\":1}", 7, sig);
            if (err == FA_OK)
                FUZZ_CHECK(FUZZ_STR_OK(sig), "host: signature not terminated");
            break;
        case 6:
            from = fz_u8(&in);
            max = (int)(fz_u8(&in) % (HOST_JOURNAL_MAX + 1));
            io = max > 0;
            err = device_read_journal(d, from, journal, max, &count);
            FUZZ_CHECK(count >= 0 && count <= max && (err == FA_OK || !count),
                       "host: read_journal gave %d entries for at most %d", count, max);
            for (i = 0; i < count; i++) {
                FUZZ_CHECK(journal[i].seq >= from && (i == 0 || journal[i].seq > journal[i - 1].seq),
                           "host: journal entry %d has seq %llu (from %llu)", i,
                           (unsigned long long)journal[i].seq, (unsigned long long)from);
                FUZZ_CHECK(FUZZ_STR_OK(journal[i].code) && FUZZ_STR_OK(journal[i].signature) &&
                           FUZZ_STR_OK(journal[i].sm3_hex), "host: journal entry %d not terminated", i);
            }
            break;
        case 7:
            err = device_period_summary(d, "2026-11", &sum);
            if (err == FA_OK)
                FUZZ_CHECK(sum.nlines >= 0 && sum.nlines <= DEVICE_SUMMARY_LINES && FUZZ_STR_OK(sum.period) &&
                           FUZZ_STR_OK(sum.signature), "host: period summary");
            break;
        case 8:
            err = device_apply_clearance(d, "{\"cleared\":true}", 16);
            break;
        default:
            err = device_set_clock(d, (int64_t)fz_u32(&in));
            break;
        }
        if (trace)
            fprintf(stderr, "fuzz_proto: host: command %u: %s (%s)\n", which, fa_err_str(err), remote_why(d));
        FUZZ_CHECK(host_result_ok(err), "host: command %u gave %s, which no device answers", which,
                   fa_err_str(err));
        FUZZ_CHECK(!gone || !io || err == FA_DEV_ABSENT, "host: command %u after unplugging gave %s",
                   which, fa_err_str(err));
        FUZZ_CHECK(FUZZ_STR_OK(h.base.why) && strlen(remote_why(d)) < 256, "host: why not terminated");
    }
    device_close(d);
}

/* ---- the device, facing a host script ------------------------------------ */

/* A stub device: well-formed answers (or the refusal the script sets), and
 * checks of what the loopback server hands it. */
struct stub {
    struct device base;
    enum fa_err answer;
    unsigned count;               /* rolls, journal entries or summary lines it returns */
};

static enum fa_err stub_get_info(struct device *d, struct device_info *out)
{
    struct stub *s = (struct stub *)d;

    snprintf(out->model, sizeof out->model, "fuzz");
    snprintf(out->machine_number, sizeof out->machine_number, "499099000001");
    snprintf(out->seller_name, sizeof out->seller_name, "上海测试有限公司");
    snprintf(out->taxpayer_kind, sizeof out->taxpayer_kind, "一般纳税人");
    if (s->count & 1)
        out->public_key[0] = (char)0xff;   /* not UTF-8: the server must not send it */
    return s->answer;
}

static enum fa_err stub_get_status(struct device *d, struct device_status *out)
{
    struct stub *s = (struct stub *)d;

    snprintf(out->cleared_through, sizeof out->cleared_through, "2026-10");
    out->pin_retries_left = 5;
    return s->answer;
}

static enum fa_err stub_list_rolls(struct device *d, struct device_roll *out, int max, int *n)
{
    struct stub *s = (struct stub *)d;
    int i;

    FUZZ_CHECK(max == DEVICE_MAX_ROLLS, "device: list_rolls asked for %d", max);
    *n = (int)(s->count % (DEVICE_MAX_ROLLS + 2));     /* may claim more than max */
    for (i = 0; i < *n && i < max; i++) {
        snprintf(out[i].type, sizeof out[i].type, "026");
        snprintf(out[i].code, sizeof out[i].code, "03100190011%d", i);
        out[i].first = 1;
        out[i].last = 100;
        out[i].next = (uint32_t)i;
    }
    return s->answer;
}

static enum fa_err stub_verify_pin(struct device *d, const char *pin)
{
    FUZZ_CHECK(strnlen(pin, PROTO_PIN_MAX + 1) <= PROTO_PIN_MAX, "device: PIN not terminated");
    return ((struct stub *)d)->answer;
}

static enum fa_err stub_issue_begin(struct device *d, const struct device_issue_req *req,
                                    struct device_issue_fields *out)
{
    FUZZ_CHECK(req->type && strnlen(req->type, 4) < 4, "device: issue_begin type not terminated");
    FUZZ_CHECK(req->nrates >= 0 && req->nrates <= DEVICE_MAX_RATES, "device: %d rates", req->nrates);
    snprintf(out->code, sizeof out->code, "031001900111");
    snprintf(out->number, sizeof out->number, "00000001");
    snprintf(out->machine_number, sizeof out->machine_number, "499099000001");
    snprintf(out->check_code, sizeof out->check_code, "12345678901234567890");
    memset(out->cipher, '*', sizeof out->cipher - 1);
    out->cipher[sizeof out->cipher - 1] = 0;
    return ((struct stub *)d)->answer;
}

static enum fa_err stub_issue_sign(struct device *d, const char *code, const char *number, const void *bytes,
                                   size_t len, char sig_b64[CRYPTO_SIG_B64_MAX])
{
    const volatile uint8_t *b = bytes;
    size_t i;
    unsigned sum = 0;

    FUZZ_CHECK(strnlen(code, 16) < 16 && strnlen(number, 16) < 16, "device: code or number not terminated");
    FUZZ_CHECK(len <= PROTO_SIGN_DATA_MAX && (len == 0 || bytes), "device: %zu bytes to sign", len);
    for (i = 0; i < len; i++)   /* every byte readable (ASan) */
        sum += b[i];
    snprintf(sig_b64, CRYPTO_SIG_B64_MAX, "MEUCIQ%u==", sum & 0xff);
    return ((struct stub *)d)->answer;
}

static enum fa_err stub_read_journal(struct device *d, uint64_t from, struct device_journal_entry *out,
                                     int max, int *n)
{
    struct stub *s = (struct stub *)d;
    int i;

    FUZZ_CHECK(max >= 1 && max <= PROTO_JOURNAL_BATCH, "device: read_journal of %d entries", max);
    *n = (int)(s->count % (PROTO_JOURNAL_BATCH + 2));
    if (*n > max)
        *n = max + 1;     /* claims more than asked: the server must not send it */
    for (i = 0; i < *n && i < max; i++) {
        out[i].seq = from + (uint64_t)i;
        snprintf(out[i].code, sizeof out[i].code, "031001900111");
        snprintf(out[i].number, sizeof out[i].number, "%08d", i + 1);
        snprintf(out[i].type, sizeof out[i].type, "026");
        snprintf(out[i].sm3_hex, sizeof out[i].sm3_hex, "%064d", 0);
        snprintf(out[i].signature, sizeof out[i].signature, "MEUCIQ==");
    }
    return s->answer;
}

static enum fa_err stub_period_summary(struct device *d, const char *period, struct device_summary *out)
{
    struct stub *s = (struct stub *)d;
    int i;

    FUZZ_CHECK(strnlen(period, PROTO_PERIOD_MAX + 1) <= PROTO_PERIOD_MAX && period[0],
               "device: period not terminated or empty");
    snprintf(out->period, sizeof out->period, "%s", period);
    snprintf(out->machine_number, sizeof out->machine_number, "499099000001");
    out->nlines = (int)(s->count % (DEVICE_SUMMARY_LINES + 2));   /* may be one too many */
    for (i = 0; i < out->nlines && i < DEVICE_SUMMARY_LINES; i++) {
        snprintf(out->lines[i].type, sizeof out->lines[i].type, "026");
        out->lines[i].rate_pm = i;
        out->lines[i].count = 1;
    }
    snprintf(out->signature, sizeof out->signature, "MEUCIQ==");
    return s->answer;
}

static enum fa_err stub_apply_clearance(struct device *d, const char *answer, size_t len)
{
    FUZZ_CHECK(len <= PROTO_CLEARANCE_MAX && answer[len] == 0, "device: clearance answer not terminated");
    FUZZ_CHECK(strlen(answer) <= len, "device: clearance answer longer than said");
    return ((struct stub *)d)->answer;
}

static enum fa_err stub_set_clock(struct device *d, int64_t now)
{
    (void)now;
    return ((struct stub *)d)->answer;
}

static void stub_close(struct device *d)
{
    (void)d;
}

static const struct device_ops stub_ops = {
    .get_info = stub_get_info,
    .get_status = stub_get_status,
    .list_rolls = stub_list_rolls,
    .verify_pin = stub_verify_pin,
    .issue_begin = stub_issue_begin,
    .issue_sign = stub_issue_sign,
    .read_journal = stub_read_journal,
    .period_summary = stub_period_summary,
    .apply_clearance = stub_apply_clearance,
    .set_clock = stub_set_clock,
    .close = stub_close,
};

/* A complete response from the device decodes on the host side. */
static void device_response(const uint8_t *buf, size_t len)
{
    static struct device_journal_entry journal[PROTO_JOURNAL_BATCH];
    static struct device_summary sum;
    struct device_roll rolls[DEVICE_MAX_ROLLS];
    struct device_info info;
    struct device_status st;
    struct device_issue_fields f;
    char sig[CRYPTO_SIG_B64_MAX];
    const uint8_t *body;
    size_t body_len;
    enum fa_err answer, dec = FA_OK;
    int n;

    FUZZ_CHECK(len >= PROTO_RESP_HDR && proto_dec_resp(buf[1], buf, len, &answer, &body, &body_len) == FA_OK,
               "device: sent a response (%zu bytes) the host cannot decode", len);
    if (answer != FA_OK)
        return;
    switch (buf[1]) {
    case PROTO_GET_INFO:       dec = proto_dec_info(body, body_len, &info); break;
    case PROTO_GET_STATUS:     dec = proto_dec_devstatus(body, body_len, &st); break;
    case PROTO_LIST_ROLLS:     dec = proto_dec_rolls(body, body_len, rolls, &n); break;
    case PROTO_ISSUE_BEGIN:    dec = proto_dec_issue_fields(body, body_len, &f); break;
    case PROTO_ISSUE_SIGN:     dec = proto_dec_signature(body, body_len, sig); break;
    case PROTO_READ_JOURNAL:   dec = proto_dec_journal(body, body_len, journal, &n); break;
    case PROTO_PERIOD_SUMMARY: dec = proto_dec_summary(body, body_len, &sum); break;
    default:
        FUZZ_CHECK(body_len == 0, "device: a body in the response to 0x%02x", buf[1]);
        break;
    }
    FUZZ_CHECK(dec == FA_OK, "device: sent a body for 0x%02x the host cannot decode", buf[1]);
}

#define DEVICE_OPS 64
#define DEVICE_IN_MAX 8192

static const enum fa_err stub_answers[] = {
    FA_OK, FA_OK, FA_OK, FA_DEV_PIN, FA_DEV_LOCKED, FA_DEV_LIMIT, FA_DEV_ROLL_EMPTY, FA_INVAL, FA_DEV_IO,
    FA_NOTFOUND, FA_PERM, FA_BUSY, FA_PLATFORM_REFUSED, FA_NOMEM, FA_IO,
};

static void fuzz_device(const uint8_t *p, size_t n)
{
    struct fz in = { p, n, 0 };
    struct stub s = { { &stub_ops }, FA_OK, 0 };
    struct bot_transport *t = NULL;
    struct bot_cbw cbw = { 0 };
    struct bot_csw csw;
    uint8_t cbw_buf[BOT_CBW_LEN], *buf;
    const uint8_t *bytes;
    size_t len, done, got;
    uint32_t tag = 1;
    bool fresh = false, trace = getenv("FUZZ_TRACE") != NULL;
    enum bot_io io;
    int op;

    if (loopback_open(&s.base, &t) != FA_OK)
        return;
    for (op = 0; op < DEVICE_OPS && fz_left(&in); op++) {
        unsigned which = fz_u8(&in) % 6;

        switch (which) {
        case 0:   /* raw bulk-out */
        case 1:   /* a CBW around the next 16 bytes, taken as a CDB */
            if (which == 0) {
                bytes = fz_bytes(&in, fz_u16(&in), &len);
            } else {
                memset(cbw.cb, 0, sizeof cbw.cb);
                bytes = fz_bytes(&in, PROTO_CDB_LEN, &got);
                memcpy(cbw.cb, bytes, got);
                cbw.tag = tag++;
                cbw.data_len = le32(cbw.cb + 4);
                cbw.flags = proto_cmd_is_request(cbw.cb[1]) ? 0 : BOT_CBW_FLAG_IN;
                cbw.cb_len = PROTO_CDB_LEN;
                bot_cbw_encode(&cbw, cbw_buf);
                bytes = cbw_buf;
                len = BOT_CBW_LEN;
            }
            buf = malloc(len ? len : 1);
            if (!buf)
                goto out;
            memcpy(buf, bytes, len);
            done = (size_t)-1;
            io = t->ops->bulk_out(t, buf, len, &done, 1000);
            FUZZ_CHECK(done <= len, "device: took %zu of %zu bytes", done, len);
            if (trace)
                fprintf(stderr, "fuzz_proto: device: bulk-out of %zu: %d, %zu taken\n", len, (int)io, done);
            free(buf);
            fresh = io == BOT_IO_OK;
            break;
        case 2:   /* bulk-in */
            len = fz_u16(&in) % (DEVICE_IN_MAX + 1);
            buf = malloc(len ? len : 1);
            if (!buf)
                goto out;
            done = (size_t)-1;
            io = t->ops->bulk_in(t, buf, len, &done, 1000);
            FUZZ_CHECK(done <= len, "device: sent %zu bytes for %zu", done, len);
            if (trace)
                fprintf(stderr, "fuzz_proto: device: bulk-in of %zu: %d, %zu bytes\n", len, (int)io, done);
            if (io == BOT_IO_OK && done == BOT_CSW_LEN && le32(buf) == BOT_CSW_SIGNATURE) {
                FUZZ_CHECK(bot_csw_decode(buf, done, le32(buf + 4), UINT32_MAX, &csw) == BOT_WRAP_OK,
                           "device: sent an invalid CSW");
            } else if (io == BOT_IO_OK && fresh && done < len) {
                device_response(buf, done);   /* the first and last packet of a data-in phase */
            }
            free(buf);
            fresh = false;
            break;
        case 3:
            s.answer = stub_answers[fz_u8(&in) % (sizeof stub_answers / sizeof stub_answers[0])];
            s.count = fz_u8(&in);
            break;
        case 4:
            t->ops->clear_halt(t, fz_u8(&in) & 1 ? BOT_EP_IN : BOT_EP_OUT);
            fresh = false;
            break;
        default:
            t->ops->reset_recovery(t);
            fresh = false;
            break;
        }
    }
out:
    bot_transport_close(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum mode m;

    if (size == 0)
        return 0;
    m = (enum mode)(data[0] % M_COUNT);
    data++;
    size--;
    switch (m) {
    case M_CBW:       fuzz_cbw(data, size); break;
    case M_CSW:       fuzz_csw(data, size); break;
    case M_CDB:       fuzz_cdb(data, size); break;
    case M_PIN:
    case M_BEGIN:
    case M_SIGN:
    case M_CLEARANCE: fuzz_request(m, data, size); break;
    case M_RESP:      fuzz_resp(data, size); break;
    case M_HOST:      fuzz_host(data, size); break;
    case M_DEVICE:    fuzz_device(data, size); break;
    default:          fuzz_body(m, data, size); break;
    }
    return 0;
}
