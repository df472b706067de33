/*
 * test_bot.c — Bulk-Only Transport, the vendor command set and the remote
 * device, without hardware: wrapper vectors, codec round trips and refusals,
 * a fuzz loop over every decoder, then the simulated device served through
 * the in-process loopback and driven by the remote device — the whole
 * command set compared with calling the simulator directly, and every fault
 * the loopback can inject (corrupted and stalled CSWs, short and stalled
 * data, timeouts, invalid CBWs, unplugging).  Last, the libusb transport's
 * clean failure on a machine without USB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "device/bot.h"
#include "device/crypto.h"
#include "device/loopback.h"
#include "device/proto.h"
#include "device/remote.h"
#include "device/sim.h"
#include "device/usb.h"
#include "engine/clock.h"
#include "tests/unit/unit.h"

static char *hex(const uint8_t *p, size_t n, char *out)
{
    size_t i;
    for (i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
    out[2 * n] = 0;
    return out;
}

/* ---- wrappers ------------------------------------------------------------ */

static void test_wrappers(void)
{
    struct bot_cbw cbw = { .tag = 0x12345678, .data_len = 1024, .flags = BOT_CBW_FLAG_IN, .cb_len = 16,
                           .cb = { 0xFA, 0x01, 0x01, 0x00, 0x00, 0x04 } }, back;
    struct bot_csw csw = { .tag = 0x12345678, .residue = 0x100, .status = BOT_CSW_FAILED }, cback;
    uint8_t b[BOT_CBW_LEN], c[BOT_CSW_LEN], x[BOT_CBW_LEN + 1];
    char h[2 * BOT_CBW_LEN + 1];

    bot_cbw_encode(&cbw, b);
    CHECK_STR(hex(b, sizeof b, h), "55534243" "78563412" "00040000" "80" "00" "10"
              "fa010100000400000000000000000000");
    CHECK(bot_cbw_decode(b, sizeof b, &back) == BOT_WRAP_OK && back.tag == cbw.tag &&
          back.data_len == 1024 && back.flags == 0x80 && back.cb_len == 16 && !memcmp(back.cb, cbw.cb, 16),
          "CBW decodes to what was encoded");
    CHECK_INT(bot_cbw_decode(b, 30, &back), BOT_WRAP_SIZE);
    memcpy(x, b, sizeof b);
    x[31] = 0;
    CHECK_INT(bot_cbw_decode(x, 32, &back), BOT_WRAP_SIZE);
    x[0] = 'u';
    CHECK_INT(bot_cbw_decode(x, BOT_CBW_LEN, &back), BOT_WRAP_SIGNATURE);
    memcpy(x, b, sizeof b);
    x[12] = 0x81;
    CHECK(bot_cbw_decode(x, BOT_CBW_LEN, &back) == BOT_WRAP_FIELDS, "CBW with reserved flag bits refused");
    memcpy(x, b, sizeof b);
    x[13] = 0x10;
    CHECK(bot_cbw_decode(x, BOT_CBW_LEN, &back) == BOT_WRAP_FIELDS, "CBW with LUN 16 refused");
    x[13] = 0;
    x[14] = 0;
    CHECK(bot_cbw_decode(x, BOT_CBW_LEN, &back) == BOT_WRAP_FIELDS, "CBW with a 0-byte CB refused");
    x[14] = 17;
    CHECK(bot_cbw_decode(x, BOT_CBW_LEN, &back) == BOT_WRAP_FIELDS, "CBW with a 17-byte CB refused");

    bot_csw_encode(&csw, c);
    CHECK_STR(hex(c, sizeof c, h), "55534253" "78563412" "00010000" "01");
    CHECK(bot_csw_decode(c, sizeof c, 0x12345678, 0x100, &cback) == BOT_WRAP_OK && cback.residue == 0x100 &&
          cback.status == 1, "CSW decodes, residue equal to the transfer is fine");
    CHECK_INT(bot_csw_decode(c, 12, 0x12345678, 0x100, &cback), BOT_WRAP_SIZE);
    CHECK_INT(bot_csw_decode(c, 14, 0x12345678, 0x100, &cback), BOT_WRAP_SIZE);
    CHECK_INT(bot_csw_decode(c, sizeof c, 0x12345679, 0x100, &cback), BOT_WRAP_TAG);
    CHECK_INT(bot_csw_decode(c, sizeof c, 0x12345678, 0xFF, &cback), BOT_WRAP_RESIDUE);
    c[12] = 3;
    CHECK_INT(bot_csw_decode(c, sizeof c, 0x12345678, 0x100, &cback), BOT_WRAP_STATUS);
    c[12] = 2;
    CHECK(bot_csw_decode(c, sizeof c, 0x12345678, 0x100, &cback) == BOT_WRAP_OK &&
          cback.status == BOT_CSW_PHASE_ERROR, "a phase-error CSW is valid (the host acts on it)");
    c[0] = 'S';
    CHECK_INT(bot_csw_decode(c, sizeof c, 0x12345678, 0x100, &cback), BOT_WRAP_SIGNATURE);
}

/* ---- codecs -------------------------------------------------------------- */

static void fill_info(struct device_info *i)
{
    memset(i, 0, sizeof *i);
    strcpy(i->model, "test device");
    strcpy(i->machine_number, "499099000001");
    strcpy(i->seller_tax_id, "9131011259474644XJ");
    strcpy(i->seller_name, "上海发票示范科技有限公司");
    strcpy(i->seller_address_phone, "上海市徐汇区示范路88号 021-64000000");
    strcpy(i->seller_bank_account, "中国银行 4370000000001");
    strcpy(i->taxpayer_kind, "一般纳税人");
    memset(i->public_key, 'K', sizeof i->public_key - 1);   /* the longest a field may be */
}

static void fill_summary(struct device_summary *s, int nlines)
{
    int i;
    memset(s, 0, sizeof *s);
    strcpy(s->period, "2024-11");
    strcpy(s->machine_number, "499099000001");
    s->nlines = nlines;
    for (i = 0; i < nlines; i++) {
        struct device_summary_line *l = &s->lines[i];
        strcpy(l->type, i % 2 ? "028" : "026");
        l->red = i % 3 == 0;
        l->rate_pm = 130 - i;
        l->count = i + 1;
        l->amount_fen = (l->red ? -1 : 1) * (int64_t)(i + 1) * 1000000007LL;
        l->tax_fen = INT64_MIN + i;
    }
    memset(s->signature, 'S', sizeof s->signature - 1);
}

static void fill_journal(struct device_journal_entry *e, int n)
{
    int i;
    memset(e, 0, sizeof *e * (size_t)n);
    for (i = 0; i < n; i++) {
        e[i].seq = (uint64_t)i + 1;
        strcpy(e[i].code, "031001900111");
        snprintf(e[i].number, sizeof e[i].number, "%08d", i + 1);
        strcpy(e[i].type, "026");
        e[i].issued_at = 1732240985 + i;
        e[i].total_fen = -11300 * i;
        memset(e[i].sm3_hex, 'a', 64);
        memset(e[i].signature, 'Z', sizeof e[i].signature - 1);
    }
}

static void test_cdbs(void)
{
    uint8_t cdb[PROTO_CDB_LEN];
    struct proto_cdb c;
    char h[2 * PROTO_CDB_LEN + 1];

    proto_cdb_query(PROTO_GET_INFO, cdb);
    CHECK_STR(hex(cdb, sizeof cdb, h), "fa010100" "00040000" "0000000000000000");
    CHECK(proto_cdb_decode(cdb, sizeof cdb, &c) == FA_OK && c.cmd == PROTO_GET_INFO &&
          c.length == PROTO_INFO_RESP_MAX, "GET_INFO CDB decodes");
    CHECK(proto_cdb_decode(cdb, 12, &c) == FA_INVAL, "a 12-byte CDB is refused");
    cdb[0] = 0x12;
    CHECK(proto_cdb_decode(cdb, sizeof cdb, &c) == FA_INVAL, "INQUIRY is not ours");
    cdb[0] = PROTO_OPCODE;
    cdb[2] = 2;
    CHECK(proto_cdb_decode(cdb, sizeof cdb, &c) == FA_INVAL, "protocol version 2 is refused");
    cdb[2] = 1;
    cdb[15] = 1;
    CHECK(proto_cdb_decode(cdb, sizeof cdb, &c) == FA_INVAL, "GET_INFO with an argument is refused");
    cdb[15] = 0;
    cdb[1] = 0x55;
    CHECK(proto_cdb_decode(cdb, sizeof cdb, &c) == FA_INVAL, "unknown command 0x55 is refused");
    proto_cdb_query(PROTO_GET_STATUS, cdb);
    cdb[4] = 7;
    cdb[5] = 0;
    CHECK(proto_cdb_decode(cdb, sizeof cdb, &c) == FA_INVAL, "a data-in shorter than the header is refused");

    CHECK(proto_cdb_read_journal(0x0102030405060708ULL, 16, cdb) == FA_OK &&
          proto_cdb_decode(cdb, sizeof cdb, &c) == FA_OK && c.from == 0x0102030405060708ULL && c.count == 16,
          "READ_JOURNAL carries from and count");
    CHECK_STR(hex(cdb, sizeof cdb, h), "fa070110" "00100000" "0807060504030201");
    CHECK(proto_cdb_read_journal(1, 0, cdb) == FA_INVAL && proto_cdb_read_journal(1, 17, cdb) == FA_INVAL,
          "READ_JOURNAL count 0 and 17 are refused");
    CHECK(proto_cdb_period_summary("2024-11", cdb) == FA_OK &&
          proto_cdb_decode(cdb, sizeof cdb, &c) == FA_OK &&
          !strcmp(c.period, "2024-11"), "PERIOD_SUMMARY carries the period");
    cdb[15] = 'x';
    CHECK(proto_cdb_decode(cdb, sizeof cdb, &c) == FA_INVAL, "a period without its NUL is refused");
    cdb[14] = 0;
    CHECK(proto_cdb_decode(cdb, sizeof cdb, &c) == FA_INVAL, "a byte after the period's NUL is refused");
    CHECK(proto_cdb_period_summary("2024-110", cdb) == FA_INVAL &&
          proto_cdb_period_summary("", cdb) == FA_INVAL &&
          proto_cdb_period_summary("2024 11", cdb) == FA_INVAL &&
          proto_cdb_period_summary(NULL, cdb) == FA_INVAL,
          "periods too long, empty, with a space or NULL are refused");
    proto_cdb_set_clock(-5, cdb);
    CHECK(proto_cdb_decode(cdb, sizeof cdb, &c) == FA_OK && c.now == -5, "SET_CLOCK carries a signed time");
    CHECK(proto_cdb_request(PROTO_VERIFY_PIN, 77, 10, cdb) == FA_OK &&
          proto_cdb_decode(cdb, sizeof cdb, &c) == FA_OK && c.exchange == 77 && c.length == 10,
          "a request carries its exchange id and length");
    CHECK(proto_cdb_request(PROTO_GET_INFO, 1, 10, cdb) == FA_INVAL &&
          proto_cdb_request(PROTO_VERIFY_PIN, 1, 0, cdb) == FA_INVAL &&
          proto_cdb_request(PROTO_VERIFY_PIN, 1, PROTO_PIN_REQ_MAX + 1, cdb) == FA_INVAL,
          "requests: not a request command, empty, too long are refused");
    CHECK(proto_cdb_fetch(PROTO_ISSUE_SIGN, 5, cdb) == FA_OK &&
          proto_cdb_decode(cdb, sizeof cdb, &c) == FA_OK &&
          c.cmd == PROTO_FETCH && c.fetch_cmd == PROTO_ISSUE_SIGN && c.exchange == 5 &&
          c.length == PROTO_SIGN_RESP_MAX, "FETCH names the request and its exchange");
    CHECK(proto_cdb_fetch(PROTO_GET_INFO, 5, cdb) == FA_INVAL, "FETCH of a query is refused");
}

static void test_status_map(void)
{
    static const enum fa_err device_errs[] = {
        FA_OK, FA_INVAL, FA_DEV_LOCKED, FA_DEV_LIMIT, FA_DEV_OFFLINE_LIMIT, FA_DEV_ROLL_EMPTY, FA_DEV_PIN,
        FA_DEV_IO, FA_NOTFOUND, FA_PERM, FA_BUSY, FA_PLATFORM_REFUSED,
    };
    uint8_t seen[256] = { 0 };
    bool ok = true;
    size_t i;
    int e;

    for (i = 0; i < sizeof device_errs / sizeof device_errs[0]; i++) {
        uint8_t st = proto_status_from_err(device_errs[i]);
        ok = ok && proto_err_from_status(st) == device_errs[i] && !seen[st];
        seen[st] = 1;
    }
    CHECK(ok, "every device answer has its own status code and maps back 1:1");
    CHECK_INT(proto_status_from_err(FA_OK), 0);
    for (e = 0, ok = true; e < FA_ERR_COUNT; e++) {
        enum fa_err back = proto_err_from_status(proto_status_from_err((enum fa_err)e));
        bool listed = false;
        for (i = 0; i < sizeof device_errs / sizeof device_errs[0]; i++)
            listed = listed || device_errs[i] == (enum fa_err)e;
        ok = ok && (listed ? back == (enum fa_err)e : back == FA_DEV_IO);
    }
    CHECK(ok, "other errors travel as a device failure");
    CHECK_INT(proto_err_from_status(0xEE), FA_DEV_IO);
}

static void test_requests(void)
{
    uint8_t buf[PROTO_BEGIN_REQ_MAX], big[PROTO_SIGN_REQ_OVERHEAD + 100];
    char pin[PROTO_PIN_MAX + 1], longpin[PROTO_PIN_MAX + 2], type[4], code[16], number[16];
    struct device_issue_req req = { .type = "026", .total_fen = -11300, .issued_at = 1732240985, .nrates = 2,
                                    .rates = { { 130, 10000, 1300 }, { 0, 5, 0 } } }, back;
    const uint8_t *bytes;
    size_t len, n;
    int i;

    CHECK(proto_enc_verify_pin("12345678", buf, sizeof buf, &len) == FA_OK && len == 10 &&
          proto_dec_verify_pin(buf, len, pin) == FA_OK && !strcmp(pin, "12345678"), "verify_pin round trip");
    CHECK(proto_dec_verify_pin(buf, len - 1, pin) == FA_INVAL, "a truncated PIN is refused");
    memset(longpin, '1', sizeof longpin - 1);
    longpin[sizeof longpin - 1] = 0;
    CHECK(proto_enc_verify_pin(longpin, buf, sizeof buf, &len) == FA_INVAL, "a 64-byte PIN is refused");
    longpin[PROTO_PIN_MAX] = 0;
    CHECK(proto_enc_verify_pin(longpin, buf, sizeof buf, &len) == FA_OK && len == PROTO_PIN_REQ_MAX,
          "a 63-byte PIN fills the request");

    CHECK(proto_enc_issue_begin(&req, buf, sizeof buf, &len) == FA_OK &&
          proto_dec_issue_begin(buf, len, &back, type) == FA_OK && !strcmp(back.type, "026") &&
          back.total_fen == -11300 && back.issued_at == 1732240985 && back.nrates == 2 &&
          back.rates[0].rate_pm == 130 && back.rates[0].tax_fen == 1300 && back.rates[1].amount_fen == 5,
          "issue_begin round trip");
    buf[2 + 3 + 16] = DEVICE_MAX_RATES + 1;
    CHECK(proto_dec_issue_begin(buf, len, &back, type) == FA_INVAL, "17 rates are refused");
    req.nrates = DEVICE_MAX_RATES;
    for (i = 0; i < DEVICE_MAX_RATES; i++)
        req.rates[i] = (struct device_rate_sum){ i, INT64_MAX, INT64_MIN };
    CHECK(proto_enc_issue_begin(&req, buf, sizeof buf, &len) == FA_OK &&
          proto_dec_issue_begin(buf, len, &back, type) == FA_OK && back.rates[15].tax_fen == INT64_MIN,
          "16 rates of extreme amounts fit");
    req.nrates = DEVICE_MAX_RATES + 1;
    CHECK(proto_enc_issue_begin(&req, buf, sizeof buf, &len) == FA_INVAL, "encoding 17 rates is refused");
    req.nrates = 0;
    req.type = "0260";
    CHECK(proto_enc_issue_begin(&req, buf, sizeof buf, &len) == FA_INVAL, "a 4-character type is refused");

    CHECK(proto_enc_issue_sign("031001900111", "00000001", "abc", 3, big, sizeof big, &len) == FA_OK &&
          proto_dec_issue_sign(big, len, code, number, &bytes, &n) == FA_OK &&
          !strcmp(code, "031001900111") &&
          !strcmp(number, "00000001") && n == 3 && !memcmp(bytes, "abc", 3), "issue_sign round trip");
    big[len] = 0;
    CHECK(proto_dec_issue_sign(big, len + 1, code, number, &bytes, &n) == FA_INVAL,
          "trailing bytes after the signed bytes are refused");
    big[2 + 12 + 2 + 8] = 0xFF;   /* blob length above PROTO_SIGN_DATA_MAX */
    big[2 + 12 + 2 + 8 + 3] = 0xFF;
    CHECK(proto_dec_issue_sign(big, len, code, number, &bytes, &n) == FA_INVAL,
          "a huge blob length is refused");
    CHECK(proto_enc_clearance("{\"ok\":true}", 11, big, sizeof big, &len) == FA_OK &&
          proto_dec_clearance(big, len, &bytes, &n) == FA_OK && n == 11 &&
          !memcmp(bytes, "{\"ok\":true}", 11),
          "apply_clearance round trip");
    CHECK(proto_enc_clearance("x", PROTO_CLEARANCE_MAX + 1, big, sizeof big, &len) == FA_INVAL,
          "a clearance answer above 64 KiB is refused");
}

static void test_responses(void)
{
    uint8_t buf[PROTO_RESP_MAX];
    struct device_info info, ib;
    struct device_status st = { "2024-10", 1734278399, true, 1000000000, 72, 1000000000, -1, 42 }, sb;
    struct device_roll rolls[DEVICE_MAX_ROLLS] = { { "026", "031001900111", 1, 100000, 7 },
                                                   { "028", "031001900211", 1, 4294967295u, 1 } }, rb[8];
    struct device_issue_fields f = { "031001900111", "00000007", "499099000001", "12345678901234567890", "" };
    struct device_issue_fields fb;
    struct device_journal_entry je[PROTO_JOURNAL_BATCH], jb[PROTO_JOURNAL_BATCH];
    struct device_summary *sum = malloc(sizeof *sum), *sumb = malloc(sizeof *sumb);
    char sig[CRYPTO_SIG_B64_MAX];
    const uint8_t *body;
    size_t len, blen;
    enum fa_err answer;
    int n, i;
    bool same;

    fill_info(&info);
    CHECK(proto_enc_resp_info(&info, buf, PROTO_INFO_RESP_MAX, &len) == FA_OK &&
          proto_dec_resp(PROTO_GET_INFO, buf, len, &answer, &body, &blen) == FA_OK && answer == FA_OK &&
          proto_dec_info(body, blen, &ib) == FA_OK && !strcmp(ib.seller_name, info.seller_name) &&
          !strcmp(ib.public_key, info.public_key) && !strcmp(ib.taxpayer_kind, "一般纳税人"),
          "info round trip (UTF-8, a full-length key)");
    CHECK(proto_dec_resp(PROTO_GET_STATUS, buf, len, &answer, &body, &blen) == FA_DEV_IO,
          "a response to another command is refused");
    CHECK(proto_dec_resp(PROTO_GET_INFO, buf, len - 1, &answer, &body, &blen) == FA_DEV_IO,
          "a response shorter than its body length is refused");
    CHECK(proto_dec_resp(PROTO_GET_INFO, buf, len, &answer, &body, &blen) == FA_OK &&
          proto_dec_info(body, blen - 1, &ib) == FA_DEV_IO, "a truncated info body is refused");
    memset(info.model, 'x', sizeof info.model);
    CHECK(proto_enc_resp_info(&info, buf, sizeof buf, &len) == FA_INVAL,
          "an unterminated field is not encoded");
    fill_info(&info);
    strcpy(info.model, "bad \xC0\x80 UTF-8");
    CHECK(proto_enc_resp_info(&info, buf, sizeof buf, &len) == FA_INVAL, "invalid UTF-8 is not encoded");

    CHECK(proto_enc_resp_devstatus(&st, buf, PROTO_STATUS_RESP_MAX, &len) == FA_OK &&
          proto_dec_resp(PROTO_GET_STATUS, buf, len, &answer, &body, &blen) == FA_OK &&
          proto_dec_devstatus(body, blen, &sb) == FA_OK && !strcmp(sb.cleared_through, "2024-10") &&
          sb.lock_date == 1734278399 && sb.locked && sb.pin_retries_left == -1 && sb.signed_count == 42,
          "status round trip");
    buf[PROTO_RESP_HDR + 2 + 7 + 8] = 2;
    CHECK(proto_dec_devstatus(buf + PROTO_RESP_HDR, len - PROTO_RESP_HDR, &sb) == FA_DEV_IO,
          "a boolean of 2 is refused");

    CHECK(proto_enc_resp_rolls(rolls, 2, buf, PROTO_ROLLS_RESP_MAX, &len) == FA_OK &&
          proto_dec_resp(PROTO_LIST_ROLLS, buf, len, &answer, &body, &blen) == FA_OK &&
          proto_dec_rolls(body, blen, rb, &n) == FA_OK && n == 2 && rb[1].last == 4294967295u &&
          rb[0].next == 7 && !strcmp(rb[1].code, "031001900211"), "rolls round trip");
    for (i = 0; i < DEVICE_MAX_ROLLS; i++)
        rolls[i] = (struct device_roll){ "026", "031001900111", 1, 2, 3 };
    CHECK(proto_enc_resp_rolls(rolls, DEVICE_MAX_ROLLS, buf, PROTO_ROLLS_RESP_MAX, &len) == FA_OK,
          "8 rolls fit in the rolls response");
    buf[PROTO_RESP_HDR] = DEVICE_MAX_ROLLS + 1;
    CHECK(proto_dec_rolls(buf + PROTO_RESP_HDR, len - PROTO_RESP_HDR, rb, &n) == FA_DEV_IO && n == 0,
          "9 rolls are refused");

    memset(f.cipher, '<', 108);
    CHECK(proto_enc_resp_issue_fields(&f, buf, PROTO_BEGIN_RESP_MAX, &len) == FA_OK &&
          proto_dec_resp(PROTO_ISSUE_BEGIN, buf, len, &answer, &body, &blen) == FA_OK &&
          proto_dec_issue_fields(body, blen, &fb) == FA_OK && !strcmp(fb.cipher, f.cipher) &&
          !strcmp(fb.check_code, f.check_code), "issue fields round trip");
    memset(sig, 'A', sizeof sig - 1);
    sig[sizeof sig - 1] = 0;
    CHECK(proto_enc_resp_signature(sig, buf, PROTO_SIGN_RESP_MAX, &len) == FA_OK &&
          proto_dec_resp(PROTO_ISSUE_SIGN, buf, len, &answer, &body, &blen) == FA_OK &&
          proto_dec_signature(body, blen, sig) == FA_OK && strlen(sig) == CRYPTO_SIG_B64_MAX - 1,
          "a longest signature round trip");

    fill_journal(je, PROTO_JOURNAL_BATCH);
    CHECK(proto_enc_resp_journal(je, PROTO_JOURNAL_BATCH, buf, PROTO_JOURNAL_RESP_MAX, &len) == FA_OK &&
          proto_dec_resp(PROTO_READ_JOURNAL, buf, len, &answer, &body, &blen) == FA_OK &&
          proto_dec_journal(body, blen, jb, &n) == FA_OK && n == PROTO_JOURNAL_BATCH &&
          jb[15].seq == 16 && jb[15].total_fen == -11300 * 15 && !strcmp(jb[15].signature, je[15].signature),
          "16 journal entries of the longest fields round trip in a journal response");
    CHECK(proto_enc_resp_journal(je, PROTO_JOURNAL_BATCH + 1, buf, sizeof buf, &len) == FA_INVAL,
          "17 journal entries are not encoded");

    fill_summary(sum, DEVICE_SUMMARY_LINES);
    CHECK(proto_enc_resp_summary(sum, buf, PROTO_SUMMARY_RESP_MAX, &len) == FA_OK &&
          proto_dec_resp(PROTO_PERIOD_SUMMARY, buf, len, &answer, &body, &blen) == FA_OK &&
          proto_dec_summary(body, blen, sumb) == FA_OK, "64 summary lines round trip");
    for (i = 0, same = sumb->nlines == sum->nlines; same && i < sum->nlines; i++)
        same = !strcmp(sumb->lines[i].type, sum->lines[i].type) && sumb->lines[i].red == sum->lines[i].red &&
               sumb->lines[i].rate_pm == sum->lines[i].rate_pm &&
               sumb->lines[i].count == sum->lines[i].count &&
               sumb->lines[i].amount_fen == sum->lines[i].amount_fen &&
               sumb->lines[i].tax_fen == sum->lines[i].tax_fen;
    CHECK(same && !strcmp(sumb->signature, sum->signature), "summary lines and signature are equal");
    sum->nlines = DEVICE_SUMMARY_LINES + 1;
    CHECK(proto_enc_resp_summary(sum, buf, sizeof buf, &len) == FA_INVAL, "65 summary lines are not encoded");

    CHECK(proto_enc_resp_empty(PROTO_ISSUE_BEGIN, FA_DEV_LOCKED, buf, sizeof buf, &len) == FA_OK &&
          len == 8 &&
          proto_dec_resp(PROTO_ISSUE_BEGIN, buf, len, &answer, &body, &blen) == FA_OK &&
          answer == FA_DEV_LOCKED && blen == 0, "a refusal is a bare header");
    buf[7] = 1;
    CHECK(proto_dec_resp(PROTO_ISSUE_BEGIN, buf, len, &answer, &body, &blen) == FA_DEV_IO,
          "a refusal with a body length is refused");
    proto_enc_resp_empty(PROTO_SET_CLOCK, FA_OK, buf, sizeof buf, &len);
    buf[2] = 9;
    CHECK(proto_dec_resp(PROTO_SET_CLOCK, buf, len, &answer, &body, &blen) == FA_DEV_IO,
          "a response of protocol version 9 is refused");
    CHECK(proto_dec_resp(PROTO_SET_CLOCK, buf, 7, &answer, &body, &blen) == FA_DEV_IO,
          "a 7-byte response is refused");
    CHECK(proto_enc_resp_empty(PROTO_SET_CLOCK, FA_OK, buf, 7, &len) == FA_INVAL,
          "a response larger than its buffer is not encoded");

    /* strings: overlong NUL, surrogate, embedded NUL, above U+10FFFF, truncated sequence */
    {
        static const char *bad[] = { "\xC0\x80", "\xED\xA0\x80", "a\0b", "\xF4\x90\x80\x80", "\xE4\xB8" };
        static const size_t badlen[] = { 2, 3, 3, 4, 2 };
        uint8_t s[16];
        for (i = 0, same = true; i < 5; i++) {
            s[0] = (uint8_t)badlen[i];
            s[1] = 0;
            memcpy(s + 2, bad[i], badlen[i]);
            same = same && proto_dec_signature(s, 2 + badlen[i], sig) == FA_DEV_IO;
        }
        CHECK(same, "malformed UTF-8 and NUL in strings are refused");
        memcpy(s, "\x06\x00\xE5\x8F\x91\xE7\xA5\xA8", 8);
        CHECK(proto_dec_signature(s, 8, sig) == FA_OK && !strcmp(sig, "发票"), "UTF-8 of 发票 is taken");
    }
    free(sum);
    free(sumb);
}

/* Every decoder on random and mutated bytes: no crash, no overrun (ASan),
 * and what a decoder accepts stays within its bounds. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_fuzz(void)
{
    enum { SEEDS = 8, ROUNDS = 30000 };
    uint8_t seeds[SEEDS][PROTO_RESP_MAX], buf[PROTO_RESP_MAX + 16];
    size_t seedlen[SEEDS], len, blen, n;
    struct device_info info;
    struct device_status st = { "2024-10", 1, false, 2, 3, 4, 5, 6 };
    struct device_roll rolls[DEVICE_MAX_ROLLS] = { { "026", "031001900111", 1, 100000, 7 } };
    struct device_journal_entry *je = calloc(PROTO_JOURNAL_BATCH, sizeof *je);
    struct device_summary *sum = malloc(sizeof *sum);
    struct device_issue_req req = { .type = "026", .nrates = 1 };
    struct device_issue_fields f = { "1", "2", "3", "4", "5" };
    struct proto_cdb cdb;
    const uint8_t *body, *bytes;
    char pin[PROTO_PIN_MAX + 1], type[4], code[16], number[16], sig[CRYPTO_SIG_B64_MAX];
    enum fa_err answer;
    bool bounded = true;
    int i, k, count = 0, accepted = 0;

    fill_info(&info);
    fill_journal(je, 3);
    fill_summary(sum, 5);
    proto_enc_resp_info(&info, seeds[0], PROTO_RESP_MAX, &seedlen[0]);
    proto_enc_resp_devstatus(&st, seeds[1], PROTO_RESP_MAX, &seedlen[1]);
    proto_enc_resp_rolls(rolls, 1, seeds[2], PROTO_RESP_MAX, &seedlen[2]);
    proto_enc_resp_journal(je, 3, seeds[3], PROTO_RESP_MAX, &seedlen[3]);
    proto_enc_resp_summary(sum, seeds[4], PROTO_RESP_MAX, &seedlen[4]);
    proto_enc_resp_issue_fields(&f, seeds[5], PROTO_RESP_MAX, &seedlen[5]);
    proto_enc_issue_begin(&req, seeds[6], PROTO_RESP_MAX, &seedlen[6]);
    proto_enc_issue_sign("031001900111", "00000001", "abc", 3, seeds[7], PROTO_RESP_MAX, &seedlen[7]);
    for (i = 0; i < ROUNDS; i++) {
        int s = (int)(rng() % (SEEDS + 1));
        if (s == SEEDS) {
            len = rng() % 64;
            for (k = 0; k < (int)len; k++)
                buf[k] = (uint8_t)rng();
        } else {
            len = seedlen[s];
            memcpy(buf, seeds[s], len);
            for (k = (int)(rng() % 4); k >= 0; k--)
                buf[rng() % len] = (uint8_t)rng();
            if (rng() % 4 == 0)
                len = rng() % (len + 1);
        }
        /* both with and without the response header, as the host would see them */
        for (k = 0; k < 2; k++) {
            const uint8_t *p = k ? buf + (len >= PROTO_RESP_HDR ? PROTO_RESP_HDR : len) : buf;
            size_t pl = k ? len - (size_t)(p - buf) : len;
            if (proto_dec_info(p, pl, &info) == FA_OK) {
                accepted++;
                bounded = bounded && strlen(info.public_key) < sizeof info.public_key;
            }
            proto_dec_devstatus(p, pl, &st);
            if (proto_dec_rolls(p, pl, rolls, &count) == FA_OK)
                bounded = bounded && count <= DEVICE_MAX_ROLLS;
            if (proto_dec_journal(p, pl, je, &count) == FA_OK)
                bounded = bounded && count <= PROTO_JOURNAL_BATCH;
            if (proto_dec_summary(p, pl, sum) == FA_OK)
                bounded = bounded && sum->nlines <= DEVICE_SUMMARY_LINES;
            proto_dec_issue_fields(p, pl, &f);
            proto_dec_signature(p, pl, sig);
            proto_dec_verify_pin(p, pl, pin);
            if (proto_dec_issue_begin(p, pl, &req, type) == FA_OK)
                bounded = bounded && req.nrates <= DEVICE_MAX_RATES && strlen(req.type) < 4;
            if (proto_dec_issue_sign(p, pl, code, number, &bytes, &n) == FA_OK)
                bounded = bounded && bytes + n <= p + pl;
            if (proto_dec_clearance(p, pl, &bytes, &n) == FA_OK)
                bounded = bounded && bytes + n <= p + pl;
            if (proto_dec_resp((uint8_t)(rng() % 12), p, pl, &answer, &body, &blen) == FA_OK)
                bounded = bounded && body + blen == p + pl;
            if (pl >= PROTO_CDB_LEN && proto_cdb_decode(p, PROTO_CDB_LEN, &cdb) == FA_OK)
                bounded = bounded && cdb.count <= PROTO_JOURNAL_BATCH &&
                          strlen(cdb.period) <= PROTO_PERIOD_MAX;
        }
    }
    CHECK(bounded, "%d random and mutated inputs through every decoder stay in bounds (%d info accepted)",
          ROUNDS, accepted);
    free(je);
    free(sum);
}

/* ---- the simulated device through BOT ------------------------------------ */

static EVP_PKEY *public_key(const char *b64)
{
    char pem[1024];
    size_t n = strlen(b64), off = 0, used;

    used = (size_t)snprintf(pem, sizeof pem, "-----BEGIN PUBLIC KEY-----\n");
    while (off < n && used + 70 < sizeof pem) {
        size_t k = n - off < 64 ? n - off : 64;
        memcpy(pem + used, b64 + off, k);
        used += k;
        pem[used++] = '\n';
        off += k;
    }
    snprintf(pem + used, sizeof pem - used, "-----END PUBLIC KEY-----\n");
    return crypto_key_from_pem(pem, 0);
}

static bool info_equal(const struct device_info *a, const struct device_info *b)
{
    return !strcmp(a->model, b->model) && !strcmp(a->machine_number, b->machine_number) &&
           !strcmp(a->seller_tax_id, b->seller_tax_id) && !strcmp(a->seller_name, b->seller_name) &&
           !strcmp(a->seller_address_phone, b->seller_address_phone) &&
           !strcmp(a->seller_bank_account, b->seller_bank_account) &&
           !strcmp(a->taxpayer_kind, b->taxpayer_kind) && !strcmp(a->public_key, b->public_key);
}

static bool status_equal(const struct device_status *a, const struct device_status *b)
{
    return !strcmp(a->cleared_through, b->cleared_through) && a->lock_date == b->lock_date &&
           a->locked == b->locked && a->limit_fen == b->limit_fen && a->offline_hours == b->offline_hours &&
           a->offline_amount_fen == b->offline_amount_fen && a->pin_retries_left == b->pin_retries_left &&
           a->signed_count == b->signed_count;
}

static bool journal_equal(const struct device_journal_entry *a, const struct device_journal_entry *b, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (a[i].seq != b[i].seq || strcmp(a[i].code, b[i].code) || strcmp(a[i].number, b[i].number) ||
            strcmp(a[i].type, b[i].type) || a[i].issued_at != b[i].issued_at ||
            a[i].total_fen != b[i].total_fen || strcmp(a[i].sm3_hex, b[i].sm3_hex) ||
            strcmp(a[i].signature, b[i].signature))
            return false;
    return true;
}

/* Issue one invoice through dev; FA_OK with its signature verified. */
static enum fa_err issue_one(struct device *dev, EVP_PKEY *key, const void *bytes, size_t len,
                             struct device_issue_fields *f)
{
    struct device_issue_req req = { .type = "026", .total_fen = 11300, .issued_at = clock_now(), .nrates = 1,
                                    .rates = { { 130, 10000, 1300 } } };
    char sig[CRYPTO_SIG_B64_MAX];
    enum fa_err err;

    err = device_issue_begin(dev, &req, f);
    if (err == FA_OK)
        err = device_issue_sign(dev, f->code, f->number, bytes, len, sig);
    if (err == FA_OK && crypto_sm2_verify_b64(key, bytes, len, sig))
        err = FA_DEV_IO;
    return err;
}

static void test_commands(struct device *sim, struct device *dev)
{
    struct device_info di, ri;
    struct device_status ds, rs;
    struct device_roll drolls[DEVICE_MAX_ROLLS], rrolls[DEVICE_MAX_ROLLS];
    struct device_issue_fields f;
    struct device_issue_req req = { .type = "026", .total_fen = 11300, .issued_at = clock_now() };
    struct device_journal_entry *dj = calloc(64, sizeof *dj), *rj = calloc(64, sizeof *rj);
    struct device_summary *dsum = calloc(1, sizeof *dsum), *rsum = calloc(1, sizeof *rsum);
    char sig[CRYPTO_SIG_B64_MAX], period[8];
    const char *canonical = "{\"invoice\":\"canonical bytes\",\"total\":\"113.00\"}";
    uint8_t *big = malloc(PROTO_SIGN_DATA_MAX + 1);
    EVP_PKEY *key = NULL;
    int dn = 0, rn = 0, i;
    enum fa_err de, re;

    CHECK(device_get_info(sim, &di) == FA_OK && device_get_info(dev, &ri) == FA_OK, "get_info both ways");
    CHECK(info_equal(&di, &ri), "get_info through BOT equals the simulator's");
    CHECK_STR(ri.kind, "usb");
    CHECK_STR(ri.machine_number, "499099000001");
    key = public_key(ri.public_key);
    CHECK(key != NULL, "the public key from get_info parses");

    CHECK(device_get_status(sim, &ds) == FA_OK && device_get_status(dev, &rs) == FA_OK,
          "get_status both ways");
    CHECK(status_equal(&ds, &rs), "get_status through BOT equals the simulator's");

    CHECK(device_list_rolls(sim, drolls, DEVICE_MAX_ROLLS, &dn) == FA_OK &&
          device_list_rolls(dev, rrolls, DEVICE_MAX_ROLLS, &rn) == FA_OK && dn == 2 && rn == 2,
          "list_rolls both ways: 2 rolls");
    for (i = 0; i < rn && i < dn; i++)
        CHECK(!strcmp(drolls[i].type, rrolls[i].type) && !strcmp(drolls[i].code, rrolls[i].code) &&
              drolls[i].first == rrolls[i].first && drolls[i].last == rrolls[i].last &&
              drolls[i].next == rrolls[i].next, "roll %d through BOT equals the simulator's", i);
    CHECK(device_list_rolls(dev, rrolls, 1, &rn) == FA_OK && rn == 1, "list_rolls with max 1 gives 1");

    CHECK_INT(dev->ops->verify_pin(dev, "00000000"), FA_DEV_PIN);
    CHECK(device_get_status(sim, &ds) == FA_OK && ds.pin_retries_left == 4,
          "a wrong PIN costs a retry (4 left)");
    CHECK_INT(dev->ops->verify_pin(dev, SIM_DEMO_PIN), FA_OK);
    CHECK(device_get_status(dev, &rs) == FA_OK && rs.pin_retries_left == 5,
          "the right PIN restores 5 retries");

    CHECK_INT(issue_one(dev, key, canonical, strlen(canonical), &f), FA_OK);
    CHECK(!strcmp(f.code, drolls[0].code) && strlen(f.number) == 8 &&
          !strcmp(f.machine_number, ri.machine_number) &&
          strlen(f.check_code) == 20 && strlen(f.cipher) == 108,
          "issue_begin through BOT: code %s number %s, 20-digit check code, 108-character cipher", f.code,
          f.number);
    CHECK(device_get_status(dev, &rs) == FA_OK && rs.signed_count == ds.signed_count + 1,
          "the device counts the signed invoice");
    memset(big, 'b', PROTO_SIGN_DATA_MAX);
    CHECK_INT(issue_one(dev, key, big, PROTO_SIGN_DATA_MAX, &f), FA_OK);
    CHECK(device_issue_sign(dev, f.code, f.number, big, PROTO_SIGN_DATA_MAX + 1, sig) == FA_INVAL,
          "signing more than 2 MiB is refused before it is sent");

    /* the device's refusals come back as they are (the limit is on the amount excluding tax) */
    req.total_fen = ds.limit_fen + 1;
    req.nrates = 1;
    req.rates[0] = (struct device_rate_sum){ 0, ds.limit_fen + 1, 0 };
    CHECK_INT(device_issue_begin(dev, &req, &f), FA_DEV_LIMIT);
    req.rates[0] = (struct device_rate_sum){ 0, 100, 0 };
    req.total_fen = 100;
    req.type = "099";
    CHECK_INT(device_issue_begin(dev, &req, &f), FA_DEV_ROLL_EMPTY);
    if (sim->ops->set_clock) {
        /* past the lock date by the device's own clock, then back */
        req.type = "028";
        CHECK_INT(device_set_clock(dev, ds.lock_date + 1), FA_OK);
        CHECK(device_get_status(dev, &rs) == FA_OK && rs.locked, "set_clock past the lock date: locked");
        CHECK_INT(device_issue_begin(dev, &req, &f), FA_DEV_LOCKED);
        CHECK_INT(device_set_clock(dev, clock_now()), FA_OK);
        CHECK(device_get_status(dev, &rs) == FA_OK && !rs.locked, "set_clock back: not locked");
    }
    CHECK_INT(device_issue_sign(dev, "031001900111", "99999999", "x", 1, sig), FA_INVAL);

    /* the commands another change is bringing to the simulator */
    if (sim->ops->read_journal) {
        for (i = 0; i < 16; i++)
            issue_one(dev, key, canonical, strlen(canonical), &f);
        de = device_read_journal(sim, 1, dj, 64, &dn);
        re = device_read_journal(dev, 1, rj, 64, &rn);
        CHECK(de == FA_OK && re == FA_OK && dn == rn && rn >= 18, "read_journal both ways: %d entries", rn);
        CHECK(journal_equal(dj, rj, rn), "read_journal through BOT (batches of 16) equals the simulator's");
        CHECK(device_read_journal(dev, 3, rj, 2, &rn) == FA_OK && rn == 2 && journal_equal(dj + 2, rj, 2),
              "read_journal from 3, at most 2");
    } else {
        CHECK_INT(device_read_journal(dev, 1, rj, 64, &rn), FA_INVAL);
        printf("# note: the simulator has no read_journal yet; the loopback answers FA_INVAL\n");
    }
    clock_period(clock_now(), period);
    if (sim->ops->period_summary) {
        de = device_period_summary(sim, period, dsum);
        re = device_period_summary(dev, period, rsum);
        CHECK(de == re, "period_summary %s both ways: %s", period, fa_err_str(re));
        if (de == FA_OK && re == FA_OK) {
            /* SM2 signatures are randomised: compare the content, verify the signature */
            char *text = device_summary_text(rsum);
            bool same = !strcmp(dsum->period, rsum->period) &&
                        !strcmp(dsum->machine_number, rsum->machine_number) &&
                        dsum->nlines == rsum->nlines && rsum->nlines > 0;
            for (i = 0; same && i < rsum->nlines; i++) {
                const struct device_summary_line *a = &dsum->lines[i], *b = &rsum->lines[i];
                same = !strcmp(a->type, b->type) && a->red == b->red && a->rate_pm == b->rate_pm &&
                       a->count == b->count && a->amount_fen == b->amount_fen && a->tax_fen == b->tax_fen;
            }
            CHECK(same, "period_summary through BOT: %d lines equal to the simulator's", rsum->nlines);
            CHECK(text && !crypto_sm2_verify_b64(key, text, strlen(text), rsum->signature),
                  "period_summary through BOT: the signature verifies");
            free(text);
        }
    } else {
        CHECK_INT(device_period_summary(dev, period, rsum), FA_INVAL);
        printf("# note: the simulator has no period_summary yet; the loopback answers FA_INVAL\n");
    }
    CHECK_INT(device_period_summary(dev, "2024-1100", rsum), FA_INVAL);
    if (sim->ops->set_clock) {
        de = device_set_clock(sim, clock_now());
        re = device_set_clock(dev, clock_now());
        CHECK(de == re, "set_clock through BOT answers as the simulator does (%s)", fa_err_str(re));
    } else {
        CHECK_INT(device_set_clock(dev, clock_now()), FA_INVAL);
        printf("# note: the simulator has no set_clock yet; the loopback answers FA_INVAL\n");
    }
    if (sim->ops->apply_clearance) {
        de = device_apply_clearance(sim, "{}", 2);
        re = device_apply_clearance(dev, "{}", 2);
        CHECK(de == re, "apply_clearance of {} through BOT answers as the simulator does (%s)",
              fa_err_str(re));
    } else {
        CHECK_INT(device_apply_clearance(dev, "{}", 2), FA_INVAL);
        printf("# note: the simulator has no apply_clearance yet; the loopback answers FA_INVAL\n");
    }
    CHECK_INT(device_apply_clearance(dev, "{}", PROTO_CLEARANCE_MAX + 1), FA_INVAL);

    EVP_PKEY_free(key);
    free(big);
    free(dj);
    free(rj);
    free(dsum);
    free(rsum);
}

/* ---- faults -------------------------------------------------------------- */

struct delta {
    unsigned resets, clear_halts;
};

static struct delta stats_now(struct bot_transport *t)
{
    struct loopback_stats s;
    loopback_get_stats(t, &s);
    return (struct delta){ s.resets, s.clear_halts };
}

/* One get_status with a fault armed: its answer, the resets and clear-halts
 * it cost, why it failed, and that the next command works. */
static void fault_case(struct device *dev, struct bot_transport *t, const char *name,
                       enum loopback_fault fault, enum fa_err want, unsigned want_resets,
                       unsigned want_clears, const char *why_has)
{
    struct device_status st;
    struct delta before = stats_now(t), after;
    enum fa_err err;

    loopback_inject(t, fault, 0, 1);
    err = device_get_status(dev, &st);
    after = stats_now(t);
    CHECK(err == want, "%s: get_status answers %s (got %s: %s)", name, fa_err_str(want), fa_err_str(err),
          remote_why(dev));
    CHECK(after.resets - before.resets == want_resets &&
          after.clear_halts - before.clear_halts == want_clears,
          "%s: %u reset(s), %u clear-halt(s) (got %u, %u)", name, want_resets, want_clears,
          after.resets - before.resets, after.clear_halts - before.clear_halts);
    if (why_has)
        CHECK(strstr(remote_why(dev), why_has) != NULL, "%s: the reason says \"%s\" (%s)", name, why_has,
              remote_why(dev));
    CHECK(device_get_status(dev, &st) == FA_OK && st.pin_retries_left == 5, "%s: the next command works",
          name);
}

static void test_faults(struct device *sim, struct device *dev, struct bot_transport *t)
{
    struct device_info info;
    struct device_status st;
    struct device_issue_fields f;
    struct delta before, after;
    uint8_t cdb[PROTO_CDB_LEN], data[PROTO_RESP_MAX];
    uint32_t tag;
    size_t moved;
    enum fa_err err, answer;
    const uint8_t *body;
    size_t blen;
    EVP_PKEY *key;

    fault_case(dev, t, "corrupted CSW signature", LOOPBACK_CSW_SIGNATURE, FA_DEV_IO, 1, 0, "bad signature");
    fault_case(dev, t, "CSW with a wrong tag", LOOPBACK_CSW_TAG, FA_DEV_IO, 1, 0, "tag of another command");
    fault_case(dev, t, "12-byte CSW", LOOPBACK_CSW_SIZE, FA_DEV_IO, 1, 0, "wrong size");
    fault_case(dev, t, "CSW residue above the transfer", LOOPBACK_CSW_RESIDUE, FA_DEV_IO, 1, 0, "residue");
    fault_case(dev, t, "phase error", LOOPBACK_CSW_PHASE, FA_DEV_IO, 1, 0, "phase error");
    fault_case(dev, t, "short data-in, honest residue", LOOPBACK_SHORT_DATA, FA_DEV_IO, 0, 0, "malformed");
    fault_case(dev, t, "short data-in, lying residue", LOOPBACK_SHORT_DATA_LIE, FA_DEV_IO, 0, 0,
               "residue mismatch");
    fault_case(dev, t, "stall after the data", LOOPBACK_STALL_DATA_END, FA_OK, 0, 1, NULL);
    fault_case(dev, t, "stall instead of the data", LOOPBACK_STALL_DATA_START, FA_DEV_IO, 0, 1,
               "failed the command block");
    fault_case(dev, t, "stall on the CSW", LOOPBACK_STALL_CSW, FA_OK, 0, 1, NULL);
    fault_case(dev, t, "timeout", LOOPBACK_TIMEOUT, FA_DEV_IO, 1, 0, "timeout");
    /* the device halts both pipes until reset: data phase stall, CSW stall twice */
    fault_case(dev, t, "invalid CBW", LOOPBACK_CBW_INVALID, FA_DEV_IO, 1, 2, "stall twice");

    before = stats_now(t);
    loopback_inject(t, LOOPBACK_STALL_CSW, 0, 2);
    err = device_get_status(dev, &st);
    after = stats_now(t);
    CHECK(err == FA_DEV_IO && after.resets == before.resets + 1 &&
          after.clear_halts == before.clear_halts + 1,
          "CSW stalled twice: clear-halt, retry, then reset recovery (%s)", remote_why(dev));
    CHECK(device_get_status(dev, &st) == FA_OK, "CSW stalled twice: the next command works");

    /* requests */
    before = stats_now(t);
    loopback_inject(t, LOOPBACK_STALL_DATA_OUT, 0, 1);
    err = dev->ops->verify_pin(dev, SIM_DEMO_PIN);
    after = stats_now(t);
    CHECK(err == FA_DEV_IO && after.clear_halts == before.clear_halts + 1 && after.resets == before.resets,
          "data-out stalled: clear-halt, CSW failed, FA_DEV_IO (%s)", remote_why(dev));
    CHECK_INT(dev->ops->verify_pin(dev, SIM_DEMO_PIN), FA_OK);
    before = stats_now(t);
    loopback_inject(t, LOOPBACK_CSW_TAG, 1, 1);   /* the FETCH's CSW, not the request's */
    err = dev->ops->verify_pin(dev, SIM_DEMO_PIN);
    after = stats_now(t);
    CHECK(err == FA_OK && after.resets == before.resets + 1,
          "a response lost in transit is fetched again after the reset (%s)", fa_err_str(err));
    loopback_inject(t, LOOPBACK_SHORT_DATA, 0, 2);  /* both FETCHes short */
    CHECK_INT(dev->ops->verify_pin(dev, SIM_DEMO_PIN), FA_DEV_IO);

    key = device_get_info(dev, &info) == FA_OK ? public_key(info.public_key) : NULL;
    /* CSWs: begin's request, begin's FETCH, sign's request, then sign's FETCH breaks */
    loopback_inject(t, LOOPBACK_CSW_SIGNATURE, 3, 1);
    CHECK(key && issue_one(dev, key, "lost signature", 14, &f) == FA_OK,
          "issue_sign whose first FETCH breaks still returns a valid signature (%s)", remote_why(dev));
    EVP_PKEY_free(key);

    /* the framing itself */
    tag = t->next_tag;
    device_get_status(dev, &st);
    CHECK_INT(t->next_tag - tag, 1);
    dev->ops->verify_pin(dev, SIM_DEMO_PIN);
    CHECK(t->next_tag - tag == 3, "tags grow by one per command (a request and its FETCH are two)");
    cdb[0] = 0x12;   /* INQUIRY: not ours */
    memset(cdb + 1, 0, sizeof cdb - 1);
    before = stats_now(t);
    err = bot_command(t, cdb, 6, BOT_DIR_IN, data, 36, &moved, 1000);
    after = stats_now(t);
    CHECK(err == FA_DEV_IO && moved == 0 && after.clear_halts == before.clear_halts + 1 &&
          after.resets == before.resets, "a foreign opcode: stall, CSW failed, FA_DEV_IO (%s)", bot_why(t));
    CHECK(bot_command(t, cdb, 0, BOT_DIR_NONE, NULL, 0, &moved, 1000) == FA_INVAL &&
          bot_command(t, cdb, 6, BOT_DIR_IN, NULL, 0, &moved, 1000) == FA_INVAL &&
          bot_command(t, cdb, 17, BOT_DIR_NONE, NULL, 0, &moved, 1000) == FA_INVAL,
          "bot_command refuses bad arguments");
    proto_cdb_fetch(PROTO_ISSUE_SIGN, 0xDEAD, cdb);
    err = bot_command(t, cdb, PROTO_CDB_LEN, BOT_DIR_IN, data, PROTO_SIGN_RESP_MAX, &moved, 1000);
    CHECK(err == FA_OK && proto_dec_resp(PROTO_ISSUE_SIGN, data, moved, &answer, &body, &blen) == FA_DEV_IO,
          "FETCH of an unknown exchange is not taken for an answer");
    CHECK(device_get_status(dev, &st) == FA_OK, "after the raw commands the device still works");

    /* unplugged in the middle of a command: after the CBW, before the data */
    loopback_inject(t, LOOPBACK_UNPLUG, 1, 1);
    CHECK_INT(device_get_status(dev, &st), FA_DEV_ABSENT);
    CHECK(strstr(remote_why(dev), "unplugged") != NULL, "unplugged: the reason says so (%s)",
          remote_why(dev));
    CHECK_INT(device_get_info(dev, &info), FA_DEV_ABSENT);
    CHECK_INT(dev->ops->verify_pin(dev, SIM_DEMO_PIN), FA_DEV_ABSENT);
    CHECK_INT(device_issue_sign(dev, "031001900111", "00000001", "x", 1, (char[CRYPTO_SIG_B64_MAX]){ 0 }),
              FA_DEV_ABSENT);
    CHECK_INT(device_get_status(dev, &st), FA_DEV_ABSENT);
    CHECK(device_get_status(sim, &st) == FA_OK, "the simulator itself is unharmed");
}

/* ---- a device with holes and bad data ------------------------------------ */

static enum fa_err stub_get_info(struct device *d, struct device_info *out)
{
    (void)d;
    memset(out, 'x', sizeof *out);   /* no NUL anywhere: a firmware bug */
    return FA_OK;
}

static enum fa_err stub_get_status(struct device *d, struct device_status *out)
{
    (void)d;
    memset(out, 0, sizeof *out);
    return FA_DEV_OFFLINE_LIMIT;
}

static void stub_close(struct device *d)
{
    (void)d;
}

static void test_stub_device(void)
{
    static const struct device_ops ops = { .get_info = stub_get_info, .get_status = stub_get_status,
                                           .close = stub_close };
    struct device stub = { &ops }, *dev = NULL;
    struct bot_transport *t = NULL;
    struct device_info info;
    struct device_status st;
    struct device_journal_entry e;
    char sig[CRYPTO_SIG_B64_MAX];
    int n;

    if (!CHECK(loopback_open(&stub, &t) == FA_OK && remote_open(t, &dev) == FA_OK, "loopback over a stub"))
        return;
    CHECK_INT(device_get_status(dev, &st), FA_DEV_OFFLINE_LIMIT);
    CHECK_INT(device_get_info(dev, &info), FA_DEV_IO);
    CHECK_INT(dev->ops->verify_pin(dev, "1"), FA_INVAL);
    CHECK_INT(device_read_journal(dev, 1, &e, 1, &n), FA_INVAL);
    CHECK_INT(device_issue_sign(dev, "1", "2", "x", 1, sig), FA_INVAL);
    CHECK_INT(device_set_clock(dev, 0), FA_INVAL);
    device_close(dev);
}

/* ---- usb ------------------------------------------------------------------ */

static int count_device(unsigned vid, unsigned pid, unsigned bus, unsigned address, void *arg)
{
    (void)vid, (void)pid, (void)bus, (void)address;
    (*(int *)arg)++;
    return 0;
}

static void test_usb(void)
{
    struct bot_transport dummy, *t = &dummy;
    char why[256] = "";
    enum fa_err err;
    int count = 0;

    err = usb_transport_open(USB_FAPIAO_VID, USB_FAPIAO_PID, &t, why, sizeof why);
    CHECK(err == FA_DEV_ABSENT && t == NULL && why[0], "usb_transport_open without the device: %s: %s",
          fa_err_str(err), why);
    if (err == FA_OK)
        bot_transport_close(t);
    CHECK(usb_transport_open(0x10000, 1, &t, why, sizeof why) == FA_INVAL, "VID 0x10000 is refused (%s)",
          why);
    why[0] = 0;
    err = usb_list_devices(count_device, &count, why, sizeof why);
    CHECK(err == FA_OK || (err == FA_DEV_ABSENT && why[0]), "usb_list_devices: %s, %d device(s)%s%s",
          fa_err_str(err), count, why[0] ? ": " : "", why);
}

int main(void)
{
    char dir[] = "/tmp/fapiaofs-bot-XXXXXX", path[256], why[512] = "";
    struct device *sim = NULL, *dev = NULL;
    struct bot_transport *t = NULL;

    test_wrappers();
    test_cdbs();
    test_status_map();
    test_requests();
    test_responses();
    test_fuzz();
    test_stub_device();
    test_usb();

    if (!CHECK(mkdtemp(dir) != NULL, "mkdtemp %s", dir))
        return unit_done();
    clock_set_file(NULL);
    snprintf(path, sizeof path, "%s/device.json", dir);
    if (!CHECK(sim_create_demo(path, why, sizeof why) == FA_OK &&
               sim_open(path, &sim, why, sizeof why) == FA_OK,
               "simulated device in %s (%s)", dir, why))
        goto out;
    if (!CHECK(loopback_open(sim, &t) == FA_OK, "loopback_open"))
        goto out;
    if (!CHECK(remote_open(t, &dev) == FA_OK, "remote_open")) {
        bot_transport_close(t);
        goto out;
    }
    test_commands(sim, dev);
    test_faults(sim, dev, t);
out:
    device_close(dev);       /* closes the loopback too */
    device_close(sim);
    unit_remove_tree(dir);
    return unit_done();
}
