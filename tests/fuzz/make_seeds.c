/*
 * make_seeds.c — writes the seed corpora of the fuzz targets from real
 * encodings, so that the fuzzers start from inputs that pass every check
 * and mutate from there: `make fuzz-seeds` (then commit what changed in
 * tests/fuzz/corpus/).  Usage: make_seeds DIR; writes DIR/proto,
 * DIR/clearance, DIR/command and DIR/journal, files named NAME-HASH (16 hex digits of
 * their content).  It first removes the NAME-HASH files it wrote before,
 * because keys and signatures are new at every run, and leaves every other
 * file alone (what `make fuzz-merge` added is named by a 40-digit SHA-1).
 * The device's clock is fixed (2026-11-20), so that the rest stays the same.
 *
 * proto: a simulated device (device/sim.c, in a temporary directory) is
 * served over the in-process loopback and driven by the remote device, the
 * whole command set; a recording transport between them keeps every CBW,
 * CDB, request, response, body and CSW as a seed of the matching decoder
 * mode of fuzz_proto.c, and each command (and the whole session) as a host
 * script (mode 15: the device's side of the wire, replayed) and a device
 * script (mode 16: the host's side).
 * clearance: clearance answers signed as platform/sim.c signs them (with
 * and without platform_public_key), and invoices for the summary.
 * command: lines for device/clear, accepted and refused.
 * journal: lines of the simulated device's journal, accepted and refused.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "device/bot.h"
#include "device/crypto.h"
#include "device/loopback.h"
#include "device/proto.h"
#include "device/remote.h"
#include "device/sim.h"
#include "engine/clock.h"

#define SEED_TIME "2026-11-20T10:00:00+08:00"

/* The modes of fuzz_proto.c (its first byte). */
enum mode {
    M_CBW, M_CSW, M_CDB, M_PIN, M_BEGIN, M_SIGN, M_CLEARANCE, M_RESP, M_INFO, M_STATUS, M_ROLLS,
    M_FIELDS, M_SIGNATURE, M_JOURNAL, M_SUMMARY, M_HOST, M_DEVICE
};

static const char *const mode_names[] = {
    "cbw", "csw", "cdb", "req-verify-pin", "req-issue-begin", "req-issue-sign", "req-clearance", "resp",
    "body-info", "body-status", "body-rolls", "body-issue-fields", "body-signature", "body-journal",
    "body-summary", "host", "device",
};

static const char *out_dir;
static int written, failed;

/* ---- output -------------------------------------------------------------- */

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2 + 64;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            fprintf(stderr, "make_seeds: out of memory\n");
            exit(1);
        }
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_u8(struct buf *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

static void put_u16(struct buf *b, size_t v)
{
    put_u8(b, (unsigned)(v & 0xff));
    put_u8(b, (unsigned)((v >> 8) & 0xff));
}

static void put_u32(struct buf *b, uint32_t v)
{
    put_u16(b, v & 0xffff);
    put_u16(b, v >> 16);
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Whether `name` is NAME-HASH, a file of ours. */
static bool ours(const char *name)
{
    size_t n = strlen(name), i;

    if (n < 18 || name[n - 17] != '-')
        return false;
    for (i = n - 16; i < n; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    return true;
}

/* Remove the seeds an earlier run wrote to DIR/TARGET. */
static void clean(const char *target)
{
    char path[4096];
    struct dirent *e;
    DIR *d;

    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    d = opendir(path);
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (!ours(e->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, e->d_name);
        if (unlink(path)) {
            fprintf(stderr, "make_seeds: %s: %s\n", path, strerror(errno));
            failed++;
        }
    }
    closedir(d);
}

/* DIR/TARGET/NAME-HASH, the bytes of `p`. */
static void seed(const char *target, const char *name, const void *p, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s-%016llx", out_dir, target, name,
             (unsigned long long)fnv1a(p, n));
    f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "make_seeds: %s: %s\n", path, strerror(errno));
        failed++;
        return;
    }
    written++;
}

static void proto_seed(enum mode m, const void *p, size_t n)
{
    struct buf b = { 0 };

    put_u8(&b, m);
    put(&b, p, n);
    seed("proto", mode_names[m], b.p, b.len);
    free(b.p);
}

/* ---- the recording transport ----------------------------------------------- */

struct recorder {
    struct bot_transport base;
    struct bot_transport *inner;  /* the loopback */
    struct buf host, device;      /* the scripts of fuzz_proto.c modes 15 and 16 */
    bool expect_cbw;
    struct bot_cbw cbw;           /* the command in progress */
    struct proto_cdb cdb;
};

static unsigned wire_code(enum bot_io io)
{
    switch (io) {
    case BOT_IO_OK:        return 0;
    case BOT_IO_STALL:     return 1;
    case BOT_IO_TIMEOUT:   return 2;
    case BOT_IO_NO_DEVICE: return 3;
    default:               return 4;
    }
}

static enum mode request_mode(uint8_t cmd)
{
    switch (cmd) {
    case PROTO_VERIFY_PIN:  return M_PIN;
    case PROTO_ISSUE_BEGIN: return M_BEGIN;
    case PROTO_ISSUE_SIGN:  return M_SIGN;
    default:                return M_CLEARANCE;
    }
}

static int body_mode(uint8_t cmd)
{
    switch (cmd) {
    case PROTO_GET_INFO:       return M_INFO;
    case PROTO_GET_STATUS:     return M_STATUS;
    case PROTO_LIST_ROLLS:     return M_ROLLS;
    case PROTO_ISSUE_BEGIN:    return M_FIELDS;
    case PROTO_ISSUE_SIGN:     return M_SIGNATURE;
    case PROTO_READ_JOURNAL:   return M_JOURNAL;
    case PROTO_PERIOD_SUMMARY: return M_SUMMARY;
    default:                   return -1;
    }
}

static enum bot_io rec_bulk_out(struct bot_transport *t, const uint8_t *buf, size_t len, size_t *done,
                                unsigned timeout_ms)
{
    struct recorder *r = (struct recorder *)t;
    enum bot_io io = r->inner->ops->bulk_out(r->inner, buf, len, done, timeout_ms);

    put_u8(&r->device, 0);
    put_u16(&r->device, len);
    put(&r->device, buf, len);
    put_u8(&r->host, wire_code(io));
    if (r->expect_cbw) {
        r->expect_cbw = false;
        proto_seed(M_CBW, buf, len);
        if (bot_cbw_decode(buf, len, &r->cbw) == BOT_WRAP_OK &&
            proto_cdb_decode(r->cbw.cb, r->cbw.cb_len, &r->cdb) == FA_OK)
            proto_seed(M_CDB, r->cbw.cb, r->cbw.cb_len);
    } else if (proto_cmd_is_request(r->cdb.cmd)) {
        proto_seed(request_mode(r->cdb.cmd), buf, len);
    }
    return io;
}

static enum bot_io rec_bulk_in(struct bot_transport *t, uint8_t *buf, size_t len, size_t *done,
                               unsigned timeout_ms)
{
    struct recorder *r = (struct recorder *)t;
    enum bot_io io = r->inner->ops->bulk_in(r->inner, buf, len, done, timeout_ms);
    struct buf b = { 0 };
    uint8_t cmd;
    int bm;

    put_u8(&r->device, 2);
    put_u16(&r->device, len);
    if (len == BOT_CSW_LEN) {
        /* bit 3: the replay patches in its own tag, so that a command replays alone */
        put_u8(&r->host, wire_code(io) | 0x08);
        r->expect_cbw = true;
        put_u8(&r->host, (unsigned)*done);
        put(&r->host, buf, *done);
        put_u32(&b, r->cbw.tag);
        put_u32(&b, r->cbw.data_len);
        put(&b, buf, *done);
        proto_seed(M_CSW, b.p, b.len);
        free(b.p);
        return io;
    }
    put_u8(&r->host, wire_code(io));
    put_u16(&r->host, *done);
    put(&r->host, buf, *done);
    cmd = r->cdb.cmd == PROTO_FETCH ? r->cdb.fetch_cmd : r->cdb.cmd;
    put_u8(&b, cmd);
    put(&b, buf, *done);
    proto_seed(M_RESP, b.p, b.len);
    free(b.p);
    bm = body_mode(cmd);
    if (bm >= 0 && *done > PROTO_RESP_HDR && buf[0] == PROTO_ST_OK)
        proto_seed((enum mode)bm, buf + PROTO_RESP_HDR, *done - PROTO_RESP_HDR);
    return io;
}

static enum bot_io rec_clear_halt(struct bot_transport *t, enum bot_endpoint ep)
{
    struct recorder *r = (struct recorder *)t;
    enum bot_io io = r->inner->ops->clear_halt(r->inner, ep);

    put_u8(&r->device, 4);
    put_u8(&r->device, ep == BOT_EP_IN ? 1 : 0);
    put_u8(&r->host, wire_code(io));
    return io;
}

static enum bot_io rec_reset_recovery(struct bot_transport *t)
{
    struct recorder *r = (struct recorder *)t;
    enum bot_io io = r->inner->ops->reset_recovery(r->inner);

    r->expect_cbw = true;
    put_u8(&r->device, 5);
    put_u8(&r->host, wire_code(io));
    return io;
}

static void rec_close(struct bot_transport *t)
{
    (void)t;   /* the recorder lives on the stack; the loopback is closed by the caller */
}

static const struct bot_transport_ops recorder_ops = {
    .bulk_out = rec_bulk_out,
    .bulk_in = rec_bulk_in,
    .clear_halt = rec_clear_halt,
    .reset_recovery = rec_reset_recovery,
    .close = rec_close,
};

/* ---- proto: a session with the simulated device ----------------------------- */

/* The host op bytes of fuzz_proto.c's mode 15. */
enum host_op { OP_INFO, OP_STATUS, OP_ROLLS, OP_PIN, OP_BEGIN, OP_SIGN, OP_JOURNAL, OP_SUMMARY, OP_CLEARANCE,
               OP_CLOCK };

struct session {
    struct recorder rec;
    struct device *remote;
    struct buf whole;             /* every command, as one host script */
    size_t host_mark, device_mark;
};

/* Start one command: its op byte (and arguments) opens its host script. */
static void op_begin(struct session *s, enum host_op op, const uint8_t *args, size_t nargs)
{
    s->host_mark = s->rec.host.len;
    s->device_mark = s->rec.device.len;
    put_u8(&s->rec.host, op);
    put(&s->rec.host, args, nargs);
}

static void op_end(struct session *s, const char *name, enum fa_err err)
{
    struct buf b = { 0 };
    char label[64];

    if (err)
        fprintf(stderr, "make_seeds: %s: %s (%s), recorded anyway\n", name, fa_err_str(err),
                remote_why(s->remote));
    snprintf(label, sizeof label, "host-%s", name);
    put_u8(&b, M_HOST);
    put(&b, s->rec.host.p + s->host_mark, s->rec.host.len - s->host_mark);
    seed("proto", label, b.p, b.len);
    b.len = 0;
    snprintf(label, sizeof label, "device-%s", name);
    put_u8(&b, M_DEVICE);
    put(&b, s->rec.device.p + s->device_mark, s->rec.device.len - s->device_mark);
    seed("proto", label, b.p, b.len);
    free(b.p);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void proto_seeds(void)
{
    char dir[] = "/tmp/fapiaofs-seeds.XXXXXX", path[256], why[512] = "", period[8];
    FILE *clock_file;
    struct device *sim = NULL;
    struct bot_transport *lb = NULL;
    struct session s = { 0 };
    struct device_info info;
    struct device_status st;
    struct device_roll rolls[DEVICE_MAX_ROLLS];
    struct device_issue_fields f;
    struct device_journal_entry journal[16];
    struct device_summary *sum = calloc(1, sizeof *sum);
    struct device_issue_req req = { .type = "026", .total_fen = 11300, .nrates = 1,
                                    .rates = { { 130, 10000, 1300 } } };
    char sig[CRYPTO_SIG_B64_MAX];
    static const char canonical[] = "{\"type\":\"026\",\"totals\":{\"total\":\"113.00\"}}";
    static const char answer[] = "{\"period\":\"2026-11\",\"cleared\":true}";
    uint8_t args[4];
    bool bad;
    int n;

    if (!sum || !mkdtemp(dir)) {
        fprintf(stderr, "make_seeds: cannot make a temporary directory\n");
        failed++;
        free(sum);
        return;
    }
    snprintf(path, sizeof path, "%s/clock", dir);
    clock_file = fopen(path, "w");
    bad = !clock_file;
    if (clock_file) {
        bad = fputs(SEED_TIME "\n", clock_file) < 0;
        bad = fclose(clock_file) != 0 || bad;
    }
    if (bad) {
        fprintf(stderr, "make_seeds: %s: %s\n", path, strerror(errno));
        failed++;
        goto out;
    }
    clock_set_file(path);
    snprintf(path, sizeof path, "%s/device.json", dir);
    if (sim_create_demo(path, why, sizeof why) || sim_open(path, &sim, why, sizeof why) ||
        loopback_open(sim, &lb)) {
        fprintf(stderr, "make_seeds: the simulated device: %s\n", why);
        failed++;
        goto out;
    }
    s.rec.inner = lb;
    s.rec.expect_cbw = true;
    bot_transport_init(&s.rec.base, &recorder_ops);
    if (remote_open(&s.rec.base, &s.remote)) {
        failed++;
        goto out;
    }

    op_begin(&s, OP_INFO, NULL, 0);
    op_end(&s, "get-info", device_get_info(s.remote, &info));
    op_begin(&s, OP_STATUS, NULL, 0);
    op_end(&s, "get-status", device_get_status(s.remote, &st));
    args[0] = DEVICE_MAX_ROLLS;
    op_begin(&s, OP_ROLLS, args, 1);
    op_end(&s, "list-rolls", device_list_rolls(s.remote, rolls, DEVICE_MAX_ROLLS, &n));
    args[0] = 0;
    op_begin(&s, OP_PIN, args, 1);
    op_end(&s, "verify-pin", device_verify_pin(s.remote, SIM_DEMO_PIN));
    req.issued_at = clock_now();
    op_begin(&s, OP_BEGIN, NULL, 0);
    op_end(&s, "issue-begin", device_issue_begin(s.remote, &req, &f));
    op_begin(&s, OP_SIGN, NULL, 0);
    op_end(&s, "issue-sign",
           device_issue_sign(s.remote, f.code, f.number, canonical, strlen(canonical), sig));
    args[0] = 1;
    args[1] = 16;
    op_begin(&s, OP_JOURNAL, args, 2);
    op_end(&s, "read-journal", device_read_journal(s.remote, 1, journal, 16, &n));
    op_begin(&s, OP_SUMMARY, NULL, 0);
    op_end(&s, "period-summary", device_period_summary(s.remote, clock_period(clock_now(), period), sum));
    op_begin(&s, OP_CLEARANCE, NULL, 0);
    op_end(&s, "apply-clearance", device_apply_clearance(s.remote, answer, strlen(answer)) == FA_INVAL
                                      ? FA_OK : FA_DEV_IO);
    memset(args, 0, sizeof args);
    op_begin(&s, OP_CLOCK, args, 4);
    op_end(&s, "set-clock", device_set_clock(s.remote, clock_now()));

    /* the whole session: every host script in a row */
    put_u8(&s.whole, M_HOST);
    put(&s.whole, s.rec.host.p, s.rec.host.len);
    seed("proto", "host-session", s.whole.p, s.whole.len);
    s.whole.len = 0;
    put_u8(&s.whole, M_DEVICE);
    put(&s.whole, s.rec.device.p, s.rec.device.len);
    seed("proto", "device-session", s.whole.p, s.whole.len);
out:
    device_close(s.remote);
    bot_transport_close(lb);
    device_close(sim);
    free(s.rec.host.p);
    free(s.rec.device.p);
    free(s.whole.p);
    free(sum);
    clock_set_file(NULL);
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- clearance and summary ---------------------------------------------------- */

static void json_seed(const char *target, const char *name, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);

    if (text)
        seed(target, name, text, strlen(text));
    else
        failed++;
    free(text);
    json_decref(doc);
}

/* An answer as platform/sim.c makes it, signed by key. */
static json_t *answer(EVP_PKEY *key, const char *period, const char *lock, const char *limit, int hours,
                      const char *amount)
{
    char text[256], sig[CRYPTO_SIG_B64_MAX] = "MEUCIQ==";

    snprintf(text, sizeof text, "CLEARANCE %s 499099000001 %s %s %d %s", period, lock, limit, hours, amount);
    if (key && crypto_sm2_sign_b64(key, text, strlen(text), sig, sizeof sig))
        failed++;
    return json_pack("{s:s,s:s,s:b,s:s,s:{s:s,s:i,s:s},s:s}", "period", period,
                     "machine_number", "499099000001", "cleared", 1, "lock_date", lock,
                     "limits", "per_invoice", limit, "offline_hours", hours, "offline_amount", amount,
                     "signature", sig);
}

static void clearance_seeds(void)
{
    char *pem = crypto_sm2_generate_pem(), b64[CRYPTO_PUBLIC_B64_MAX];
    EVP_PKEY *key = pem ? crypto_key_from_pem(pem, 1) : NULL;
    json_t *a;

    if (!key || crypto_public_b64(key, b64, sizeof b64)) {
        fprintf(stderr, "make_seeds: cannot make an SM2 key\n");
        failed++;
        goto out;
    }
    json_seed("clearance", "answer", answer(key, "2026-11", "2027-01-15T23:59:59+08:00", "10000000.00", 72,
                                            "10000000.00"));
    a = answer(key, "2026-12", "2027-02-15T23:59:59+08:00", "5000000.00", 48, "2000000.00");
    json_object_set_new(a, "platform_public_key", json_string(b64));
    json_seed("clearance", "answer-with-key", a);
    json_seed("clearance", "answer-utc-max-hours", answer(key, "2027-01", "2027-03-15T15:59:59Z", "0.01",
                                                          100000, "0"));
    a = answer(NULL, "2026-11", "2027-01-15T23:59:59+08:00", "10000000.00", 72, "10000000.00");
    json_object_set_new(a, "platform_public_key", json_string("AAAA"));
    json_seed("clearance", "answer-bad-key", a);

    json_seed("clearance", "invoice", json_pack("{s:s,s:{s:s,s:s,s:s},s:[{s:s,s:s,s:s}]}", "type", "026",
                                                "totals", "amount", "300.00", "tax", "39.00", "total",
                                                "339.00", "items", "tax_rate", "0.13", "amount", "300.00",
                                                "tax", "39.00"));
    json_seed("clearance", "invoices", json_pack("[{s:s,s:{s:s},s:[{s:s,s:s,s:s},{s:s,s:s,s:s}]},"
                                                 "{s:s,s:{s:s},s:[{s:s,s:s,s:s}]},"
                                                 "{s:s,s:{s:s},s:[{s:s,s:s,s:s}]}]",
                                                 "type", "026", "totals", "total", "159.00", "items",
                                                 "tax_rate", "0.06", "amount", "100.00", "tax", "6.00",
                                                 "tax_rate", "0.015", "amount", "50.00", "tax", "3.00",
                                                 "type", "026", "totals", "total", "-113.00", "items",
                                                 "tax_rate", "0.13", "amount", "-100.00", "tax", "-13.00",
                                                 "type", "028", "totals", "total", "0.00", "items",
                                                 "tax_rate", "0", "amount", "0.00", "tax", "0.00"));
out:
    EVP_PKEY_free(key);
    free(pem);
}

/* ---- journal ------------------------------------------------------------------ */

#define SEED_SM3 "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
#define SEED_SIG "MEUCIQDzQ1n0y8mVb2n9Xq7lQ3W4mJcX1Yt0hR5s6Zk2fL8aPwIgY3b7T1o9" \
                 "uKx2VdE4nC6sA8rF0gH5jM2pQ1wZ7yB3vN4="

/* Lines of the device journal, without their newline: as sim.c writes them
 * (blue, red, without rates, with three), and spelt in ways it never does. */
static void journal_seeds(void)
{
    static const struct {
        const char *name, *line;
    } lines[] = {
        { "blue", "1 031001900111 00000001 026 1763604000 11300 " SEED_SM3 " " SEED_SIG " 130:10000:1300" },
        { "red", "2 031001900111 00000002 026 1763604060 -11300 " SEED_SM3 " " SEED_SIG " 130:-10000:-1300" },
        { "no-rates", "3 031001900211 00000001 028 1763604120 0 " SEED_SM3 " " SEED_SIG " -" },
        { "three-rates", "4 031001900111 00000003 026 1763604180 25950 " SEED_SM3 " " SEED_SIG
                         " 130:10000:1300;90:10000:900;0:3750:0" },
        { "trailing-space", "5 031001900111 00000004 026 1763604240 100 " SEED_SM3 " " SEED_SIG " -  " },
        { "plus-seq", "+6 031001900111 00000005 026 1763604300 100 " SEED_SM3 " " SEED_SIG " -" },
        { "leading-zero", "07 031001900111 00000006 026 1763604360 100 " SEED_SM3 " " SEED_SIG " -" },
        { "short", "8 031001900111 00000007 026" },
    };
    size_t i;

    for (i = 0; i < sizeof lines / sizeof lines[0]; i++)
        seed("journal", lines[i].name, lines[i].line, strlen(lines[i].line));
}

/* ---- command ------------------------------------------------------------------ */

static void command_seeds(void)
{
    static const struct {
        const char *name, *line;
    } lines[] = {
        { "clear", "clear" },
        { "clear-pin", "clear pin=12345678" },
        { "clear-blanks", " \tclear \r" },
        { "clear-tabs-pin", "clear\t\tpin=0" },
        { "clear-pin-crs", "\rclear pin=123456\r\r" },
        { "pin-empty", "clear pin=" },
        { "pin-letter", "clear pin=12a4" },
        { "no-space", "clearpin=1" },
        { "spaced-equals", "clear  pin = 1" },
        { "upper-case", "CLEAR" },
        { "pin-negative", "clear pin=-1" },
        { "pin-too-long", "clear pin=12345678901234567890123456789012345678901234567890123456789012345" },
        { "newline", "clear\n" },
        { "trailing-word", "clear pin=1 extra" },
        { "other-command", "status" },
    };
    size_t i;

    for (i = 0; i < sizeof lines / sizeof lines[0]; i++)
        seed("command", lines[i].name, lines[i].line, strlen(lines[i].line));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR (the corpora go to DIR/proto, DIR/clearance, "
                        "DIR/command, DIR/journal)\n");
        return 2;
    }
    out_dir = argv[1];
    mkdir(out_dir, 0755);
    clean("proto");
    clean("clearance");
    clean("command");
    clean("journal");
    proto_seeds();
    clearance_seeds();
    command_seeds();
    journal_seeds();
    printf("make_seeds: %d seeds written to %s, %d failures\n", written, out_dir, failed);
    return failed ? 1 : 0;
}
