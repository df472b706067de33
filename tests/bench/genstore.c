/*
 * genstore.c — a state directory (store + simulated device) holding N
 * invoices of the current month, for the browsing benchmarks of make bench
 * (docs/BENCHMARKS.md).
 *
 *   genstore --state DIR --invoices N [--template FILE] [--threads T]
 *
 * Issuing a million invoices through pending/ would take hours, so:
 *   1. a device is created (the demo device, one 026 roll of 99,999,999
 *      numbers, offline limits off: the benchmark mounts have no platform);
 *   2. invoice 1 is issued through the real engine (engine_submit), on a test
 *      clock set to the first second of the month;
 *   3. invoices 2..N are made from it the way the engine and the device
 *      would make them: the same draft with request_id GEN-00000000n, the
 *      device's check code and cipher (sim.c's derivation), the QR payload,
 *      canonical bytes (invoice_canonical), a real SM2 signature by the
 *      device's key, the file (invoice_render), the receipt (receipt_render),
 *      the draft hash; issue times spread evenly from the first second of the
 *      month to now.  Invoice 1 is rebuilt the same way first and must come
 *      out byte for byte as the engine made it (else: exit 1, nothing made);
 *   4. they go into the store's tables in one transaction (drafts, invoices
 *      with their size, receipts, uploads — as if the platform had accepted
 *      them, so nothing is left to upload —, period_lines, meta created_at;
 *      the store's triggers keep its tallies), with the schema of
 *      engine/store.c, and their lines into the device journal in the
 *      sim's format; the state file's roll gets its next number;
 *   5. the engine is opened again: reconciliation must find journal and store
 *      in agreement (N and N, 0 restored, 0 alarms).
 * It also writes DIR/fapiaofs.conf for mounting DIR (no platform).
 *
 * Trade-off: the store is written with journal_mode=OFF and synchronous=OFF
 * (then switched back to WAL and fsync'd): a crash of the generator leaves a
 * broken directory, which is only a benchmark input made again in minutes.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "device/crypto.h"
#include "device/sim.h"
#include "engine/clock.h"
#include "engine/config.h"
#include "engine/engine.h"
#include "engine/invoice.h"
#include "tests/bench/template.h"

#define ROLL_CODE "031001900111"
#define ROLL_LAST 99999999u
#define BATCH 4096

/* What every invoice shares, taken from invoice 1 as the engine made it. */
struct model {
    json_t *inv;                 /* the invoice file of invoice 1, parsed */
    json_t *draft;               /* its draft, parsed */
    json_t *warnings;            /* its receipt's warnings */
    struct draft_template tpl;
    EVP_PKEY *key;               /* the device's */
    char code[16], type[4], machine[16], amount[32], total[32];
    int64_t total_fen;
    struct device_rate_sum rates[DEVICE_MAX_RATES];   /* its journal line's */
    int nrates;
};

/* One invoice, ready for the store and the journal. */
struct row {
    uint32_t n;                  /* its number, and its place in the journal */
    int64_t at;
    char number[16], name[32], request_id[32], period[8], hash[65];
    char *file, *receipt, *body;
    size_t file_len, receipt_len, body_len;
    char journal[SIM_JOURNAL_LINE_MAX];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "genstore: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void set_str(json_t *o, const char *key, const char *value)
{
    json_object_set_new(o, key, json_string(value));
}

static void row_free(struct row *r)
{
    free(r->file);
    free(r->receipt);
    free(r->body);
    r->file = r->receipt = r->body = NULL;
}

/* Invoice n issued at `at`, as engine.c and sim.c would make it.  inv and
 * draft are the caller's own copies of the model's (they are changed).  With
 * sig (the self-check of invoice 1) that signature is used instead of a new
 * one (SM2 signatures are randomised).  0, or -1. */
static int make_row(const struct model *m, json_t *inv, json_t *draft, json_t *warnings,
                    uint32_t n, int64_t at, const char *sig, struct row *r)
{
    char issued[32], ymd[9], qr[256], check[24], cipher[112], path[96], hex[65];
    char signature[CRYPTO_SIG_B64_MAX], *canonical, *norm;
    unsigned char digest[32];
    size_t canonical_len, cap;
    int len;

    memset(r, 0, sizeof *r);
    r->n = n;
    r->at = at;
    snprintf(r->number, sizeof r->number, "%08u", n);
    snprintf(r->name, sizeof r->name, "gen-%09u.json", n);
    snprintf(r->request_id, sizeof r->request_id, "GEN-%09u", n);
    clock_iso_cst(at, issued);
    clock_period(at, r->period);
    memcpy(ymd, issued, 4);
    memcpy(ymd + 4, issued + 5, 2);
    memcpy(ymd + 6, issued + 8, 2);
    ymd[8] = 0;
    sim_derive_digits(m->machine, m->code, n, m->total_fen, at, "check", "0123456789", check, 20);
    sim_derive_digits(m->machine, m->code, n, m->total_fen, at, "cipher", "0123456789+-*/<>", cipher,
                      108);
    snprintf(qr, sizeof qr, "01,%s,%s,%s,%s,%s,%s,", strcmp(m->type, "028") ? "10" : "08", m->code,
             r->number, m->amount, ymd, check);
    crypto_sm3(qr, strlen(qr), digest);
    snprintf(qr + strlen(qr), sizeof qr - strlen(qr), "%02X%02X,", digest[0], digest[1]);

    set_str(inv, "number", r->number);
    set_str(inv, "issued_at", issued);
    set_str(inv, "period", r->period);
    set_str(inv, "check_code", check);
    set_str(inv, "cipher", cipher);
    set_str(inv, "qr", qr);
    set_str(inv, "draft", r->name);
    set_str(inv, "request_id", r->request_id);
    canonical = invoice_canonical(inv, &canonical_len);
    if (!canonical)
        return -1;
    if (sig)
        snprintf(signature, sizeof signature, "%s", sig);
    else if (crypto_sm2_sign_b64(m->key, canonical, canonical_len, signature, sizeof signature)) {
        free(canonical);
        return -1;
    }
    crypto_sm3(canonical, canonical_len, digest);
    crypto_hex(digest, 32, hex);
    free(canonical);
    r->file = invoice_render(inv, signature, &r->file_len);

    snprintf(path, sizeof path, "issued/%s/%s-%s.json", r->period, m->code, r->number);
    r->receipt = receipt_render(r->name, r->request_id, "issued", m->code, r->number, path, at,
                                m->total, warnings, &r->receipt_len);

    cap = m->tpl.head_len + m->tpl.tail_len + sizeof r->request_id;
    r->body = malloc(cap);
    r->body_len = r->body ? template_fill(&m->tpl, r->request_id, r->body, cap) : 0;

    /* engine.c's draft_hash: SHA-256 of the draft, sorted keys, compact */
    set_str(draft, "request_id", r->request_id);
    norm = json_dumps(draft, JSON_COMPACT | JSON_SORT_KEYS);
    if (!norm || !r->file || !r->receipt || !r->body_len) {
        free(norm);
        row_free(r);
        return -1;
    }
    crypto_sha256(norm, strlen(norm), digest);
    crypto_hex(digest, 32, r->hash);
    free(norm);

    /* sim.c's journal line */
    struct device_journal_entry e = { .seq = n, .issued_at = at, .total_fen = m->total_fen };
    memcpy(e.code, m->code, sizeof e.code);
    memcpy(e.number, r->number, sizeof e.number);
    memcpy(e.type, m->type, sizeof e.type);
    memcpy(e.sm3_hex, hex, sizeof e.sm3_hex);
    memcpy(e.signature, signature, sizeof e.signature);
    len = sim_format_journal_line(&e, m->rates, m->nrates, r->journal, sizeof r->journal);
    if (len < 0) {
        row_free(r);
        return -1;
    }
    return 0;
}

/* ---- generating in parallel ------------------------------------------------ */

struct gen {
    const struct model *m;
    int64_t t0, t1;
    uint32_t total;              /* N */
    struct row *rows;            /* the batch */
    uint32_t first, count;       /* invoice numbers first .. first+count-1 */
    unsigned threads;
    int failed;
};

struct gen_worker {
    struct gen *g;
    unsigned index;
    json_t *inv, *draft, *warnings;
};

/* Issue time of invoice n of N: evenly from t0 (invoice 1) to t1. */
static int64_t issue_time(const struct gen *g, uint32_t n)
{
    if (g->total < 2)
        return g->t0;
    return g->t0 + (int64_t)((__int128)(g->t1 - g->t0) * (n - 1) / (g->total - 1));
}

static void *gen_main(void *arg)
{
    struct gen_worker *w = arg;
    struct gen *g = w->g;
    uint32_t k;

    for (k = w->index; k < g->count; k += g->threads) {
        uint32_t n = g->first + k;
        if (make_row(g->m, w->inv, w->draft, w->warnings, n, issue_time(g, n), NULL, &g->rows[k]))
            __atomic_store_n(&g->failed, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void gen_batch(struct gen *g, struct gen_worker *w)
{
    pthread_t t[64];
    unsigned i;

    for (i = 0; i < g->threads; i++)
        if (pthread_create(&t[i], NULL, gen_main, &w[i]))
            die("cannot start a thread");
    for (i = 0; i < g->threads; i++)
        pthread_join(t[i], NULL);
    if (g->failed)
        die("making an invoice failed (out of memory?)");
}

/* ---- the store ---------------------------------------------------------------- */

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        die("store: %s: %s", sql, msg ? msg : sqlite3_errmsg(db));
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        die("store: %s: %s", sql, sqlite3_errmsg(db));
    return q;
}

static void step_done(sqlite3 *db, sqlite3_stmt *q)
{
    if (sqlite3_step(q) != SQLITE_DONE)
        die("store: %s: %s", sqlite3_sql(q), sqlite3_errmsg(db));
    sqlite3_reset(q);
}

static int64_t one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = prepare(db, sql);
    int64_t v;
    if (sqlite3_step(q) != SQLITE_ROW)
        die("store: %s: %s", sql, sqlite3_errmsg(db));
    v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* Invoice 1 as the engine stored it. */
struct first {
    int64_t invoice_id, draft_id, receipt_id, at;
    char *file, *receipt, *body, *hash, *journal;
};

static char *column_text(sqlite3_stmt *q, int col)
{
    const void *b = sqlite3_column_blob(q, col);
    size_t n = (size_t)sqlite3_column_bytes(q, col);
    char *s = malloc(n + 1);
    if (!s)
        die("out of memory");
    memcpy(s, b ? b : "", n);
    s[n] = 0;
    return s;
}

static void read_first(sqlite3 *db, struct first *f)
{
    sqlite3_stmt *q;

    if (one_int(db, "SELECT count(*) FROM invoices") != 1 ||
        one_int(db, "SELECT count(*) FROM drafts") != 1 ||
        one_int(db, "SELECT count(*) FROM receipts") != 1)
        die("store: want exactly the one invoice the engine issued");
    q = prepare(db, "SELECT i.id, i.draft_id, r.id, i.issued_at, i.json, r.json, d.body, i.draft_hash"
                    " FROM invoices i JOIN drafts d ON d.id = i.draft_id"
                    " JOIN receipts r ON r.draft_id = i.draft_id");
    if (sqlite3_step(q) != SQLITE_ROW)
        die("store: invoice 1 not found: %s", sqlite3_errmsg(db));
    f->invoice_id = sqlite3_column_int64(q, 0);
    f->draft_id = sqlite3_column_int64(q, 1);
    f->receipt_id = sqlite3_column_int64(q, 2);
    f->at = sqlite3_column_int64(q, 3);
    f->file = column_text(q, 4);
    f->receipt = column_text(q, 5);
    f->body = column_text(q, 6);
    f->hash = column_text(q, 7);
    sqlite3_finalize(q);
}

/* ---- the device --------------------------------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (!f)
        die("%s: %s", path, strerror(errno));
    do {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            if (!buf)
                die("out of memory");
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n);
    fclose(f);
    buf[len] = 0;
    return buf;
}

/* The state file with the roll's next number, written as sim.c writes it
 * (new file, fsync, rename, fsync of the directory), under its lock file. */
static void set_roll_next(const char *state_path, const char *state_dir, uint32_t next)
{
    char lock_path[4400], tmp[4400], *text;
    json_t *o, *rolls, *r;
    json_error_t jerr;
    size_t i;
    int lock, fd, dir;
    bool found = false;

    snprintf(lock_path, sizeof lock_path, "%s.lock", state_path);
    snprintf(tmp, sizeof tmp, "%s.new", state_path);
    lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX))
        die("%s: %s", lock_path, strerror(errno));
    o = json_load_file(state_path, 0, &jerr);
    if (!o)
        die("%s: %s", state_path, jerr.text);
    rolls = json_object_get(o, "rolls");
    json_array_foreach(rolls, i, r)
        if (!strcmp(json_string_value(json_object_get(r, "code")), ROLL_CODE)) {
            json_object_set_new(r, "next", json_integer(next));
            found = true;
        }
    if (!found)
        die("%s: no roll %s", state_path, ROLL_CODE);
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (!text || fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fsync(fd) ||
        close(fd) || rename(tmp, state_path))
        die("%s: %s", state_path, strerror(errno));
    free(text);
    dir = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0 || fsync(dir))
        die("%s: %s", state_dir, strerror(errno));
    close(dir);
    close(lock);
}

static EVP_PKEY *device_key(const char *state_path)
{
    json_error_t jerr;
    json_t *o = json_load_file(state_path, 0, &jerr);
    EVP_PKEY *key;

    if (!o)
        die("%s: %s", state_path, jerr.text);
    key = crypto_key_from_pem(json_string_value(json_object_get(o, "private_key")), 1);
    json_decref(o);
    if (!key)
        die("%s: unreadable private key", state_path);
    return key;
}

/* ---- the model: invoice 1 ------------------------------------------------------ */

static void load_model(struct model *m, const struct first *f, const char *journal_path,
                       const char *state_path, const char *template_path)
{
    char why[512], *journal = read_text(journal_path), *nl;
    json_t *receipt, *totals;
    json_error_t jerr;
    struct device_journal_entry e;

    nl = strchr(journal, '\n');
    if (!nl || strchr(nl + 1, '\n'))
        die("%s: want exactly one line, the engine's invoice", journal_path);
    *nl = 0;
    if (sim_parse_journal_line(journal, &e, m->rates, &m->nrates))
        die("%s: unexpected line: %s", journal_path, journal);
    free(journal);
    m->inv = json_loads(f->file, 0, &jerr);
    m->draft = json_loads(f->body, 0, &jerr);
    receipt = json_loads(f->receipt, 0, &jerr);
    if (!m->inv || !m->draft || !receipt)
        die("invoice 1: unreadable JSON: %s", jerr.text);
    m->warnings = json_incref(json_object_get(receipt, "warnings"));
    json_decref(receipt);
    totals = json_object_get(m->inv, "totals");
    snprintf(m->code, sizeof m->code, "%s", json_string_value(json_object_get(m->inv, "code")));
    snprintf(m->type, sizeof m->type, "%s", e.type);
    snprintf(m->machine, sizeof m->machine, "%s",
             json_string_value(json_object_get(m->inv, "machine_number")));
    snprintf(m->amount, sizeof m->amount, "%s", json_string_value(json_object_get(totals, "amount")));
    snprintf(m->total, sizeof m->total, "%s", json_string_value(json_object_get(totals, "total")));
    m->total_fen = e.total_fen;
    if (strcmp(m->code, e.code) || strcmp(m->code, ROLL_CODE))
        die("invoice 1 is %s-%s, not of roll %s", e.code, e.number, ROLL_CODE);
    if (template_load(template_path, &m->tpl, why, sizeof why))
        die("%s", why);
    m->key = device_key(state_path);
}

/* Invoice 1 made by make_row must be what the engine made: file, receipt,
 * draft, draft hash, journal line. */
static void self_check(const struct model *m, const struct first *f, const char *journal_line)
{
    json_t *inv = json_deep_copy(m->inv), *draft = json_deep_copy(m->draft);
    const char *sig = json_string_value(json_object_get(m->inv, "signature"));
    struct row r;

    if (!inv || !draft || !sig || make_row(m, inv, draft, m->warnings, 1, f->at, sig, &r))
        die("self-check: cannot rebuild invoice 1");
    if (strcmp(r.file, f->file))
        die("self-check: the invoice file differs from the engine's:\n%s\n---\n%s", r.file, f->file);
    if (strcmp(r.receipt, f->receipt))
        die("self-check: the receipt differs from the engine's:\n%s\n---\n%s", r.receipt, f->receipt);
    if (r.body_len != strlen(f->body) || memcmp(r.body, f->body, r.body_len))
        die("self-check: the draft differs from the one the engine received");
    if (strcmp(r.hash, f->hash))
        die("self-check: draft hash %s, the engine's %s", r.hash, f->hash);
    if (strcmp(r.journal, journal_line))
        die("self-check: journal line\n%s differs from the device's\n%s", r.journal, journal_line);
    row_free(&r);
    json_decref(inv);
    json_decref(draft);
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: genstore --state DIR --invoices N [--template FILE] [--threads T]\n");
    exit(2);
}

static long parse_long(const char *text, long lo, long hi, const char *what)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || *end || !*text || v < lo || v > hi) {
        fprintf(stderr, "genstore: %s: want %ld to %ld, not \"%s\"\n", what, lo, hi, text);
        exit(2);
    }
    return v;
}

static void write_config(const char *dir)
{
    char path[4200];
    FILE *f;

    snprintf(path, sizeof path, "%s/fapiaofs.conf", dir);
    f = fopen(path, "w");
    if (!f)
        die("%s: %s", path, strerror(errno));
    fprintf(f, "# written by tests/bench/genstore: this state, no platform (nothing is uploaded)\n"
               "[store]\nstate_dir = %s\npath = fapiaofs.db\n"
               "[device]\nkind = sim\nstate = device.json\n"
               "[platform]\nurl =\n", dir);
    if (fclose(f))
        die("%s: %s", path, strerror(errno));
}

static void engine_config_for(const char *dir, const char *clock_file, struct config *c)
{
    char why[512];
    if (config_load(NULL, c, why, sizeof why))
        die("%s", why);
    snprintf(c->state_dir, sizeof c->state_dir, "%s", dir);
    snprintf(c->store_path, sizeof c->store_path, "%s/fapiaofs.db", dir);
    snprintf(c->device_state, sizeof c->device_state, "%s/device.json", dir);
    c->platform_url[0] = 0;
    snprintf(c->clock_file, sizeof c->clock_file, "%s", clock_file ? clock_file : "");
}

/* Invoice 1 through the engine, on a clock at t0. */
static void issue_first(const char *dir, const char *template_path, int64_t t0)
{
    char clock_path[4200], iso[32], why[512], body[65536];
    struct draft_template tpl;
    struct engine_outcome out;
    struct engine *e;
    struct config c;
    enum fa_err err;
    FILE *f;
    size_t len;

    snprintf(clock_path, sizeof clock_path, "%s/genstore.clock", dir);
    f = fopen(clock_path, "w");
    if (!f || fprintf(f, "%s\n", clock_iso_cst(t0, iso)) < 0 || fclose(f))
        die("%s: %s", clock_path, strerror(errno));
    engine_config_for(dir, clock_path, &c);
    if (template_load(template_path, &tpl, why, sizeof why))
        die("%s", why);
    len = template_fill(&tpl, "GEN-000000001", body, sizeof body);
    template_free(&tpl);
    if (!len)
        die("%s: too big", template_path);
    if (engine_open(&c, ENGINE_RUN, &e, why, sizeof why))
        die("engine: %s", why);
    err = engine_submit(e, "gen-000000001.json", body, len, 0, NULL, &out);
    if (err || out.kind != OUTCOME_ISSUED)
        die("engine: the template draft was not issued: %s %s", fa_err_str(err), out.reason);
    engine_close(e);
    clock_set_file(NULL);
    unlink(clock_path);
}

/* Reconciliation at open must find device and store in agreement. */
static void verify(const char *dir, int64_t n)
{
    struct engine_reconcile rec;
    struct engine *e;
    struct config c;
    char why[512];

    engine_config_for(dir, NULL, &c);
    if (engine_open(&c, ENGINE_RUN, &e, why, sizeof why))
        die("verify: engine: %s", why);
    engine_reconcile_report(e, &rec);
    engine_close(e);
    if (rec.journal != n || rec.store != n || rec.restored || rec.alarms)
        die("verify: reconciliation: device journal %lld, store %lld, restored %lld, alarms %lld: %s",
            (long long)rec.journal, (long long)rec.store, (long long)rec.restored,
            (long long)rec.alarms, rec.last);
}

int main(int argc, char **argv)
{
    const char *dir_arg = NULL, *template_path = "examples/basic.json";
    char dir[4096], state_path[4200], journal_path[4300], store_path[4200], why[512];
    char month_start[40], period[8], *journal_line;
    long n = -1, threads = sysconf(_SC_NPROCESSORS_ONLN);
    struct sim_params p;
    struct first f = { 0 };
    struct model m = { 0 };
    struct gen g = { 0 };
    struct gen_worker w[64];
    sqlite3_stmt *q_draft, *q_inv, *q_receipt, *q_upload;
    sqlite3 *db;
    FILE *journal;
    double t_start = now_s(), t_issue, t_bulk, t_verify;
    uint32_t k;
    unsigned i;
    int a, fd;

    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--state") && a + 1 < argc)
            dir_arg = argv[++a];
        else if (!strcmp(argv[a], "--invoices") && a + 1 < argc)
            n = parse_long(argv[++a], 0, 90000000, "--invoices");
        else if (!strcmp(argv[a], "--template") && a + 1 < argc)
            template_path = argv[++a];
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc)
            threads = parse_long(argv[++a], 1, 64, "--threads");
        else
            usage();
    }
    if (!dir_arg || n < 0)
        usage();
    if (threads < 1 || threads > 64)
        threads = 2;
    if (mkdir(dir_arg, 0700) && errno != EEXIST)
        die("%s: %s", dir_arg, strerror(errno));
    if (!realpath(dir_arg, dir))
        die("%s: %s", dir_arg, strerror(errno));
    snprintf(state_path, sizeof state_path, "%s/device.json", dir);
    snprintf(journal_path, sizeof journal_path, "%s.journal", state_path);
    snprintf(store_path, sizeof store_path, "%s/fapiaofs.db", dir);
    if (!access(state_path, F_OK) || !access(store_path, F_OK))
        die("%s already holds a device or a store: remove it first", dir);

    sim_params_demo(&p);
    p.rolls[0] = (struct device_roll){ "026", ROLL_CODE, 1, ROLL_LAST, 1 };
    p.offline_hours = 0;        /* no platform: the offline limits would stop issuing */
    p.offline_amount_fen = 0;
    if (sim_create(state_path, &p, why, sizeof why))
        die("%s", why);
    write_config(dir);

    clock_period(clock_now(), period);
    snprintf(month_start, sizeof month_start, "%s-01T00:00:00+08:00", period);
    if (clock_parse_iso(month_start, &g.t0))
        die("cannot parse %s", month_start);
    g.t1 = clock_now() - 60;
    if (g.t1 < g.t0)
        g.t1 = g.t0;
    g.total = (uint32_t)n;

    if (n == 0) {   /* an empty store, as the first mount would make it */
        store_t *s;
        if (store_open(store_path, &s, why, sizeof why))
            die("%s", why);
        store_close(s);
        printf("genstore: %s: device and empty store\n", dir);
        return 0;
    }

    issue_first(dir, template_path, g.t0);
    t_issue = now_s();

    if (sqlite3_open_v2(store_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        die("%s: %s", store_path, sqlite3_errmsg(db));
    read_first(db, &f);
    if (f.at != g.t0)
        die("invoice 1 was issued at %lld, not at the test clock's %lld", (long long)f.at,
            (long long)g.t0);
    load_model(&m, &f, journal_path, state_path, template_path);
    journal_line = read_text(journal_path);
    self_check(&m, &f, journal_line);
    free(journal_line);

    exec(db, "PRAGMA journal_mode = OFF");
    exec(db, "PRAGMA synchronous = OFF");
    exec(db, "PRAGMA cache_size = -262144");
    exec(db, "BEGIN");
    q_draft = prepare(db, "INSERT INTO drafts(id, name, received_at, body, state, invoice_id)"
                          " VALUES(?1, ?2, ?3, ?4, 'issued', ?5)");
    /* as store.c's S_PUT_INVOICE, with the id given */
    q_inv = prepare(db, "INSERT INTO invoices(id, code, number, name, period, issued_at, draft_id,"
                        " request_id, draft_hash, total_fen, json, size)"
                        " VALUES(?1, ?2, ?3, ?2 || '-' || ?3 || '.json', ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
                        " length(?10))");
    q_receipt = prepare(db, "INSERT INTO receipts(id, name, draft_id, json, mtime, size)"
                            " VALUES(?1, ?2, ?3, ?4, ?5, length(?4))");
    q_upload = prepare(db, "INSERT INTO uploads(invoice_id, uploaded_at) VALUES(?1, ?2)");
    journal = fopen(journal_path, "a");
    if (!journal)
        die("%s: %s", journal_path, strerror(errno));

    g.m = &m;
    g.threads = (unsigned)threads;
    g.rows = calloc(BATCH, sizeof *g.rows);
    if (!g.rows)
        die("out of memory");
    for (i = 0; i < g.threads; i++) {
        w[i] = (struct gen_worker){ .g = &g, .index = i, .inv = json_deep_copy(m.inv),
                                    .draft = json_deep_copy(m.draft),
                                    .warnings = json_deep_copy(m.warnings) };
        if (!w[i].inv || !w[i].draft)
            die("out of memory");
    }
    for (g.first = 2; g.first <= (uint32_t)n; g.first += g.count) {
        g.count = (uint32_t)n - g.first + 1 < BATCH ? (uint32_t)n - g.first + 1 : BATCH;
        gen_batch(&g, w);
        for (k = 0; k < g.count; k++) {
            struct row *r = &g.rows[k];
            int64_t off = r->n - 1;
            sqlite3_bind_int64(q_draft, 1, f.draft_id + off);
            sqlite3_bind_text(q_draft, 2, r->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q_draft, 3, r->at);
            sqlite3_bind_blob(q_draft, 4, r->body, (int)r->body_len, SQLITE_STATIC);
            sqlite3_bind_int64(q_draft, 5, f.invoice_id + off);
            step_done(db, q_draft);
            sqlite3_bind_int64(q_inv, 1, f.invoice_id + off);
            sqlite3_bind_text(q_inv, 2, m.code, -1, SQLITE_STATIC);
            sqlite3_bind_text(q_inv, 3, r->number, -1, SQLITE_STATIC);
            sqlite3_bind_text(q_inv, 4, r->period, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q_inv, 5, r->at);
            sqlite3_bind_int64(q_inv, 6, f.draft_id + off);
            sqlite3_bind_text(q_inv, 7, r->request_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(q_inv, 8, r->hash, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q_inv, 9, m.total_fen);
            sqlite3_bind_blob(q_inv, 10, r->file, (int)r->file_len, SQLITE_STATIC);
            step_done(db, q_inv);
            sqlite3_bind_int64(q_receipt, 1, f.receipt_id + off);
            sqlite3_bind_text(q_receipt, 2, r->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q_receipt, 3, f.draft_id + off);
            sqlite3_bind_blob(q_receipt, 4, r->receipt, (int)r->receipt_len, SQLITE_STATIC);
            sqlite3_bind_int64(q_receipt, 5, r->at);
            step_done(db, q_receipt);
            sqlite3_bind_int64(q_upload, 1, f.invoice_id + off);
            sqlite3_bind_int64(q_upload, 2, r->at);
            step_done(db, q_upload);
            if (fputs(r->journal, journal) == EOF)
                die("%s: %s", journal_path, strerror(errno));
            row_free(r);
        }
        if (isatty(2))
            fprintf(stderr, "genstore: %u of %ld\r", g.first + g.count - 1, n);
    }
    /* invoice 1: accepted by the platform too; the period's sums: N times invoice 1's */
    {
        char sql[512];
        snprintf(sql, sizeof sql, "DELETE FROM upload_queue; INSERT INTO uploads VALUES(%lld, %lld);"
                 " UPDATE period_lines SET count = count * %ld, amount_fen = amount_fen * %ld,"
                 " tax_fen = tax_fen * %ld WHERE period = '%s';"
                 " UPDATE meta SET value = %lld WHERE key = 'created_at'",
                 (long long)f.invoice_id, (long long)f.at, n, n, n, period, (long long)(g.t0 - 3600));
        exec(db, sql);
    }
    exec(db, "COMMIT");
    sqlite3_finalize(q_draft);
    sqlite3_finalize(q_inv);
    sqlite3_finalize(q_receipt);
    sqlite3_finalize(q_upload);
    exec(db, "PRAGMA journal_mode = WAL");
    if (sqlite3_close(db) != SQLITE_OK)
        die("store: cannot close");
    fd = open(store_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd))
        die("%s: %s", store_path, strerror(errno));
    close(fd);
    if (fflush(journal) || fdatasync(fileno(journal)) || fclose(journal))
        die("%s: %s", journal_path, strerror(errno));
    set_roll_next(state_path, dir, (uint32_t)n + 1);
    t_bulk = now_s();

    verify(dir, n);
    t_verify = now_s();
    for (i = 0; i < g.threads; i++) {
        json_decref(w[i].inv);
        json_decref(w[i].draft);
        json_decref(w[i].warnings);
    }
    printf("genstore: %s: %ld invoices of %s; issue 1 %.2f s, make and store %ld %.1f s, "
           "verify (reconciliation: agreed) %.1f s\n", dir, n, period, t_issue - t_start, n - 1,
           t_bulk - t_issue, t_verify - t_bulk);
    free(g.rows);
    return 0;
}
