/*
 * engine.c — the issuing pipeline; see engine.h.
 *
 * Order of durable steps for one draft, and what a crash after each leaves:
 *   1. store_add_draft        the draft is on record (state "received");
 *   2. validate               rejected → store_put_rejection, done;
 *   3. device_issue_begin     the device reserves a number (not consumed);
 *   4. store_put_intent       write-ahead: the canonical bytes to be signed;
 *   5. device_issue_sign      the device consumes the number, journals it;
 *   6. store_put_invoices     invoice + receipt + upload queue, one commit.
 * A crash between 5 and 6 leaves a journal entry with an intent whose bytes
 * hash to it: reconciliation at mount restores the invoice from the two.  So
 * does a 6 that fails (a full disk): the next round first restores it, and
 * issues nothing until that works (restore_pending); its draft waits in
 * pending/ meanwhile (close returns 0) and is issued as that invoice.
 * So only 4 and 5 are synced (two syncs per invoice): 1 is made durable by
 * 4's sync, and 6 by the next synced commit — a power loss that takes 6
 * with it leaves 4 and 5, the same state as a crash between them.
 *
 * Group commit: with several writers, 3-6 run for a batch of queued drafts
 * at once (issue_queued): consecutive numbers reserved, the intents in one
 * transaction, one journal write signed and synced by the device — two
 * syncs per batch, where the syncs, not the CPU, were the limit.
 */
#include <assert.h>
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
#include "engine/text.h"

/* A standing problem (an old gap, a conflicting restore, a restore that
 * keeps failing) is found again by every reconciliation: at each device
 * error, each clearing, and before each round while a restore is pending.
 * It is one alarm, counted and logged once per mount; more distinct ones
 * than this are counted again when they come back. */
#define ALARMS_REMEMBERED 256

struct engine {
    struct config cfg;
    store_t *store;
    struct device *dev;
    uploader_t *uploader;
    struct fifo_lock issue_lock;  /* one batch at a time through the device, in arrival order */
    pthread_mutex_t queue_lock;   /* the drafts waiting to be issued (group commit) */
    struct issue_job *queue_head, **queue_tail;
    bool leading;                 /* a writer is issuing batches from the queue */
    struct engine_reconcile rec;  /* under issue_lock */
    uint64_t alarm_seen[ALARMS_REMEMBERED];   /* under issue_lock: hashes of the alarms */
    unsigned alarm_seen_n;                    /* raised, counted once (a ring) */
    bool restore_pending;         /* under issue_lock: signed invoices the store lacks, whose
                                   * restore may yet work: issuing waits for it */
    bool fault_after_sign;        /* tests: die between signing and commit */
    int fault_sign_lost;          /* tests: the next signature's answer is lost (2: and the
                                   * reconciliation after it cannot read the device) */
    int fault_reconciles;         /* tests: the next this many reconciliations cannot read the device */
    int fault_commits;            /* tests: the next this many invoice commits fail */
    int fault_clear_step;         /* tests: die after this step of a clearing */
    pthread_mutex_t clear_lock;   /* one clearing at a time */
    atomic_bool clearing;         /* held: for the open() of a second writer */
};

/* FAPIAOFS_FAULT (engine_open lists them); an unknown word is ignored. */
static void set_faults(struct engine *e, const char *list)
{
    const char *w = list;

    while (*w) {
        size_t len = strcspn(w, ",");
        if (len == 10 && !strncmp(w, "after-sign", len))
            e->fault_after_sign = true;
        else if (len == 14 && !strncmp(w, "sign-lost-once", len))
            e->fault_sign_lost = 1;
        else if (len == 16 && !strncmp(w, "sign-lost-unread", len))
            e->fault_sign_lost = 2;
        else if (!strncmp(w, "commit-fails-", 13))
            e->fault_commits = strncmp(w + 13, "once", 4) ? (int)strtol(w + 13, NULL, 10) : 1;
        else if (!strncmp(w, "reconcile-fails-", 16))
            e->fault_reconciles = (int)strtol(w + 16, NULL, 10);
        else if (!strncmp(w, "clear-after-", 12))
            e->fault_clear_step = (int)strtol(w + 12, NULL, 10);
        w += len + (w[len] == ',');
    }
}

#define RECONCILE_BATCH 64
#define RECONCILE_OVERLAP 16      /* journal entries before the store's count also checked */
/* a whole batch signed and lost from the store must be within the overlap */
_Static_assert(RECONCILE_OVERLAP >= DEVICE_BATCH_MAX, "reconciliation must cover a batch");

enum fa_err engine_open(const struct config *c, enum engine_mode mode, struct engine **out,
                        char *why, size_t whylen)
{
    struct engine *e = calloc(1, sizeof *e);
    const char *fault;
    enum fa_err err;

    if (!e)
        return FA_NOMEM;
    e->cfg = *c;
    fifo_lock_init(&e->issue_lock);
    pthread_mutex_init(&e->queue_lock, NULL);
    e->queue_tail = &e->queue_head;
    pthread_mutex_init(&e->clear_lock, NULL);
    clock_set_file(c->clock_file);
    err = store_open(c->store_path, &e->store, why, whylen);
    if (err == FA_OK)
        err = device_open(c, mode == ENGINE_RUN, &e->dev, why, whylen);
    /* test-only fault injection, FAPIAOFS_FAULT=
     *   after-sign         die like kill -9 right after the device signed;
     *   sign-lost-once     the device signs the first round, and its answer is
     *                      lost on the way back (a USB transfer that failed);
     *   sign-lost-unread   that, and the reconciliation after it cannot read
     *                      the device;
     *   commit-fails-once  the first invoice commit fails, as a full disk makes it;
     *   commit-fails-N     the first N fail (restores from the journal included);
     *   reconcile-fails-N  the first N reconciliations cannot read the device;
     *   clear-after-N      die after step N of a clearing.
     * Several may be given, separated by commas. */
    fault = getenv("FAPIAOFS_FAULT") ? getenv("FAPIAOFS_FAULT") : "";
    set_faults(e, fault);
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
    pthread_mutex_destroy(&e->queue_lock);
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
    char text[sizeof e->rec.last];
    uint64_t hash = 14695981039346656037ULL;   /* FNV-1a */
    unsigned i, n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (i = 0; text[i]; i++)
        hash = (hash ^ (unsigned char)text[i]) * 1099511628211ULL;
    n = e->alarm_seen_n < ALARMS_REMEMBERED ? e->alarm_seen_n : ALARMS_REMEMBERED;
    for (i = 0; i < n; i++)
        if (e->alarm_seen[i] == hash)
            return;   /* raised already: see ALARMS_REMEMBERED */
    e->alarm_seen[e->alarm_seen_n++ % ALARMS_REMEMBERED] = hash;
    memcpy(e->rec.last, text, sizeof text);
    e->rec.alarms++;
    engine_log(e, "integrity alarm", "%s", e->rec.last);
    fprintf(stderr, "fapiaofs: integrity alarm: %s\n", e->rec.last);
}

/* Tests (FAPIAOFS_FAULT=commit-fails-N): whether this invoice commit is
 * one that fails, as a full disk would make it. */
static bool commit_fault_due(struct engine *e)
{
    if (e->fault_commits <= 0)
        return false;
    e->fault_commits--;
    return true;
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
 * that took the unsynced invoice commit with it).  FA_OK, or the store's or
 * memory's failure: then its intent must stay (FA_EXISTS, a conflict with
 * what the store holds, will not pass by trying again; the others may). */
static enum fa_err restore_invoice(struct engine *e, const struct device_journal_entry *j)
{
    struct draft_defaults defs = draft_defaults_of(e);
    struct problems problems = { 0 };
    enum fa_err failed = FA_OK;   /* the store or memory failed: keep the intents */
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
        return err == FA_NOTFOUND ? FA_OK : err;
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
        : commit_fault_due(e) ? FA_IO
        : store_put_invoices(e->store, &(struct store_issued){
              .draft_id = in.draft_id, .draft_name = in.draft_name, .code = j->code,
              .number = j->number, .period = period, .issued_at = issued_at,
              .request_id = request_id, .draft_hash = hex, .total_fen = dec_to_fen(total_dec),
              .json = file, .json_len = file_len, .receipt = receipt, .receipt_len = receipt_len,
              .red_code = json_string_value(json_object_get(red, "code")),
              .red_number = json_string_value(json_object_get(red, "number")),
              .lines = &lines }, 1, &iid, &rid);
    if (err) {
        alarm_for(e, "cannot restore %s-%s: %s", j->code, j->number, fa_err_str(err));
        failed = err;
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
    return failed;
}

/* Journal entries from..to (inclusive) the store lacks: restored where
 * their intent allows.  How many were missing into *missing; *keep set when
 * a restore failed (its intent stays), *again to its error when it may pass. */
static enum fa_err reconcile_range(struct engine *e, uint64_t from, uint64_t to, int64_t *missing,
                                   bool *keep, enum fa_err *again)
{
    struct device_journal_entry batch[RECONCILE_BATCH];
    enum fa_err err = FA_OK;
    int n, i;

    while (from <= to) {
        err = device_read_journal(e->dev, from, batch, RECONCILE_BATCH, &n);
        if (err || n == 0)
            break;
        for (i = 0; i < n && batch[i].seq <= to; i++)
            if (!store_has_number(e->store, batch[i].code, batch[i].number)) {
                enum fa_err failed = restore_invoice(e, &batch[i]);
                (*missing)++;
                *keep |= failed != FA_OK;
                if (failed != FA_OK && failed != FA_EXISTS)
                    *again = failed;
            }
        from = batch[n - 1].seq + 1;
    }
    return err;
}

/* issue_lock held.  The journal is compared with the store from a little
 * before the store's count (what a crash or a power loss leaves missing is
 * at the end); when the store lacks more invoices than that part of the
 * journal explains, the gap is older — a round whose commit failed while
 * later ones went through — and the rest of the journal is read as well.
 * A restore that failed for a reason that may pass (a full disk: FA_NOSPC)
 * gives its error, and issuing waits for it (restore_pending). */
static enum fa_err reconcile_locked(struct engine *e)
{
    struct device_status ds;
    struct store_counts sc;
    uint64_t from;
    int64_t missing = 0;
    enum fa_err err, again = FA_OK;
    bool keep = false;

    if (e->fault_reconciles > 0) {
        e->fault_reconciles--;
        err = FA_DEV_IO;
    } else {
        err = device_get_status(e->dev, &ds);
    }
    if (err == FA_OK)
        err = store_counts(e->store, &sc);
    if (err)
        goto cannot;
    e->rec.at = clock_now();
    e->rec.journal = ds.signed_count;
    e->rec.store = sc.invoices;
    from = sc.invoices > RECONCILE_OVERLAP ? (uint64_t)(sc.invoices - RECONCILE_OVERLAP) : 1;
    err = reconcile_range(e, from, (uint64_t)ds.signed_count, &missing, &keep, &again);
    if (err == FA_OK && from > 1 && ds.signed_count - sc.invoices > missing)
        err = reconcile_range(e, 1, from - 1, &missing, &keep, &again);
    if (err == FA_OK && store_counts(e->store, &sc) == FA_OK && sc.invoices > ds.signed_count)
        alarm_for(e, "the store has %lld invoices but the device signed only %lld",
                  (long long)sc.invoices, (long long)ds.signed_count);
    e->rec.store = sc.invoices;
    if (err == FA_OK && !keep)
        store_drop_intents(e->store);   /* no draft is in flight: the rest were never signed */
    if (err == FA_OK) {
        e->restore_pending = again != FA_OK;
        return again;
    }
cannot:
    /* Whether the device signed something the store lacks is not known, and
     * a draft issued now could be a second invoice for a repeated request_id
     * or take its place in the numbering: issuing waits for a reconciliation
     * that works (issue_batch tries one before each round). */
    e->restore_pending = true;
    snprintf(e->rec.last, sizeof e->rec.last, "cannot compare the device journal with the store "
             "(%s)", fa_err_str(err));
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

void engine_retry_restore(struct engine *e)
{
    fifo_lock_acquire(&e->issue_lock);
    if (e->restore_pending)
        reconcile_locked(e);
    fifo_lock_release(&e->issue_lock);
}

void engine_reconcile_report(struct engine *e, struct engine_reconcile *out)
{
    fifo_lock_acquire(&e->issue_lock);
    *out = e->rec;
    fifo_lock_release(&e->issue_lock);
}

/* The outcome of a draft that ends as the invoice ref names. */
static void outcome_of_invoice(struct engine_outcome *out, enum outcome_kind kind,
                               const struct store_invoice_ref *ref)
{
    out->kind = kind;
    out->invoice_id = ref->invoice_id;
    snprintf(out->period, sizeof out->period, "%s", ref->period);
    snprintf(out->invoice_name, sizeof out->invoice_name, "%s-%s.json", ref->code, ref->number);
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
    if (err == FA_OK)
        outcome_of_invoice(out, OUTCOME_DUPLICATE, &ref);
    return err;
}

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
/* What the drafts of one round are checked against: read once per round,
 * since nothing the round does changes it before the round commits. */
struct round_view {
    enum fa_err info_err;         /* FA_OK: info is the device's */
    struct device_info info;
    bool limits_known;            /* ds and sc were read */
    struct device_status ds;
    struct store_counts sc;       /* the upload queue, with the round's blue amounts added */
};

static void round_view_read(struct engine *e, struct round_view *v)
{
    memset(v, 0, sizeof *v);
    v->info_err = device_get_info(e->dev, &v->info);
    v->limits_known = device_get_status(e->dev, &v->ds) == FA_OK &&
                      store_queue_counts(e->store, &v->sc) == FA_OK;
}

/* Why uploads are behind, for a draft waiting on an offline limit: an
 * invoice the platform refused (which no waiting mends), or the platform's
 * last error. */
static void offline_cause(struct engine *e, char *buf, size_t len)
{
    struct store_refused r;
    struct platform_status ps = { 0 };

    if (store_first_refused(e->store, &r) == FA_OK) {
        snprintf(buf, len, "the platform refused %.15s-%.15s%s: see platform/status", r.code, r.number,
                 r.count > 1 ? " and more" : "");
        return;
    }
    if (e->uploader)
        uploader_status(e->uploader, &ps);
    if (strlen(ps.last_error) > 60)   /* the reason has room for the start only */
        snprintf(buf, len, "platform: %.*s... (platform/status has it all)",
                 (int)text_utf8_cut(ps.last_error, 60), ps.last_error);
    else if (ps.last_error[0])
        snprintf(buf, len, "platform: %s", ps.last_error);
    else
        snprintf(buf, len, "platform unreachable?");
}

static enum fa_err check_offline(struct engine *e, const struct round_view *v,
                                 const struct device_issue_req *req, char *reason, size_t len,
                                 bool *amount)
{
    const struct device_status ds = v->ds;
    const struct store_counts sc = v->sc;
    char a[DEC_FMT_MAX], b[DEC_FMT_MAX], when[32], cause[128];

    if (!v->limits_known)
        return FA_OK;   /* the device's own refusal will say what is wrong */
    if (device_req_above_limit(req, ds.limit_fen))
        return FA_OK;   /* above the per-invoice limit: rejected by the device, not delayed */
    /* Alone above the offline amount: waiting would be for ever, with every
     * blue draft after it behind it (an invoice is offline until the platform
     * has it, so the limit counts it whatever the queue). */
    if (ds.offline_amount_fen > 0 && req->total_fen > ds.offline_amount_fen)
        return FA_DEV_OFFLINE_NEVER;
    if (ds.offline_hours > 0 && sc.upload_oldest_issued_at &&
        req->issued_at - sc.upload_oldest_issued_at > ds.offline_hours * 3600) {
        offline_cause(e, cause, sizeof cause);
        snprintf(reason, len, "offline limit reached: an invoice issued %s is not uploaded after "
                 "%lld hours (%s)", clock_iso_cst(sc.upload_oldest_issued_at, when),
                 (long long)ds.offline_hours, cause);
        return FA_DEV_OFFLINE_LIMIT;
    }
    if (ds.offline_amount_fen > 0 && req->total_fen > 0 &&
        sc.upload_queued_blue_fen + req->total_fen > ds.offline_amount_fen) {
        *amount = true;
        offline_cause(e, cause, sizeof cause);
        snprintf(reason, len, "offline limit reached: %s not uploaded, with this draft more than "
                 "the offline amount %s (%s)", dec_format(dec_from_fen(sc.upload_queued_blue_fen), 2, a),
                 dec_format(dec_from_fen(ds.offline_amount_fen), 2, b), cause);
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

static void blue_not_found(const struct draft *d, struct problems *p)
{
    problems_add(p, "red.number: %s-%s was not issued by this device (no such invoice in the "
                    "store)", d->red.code, d->red.number);
}

/* A red draft rejected by its own checks, when it names a blue invoice well
 * enough to look it up: the problems that invoice adds (SPEC §3.2, all
 * problems at once).  A store error adds nothing: the draft is rejected. */
static void red_identity_problems(struct engine *e, const struct draft *d, struct problems *p)
{
    char *blue = NULL;
    size_t blue_len = 0;
    enum fa_err err;

    if (!d->red.names_blue)
        return;
    err = store_get_blue(e->store, d->red.code, d->red.number, &blue, &blue_len);
    if (err == FA_NOTFOUND)
        blue_not_found(d, p);
    else if (err == FA_OK)
        red_identity(d, blue, blue_len, p);
    free(blue);
}

/* A red draft against its blue invoice (SPEC §3.5); FA_OK to go on. */
static enum fa_err resolve_red(struct engine *e, int64_t draft_id, const char *name,
                               const void *body, size_t len, struct draft *d,
                               struct engine_outcome *out)
{
    struct problems problems = { 0 };
    struct red_sums reversed = { 0 };
    char *blue = NULL;
    size_t blue_len = 0;
    enum fa_err err;

    assert(d->red.names_blue);   /* draft_parse() accepted the draft */
    err = store_get_blue(e->store, d->red.code, d->red.number, &blue, &blue_len);
    if (err == FA_OK)
        err = store_each_red(e->store, d->red.code, d->red.number, red_sums_add_invoice, &reversed);
    if (err == FA_NOTFOUND)
        blue_not_found(d, &problems);
    else if (err == FA_OK)
        red_resolve(d, blue, blue_len, &reversed, &problems);
    free(blue);
    if (err && err != FA_NOTFOUND)
        return err;
    if (problems.count)
        err = reject(e, draft_id, name, body, len, problems.text, out);
    problems_free(&problems);
    return err;
}

/* One writer's valid draft, from the queue to its outcome.  The fields
 * after `next` belong to the leader between reserving and committing. */
struct issue_job {
    int64_t draft_id;
    const char *name;
    const void *body;
    size_t len;
    const char *behind;           /* an earlier draft that waits (engine_submit) */
    bool retry;                   /* a waiting draft tried again (engine_retry) */
    struct draft *d;
    char hash[65];                /* draft_hash, by the writer before it queues */
    struct engine_outcome *out;
    enum fa_err err;
    bool done;                    /* under queue_lock */
    pthread_cond_t wake;          /* done, or the writer is to lead */
    struct issue_job *next;

    struct device_issue_req req;
    struct device_issue_fields f;
    struct device_summary lines;
    json_t *inv, *warnings;
    char *canonical, *receipt;
    size_t canonical_len, receipt_len;
};

static void job_release(struct issue_job *j)
{
    json_decref(j->inv);
    json_decref(j->warnings);
    free(j->canonical);
    free(j->receipt);
    j->inv = j->warnings = NULL;
    j->canonical = j->receipt = NULL;
}

enum prepared { PREP_DONE, PREP_RESERVED, PREP_FAILED_RESERVED };

/* A draft waits with a number already signed when its invoice commit failed
 * (sign_round); reconciliation restores that invoice, and the draft is then
 * issued as it, not a second time.  FA_NOTFOUND: it has no invoice yet. */
static enum fa_err restored_outcome(struct engine *e, int64_t draft_id, struct engine_outcome *out)
{
    struct store_invoice_ref ref;
    enum fa_err err = store_find_draft_invoice(e->store, draft_id, &ref);

    if (err == FA_OK)
        outcome_of_invoice(out, OUTCOME_ISSUED, &ref);
    return err;
}

/* Steps 3-4 for a valid draft: refusals and duplicates end here (PREP_DONE,
 * j->err and j->out say how); otherwise the device reserves a number — the
 * first of a round from scratch, the others after it — and the invoice is
 * built (PREP_RESERVED).  PREP_FAILED_RESERVED: it failed after its number
 * was reserved, so the round must stop before reserving another.  The
 * caller holds issue_lock. */
static enum prepared prepare_job(struct engine *e, struct issue_job *j, bool first,
                                 const struct round_view *v)
{
    struct draft *d = j->d;
    struct engine_outcome *out = j->out;
    struct invoice_meta meta;
    char path[80], total[DEC_FMT_MAX];
    enum fa_err err;

    err = j->retry ? restored_outcome(e, j->draft_id, out) : FA_NOTFOUND;
    if (err == FA_NOTFOUND)
        err = check_request_id(e, j->draft_id, j->name, j->body, j->len, d, j->hash, out);
    if (err != FA_NOTFOUND)
        goto done;   /* issued already, a duplicate, or refused */
    if (d->red.present && (err = resolve_red(e, j->draft_id, j->name, j->body, j->len, d, out)))
        goto done;
    j->req.type = d->type;
    j->req.total_fen = dec_to_fen(d->total);
    j->req.issued_at = clock_now();
    sum_rates(d, &j->req);
    err = v->info_err;
    if (err == FA_OK)
        err = check_offline(e, v, &j->req, out->reason, sizeof out->reason, &out->waits_for_amount);
    if (err == FA_OK && j->behind && j->req.total_fen > 0) {   /* it would go: not before that one */
        snprintf(out->reason, sizeof out->reason, "behind %.160s, which came earlier and waits; drafts "
                 "are issued in arrival order", j->behind);
        err = FA_WAIT_BEHIND;
    }
    if (err == FA_OK)
        err = first ? device_issue_begin(e->dev, &j->req, &j->f)
                    : device_issue_reserve_next(e->dev, &j->req, &j->f);
    if (err == FA_DEV_LIMIT || err == FA_DEV_OFFLINE_NEVER) {
        char problem[320], limit[DEC_FMT_MAX];
        if (err == FA_DEV_LIMIT)
            snprintf(problem, sizeof problem, "totals.amount: %s exceeds the device's per-invoice "
                     "limit of %s (单张开票限额, excluding tax)\n", dec_format(d->total_amount, 2, total),
                     dec_format(dec_from_fen(v->ds.limit_fen), 2, limit));
        else
            snprintf(problem, sizeof problem, "totals.total: %s is more than the device's offline "
                     "amount limit of %s (离线开票限额): every invoice counts as offline until the "
                     "platform has it, so this one could never be issued\n",
                     dec_format(d->total, 2, total), dec_format(dec_from_fen(v->ds.offline_amount_fen),
                                                                2, limit));
        err = reject(e, j->draft_id, j->name, j->body, j->len, problem, out);
        goto done;
    }
    if (fa_err_is_wait(err)) {
        out->kind = OUTCOME_WAITING;
        if (err == FA_DEV_LOCKED)
            locked_reason(e, out->reason, sizeof out->reason);
        else if (err != FA_DEV_OFFLINE_LIMIT && err != FA_WAIT_BEHIND)   /* their own words */
            snprintf(out->reason, sizeof out->reason, "%s", fa_err_str(err));
        err = store_set_draft_waiting(e->store, j->draft_id, out->reason);
        goto done;
    }
    if (err)
        goto done;

    /* reserved: from here a failure must end the round */
    meta = (struct invoice_meta){ .draft_name = j->name, .issued_at = j->req.issued_at,
                                  .seller = &v->info, .dev = &j->f };
    j->inv = invoice_build(d, &meta);
    j->canonical = j->inv ? invoice_canonical(j->inv, &j->canonical_len) : NULL;
    memset(&j->lines, 0, sizeof j->lines);
    if (!j->canonical) {
        err = FA_NOMEM;
    } else if (summary_add_invoice(&j->lines, j->inv, out->reason, sizeof out->reason)) {
        err = FA_IO;   /* cannot happen: a valid draft has every field it needs */
    } else {
        /* the receipt needs no signature: it goes into the intent, for a restore */
        clock_period(j->req.issued_at, out->period);
        snprintf(out->invoice_name, sizeof out->invoice_name, "%s-%s.json", j->f.code,
                 j->f.number);
        snprintf(path, sizeof path, "issued/%s/%s", out->period, out->invoice_name);
        dec_format(d->total, 2, total);
        j->warnings = problems_json(&d->warnings);
        j->receipt = receipt_render(j->name, d->request_id, "issued", j->f.code, j->f.number,
                                    path, j->req.issued_at, total, j->warnings, &j->receipt_len);
        if (!j->receipt)
            err = FA_NOMEM;
    }
    if (err == FA_OK)
        return PREP_RESERVED;
    j->err = err;
    job_release(j);
    return PREP_FAILED_RESERVED;
done:
    j->err = err;
    return PREP_DONE;
}

/* j waits in pending/, for the reason given (its outcome, and the store's
 * record of the draft); the error of that record. */
static enum fa_err job_waits(struct engine *e, struct issue_job *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum fa_err job_waits(struct engine *e, struct issue_job *j, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(j->out->reason, sizeof j->out->reason, fmt, ap);
    va_end(ap);
    j->out->kind = OUTCOME_WAITING;
    return store_set_draft_waiting(e->store, j->draft_id, j->out->reason);
}

/* Steps 5-7 for a round of n reserved jobs: their intents in one synced
 * commit, their signatures with one journal sync, their invoices in one
 * commit (unsynced, see the top of this file). */
static void sign_round(struct engine *e, struct issue_job **jobs, int n)
{
    struct store_new_intent intents[DEVICE_BATCH_MAX];
    struct device_sign_item items[DEVICE_BATCH_MAX];
    struct store_issued issued[DEVICE_BATCH_MAX];
    char sigs[DEVICE_BATCH_MAX][CRYPTO_SIG_B64_MAX], *files[DEVICE_BATCH_MAX] = { NULL };
    size_t file_lens[DEVICE_BATCH_MAX];
    int64_t invoice_ids[DEVICE_BATCH_MAX], receipt_ids[DEVICE_BATCH_MAX];
    enum fa_err err, sign_err = FA_OK, rec_err = FA_OK;
    bool signed_ok = false;
    int k;

    assert(n >= 1 && n <= DEVICE_BATCH_MAX);
    for (k = 0; k < n; k++) {
        struct issue_job *j = jobs[k];
        intents[k] = (struct store_new_intent){
            .draft_id = j->draft_id, .code = j->f.code, .number = j->f.number,
            .canonical = j->canonical, .len = j->canonical_len,
            .receipt = j->receipt, .receipt_len = j->receipt_len };
        items[k] = (struct device_sign_item){ .bytes = j->canonical, .len = j->canonical_len };
        memcpy(items[k].code, j->f.code, sizeof items[k].code);
        memcpy(items[k].number, j->f.number, sizeof items[k].number);
    }
    err = store_put_intents(e->store, intents, n, clock_now());
    if (err == FA_OK) {
        err = device_batch_max(e->dev) > 1
                  ? device_issue_sign_batch(e->dev, n, items, sigs)
                  : device_issue_sign(e->dev, items[0].code, items[0].number, items[0].bytes,
                                      items[0].len, sigs[0]);
        /* INVAL: the device no longer holds these reservations (its state was
         * changed meanwhile); for the writers that is a device error, not a
         * rejected draft */
        if (err == FA_INVAL)
            err = FA_DEV_IO;
        if (err == FA_OK && e->fault_sign_lost) {
            e->fault_reconciles += e->fault_sign_lost == 2;
            e->fault_sign_lost = 0;
            err = FA_DEV_IO;
        }
        /* Did it sign before failing (an answer lost on its way back)?  What
         * it signed is restored from the round's intents, the rest go. */
        if ((sign_err = err))
            rec_err = reconcile_locked(e);
    }
    if (err == FA_OK && e->fault_after_sign)
        _exit(86);
    signed_ok = err == FA_OK;
    for (k = 0; k < n && err == FA_OK; k++) {
        struct issue_job *j = jobs[k];
        struct draft *d = j->d;
        if (!(files[k] = invoice_render(j->inv, sigs[k], &file_lens[k]))) {
            err = FA_NOMEM;
            break;
        }
        issued[k] = (struct store_issued){
            .draft_id = j->draft_id, .draft_name = j->name, .code = j->f.code,
            .number = j->f.number, .period = j->out->period, .issued_at = j->req.issued_at,
            .request_id = d->request_id, .draft_hash = j->hash, .total_fen = j->req.total_fen,
            .json = files[k], .json_len = file_lens[k],
            .receipt = j->receipt, .receipt_len = j->receipt_len,
            .red_code = d->red.present ? d->red.code : NULL,
            .red_number = d->red.present ? d->red.number : NULL,
            .lines = &j->lines };
    }
    /* signed: a failure from here leaves the round to reconciliation,
     * before the next round (issue_batch) or at the next mount */
    if (err == FA_OK && commit_fault_due(e))
        err = FA_IO;
    if (err == FA_OK)
        err = store_put_invoices(e->store, issued, n, invoice_ids, receipt_ids);
    if (err && signed_ok)
        e->restore_pending = true;
    for (k = 0; k < n; k++) {
        struct issue_job *j = jobs[k];
        j->err = err;
        if (err == FA_OK) {
            j->out->kind = OUTCOME_ISSUED;
            j->out->invoice_id = invoice_ids[k];
            j->out->receipt_id = receipt_ids[k];
        } else if (sign_err && rec_err == FA_OK &&
                   restored_outcome(e, j->draft_id, j->out) == FA_OK) {
            /* the device had signed it: issued, and a retry would be a second invoice */
            j->err = FA_OK;
        } else if (sign_err && rec_err) {
            /* Signed or not is not known until the device can be read: the
             * draft waits, and is issued as its restored invoice or anew. */
            j->err = FA_OK;
            job_waits(e, j, "the device failed while signing (%s), and whether it signed cannot "
                      "be read from it yet (%s)", fa_err_str(sign_err), fa_err_str(rec_err));
        } else if (signed_ok) {
            /* The invoice exists: its intent and the device's journal line are
             * on disk, and the next round, a retry or the next mount restores
             * it.  "Could not be stored, retry" would be false, and a writer
             * that retried a draft without a request_id would get a second
             * invoice: the draft waits in pending/ for its restore instead. */
            j->err = FA_OK;
            /* its record may fail as the commit did: the intent holds what the restore needs */
            job_waits(e, j, "signed by the device as %s-%s, but the store could not take it (%s); "
                      "it is stored, and its receipt appears, as soon as that passes", j->f.code,
                      j->f.number, fa_err_str(err));
        }
        free(files[k]);
        job_release(j);
    }
}

/* Issue a batch taken from the queue, in order, in rounds of reserved jobs;
 * the caller holds issue_lock. */
static void issue_batch(struct engine *e, struct issue_job **batch, int n)
{
    struct issue_job *round[DEVICE_BATCH_MAX];
    const char *behind = NULL;   /* a job of the batch that waits for the offline amount */
    int i = 0;

    while (i < n) {
        struct round_view v;
        int k = 0;
        enum prepared p = PREP_DONE;
        /* Invoices the device signed and the store did not take are restored
         * first: a retried draft must find its invoice (a duplicate, not a
         * second one), and no later commit may pass over the gap.  Until
         * that works (a full disk, say) nothing more is issued. */
        enum fa_err restore_err = e->restore_pending ? reconcile_locked(e) : FA_OK;
        if (restore_err) {
            for (; i < n; i++) {   /* the words, for a waiting draft's retry (pending.c) */
                struct engine_outcome *out = batch[i]->out;
                if (fa_err_is_wait(restore_err)) {   /* unplugged, say: as any draft would */
                    batch[i]->err = job_waits(e, batch[i], "%s", fa_err_str(restore_err));
                    continue;
                }
                snprintf(out->reason, sizeof out->reason, "%.*s; nothing is issued until the "
                         "store has every invoice the device signed",
                         (int)text_utf8_cut(e->rec.last, 150), e->rec.last);
                /* close() says ENOSPC or EIO when nothing was stored (SPEC §2.1) */
                batch[i]->err = restore_err == FA_NOSPC ? FA_NOSPC : FA_IO;
            }
            break;
        }
        round_view_read(e, &v);
        for (; i < n && p != PREP_FAILED_RESERVED; i++) {
            if (!batch[i]->behind && behind)   /* arrival order inside the batch too */
                batch[i]->behind = behind;
            p = prepare_job(e, batch[i], k == 0, &v);
            if (!behind && batch[i]->out->kind == OUTCOME_WAITING && batch[i]->out->waits_for_amount)
                behind = batch[i]->name;
            if (p == PREP_RESERVED) {
                round[k++] = batch[i];
                if (batch[i]->req.total_fen > 0)   /* queued once the round commits */
                    v.sc.upload_queued_blue_fen += batch[i]->req.total_fen;
            }
        }
        if (k)
            sign_round(e, round, k);
    }
}

/* Up to max jobs from the head of the queue, in arrival order; queue_lock
 * held.  Checks that read the store — the request_id already issued, the
 * blue invoice a red one reverses — must see the earlier drafts committed,
 * so a draft that repeats a request_id of the batch, or any red draft,
 * starts a batch of its own. */
static int take_batch(struct engine *e, struct issue_job **batch, int max)
{
    int n = 0, k;

    while (e->queue_head && n < max) {
        struct issue_job *j = e->queue_head;
        bool same_request = false;
        for (k = 0; k < n && j->d->request_id; k++)
            same_request |= batch[k]->d->request_id && !strcmp(batch[k]->d->request_id,
                                                                 j->d->request_id);
        if (n > 0 && (same_request || j->d->red.present))
            break;
        e->queue_head = j->next;
        batch[n++] = j;
        if (j->d->red.present)
            break;
    }
    if (!e->queue_head)
        e->queue_tail = &e->queue_head;
    return n;
}

/* Group commit: the writer that finds no leader leads, taking the queue in
 * batches until its own draft is done, then hands over to the writer at the
 * head.  The others sleep until their draft is done. */
static enum fa_err issue_queued(struct engine *e, struct issue_job *j)
{
    struct issue_job *batch[DEVICE_BATCH_MAX];
    int max = device_batch_max(e->dev), n, k;

    pthread_mutex_lock(&e->queue_lock);
    *e->queue_tail = j;
    e->queue_tail = &j->next;
    while (!j->done && e->leading)
        pthread_cond_wait(&j->wake, &e->queue_lock);
    if (!j->done) {
        e->leading = true;
        while (!j->done) {
            n = take_batch(e, batch, max);
            assert(n > 0);   /* j itself is queued */
            pthread_mutex_unlock(&e->queue_lock);
            fifo_lock_acquire(&e->issue_lock);
            issue_batch(e, batch, n);
            fifo_lock_release(&e->issue_lock);
            pthread_mutex_lock(&e->queue_lock);
            for (k = 0; k < n; k++) {
                batch[k]->done = true;
                pthread_cond_signal(&batch[k]->wake);
            }
        }
        e->leading = false;
        if (e->queue_head)
            pthread_cond_signal(&e->queue_head->wake);
    }
    pthread_mutex_unlock(&e->queue_lock);
    return j->err;
}

static enum fa_err process(struct engine *e, int64_t draft_id, const char *name, const void *body,
                           size_t len, const char *behind, bool retry, struct engine_outcome *out)
{
    struct draft_defaults defs = draft_defaults_of(e);
    struct problems problems = { 0 };
    struct draft d;
    enum fa_err err;

    err = draft_parse(body, len, &defs, &d, &problems);
    if (err == FA_REJECTED) {
        red_identity_problems(e, &d, &problems);
        err = reject(e, draft_id, name, body, len, problems.text ? problems.text : "invalid\n",
                     out);
    } else if (err == FA_OK) {
        struct issue_job j = { .draft_id = draft_id, .name = name, .body = body, .len = len,
                               .behind = behind, .retry = retry, .d = &d, .out = out };
        /* hashed here, in the writer's thread, not by the leader of the
         * round: the round's work is serial, the writers' is parallel */
        if (draft_hash(&d, j.hash)) {
            err = FA_NOMEM;
        } else {
            pthread_cond_init(&j.wake, NULL);
            err = issue_queued(e, &j);
            pthread_cond_destroy(&j.wake);
        }
        if (err == FA_OK && out->kind == OUTCOME_ISSUED)
            uploader_kick(e->uploader);
    }
    draft_free(&d);
    problems_free(&problems);
    return err;
}

enum fa_err engine_submit(struct engine *e, const char *name, const void *body, size_t len,
                          uint64_t entry, const char *behind, struct engine_outcome *out)
{
    enum fa_err err;

    memset(out, 0, sizeof *out);
    err = store_add_draft(e->store, name, body, len, clock_now(), entry, &out->draft_id);
    if (err)
        return err;
    return process(e, out->draft_id, name, body, len, behind, false, out);
}

enum fa_err engine_retry(struct engine *e, int64_t draft_id, const char *name, const void *body,
                         size_t len, struct engine_outcome *out)
{
    memset(out, 0, sizeof *out);
    out->draft_id = draft_id;
    return process(e, draft_id, name, body, len, NULL, true, out);
}

enum fa_err engine_cancel(struct engine *e, int64_t draft_id)
{
    return store_cancel_draft(e->store, draft_id, clock_now());
}
