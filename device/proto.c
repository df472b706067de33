/*
 * proto.c — encoders and decoders of the vendor command set; see proto.h and
 * device/PROTOCOL.md.
 *
 * All encoding goes through a bounded writer and all decoding through a
 * bounded reader that turn "does not fit" into a sticky flag, so no encoder
 * or decoder does its own pointer arithmetic: one place to get the bounds
 * right, which is what lets the decoders take fuzzed bytes.  Strings are a
 * u16 length and UTF-8 bytes; their bound is the size of the device.h field
 * they come from or go to, minus the NUL.
 */
#include <string.h>
#include "device/proto.h"

/* ---- bounded writer and reader ------------------------------------------- */

struct wr {
    uint8_t *buf;
    size_t cap, len;
    bool bad;
};

struct rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static void put_le(uint8_t *p, uint64_t v, int n)
{
    int i;
    for (i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    int i;
    for (i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Well-formed UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF) without NUL, which would cut the C string short. */
static bool utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0, k, more;
    uint32_t cp, min;

    while (i < n) {
        uint8_t c = s[i++];
        if (c == 0)
            return false;
        if (c < 0x80)
            continue;
        if ((c & 0xE0) == 0xC0) {
            more = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            more = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (more > n - i)
            return false;
        for (k = 0; k < more; k++) {
            if ((s[i] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i++] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
    }
    return true;
}

static void w_bytes(struct wr *w, const void *p, size_t n)
{
    if (w->bad || n > w->cap - w->len) {
        w->bad = true;
        return;
    }
    if (n)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void w_uint(struct wr *w, uint64_t v, int n)
{
    uint8_t b[8];
    put_le(b, v, n);
    w_bytes(w, b, (size_t)n);
}

static void w_u8(struct wr *w, unsigned v)  { w_uint(w, v, 1); }
static void w_u16(struct wr *w, unsigned v) { w_uint(w, v, 2); }
static void w_u32(struct wr *w, uint32_t v) { w_uint(w, v, 4); }
static void w_u64(struct wr *w, uint64_t v) { w_uint(w, v, 8); }
static void w_i32(struct wr *w, int32_t v)  { w_uint(w, (uint32_t)v, 4); }
static void w_i64(struct wr *w, int64_t v)  { w_uint(w, (uint64_t)v, 8); }

/* A string from a char[field_size]: it must be NUL-terminated within it. */
static void w_str(struct wr *w, const char *s, size_t field_size)
{
    size_t n = s ? strnlen(s, field_size) : field_size;
    if (n >= field_size || n > UINT16_MAX || !utf8_ok((const uint8_t *)s, n)) {
        w->bad = true;
        return;
    }
    w_u16(w, (unsigned)n);
    w_bytes(w, s, n);
}

static void w_blob(struct wr *w, const void *p, size_t n, size_t max)
{
    if (n > max || (n && !p)) {
        w->bad = true;
        return;
    }
    w_u32(w, (uint32_t)n);
    w_bytes(w, p, n);
}

static const uint8_t *r_bytes(struct rd *r, size_t n)
{
    const uint8_t *p;
    if (r->bad || n > r->len - r->off) {
        r->bad = true;
        return NULL;
    }
    p = r->p + r->off;
    r->off += n;
    return p;
}

static uint64_t r_uint(struct rd *r, int n)
{
    const uint8_t *p = r_bytes(r, (size_t)n);
    return p ? get_le(p, n) : 0;
}

static unsigned r_u8(struct rd *r)  { return (unsigned)r_uint(r, 1); }
static unsigned r_u16(struct rd *r) { return (unsigned)r_uint(r, 2); }
static uint32_t r_u32(struct rd *r) { return (uint32_t)r_uint(r, 4); }
static uint64_t r_u64(struct rd *r) { return r_uint(r, 8); }
static int32_t r_i32(struct rd *r)  { return (int32_t)r_u32(r); }
static int64_t r_i64(struct rd *r)  { return (int64_t)r_u64(r); }

static bool r_bool(struct rd *r)
{
    unsigned v = r_u8(r);
    if (v > 1)
        r->bad = true;
    return v == 1;
}

/* A string into a char[field_size], NUL-terminated; "" when bad. */
static void r_str(struct rd *r, char *dst, size_t field_size)
{
    size_t n = r_u16(r);
    const uint8_t *p = r_bytes(r, n);
    if (!p || n >= field_size || !utf8_ok(p, n)) {
        r->bad = true;
        dst[0] = 0;
        return;
    }
    memcpy(dst, p, n);
    dst[n] = 0;
}

static const uint8_t *r_blob(struct rd *r, size_t max, size_t *n)
{
    size_t len = r_u32(r);
    const uint8_t *p;
    if (len > max) {
        r->bad = true;
        len = 0;
    }
    p = r_bytes(r, len);
    *n = p ? len : 0;
    return p;
}

/* The whole input was consumed, and validly. */
static bool r_done(const struct rd *r)
{
    return !r->bad && r->off == r->len;
}

/* Worst-case sizes, checked against the limits of proto.h at compile time. */
#define FIELD(T, f) sizeof(((T *)0)->f)
#define STR(T, f) (2 + FIELD(T, f) - 1)

_Static_assert(PROTO_RESP_HDR + STR(struct device_info, model) + STR(struct device_info, machine_number) +
               STR(struct device_info, seller_tax_id) + STR(struct device_info, seller_name) +
               STR(struct device_info, seller_address_phone) +
               STR(struct device_info, seller_bank_account) + STR(struct device_info, taxpayer_kind) +
               STR(struct device_info, public_key) <= PROTO_INFO_RESP_MAX, "info response");
_Static_assert(PROTO_RESP_HDR + STR(struct device_status, cleared_through) + 8 + 1 + 8 + 8 + 8 + 4 + 8
               <= PROTO_STATUS_RESP_MAX, "status response");
#define ROLL_MAX (STR(struct device_roll, type) + STR(struct device_roll, code) + 12)
_Static_assert(PROTO_RESP_HDR + 1 + DEVICE_MAX_ROLLS * ROLL_MAX <= PROTO_ROLLS_RESP_MAX, "rolls");
_Static_assert(2 + 3 + 16 + 1 + DEVICE_MAX_RATES * 20 <= PROTO_BEGIN_REQ_MAX, "issue_begin request");
_Static_assert(PROTO_RESP_HDR + STR(struct device_issue_fields, code) +
               STR(struct device_issue_fields, number) + STR(struct device_issue_fields, machine_number) +
               STR(struct device_issue_fields, check_code) + STR(struct device_issue_fields, cipher)
               <= PROTO_BEGIN_RESP_MAX, "issue_begin response");
_Static_assert(2 * (2 + 15) + 4 <= PROTO_SIGN_REQ_OVERHEAD, "issue_sign request");
_Static_assert(PROTO_RESP_HDR + 2 + CRYPTO_SIG_B64_MAX - 1 <= PROTO_SIGN_RESP_MAX, "signature");
#define ENTRY_MAX (8 + STR(struct device_journal_entry, code) + STR(struct device_journal_entry, number) + \
                   STR(struct device_journal_entry, type) + 16 + STR(struct device_journal_entry, sm3_hex) + \
                   STR(struct device_journal_entry, signature))
_Static_assert(PROTO_RESP_HDR + 1 + PROTO_JOURNAL_BATCH * ENTRY_MAX <= PROTO_JOURNAL_RESP_MAX, "journal");
#define SUMMARY_LINE_MAX (STR(struct device_summary_line, type) + 1 + 4 + 24)
_Static_assert(PROTO_RESP_HDR + STR(struct device_summary, period) +
               STR(struct device_summary, machine_number) + 1 + DEVICE_SUMMARY_LINES * SUMMARY_LINE_MAX +
               STR(struct device_summary, signature)
               <= PROTO_SUMMARY_RESP_MAX, "summary");
_Static_assert(PROTO_JOURNAL_RESP_MAX <= PROTO_RESP_MAX && PROTO_SUMMARY_RESP_MAX <= PROTO_RESP_MAX &&
               PROTO_INFO_RESP_MAX <= PROTO_RESP_MAX, "PROTO_RESP_MAX");

/* ---- commands and CDBs --------------------------------------------------- */

bool proto_cmd_is_request(uint8_t cmd)
{
    return cmd == PROTO_VERIFY_PIN || cmd == PROTO_ISSUE_BEGIN || cmd == PROTO_ISSUE_SIGN ||
           cmd == PROTO_APPLY_CLEARANCE;
}

size_t proto_resp_max(uint8_t cmd)
{
    switch (cmd) {
    case PROTO_GET_INFO:        return PROTO_INFO_RESP_MAX;
    case PROTO_GET_STATUS:      return PROTO_STATUS_RESP_MAX;
    case PROTO_LIST_ROLLS:      return PROTO_ROLLS_RESP_MAX;
    case PROTO_VERIFY_PIN:      return PROTO_EMPTY_RESP_MAX;
    case PROTO_ISSUE_BEGIN:     return PROTO_BEGIN_RESP_MAX;
    case PROTO_ISSUE_SIGN:      return PROTO_SIGN_RESP_MAX;
    case PROTO_READ_JOURNAL:    return PROTO_JOURNAL_RESP_MAX;
    case PROTO_PERIOD_SUMMARY:  return PROTO_SUMMARY_RESP_MAX;
    case PROTO_APPLY_CLEARANCE: return PROTO_EMPTY_RESP_MAX;
    case PROTO_SET_CLOCK:       return PROTO_EMPTY_RESP_MAX;
    default:                    return 0;
    }
}

size_t proto_req_max(uint8_t cmd)
{
    switch (cmd) {
    case PROTO_VERIFY_PIN:      return PROTO_PIN_REQ_MAX;
    case PROTO_ISSUE_BEGIN:     return PROTO_BEGIN_REQ_MAX;
    case PROTO_ISSUE_SIGN:      return PROTO_SIGN_REQ_MAX;
    case PROTO_APPLY_CLEARANCE: return PROTO_CLEARANCE_REQ_MAX;
    default:                    return 0;
    }
}

const char *proto_cmd_name(uint8_t cmd)
{
    switch (cmd) {
    case PROTO_GET_INFO:        return "get_info";
    case PROTO_GET_STATUS:      return "get_status";
    case PROTO_LIST_ROLLS:      return "list_rolls";
    case PROTO_VERIFY_PIN:      return "verify_pin";
    case PROTO_ISSUE_BEGIN:     return "issue_begin";
    case PROTO_ISSUE_SIGN:      return "issue_sign";
    case PROTO_READ_JOURNAL:    return "read_journal";
    case PROTO_PERIOD_SUMMARY:  return "period_summary";
    case PROTO_APPLY_CLEARANCE: return "apply_clearance";
    case PROTO_SET_CLOCK:       return "set_clock";
    case PROTO_FETCH:           return "fetch";
    default:                    return "unknown";
    }
}

static void cdb_init(uint8_t cdb[PROTO_CDB_LEN], uint8_t cmd, uint8_t small, uint32_t length)
{
    memset(cdb, 0, PROTO_CDB_LEN);
    cdb[0] = PROTO_OPCODE;
    cdb[1] = cmd;
    cdb[2] = PROTO_VERSION;
    cdb[3] = small;
    put_le(cdb + 4, length, 4);
}

void proto_cdb_query(uint8_t cmd, uint8_t cdb[PROTO_CDB_LEN])
{
    cdb_init(cdb, cmd, 0, (uint32_t)proto_resp_max(cmd));
}

enum fa_err proto_cdb_read_journal(uint64_t from, unsigned count, uint8_t cdb[PROTO_CDB_LEN])
{
    if (count < 1 || count > PROTO_JOURNAL_BATCH)
        return FA_INVAL;
    cdb_init(cdb, PROTO_READ_JOURNAL, (uint8_t)count, PROTO_JOURNAL_RESP_MAX);
    put_le(cdb + 8, from, 8);
    return FA_OK;
}

/* A period is printable ASCII: "YYYY-MM"; the device checks the rest. */
static bool period_ok(const char *p, size_t n)
{
    size_t i;
    if (n < 1 || n > PROTO_PERIOD_MAX)
        return false;
    for (i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7E)
            return false;
    return true;
}

enum fa_err proto_cdb_period_summary(const char *period, uint8_t cdb[PROTO_CDB_LEN])
{
    size_t n = period ? strnlen(period, PROTO_PERIOD_MAX + 1) : 0;
    if (!period_ok(period, n))
        return FA_INVAL;
    cdb_init(cdb, PROTO_PERIOD_SUMMARY, 0, PROTO_SUMMARY_RESP_MAX);
    memcpy(cdb + 8, period, n);
    return FA_OK;
}

void proto_cdb_set_clock(int64_t now, uint8_t cdb[PROTO_CDB_LEN])
{
    cdb_init(cdb, PROTO_SET_CLOCK, 0, PROTO_EMPTY_RESP_MAX);
    put_le(cdb + 8, (uint64_t)now, 8);
}

enum fa_err proto_cdb_request(uint8_t cmd, uint32_t exchange, size_t req_len, uint8_t cdb[PROTO_CDB_LEN])
{
    if (!proto_cmd_is_request(cmd) || req_len < 1 || req_len > proto_req_max(cmd))
        return FA_INVAL;
    cdb_init(cdb, cmd, 0, (uint32_t)req_len);
    put_le(cdb + 8, exchange, 4);
    return FA_OK;
}

enum fa_err proto_cdb_fetch(uint8_t cmd, uint32_t exchange, uint8_t cdb[PROTO_CDB_LEN])
{
    if (!proto_cmd_is_request(cmd))
        return FA_INVAL;
    cdb_init(cdb, PROTO_FETCH, cmd, (uint32_t)proto_resp_max(cmd));
    put_le(cdb + 8, exchange, 4);
    return FA_OK;
}

static bool zeros(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

enum fa_err proto_cdb_decode(const uint8_t *cdb, size_t len, struct proto_cdb *out)
{
    enum fa_err err = FA_INVAL;
    size_t n;

    memset(out, 0, sizeof *out);
    if (len != PROTO_CDB_LEN || cdb[0] != PROTO_OPCODE || cdb[2] != PROTO_VERSION)
        goto out;
    out->cmd = cdb[1];
    out->length = (uint32_t)get_le(cdb + 4, 4);
    switch (out->cmd) {
    case PROTO_GET_INFO:
    case PROTO_GET_STATUS:
    case PROTO_LIST_ROLLS:
        if (cdb[3] || !zeros(cdb + 8, 8))
            goto out;
        break;
    case PROTO_READ_JOURNAL:
        out->count = cdb[3];
        out->from = get_le(cdb + 8, 8);
        if (out->count < 1 || out->count > PROTO_JOURNAL_BATCH)
            goto out;
        break;
    case PROTO_PERIOD_SUMMARY:
        /* NUL-padded text: at least one NUL, and only NULs after the first */
        n = strnlen((const char *)cdb + 8, 8);
        if (cdb[3] || n > PROTO_PERIOD_MAX || !zeros(cdb + 8 + n, 8 - n) ||
            !period_ok((const char *)cdb + 8, n))
            goto out;
        memcpy(out->period, cdb + 8, n);
        break;
    case PROTO_SET_CLOCK:
        if (cdb[3])
            goto out;
        out->now = (int64_t)get_le(cdb + 8, 8);
        break;
    case PROTO_VERIFY_PIN:
    case PROTO_ISSUE_BEGIN:
    case PROTO_ISSUE_SIGN:
    case PROTO_APPLY_CLEARANCE:
        out->exchange = (uint32_t)get_le(cdb + 8, 4);
        if (cdb[3] || !zeros(cdb + 12, 4) || out->length < 1 || out->length > proto_req_max(out->cmd))
            goto out;
        break;
    case PROTO_FETCH:
        out->fetch_cmd = cdb[3];
        out->exchange = (uint32_t)get_le(cdb + 8, 4);
        if (!proto_cmd_is_request(out->fetch_cmd) || !zeros(cdb + 12, 4))
            goto out;
        break;
    default:
        goto out;
    }
    /* data-in commands need room for at least the response header */
    if (!proto_cmd_is_request(out->cmd) && out->length < PROTO_RESP_HDR)
        goto out;
    err = FA_OK;
out:
    return err;
}

/* ---- status -------------------------------------------------------------- */

static const struct {
    enum fa_err err;
    uint8_t st;
} status_map[] = {
    { FA_OK,                PROTO_ST_OK },
    { FA_INVAL,             PROTO_ST_INVAL },
    { FA_DEV_LOCKED,        PROTO_ST_LOCKED },
    { FA_DEV_LIMIT,         PROTO_ST_LIMIT },
    { FA_DEV_OFFLINE_LIMIT, PROTO_ST_OFFLINE_LIMIT },
    { FA_DEV_ROLL_EMPTY,    PROTO_ST_ROLL_EMPTY },
    { FA_DEV_PIN,           PROTO_ST_PIN },
    { FA_DEV_IO,            PROTO_ST_IO },
    { FA_NOTFOUND,          PROTO_ST_NOTFOUND },
    { FA_PERM,              PROTO_ST_PERM },
    { FA_BUSY,              PROTO_ST_BUSY },
    { FA_PLATFORM_REFUSED,  PROTO_ST_REFUSED },
};

uint8_t proto_status_from_err(enum fa_err err)
{
    size_t i;
    for (i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
        if (status_map[i].err == err)
            return status_map[i].st;
    return PROTO_ST_IO;
}

enum fa_err proto_err_from_status(uint8_t st)
{
    size_t i;
    for (i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
        if (status_map[i].st == st)
            return status_map[i].err;
    return FA_DEV_IO;
}

/* ---- requests ------------------------------------------------------------ */

static enum fa_err wr_finish(const struct wr *w, size_t *len)
{
    *len = w->bad ? 0 : w->len;
    return w->bad ? FA_INVAL : FA_OK;
}

enum fa_err proto_enc_verify_pin(const char *pin, uint8_t *buf, size_t cap, size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    w_str(&w, pin, PROTO_PIN_MAX + 1);
    return wr_finish(&w, len);
}

enum fa_err proto_dec_verify_pin(const uint8_t *buf, size_t len, char pin[PROTO_PIN_MAX + 1])
{
    struct rd r = { buf, len, 0, false };
    r_str(&r, pin, PROTO_PIN_MAX + 1);
    return r_done(&r) ? FA_OK : FA_INVAL;
}

enum fa_err proto_enc_issue_begin(const struct device_issue_req *req, uint8_t *buf, size_t cap,
                                  size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    int i;

    w_str(&w, req->type, FIELD(struct device_roll, type));
    w_i64(&w, req->total_fen);
    w_i64(&w, req->issued_at);
    if (req->nrates < 0 || req->nrates > DEVICE_MAX_RATES)
        w.bad = true;
    w_u8(&w, (unsigned)req->nrates);
    for (i = 0; !w.bad && i < req->nrates; i++) {
        w_i32(&w, req->rates[i].rate_pm);
        w_i64(&w, req->rates[i].amount_fen);
        w_i64(&w, req->rates[i].tax_fen);
    }
    return wr_finish(&w, len);
}

enum fa_err proto_dec_issue_begin(const uint8_t *buf, size_t len, struct device_issue_req *req,
                                  char type[4])
{
    struct rd r = { buf, len, 0, false };
    int i;

    memset(req, 0, sizeof *req);
    r_str(&r, type, 4);
    req->type = type;
    req->total_fen = r_i64(&r);
    req->issued_at = r_i64(&r);
    req->nrates = (int)r_u8(&r);
    if (req->nrates > DEVICE_MAX_RATES) {
        r.bad = true;
        req->nrates = 0;
    }
    for (i = 0; !r.bad && i < req->nrates; i++) {
        req->rates[i].rate_pm = r_i32(&r);
        req->rates[i].amount_fen = r_i64(&r);
        req->rates[i].tax_fen = r_i64(&r);
    }
    return r_done(&r) ? FA_OK : FA_INVAL;
}

enum fa_err proto_enc_issue_sign(const char *code, const char *number, const void *bytes, size_t n,
                                 uint8_t *buf, size_t cap, size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    w_str(&w, code, 16);
    w_str(&w, number, 16);
    w_blob(&w, bytes, n, PROTO_SIGN_DATA_MAX);
    return wr_finish(&w, len);
}

enum fa_err proto_dec_issue_sign(const uint8_t *buf, size_t len, char code[16], char number[16],
                                 const uint8_t **bytes, size_t *n)
{
    struct rd r = { buf, len, 0, false };
    r_str(&r, code, 16);
    r_str(&r, number, 16);
    *bytes = r_blob(&r, PROTO_SIGN_DATA_MAX, n);
    return r_done(&r) ? FA_OK : FA_INVAL;
}

enum fa_err proto_enc_clearance(const char *answer, size_t n, uint8_t *buf, size_t cap, size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    w_blob(&w, answer, n, PROTO_CLEARANCE_MAX);
    return wr_finish(&w, len);
}

enum fa_err proto_dec_clearance(const uint8_t *buf, size_t len, const uint8_t **answer, size_t *n)
{
    struct rd r = { buf, len, 0, false };
    *answer = r_blob(&r, PROTO_CLEARANCE_MAX, n);
    return r_done(&r) ? FA_OK : FA_INVAL;
}

/* ---- responses ----------------------------------------------------------- */

static void resp_begin(struct wr *w, uint8_t cmd, enum fa_err err)
{
    w_u8(w, proto_status_from_err(err));
    w_u8(w, cmd);
    w_u8(w, PROTO_VERSION);
    w_u8(w, 0);
    w_u32(w, 0);                  /* body length, set by resp_end */
}

static enum fa_err resp_end(struct wr *w, size_t *len)
{
    if (!w->bad)
        put_le(w->buf + 4, w->len - PROTO_RESP_HDR, 4);
    return wr_finish(w, len);
}

enum fa_err proto_enc_resp_empty(uint8_t cmd, enum fa_err err, uint8_t *buf, size_t cap, size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    resp_begin(&w, cmd, err);
    return resp_end(&w, len);
}

enum fa_err proto_enc_resp_info(const struct device_info *in, uint8_t *buf, size_t cap, size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    resp_begin(&w, PROTO_GET_INFO, FA_OK);
    w_str(&w, in->model, sizeof in->model);
    w_str(&w, in->machine_number, sizeof in->machine_number);
    w_str(&w, in->seller_tax_id, sizeof in->seller_tax_id);
    w_str(&w, in->seller_name, sizeof in->seller_name);
    w_str(&w, in->seller_address_phone, sizeof in->seller_address_phone);
    w_str(&w, in->seller_bank_account, sizeof in->seller_bank_account);
    w_str(&w, in->taxpayer_kind, sizeof in->taxpayer_kind);
    w_str(&w, in->public_key, sizeof in->public_key);
    return resp_end(&w, len);
}

enum fa_err proto_enc_resp_devstatus(const struct device_status *in, uint8_t *buf, size_t cap,
                                     size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    resp_begin(&w, PROTO_GET_STATUS, FA_OK);
    w_str(&w, in->cleared_through, sizeof in->cleared_through);
    w_i64(&w, in->lock_date);
    w_u8(&w, in->locked ? 1 : 0);
    w_i64(&w, in->limit_fen);
    w_i64(&w, in->offline_hours);
    w_i64(&w, in->offline_amount_fen);
    w_i32(&w, in->pin_retries_left);
    w_i64(&w, in->signed_count);
    w_u8(&w, in->session_open ? 1 : 0);
    return resp_end(&w, len);
}

enum fa_err proto_enc_resp_rolls(const struct device_roll *in, int n, uint8_t *buf, size_t cap,
                                 size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    int i;

    resp_begin(&w, PROTO_LIST_ROLLS, FA_OK);
    if (n < 0 || n > DEVICE_MAX_ROLLS)
        w.bad = true;
    w_u8(&w, (unsigned)n);
    for (i = 0; !w.bad && i < n; i++) {
        w_str(&w, in[i].type, sizeof in[i].type);
        w_str(&w, in[i].code, sizeof in[i].code);
        w_u32(&w, in[i].first);
        w_u32(&w, in[i].last);
        w_u32(&w, in[i].next);
    }
    return resp_end(&w, len);
}

enum fa_err proto_enc_resp_issue_fields(const struct device_issue_fields *in, uint8_t *buf, size_t cap,
                                        size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    resp_begin(&w, PROTO_ISSUE_BEGIN, FA_OK);
    w_str(&w, in->code, sizeof in->code);
    w_str(&w, in->number, sizeof in->number);
    w_str(&w, in->machine_number, sizeof in->machine_number);
    w_str(&w, in->check_code, sizeof in->check_code);
    w_str(&w, in->cipher, sizeof in->cipher);
    return resp_end(&w, len);
}

enum fa_err proto_enc_resp_signature(const char *sig_b64, uint8_t *buf, size_t cap, size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    resp_begin(&w, PROTO_ISSUE_SIGN, FA_OK);
    w_str(&w, sig_b64, CRYPTO_SIG_B64_MAX);
    return resp_end(&w, len);
}

enum fa_err proto_enc_resp_journal(const struct device_journal_entry *in, int n, uint8_t *buf,
                                   size_t cap, size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    int i;

    resp_begin(&w, PROTO_READ_JOURNAL, FA_OK);
    if (n < 0 || n > PROTO_JOURNAL_BATCH)
        w.bad = true;
    w_u8(&w, (unsigned)n);
    for (i = 0; !w.bad && i < n; i++) {
        w_u64(&w, in[i].seq);
        w_str(&w, in[i].code, sizeof in[i].code);
        w_str(&w, in[i].number, sizeof in[i].number);
        w_str(&w, in[i].type, sizeof in[i].type);
        w_i64(&w, in[i].issued_at);
        w_i64(&w, in[i].total_fen);
        w_str(&w, in[i].sm3_hex, sizeof in[i].sm3_hex);
        w_str(&w, in[i].signature, sizeof in[i].signature);
    }
    return resp_end(&w, len);
}

enum fa_err proto_enc_resp_summary(const struct device_summary *in, uint8_t *buf, size_t cap,
                                   size_t *len)
{
    struct wr w = { buf, cap, 0, false };
    int i;

    resp_begin(&w, PROTO_PERIOD_SUMMARY, FA_OK);
    w_str(&w, in->period, sizeof in->period);
    w_str(&w, in->machine_number, sizeof in->machine_number);
    if (in->nlines < 0 || in->nlines > DEVICE_SUMMARY_LINES)
        w.bad = true;
    w_u8(&w, (unsigned)in->nlines);
    for (i = 0; !w.bad && i < in->nlines; i++) {
        const struct device_summary_line *l = &in->lines[i];
        w_str(&w, l->type, sizeof l->type);
        w_u8(&w, l->red ? 1 : 0);
        w_i32(&w, l->rate_pm);
        w_i64(&w, l->count);
        w_i64(&w, l->amount_fen);
        w_i64(&w, l->tax_fen);
    }
    w_str(&w, in->signature, sizeof in->signature);
    return resp_end(&w, len);
}

enum fa_err proto_dec_resp(uint8_t cmd, const uint8_t *buf, size_t len, enum fa_err *answer,
                           const uint8_t **body, size_t *body_len)
{
    struct rd r = { buf, len, 0, false };
    unsigned st, echo, version, reserved;
    uint32_t n;

    *answer = FA_DEV_IO;
    *body = NULL;
    *body_len = 0;
    st = r_u8(&r);
    echo = r_u8(&r);
    version = r_u8(&r);
    reserved = r_u8(&r);
    n = r_u32(&r);
    if (r.bad || echo != cmd || version != PROTO_VERSION || reserved || n != len - r.off ||
        (st != PROTO_ST_OK && n))
        return FA_DEV_IO;
    *answer = proto_err_from_status((uint8_t)st);
    *body = buf + r.off;
    *body_len = n;
    return FA_OK;
}

static enum fa_err rd_finish(const struct rd *r)
{
    return r_done(r) ? FA_OK : FA_DEV_IO;
}

enum fa_err proto_dec_info(const uint8_t *body, size_t len, struct device_info *out)
{
    struct rd r = { body, len, 0, false };
    memset(out, 0, sizeof *out);
    r_str(&r, out->model, sizeof out->model);
    r_str(&r, out->machine_number, sizeof out->machine_number);
    r_str(&r, out->seller_tax_id, sizeof out->seller_tax_id);
    r_str(&r, out->seller_name, sizeof out->seller_name);
    r_str(&r, out->seller_address_phone, sizeof out->seller_address_phone);
    r_str(&r, out->seller_bank_account, sizeof out->seller_bank_account);
    r_str(&r, out->taxpayer_kind, sizeof out->taxpayer_kind);
    r_str(&r, out->public_key, sizeof out->public_key);
    return rd_finish(&r);
}

enum fa_err proto_dec_devstatus(const uint8_t *body, size_t len, struct device_status *out)
{
    struct rd r = { body, len, 0, false };
    memset(out, 0, sizeof *out);
    r_str(&r, out->cleared_through, sizeof out->cleared_through);
    out->lock_date = r_i64(&r);
    out->locked = r_bool(&r);
    out->limit_fen = r_i64(&r);
    out->offline_hours = r_i64(&r);
    out->offline_amount_fen = r_i64(&r);
    out->pin_retries_left = r_i32(&r);
    out->signed_count = r_i64(&r);
    out->session_open = r_bool(&r);
    return rd_finish(&r);
}

enum fa_err proto_dec_rolls(const uint8_t *body, size_t len, struct device_roll out[DEVICE_MAX_ROLLS],
                            int *n)
{
    struct rd r = { body, len, 0, false };
    unsigned count = r_u8(&r), i;

    *n = 0;
    if (count > DEVICE_MAX_ROLLS)
        r.bad = true;
    for (i = 0; !r.bad && i < count; i++) {
        memset(&out[i], 0, sizeof out[i]);
        r_str(&r, out[i].type, sizeof out[i].type);
        r_str(&r, out[i].code, sizeof out[i].code);
        out[i].first = r_u32(&r);
        out[i].last = r_u32(&r);
        out[i].next = r_u32(&r);
    }
    if (!r_done(&r))
        return FA_DEV_IO;
    *n = (int)count;
    return FA_OK;
}

enum fa_err proto_dec_issue_fields(const uint8_t *body, size_t len, struct device_issue_fields *out)
{
    struct rd r = { body, len, 0, false };
    memset(out, 0, sizeof *out);
    r_str(&r, out->code, sizeof out->code);
    r_str(&r, out->number, sizeof out->number);
    r_str(&r, out->machine_number, sizeof out->machine_number);
    r_str(&r, out->check_code, sizeof out->check_code);
    r_str(&r, out->cipher, sizeof out->cipher);
    return rd_finish(&r);
}

enum fa_err proto_dec_signature(const uint8_t *body, size_t len, char sig_b64[CRYPTO_SIG_B64_MAX])
{
    struct rd r = { body, len, 0, false };
    r_str(&r, sig_b64, CRYPTO_SIG_B64_MAX);
    return rd_finish(&r);
}

enum fa_err proto_dec_journal(const uint8_t *body, size_t len,
                              struct device_journal_entry out[PROTO_JOURNAL_BATCH], int *n)
{
    struct rd r = { body, len, 0, false };
    unsigned count = r_u8(&r), i;

    *n = 0;
    if (count > PROTO_JOURNAL_BATCH)
        r.bad = true;
    for (i = 0; !r.bad && i < count; i++) {
        struct device_journal_entry *e = &out[i];
        memset(e, 0, sizeof *e);
        e->seq = r_u64(&r);
        r_str(&r, e->code, sizeof e->code);
        r_str(&r, e->number, sizeof e->number);
        r_str(&r, e->type, sizeof e->type);
        e->issued_at = r_i64(&r);
        e->total_fen = r_i64(&r);
        r_str(&r, e->sm3_hex, sizeof e->sm3_hex);
        r_str(&r, e->signature, sizeof e->signature);
    }
    if (!r_done(&r))
        return FA_DEV_IO;
    *n = (int)count;
    return FA_OK;
}

enum fa_err proto_dec_summary(const uint8_t *body, size_t len, struct device_summary *out)
{
    struct rd r = { body, len, 0, false };
    int i;

    memset(out, 0, sizeof *out);
    r_str(&r, out->period, sizeof out->period);
    r_str(&r, out->machine_number, sizeof out->machine_number);
    out->nlines = (int)r_u8(&r);
    if (out->nlines > DEVICE_SUMMARY_LINES) {
        r.bad = true;
        out->nlines = 0;
    }
    for (i = 0; !r.bad && i < out->nlines; i++) {
        struct device_summary_line *l = &out->lines[i];
        r_str(&r, l->type, sizeof l->type);
        l->red = r_bool(&r);
        l->rate_pm = r_i32(&r);
        l->count = r_i64(&r);
        l->amount_fen = r_i64(&r);
        l->tax_fen = r_i64(&r);
    }
    r_str(&r, out->signature, sizeof out->signature);
    if (!r_done(&r)) {
        out->nlines = 0;
        return FA_DEV_IO;
    }
    return FA_OK;
}
