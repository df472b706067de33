/*
 * test_drafts.c — the table-driven draft suite: every file of tests/drafts/
 * through the real engine (SQLite store in a temp dir, simulated device, no
 * platform), in the order of tests/drafts/cases.tsv.
 *
 * Each line of cases.tsv is FILE<TAB>EXPECT, EXPECT one of
 *
 *     issued TOTAL                  issued; the invoice's totals.total is TOTAL,
 *                                   totals.amount + totals.tax = total, the lines
 *                                   sum to the totals, and the receipt has no warnings
 *     issued TOTAL warning PATH     the same, and a receipt warning starts "PATH:"
 *     duplicate                     request_id issued before, same content
 *     rejected PATH[;PATH...]       every PATH starts its own line of the error
 *                                   text, and there are exactly that many lines
 *
 * Order matters: the first cases are blue invoices that the red cases after
 * them reverse by number (the simulated device numbers 026 invoices from
 * 031001900111-00000001 and 028 from 031001900211-00000001), and the
 * duplicate cases repeat earlier ones.
 *
 * The engine runs with the default line tolerance 0.01, so 100 lines each
 * 0.01 off add up to 1.00 at most: the invoice tolerance of ±1.27 (SPEC
 * §3.3) cannot be exceeded here, only approached.
 *
 * One check per case; a failure shows what happened and, for a rejection,
 * the full error text.  Run from the repository root.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "engine/config.h"
#include "engine/decimal.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "tests/unit/unit.h"

#define DRAFTS_DIR "tests/drafts"
#define CASES_FILE DRAFTS_DIR "/cases.tsv"
#define DETAIL_MAX 8192

/* A check whose detail (printed only on failure) is not cut at 512 bytes. */
#define CHECK_DETAIL(cond, detail, ...) \
    unit_report((cond) ? true : false, __FILE__, __LINE__, (detail), __VA_ARGS__)

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[n] = 0;
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

/* A store row as a NUL-terminated string; NULL if it cannot be read. */
static char *read_row(struct engine *e, enum store_coll c, int64_t id)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    char *s;

    if (store_read(engine_store(e), c, id, &buf, &len) != FA_OK)
        return NULL;
    s = malloc(len + 1);
    if (s) {
        if (len)
            memcpy(s, buf, len);
        s[len] = 0;
    }
    free(buf);
    return s;
}

static const char *kind_name(enum outcome_kind k)
{
    switch (k) {
    case OUTCOME_ISSUED: return "issued";
    case OUTCOME_DUPLICATE: return "duplicate";
    case OUTCOME_WAITING: return "waiting";
    case OUTCOME_REJECTED: return "rejected";
    }
    return "?";
}

/* What happened, for a failed check's detail. */
static void describe(struct engine *e, enum fa_err rc, const struct engine_outcome *out,
                     char *detail, size_t cap)
{
    char *text = NULL;
    if (out->kind == OUTCOME_REJECTED && rc == FA_REJECTED)
        text = read_row(e, COLL_REJECT_ERROR, out->reject_id);
    snprintf(detail, cap, "got %s (rc %d, %s)%s%s", kind_name(out->kind), (int)rc,
             out->invoice_name[0] ? out->invoice_name : out->reason, text ? ": " : "",
             text ? text : "");
    free(text);
}

static int dec_of(json_t *o, const char *key, dec_t *d)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && dec_parse(s, 2, d) == DEC_OK ? 0 : -1;
}

/* totals.total is want, amount + tax = total, and the lines add up. */
static bool check_totals(const char *invoice, const char *want, char *detail, size_t cap)
{
    json_t *inv = json_loads(invoice, 0, NULL), *totals = json_object_get(inv, "totals"), *it;
    dec_t amount, tax, total, sum_amount = { 0 }, sum_tax = { 0 }, a, t, both;
    const char *got = json_string_value(json_object_get(totals, "total"));
    bool ok = false;
    size_t i;

    if (!got) {
        snprintf(detail, cap, "the invoice has no totals.total: %s", invoice);
    } else if (strcmp(got, want)) {
        snprintf(detail, cap, "totals.total is %s, want %s", got, want);
    } else if (dec_of(totals, "amount", &amount) || dec_of(totals, "tax", &tax) ||
               dec_of(totals, "total", &total) || !dec_add(amount, tax, &both) ||
               dec_cmp(both, total)) {
        snprintf(detail, cap, "totals.amount + totals.tax is not totals.total: %s", invoice);
    } else {
        ok = true;
        json_array_foreach(json_object_get(inv, "items"), i, it) {
            if (dec_of(it, "amount", &a) || dec_of(it, "tax", &t) ||
                !dec_add(sum_amount, a, &sum_amount) || !dec_add(sum_tax, t, &sum_tax))
                ok = false;
        }
        if (!ok || dec_cmp(sum_amount, amount) || dec_cmp(sum_tax, tax)) {
            snprintf(detail, cap, "the lines do not add up to the totals: %s", invoice);
            ok = false;
        }
    }
    json_decref(inv);
    return ok;
}

/* The receipt's warnings: none (want NULL), or one starting "want:". */
static bool check_warnings(const char *receipt, const char *want, const char *status,
                           char *detail, size_t cap)
{
    json_t *r = json_loads(receipt, 0, NULL), *w = json_object_get(r, "warnings"), *v;
    const char *st = json_string_value(json_object_get(r, "status"));
    size_t i, n = strlen(want ? want : "");
    bool ok = json_is_array(w) && st && !strcmp(st, status);

    if (ok && !want) {
        ok = json_array_size(w) == 0;
    } else if (ok) {
        ok = false;
        json_array_foreach(w, i, v) {
            const char *s = json_string_value(v);
            if (s && !strncmp(s, want, n) && s[n] == ':')
                ok = true;
        }
    }
    if (!ok)
        snprintf(detail, cap, "receipt: %s", receipt);
    json_decref(r);
    return ok;
}

/* Every path of "a;b;c" starts its own line of text ("path: ..."), and the
 * text has exactly as many lines as there are paths. */
static bool check_paths(const char *text, const char *paths)
{
    const char *lines[256], *p;
    bool used[256] = { false };
    int nlines = 0, npaths = 0, i;

    for (p = text; *p && nlines < 256; ) {
        const char *nl = strchr(p, '\n');
        lines[nlines++] = p;
        p = nl ? nl + 1 : p + strlen(p);
    }
    for (p = paths; *p; ) {
        size_t n = strcspn(p, ";");
        for (i = 0; i < nlines; i++)
            if (!used[i] && !strncmp(lines[i], p, n) && lines[i][n] == ':')
                break;
        if (i == nlines)
            return false;
        used[i] = true;
        npaths++;
        p += n;
        if (*p == ';')
            p++;
    }
    return nlines == npaths;
}

static void run_case(struct engine *e, const char *file, const char *expect)
{
    char path[512], detail[DETAIL_MAX] = "", want_total[64] = "", want_warning[128] = "";
    struct engine_outcome out;
    enum fa_err rc;
    size_t len = 0;
    char *body, *row;
    bool pass = false;

    snprintf(path, sizeof path, "%s/%s", DRAFTS_DIR, file);
    body = slurp(path, &len);
    if (!body) {
        CHECK(false, "%s: %s (cannot read %s)", file, expect, path);
        return;
    }
    rc = engine_submit(e, file, body, len, 0, NULL, &out);
    free(body);

    if (sscanf(expect, "issued %63s warning %127s", want_total, want_warning) >= 1) {
        pass = rc == FA_OK && out.kind == OUTCOME_ISSUED;
        if (!pass) {
            describe(e, rc, &out, detail, sizeof detail);
        } else {
            row = read_row(e, COLL_INVOICE, out.invoice_id);
            pass = row && check_totals(row, want_total, detail, sizeof detail);
            free(row);
            row = pass ? read_row(e, COLL_RECEIPT, out.receipt_id) : NULL;
            if (pass)
                pass = row && check_warnings(row, want_warning[0] ? want_warning : NULL,
                                             "issued", detail, sizeof detail);
            free(row);
        }
    } else if (!strcmp(expect, "duplicate")) {
        pass = rc == FA_OK && out.kind == OUTCOME_DUPLICATE;
        if (!pass) {
            describe(e, rc, &out, detail, sizeof detail);
        } else {
            row = read_row(e, COLL_RECEIPT, out.receipt_id);
            pass = row && check_warnings(row, NULL, "duplicate", detail, sizeof detail);
            free(row);
        }
    } else if (!strncmp(expect, "rejected ", 9)) {
        pass = rc == FA_REJECTED && out.kind == OUTCOME_REJECTED;
        row = pass ? read_row(e, COLL_REJECT_ERROR, out.reject_id) : NULL;
        pass = pass && row && check_paths(row, expect + 9);
        if (!pass && row)
            snprintf(detail, sizeof detail, "error text: %s", row);
        else if (!pass)
            describe(e, rc, &out, detail, sizeof detail);
        free(row);
    } else {
        snprintf(detail, sizeof detail, "unknown expectation in " CASES_FILE);
    }
    CHECK_DETAIL(pass, detail, "%s: %s", file, expect);
}

int main(void)
{
    char dir[] = "/tmp/fapiaofs-drafts-XXXXXX", why[512] = "", *line = NULL;
    struct config cfg;
    struct engine *e = NULL;
    size_t cap = 0;
    ssize_t n;
    int ncases = 0;
    FILE *cases;

    if (!mkdtemp(dir)) {
        CHECK(false, "mkdtemp %s", dir);
        return unit_done();
    }
    if (config_load(NULL, &cfg, why, sizeof why)) {
        CHECK(false, "config_load: %s", why);
        goto out;
    }
    snprintf(cfg.state_dir, sizeof cfg.state_dir, "%s", dir);
    snprintf(cfg.store_path, sizeof cfg.store_path, "%s/fapiaofs.db", dir);
    snprintf(cfg.device_state, sizeof cfg.device_state, "%s/device.json", dir);
    cfg.platform_url[0] = 0;   /* no uploads */
    cfg.drawer[0] = 0;         /* drafts name their drawer */
    cfg.clock_file[0] = 0;
    if (!CHECK(engine_open(&cfg, ENGINE_RUN, &e, why, sizeof why) == FA_OK, "engine_open (%s)", why))
        goto out;

    cases = fopen(CASES_FILE, "r");
    if (!CHECK(cases != NULL, "%s readable (run from the repository root)", CASES_FILE))
        goto out;
    while ((n = getline(&line, &cap, cases)) >= 0) {
        char *tab;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (!n || line[0] == '#')
            continue;
        tab = strchr(line, '\t');
        if (!tab) {
            CHECK(false, "%s: line \"%s\" has no tab", CASES_FILE, line);
            continue;
        }
        *tab = 0;
        run_case(e, line, tab + 1);
        ncases++;
    }
    free(line);
    fclose(cases);
    CHECK(ncases >= 70, "%s has at least 70 cases (%d)", CASES_FILE, ncases);
out:
    engine_close(e);
    unit_remove_tree(dir);
    return unit_done();
}
