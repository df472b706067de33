/*
 * engine.c — the issuing pipeline; see engine.h.
 *
 * Order of durable steps for one draft, and what a crash after each leaves:
 *   1. store_add_draft        the draft is on record (state "received");
 *   2. validate               rejected → store_put_rejection, done;
 *   3. device_issue_begin     the device reserves a number (not consumed);
 *   4. store_put_intent       write-ahead: the canonical bytes to be signed;
 *   5. device_issue_sign      the device consumes the number, journals it;
 *   6. store_put_invoice      invoice + receipt + upload queue, one commit.
 * A crash between 5 and 6 leaves a journal entry with an intent whose bytes
 * hash to it: reconciliation at mount restores the invoice from the two.
 * So only 4 and 5 are synced (two syncs per invoice): 1 is made durable by
 * 4's sync, and 6 by the next synced commit — a power loss that takes 6
 * with it leaves 4 and 5, the same state as a crash between them.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device/crypto.h"
#include "engine/clock.h"
#include "engine/draft.h"
#include "engine/fifolock.h"
#include "engine/engine.h"
#include "engine/invoice.h"
#include "engine/red.h"
#include "engine/summary.h"

struct engine {
    struct config cfg;
    store_t *store;
    struct device *dev;
    uploader_t *uploader;
    struct fifo_lock issue_lock;  /* one draft at a time through the device, in arrival order */
    struct engine_reconcile rec;  /* under issue_lock */
    bool fault_after_sign;        /* tests: die between signing and commit */
    int fault_clear_step;         /* tests: die after this step of a clearing */
    pthread_mutex_t clear_lock;   /* one clearing at a time */
    atomic_bool clearing;         /* held: for the open() of a second writer */
};

#define RECONCILE_BATCH 64
#define RECONCILE_OVERLAP 16      /* journal entries before the store's count also checked */

enum fa_err engine_open(const struct config *c, enum engine_mode mode, struct engine **out,
                        char *why, size_t whylen)
{
    struct engine *e = calloc(1, sizeof *e);
    enum fa_err err;

    if (!e)
        return FA_NOMEM;
    e->cfg = *c;
    fifo_lock_init(&e->issue_lock);
    pthread_mutex_init(&e->clear_lock, NULL);
    clock_set_file(c->clock_file);
    err = store_open(c->store_path, &e->store, why, whylen);
    if (err == FA_OK)
        err = device_open(c, mode == ENGINE_RUN, &e->dev, why, whylen);
    /* test-only fault injection: FAPIAOFS_FAULT=after-sign makes the daemon
     * die like kill -9 right after the device signed, before the commit */
    e->fault_after_sign = getenv("FAPIAOFS_FAULT") && !strcmp(getenv("FAPIAOFS_FAULT"), "after-sign");
    if (getenv("FAPIAOFS_FAULT") && !strncmp(getenv("FAPIAOFS_FAULT"), "clear-after-", 12))
        e->fault_clear_step = (int)strtol(getenv("FAPIAOFS_FAULT") + 12, NULL, 10);
    if (err == FA_OK && mode == ENGINE_RUN) {
        engine_log(e, "open", "device opened, store %s", c->store_path);
        err = engine_reconcile(e) == FA_NOMEM ? FA_NOMEM : FA_OK;
    }
    if (err == FA_OK && mode == ENGINE_RUN && uploader_start(e->store, c, &e->uploader)) {
        snprintf(why, whylen, "cannot start the upload thread");
        err = FA_NOMEM;
    }
    if (err) {
        engine_close(e);
        return err;
    }
    *out = e;
    return FA_OK;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    if (e->uploader)
        uploader_stop(e->uploader);
    device_close(e->dev);
    store_close(e->store);
    fifo_lock_destroy(&e->issue_lock);
    pthread_mutex_destroy(&e->clear_lock);
    free(e);
}

store_t *engine_store(struct engine *e) { return e->store; }
struct device *engine_device(struct engine *e) { return e->dev; }
uploader_t *engine_uploader(struct engine *e) { return e->uploader; }
const struct config *engine_config(struct engine *e) { return &e->cfg; }

static enum fa_err reject(struct engine *e, int64_t draft_id, const char *name, const void *body,
                          size_t len, const char *problems, struct engine_outcome *out)
{
    enum fa_err err = store_put_rejection(e->store, draft_id, name, body, len, problems,
                                          clock_now(), &out->reject_id);
    const char *nl;
    if (err)
        return err;
    out->kind = OUTCOME_REJECTED;
    nl = strchr(problems, '\n');
    snprintf(out->reason, sizeof out->reason, "%.*s",
             (int)(nl ? (size_t)(nl - problems) : strlen(problems)), problems);
    return FA_REJECTED;
}

/* Hex SHA-256 of the normalised draft: the parsed document with sorted keys,
 * no white space and numbers as written, so re-encoding or re-indenting a
 * draft does not make it a different one. */
static int draft_hash(const struct draft *d, char hex[65])
{
    unsigned char digest[32];
    char *s = json_dumps(d->root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s)
        return -1;
    crypto_sha256(s, strlen(s), digest);
    crypto_hex(digest, 32, hex);
    free(s);
    return 0;
}

/* ---- reconciliation ------------------------------------------------------ */

void engine_log(struct engine *e, const char *operation, const char *fmt, ...)
{
    char result[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(result, sizeof result, fmt, ap);
    va_end(ap);
    store_log(e->store, clock_now(), (int64_t)getuid(), operation, result);
}

void engine_log_as(struct engine *e, int64_t uid, const char *operation, const char *fmt, ...)
{
    char result[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(result, sizeof result, fmt, ap);
    va_end(ap);
    store_log(e->store, clock_now(), uid, operation, result);
}

bool engine_clear_begin(struct engine *e)
{
    if (pthread_mutex_trylock(&e->clear_lock))
        return false;
    atomic_store(&e->clearing, true);
    return true;
}

void engine_clear_end(struct engine *e)
{
    atomic_store(&e->clearing, false);
    pthread_mutex_unlock(&e->clear_lock);
}

bool engine_clear_running(struct engine *e) { return atomic_load(&e->clearing); }
int engine_clear_fault_step(struct engine *e) { return e->fault_clear_step; }

static void alarm_for(struct engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void alarm_for(struct engine *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->rec.last, sizeof e->rec.last, fmt, ap);
    va_end(ap);
    e->rec.alarms++;
    engine_log(e, "integrity alarm", "%s", e->rec.last);
    fprintf(stderr, "fapiaofs: integrity alarm: %s\n", e->rec.last);
}

/* What a draft is parsed with: the same when it is issued and when it is
 * restored, so that a restored invoice's draft hash is the issued one's. */
static struct draft_defaults draft_defaults_of(const struct engine *e)
{
    struct draft_defaults defs = { .drawer = e->cfg.drawer };
    dec_parse(e->cfg.line_tolerance, 2, &defs.line_tolerance);
    return defs;
}

/* Restore one signed invoice from its journal entry and write-ahead intent
 * (after a crash between signing and the invoice commit, or a power loss
 * that took the unsynced invoice commit with it).  true when it failed for
 * a reason that may pass (the store, memory): its intent must stay. */
static bool restore_invoice(struct engine *e, const struct device_journal_entry *j)
{
    struct draft_defaults defs = draft_defaults_of(e);
    struct problems problems = { 0 };
    bool retry = false;           /* failed for a reason that may pass: keep the intents */
    struct store_intent in;
    struct draft d = { 0 };
    struct device_summary lines = { 0 };
    unsigned char digest[32];
    char hex[65], path[96], problem[160], *file = NULL, *receipt = NULL;
    const char *period, *total, *request_id;
    size_t file_len = 0, receipt_len = 0;
    json_t *inv = NULL, *red;
    int64_t iid, rid, issued_at = j->issued_at;
    dec_t total_dec = { 0 };
    enum fa_err err;

    err = store_find_intent(e->store, j->code, j->number, &in);
    if (err) {
        alarm_for(e, "the device signed %s-%s (journal entry %llu) but the store has no record of it",
                  j->code, j->number, (unsigned long long)j->seq);
        return err != FA_NOTFOUND;
    }
    crypto_sm3(in.canonical, in.canonical_len, digest);
    crypto_hex(digest, 32, hex);
    inv = strcmp(hex, j->sm3_hex) ? NULL : json_loadb(in.canonical, in.canonical_len, 0, NULL);
    period = json_string_value(json_object_get(inv, "period"));
    total = json_string_value(json_object_get(json_object_get(inv, "totals"), "total"));
    request_id = json_string_value(json_object_get(inv, "request_id"));
    if (!inv || !period || !total || dec_parse(total, 2, &total_dec) != DEC_OK) {
        alarm_for(e, "the device signed %s-%s but the store's write-ahead record does not match "
                     "it (SM3 %s)", j->code, j->number, j->sm3_hex);
        goto out;
    }
    clock_parse_iso(json_string_value(json_object_get(inv, "issued_at")) ?
                    json_string_value(json_object_get(inv, "issued_at")) : "", &issued_at);
    if (draft_parse(in.body, in.body_len, &defs, &d, &problems) != FA_OK || draft_hash(&d, hex))
        crypto_hex(digest, 32, hex);   /* cannot happen: the draft was valid when issued */
    red = json_object_get(inv, "red");
    if (summary_add_invoice(&lines, inv, problem, sizeof problem)) {
        alarm_for(e, "cannot restore %s-%s: %s", j->code, j->number, problem);
        goto out;
    }
    file = invoice_render(inv, j->signature, &file_len);
    snprintf(path, sizeof path, "issued/%s/%s-%s.json", period, j->code, j->number);
    if (in.receipt) {             /* the one the writer may have read already */
        receipt = in.receipt;
        receipt_len = in.receipt_len;
        in.receipt = NULL;
    } else {                      /* an intent from before store migration 8: no warnings */
        receipt = receipt_render(in.draft_name, request_id, "issued", j->code, j->number, path,
                                 issued_at, total, NULL, &receipt_len);
    }
    err = !file || !receipt ? FA_NOMEM
        : store_put_invoice(e->store, &(struct store_issued){
              .draft_id = in.draft_id, .draft_name = in.draft_name, .code = j->code,
              .number = j->number, .period = period, .issued_at = issued_at,
              .request_id = request_id, .draft_hash = hex, .total_fen = dec_to_fen(total_dec),
              .json = file, .json_len = file_len, .receipt = receipt, .receipt_len = receipt_len,
              .red_code = json_string_value(json_object_get(red, "code")),
              .red_number = json_string_value(json_object_get(red, "number")),
              .lines = &lines }, &iid, &rid);
    if (err) {
        alarm_for(e, "cannot restore %s-%s: %s", j->code, j->number, fa_err_str(err));
        retry = true;
        goto out;
    }
    e->rec.restored++;
    snprintf(e->rec.last, sizeof e->rec.last, "restored %s-%s (draft %s) from the device journal",
             j->code, j->number, in.draft_name);
    engine_log(e, "reconcile", "%s", e->rec.last);
out:
    json_decref(inv);
    draft_free(&d);
    problems_free(&problems);
    free(file);
    free(receipt);
    store_intent_free(&in);
    return retry;
}

/* issue_lock held */
static enum fa_err reconcile_locked(struct engine *e)
{
    struct device_journal_entry batch[RECONCILE_BATCH];
    struct device_status ds;
    struct store_counts sc;
    uint64_t from;
    enum fa_err err;
    bool retry = false;
    int n, i;

    err = device_get_status(e->dev, &ds);
    if (err == FA_OK)
        err = store_counts(e->store, &sc);
    if (err)
        return err;
    e->rec.at = clock_now();
    e->rec.journal = ds.signed_count;
    e->rec.store = sc.invoices;
    from = sc.invoices > RECONCILE_OVERLAP ? (uint64_t)(sc.invoices - RECONCILE_OVERLAP) : 1;
    while ((int64_t)from <= ds.signed_count) {
        err = device_read_journal(e->dev, from, batch, RECONCILE_BATCH, &n);
        if (err || n == 0)
            break;
        for (i = 0; i < n; i++)
            if (!store_has_number(e->store, batch[i].code, batch[i].number))
                retry |= restore_invoice(e, &batch[i]);
        from = batch[n - 1].seq + 1;
    }
    if (err == FA_OK && store_counts(e->store, &sc) == FA_OK && sc.invoices > ds.signed_count)
        alarm_for(e, "the store has %lld invoices but the device signed only %lld",
                  (long long)sc.invoices, (long long)ds.signed_count);
    e->rec.store = sc.invoices;
    if (err == FA_OK && !retry)
        store_drop_intents(e->store);   /* no draft is in flight: the rest were never signed */
    return err;
}

enum fa_err engine_reconcile(struct engine *e)
{
    enum fa_err err;
    fifo_lock_acquire(&e->issue_lock);
    err = reconcile_locked(e);
    fifo_lock_release(&e->issue_lock);
    return err;
}

void engine_reconcile_report(struct engine *e, struct engine_reconcile *out)
{
    fifo_lock_acquire(&e->issue_lock);
    *out = e->rec;
    fifo_lock_release(&e->issue_lock);
}

/* SPEC §2.1 exactly once: an issued request_id gives a "duplicate" receipt for
 * the same content, a rejection for other content.  FA_NOTFOUND: go on. */
static enum fa_err check_request_id(struct engine *e, int64_t draft_id, const char *name,
                                    const void *body, size_t len, const struct draft *d,
                                    const char *hash, struct engine_outcome *out)
{
    struct store_invoice_ref ref;
    char path[80], total[DEC_FMT_MAX], problem[512], *receipt;
    size_t receipt_len = 0;
    enum fa_err err;

    if (!d->request_id)
        return FA_NOTFOUND;
    err = store_find_request(e->store, d->request_id, &ref);
    if (err)
        return err;
    snprintf(path, sizeof path, "issued/%s/%s-%s.json", ref.period, ref.code, ref.number);
    if (strcmp(ref.draft_hash, hash)) {
        snprintf(problem, sizeof problem,
                 "request_id: %s was already issued as invoice %s-%s (%s) with different "
                 "content; use a new request_id for a new invoice\n",
                 d->request_id, ref.code, ref.number, path);
        return reject(e, draft_id, name, body, len, problem, out);
    }
    receipt = receipt_render(name, d->request_id, "duplicate", ref.code, ref.number, path,
                             ref.issued_at, dec_format(dec_from_fen(ref.total_fen), 2, total),
                             NULL, &receipt_len);
    if (!receipt)
        return FA_NOMEM;
    err = store_put_duplicate(e->store, draft_id, name, ref.invoice_id, receipt, receipt_len,
                              clock_now(), &out->receipt_id);
    free(receipt);
    if (err == FA_OK) {
        out->kind = OUTCOME_DUPLICATE;
        out->invoice_id = ref.invoice_id;
        snprintf(out->period, sizeof out->period, "%s", ref.period);
        snprintf(out->invoice_name, sizeof out->invoice_name, "%s-%s.json", ref.code, ref.number);
    }
    return err;
}

/* Steps 3-6 for a valid draft; the caller holds issue_lock. */
/* The invoice's amounts by tax rate, for the device's period summary. */
static void sum_rates(const struct draft *d, struct device_issue_req *req)
{
    int i, r;
    req->nrates = 0;
    for (i = 0; i < d->nitems; i++) {
        int pm = (int)(d->items[i].tax_rate.v / (DEC_SCALE / 1000));
        for (r = 0; r < req->nrates && req->rates[r].rate_pm != pm; r++)
            ;
        if (r == req->nrates) {
            if (r == DEVICE_MAX_RATES)
                continue;   /* cannot happen: there are 13 rates */
            req->rates[req->nrates++] = (struct device_rate_sum){ .rate_pm = pm };
        }
        req->rates[r].amount_fen += dec_to_fen(d->items[i].amount);
        req->rates[r].tax_fen += dec_to_fen(d->items[i].tax);
    }
}

/* SPEC §5.3: while the platform has not accepted them, invoices are
 * "offline"; past the device's offline hours (the oldest) or offline amount
 * (the blue ones, this one included) no more are issued until uploads catch
 * up.  FA_DEV_OFFLINE_LIMIT with the reason in words, or FA_OK. */
static enum fa_err check_offline(struct engine *e, const struct device_issue_req *req,
                                 char *reason, size_t len)
{
    struct device_status ds;
    struct store_counts sc;
    char a[DEC_FMT_MAX], b[DEC_FMT_MAX], when[32];

    if (device_get_status(e->dev, &ds) != FA_OK || store_queue_counts(e->store, &sc) != FA_OK)
        return FA_OK;   /* the device's own refusal will say what is wrong */
    if (req->total_fen > ds.limit_fen || -req->total_fen > ds.limit_fen)
        return FA_OK;   /* above the per-invoice limit: rejected by the device, not delayed */
    if (ds.offline_hours > 0 && sc.upload_oldest_issued_at &&
        req->issued_at - sc.upload_oldest_issued_at > ds.offline_hours * 3600) {
        snprintf(reason, len, "offline limit reached: an invoice issued %s is not uploaded after "
                 "%lld hours (platform unreachable?)", clock_iso_cst(sc.upload_oldest_issued_at, when),
                 (long long)ds.offline_hours);
        return FA_DEV_OFFLINE_LIMIT;
    }
    if (ds.offline_amount_fen > 0 && req->total_fen > 0 &&
        sc.upload_queued_blue_fen + req->total_fen > ds.offline_amount_fen) {
        snprintf(reason, len, "offline limit reached: %s not uploaded, with this draft more than "
                 "the offline amount %s", dec_format(dec_from_fen(sc.upload_queued_blue_fen), 2, a),
                 dec_format(dec_from_fen(ds.offline_amount_fen), 2, b));
        return FA_DEV_OFFLINE_LIMIT;
    }
    return FA_OK;
}

/* SPEC §5.3: what a draft waiting for a locked device says in status. */
static void locked_reason(struct engine *e, char *reason, size_t len)
{
    struct device_status ds;
    char period[8];
    int month;

    if (device_get_status(e->dev, &ds) != FA_OK || clock_parse_period(ds.cleared_through, &month)) {
        snprintf(reason, len, "device locked: lock date passed (echo clear > device/clear)");
        return;
    }
    snprintf(reason, len, "device locked: period %s not cleared (echo clear > device/clear)",
             clock_month_period(month + 1, period));
}

/* A red draft against its blue invoice (SPEC §3.5); FA_OK to go on. */
static enum fa_err resolve_red(struct engine *e, int64_t draft_id, const char *name,
                               const void *body, size_t len, struct draft *d,
                               struct engine_outcome *out)
{
    struct problems problems = { 0 };
    int64_t reversed = 0;
    char *blue = NULL;
    size_t blue_len = 0;
    enum fa_err err;

    err = store_get_blue(e->store, d->red.code, d->red.number, &blue, &blue_len, &reversed);
    if (err == FA_NOTFOUND)
        problems_add(&problems, "red.number: %s-%s was not issued by this device (no such "
                                "invoice in the store)", d->red.code, d->red.number);
    else if (err)
        return err;
    else
        red_resolve(d, blue, blue_len, reversed, &problems);
    free(blue);
    if (problems.count)
        err = reject(e, draft_id, name, body, len, problems.text, out);
    problems_free(&problems);
    return err;
}

static enum fa_err issue_valid(struct engine *e, int64_t draft_id, const char *name,
                               const void *body, size_t len, struct draft *d,
                               struct engine_outcome *out)
{
    struct device_issue_fields f;
    struct device_info info;
    struct device_summary lines = { 0 };
    struct invoice_meta meta;
    struct device_issue_req req;
    char sig[CRYPTO_SIG_B64_MAX], hash[65], path[80], total[DEC_FMT_MAX];
    char *canonical = NULL, *file = NULL, *receipt = NULL;
    size_t canonical_len = 0, file_len = 0, receipt_len = 0;
    json_t *inv = NULL, *warnings = NULL;
    enum fa_err err;

    if (draft_hash(d, hash))
        return FA_NOMEM;
    err = check_request_id(e, draft_id, name, body, len, d, hash, out);
    if (err != FA_NOTFOUND)
        return err;
    if (d->red.present && (err = resolve_red(e, draft_id, name, body, len, d, out)) != FA_OK)
        return err;
    req.type = d->type;
    req.total_fen = dec_to_fen(d->total);
    req.issued_at = clock_now();
    sum_rates(d, &req);
    err = device_get_info(e->dev, &info);
    if (err == FA_OK)
        err = check_offline(e, &req, out->reason, sizeof out->reason);
    if (err == FA_OK)
        err = device_issue_begin(e->dev, &req, &f);
    if (err == FA_DEV_LIMIT) {
        char problem[256], limit[DEC_FMT_MAX];
        struct device_status ds;
        device_get_status(e->dev, &ds);
        snprintf(problem, sizeof problem,
                 "totals.total: %s exceeds the device's per-invoice limit of %s (单张开票限额)\n",
                 dec_format(d->total, 2, total), dec_format(dec_from_fen(ds.limit_fen), 2, limit));
        return reject(e, draft_id, name, body, len, problem, out);
    }
    if (fa_err_is_wait(err)) {
        out->kind = OUTCOME_WAITING;
        if (err == FA_DEV_LOCKED)
            locked_reason(e, out->reason, sizeof out->reason);
        else if (err != FA_DEV_OFFLINE_LIMIT)   /* that one has its own words already */
            snprintf(out->reason, sizeof out->reason, "%s", fa_err_str(err));
        err = store_set_draft_waiting(e->store, draft_id, out->reason);
        return err;
    }
    if (err)
        return err;

    meta = (struct invoice_meta){ .draft_name = name, .issued_at = req.issued_at,
                                  .seller = &info, .dev = &f };
    inv = invoice_build(d, &meta);
    canonical = inv ? invoice_canonical(inv, &canonical_len) : NULL;
    if (!canonical) {
        err = FA_NOMEM;
        goto out;
    }
    if (summary_add_invoice(&lines, inv, out->reason, sizeof out->reason)) {
        err = FA_IO;   /* cannot happen: a valid draft has every field it needs */
        goto out;
    }
    /* the receipt needs no signature: it goes into the intent, for a restore */
    clock_period(req.issued_at, out->period);
    snprintf(out->invoice_name, sizeof out->invoice_name, "%s-%s.json", f.code, f.number);
    snprintf(path, sizeof path, "issued/%s/%s", out->period, out->invoice_name);
    dec_format(d->total, 2, total);
    warnings = problems_json(&d->warnings);
    receipt = receipt_render(name, d->request_id, "issued", f.code, f.number, path,
                             req.issued_at, total, warnings, &receipt_len);
    if (!receipt) {
        err = FA_NOMEM;
        goto out;
    }
    err = store_put_intent(e->store, draft_id, f.code, f.number, canonical, canonical_len,
                           receipt, receipt_len, req.issued_at);
    if (err)
        goto out;
    err = device_issue_sign(e->dev, f.code, f.number, canonical, canonical_len, sig);
    if (err == FA_DEV_IO)
        reconcile_locked(e);   /* did it sign before failing? */
    if (err)
        goto out;
    if (e->fault_after_sign)
        _exit(86);
    file = invoice_render(inv, sig, &file_len);
    if (!file) {
        err = FA_NOMEM;
        goto out;
    }
    err = store_put_invoice(e->store, &(struct store_issued){
                                .draft_id = draft_id, .draft_name = name, .code = f.code,
                                .number = f.number, .period = out->period,
                                .issued_at = req.issued_at, .request_id = d->request_id,
                                .draft_hash = hash, .total_fen = req.total_fen,
                                .json = file, .json_len = file_len,
                                .receipt = receipt, .receipt_len = receipt_len,
                                .red_code = d->red.present ? d->red.code : NULL,
                                .red_number = d->red.present ? d->red.number : NULL,
                                .lines = &lines },
                            &out->invoice_id, &out->receipt_id);
    if (err == FA_OK)
        out->kind = OUTCOME_ISSUED;
out:
    json_decref(inv);
    json_decref(warnings);
    free(canonical);
    free(file);
    free(receipt);
    return err;
}

static enum fa_err process(struct engine *e, int64_t draft_id, const char *name, const void *body,
                           size_t len, struct engine_outcome *out)
{
    struct draft_defaults defs = draft_defaults_of(e);
    struct problems problems = { 0 };
    struct draft d;
    enum fa_err err;

    err = draft_parse(body, len, &defs, &d, &problems);
    if (err == FA_REJECTED) {
        err = reject(e, draft_id, name, body, len, problems.text ? problems.text : "invalid\n",
                     out);
    } else if (err == FA_OK) {
        fifo_lock_acquire(&e->issue_lock);
        err = issue_valid(e, draft_id, name, body, len, &d, out);
        fifo_lock_release(&e->issue_lock);
        if (err == FA_OK && out->kind == OUTCOME_ISSUED)
            uploader_kick(e->uploader);
    }
    draft_free(&d);
    problems_free(&problems);
    return err;
}

enum fa_err engine_submit(struct engine *e, const char *name, const void *body, size_t len,
                          struct engine_outcome *out)
{
    enum fa_err err;

    memset(out, 0, sizeof *out);
    err = store_add_draft(e->store, name, body, len, clock_now(), &out->draft_id);
    if (err)
        return err;
    return process(e, out->draft_id, name, body, len, out);
}

enum fa_err engine_retry(struct engine *e, int64_t draft_id, const char *name, const void *body,
                         size_t len, struct engine_outcome *out)
{
    memset(out, 0, sizeof *out);
    out->draft_id = draft_id;
    return process(e, draft_id, name, body, len, out);
}

enum fa_err engine_cancel(struct engine *e, int64_t draft_id)
{
    return store_cancel_draft(e->store, draft_id, clock_now());
}
