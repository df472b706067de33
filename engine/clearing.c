/*
 * clearing.c — 清卡, the seven steps of SPEC §5.4; see clearing.h.
 *
 * The clearing runs in the thread of the write() that asked for it, so its
 * outcome is that write's result, and it talks to the platform through a
 * client of its own (engine/platform.h): the uploader's connection belongs
 * to the uploader's thread.  Invoices of the period still queued are sent
 * here, in issue order, rather than waited for: the uploader may be in the
 * middle of a 30-second backoff, and the user at the terminal is not.
 *
 * Every refusal is turned into a sentence that says what to do next, since
 * the people who run this once a month must not need the docs to recover.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "engine/clearing.h"
#include "engine/clock.h"
#include "engine/decimal.h"
#include "engine/platform.h"
#include "engine/summary.h"

#define LAST_RESULT_KEY "clear:last"

enum step { STEP_FIND, STEP_UPLOAD, STEP_SUMMARY, STEP_REPORT, STEP_CLEARANCE, STEP_WRITE_BACK,
            STEP_RECORD };

static const char *const step_names[CLEAR_STEPS] = {
    "find", "upload", "summary", "report", "clearance", "write_back", "record",
};

struct clearing {
    struct engine *e;
    struct device *dev;
    store_t *store;
    platform_client_t *pc;
    struct clear_result *r;
    struct device_info info;
};

static void step_say(struct clearing *c, enum step s, enum clear_step_state state, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
static void step_say(struct clearing *c, enum step s, enum clear_step_state state, const char *fmt,
                     ...)
{
    va_list ap;

    c->r->steps[s].state = state;
    va_start(ap, fmt);
    vsnprintf(c->r->steps[s].text, sizeof c->r->steps[s].text, fmt, ap);
    va_end(ap);
}

/* The step failed with err; the reason for the user is the step's text. */
static enum fa_err step_fail(struct clearing *c, enum step s, enum fa_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum fa_err step_fail(struct clearing *c, enum step s, enum fa_err err, const char *fmt, ...)
{
    va_list ap;

    c->r->steps[s].state = STEP_FAILED;
    va_start(ap, fmt);
    vsnprintf(c->r->steps[s].text, sizeof c->r->steps[s].text, fmt, ap);
    va_end(ap);
    snprintf(c->r->reason, sizeof c->r->reason, "%s", c->r->steps[s].text);
    return err;
}

/* Tests: die like kill -9 after step s (FAPIAOFS_FAULT=clear-after-N). */
static void fault_point(struct clearing *c, enum step s)
{
    if (engine_clear_fault_step(c->e) == (int)s + 1)
        _exit(86);
}

/* A platform call that got no answer, or an unexpected one, in words. */
static void describe_reply(const struct platform_reply *r, char *buf, size_t len)
{
    if (r->http == 0)
        snprintf(buf, len, "platform unreachable: %s", r->error);
    else
        snprintf(buf, len, "HTTP %ld from the platform%s%s%s", r->http, r->code[0] ? " (" : "",
                 r->code, r->code[0] ? ")" : "");
}

/* An answer a step did not expect: a platform in trouble (5xx: try again
 * later) or a refusal of `what` (4xx). */
static enum fa_err unexpected_reply(struct clearing *c, enum step s, const struct platform_reply *r,
                                    const char *what)
{
    char why[600];

    describe_reply(r, why, sizeof why);
    if ((r->http == 200 || r->http == 201) && !platform_answered_success(r))
        return step_fail(c, s, FA_PLATFORM_DOWN, "HTTP %ld, but the answer is not a JSON object: is "
                         "something other than the platform answering at its url? Run clear again "
                         "when the platform itself answers", r->http);
    if (r->http >= 500)
        return step_fail(c, s, FA_PLATFORM_DOWN, "%s; run clear again later", why);
    return step_fail(c, s, FA_PLATFORM_REFUSED, "the platform refused %s of %s: %s", what, c->r->period,
                     why);
}

/* ---- step 1 ---------------------------------------------------------------- */

/* The period after the one the device cleared, if it has ended. */
static enum fa_err find_period(struct clearing *c, const struct device_status *ds)
{
    int cleared, current = clock_month_index(clock_now());
    char next[8], now[8];

    if (clock_parse_period(ds->cleared_through, &cleared))
        return step_fail(c, STEP_FIND, FA_DEV_IO, "the device reports no valid cleared period (\"%s\")",
                         ds->cleared_through);
    clock_month_period(cleared + 1, next);
    if (cleared + 1 >= current) {
        c->r->nothing_to_clear = true;
        step_say(c, STEP_FIND, STEP_OK, "nothing to clear: the device is cleared through %s and %s "
                 "is the current period (it can be cleared from the 1st of the next month)",
                 ds->cleared_through, clock_month_period(current, now));
        return FA_OK;
    }
    memcpy(c->r->period, next, sizeof c->r->period);
    step_say(c, STEP_FIND, STEP_OK, "%s is the oldest finished period not yet cleared%s", next,
             cleared + 2 < current ? " (later ones follow: run clear again after this one)" : "");
    return FA_OK;
}

/* ---- step 2 ---------------------------------------------------------------- */

/* Why the platform did not take invoice CODE-NUMBER (said: the uploader's
 * sentence, platform_upload_accepted's); FA_PLATFORM_REFUSED when sending it
 * again cannot help (the invoice itself, or our credentials), else
 * FA_PLATFORM_DOWN. */
static enum fa_err upload_refusal(const struct platform_reply *r, const struct store_upload *u,
                                  const char *period, const char *said, char *why, size_t len)
{
    bool refused = platform_refuses_invoice(r->http) || platform_refuses_credentials(r->http);
    char detail[320];

    describe_reply(r, detail, sizeof detail);
    if (r->http == 409)   /* with what to do about it, which only a person can */
        snprintf(why, len, "the platform holds other bytes for %s-%s (%s: an integrity alarm); "
                 "compare issued/%s/%s-%s.json with the platform's copy and resolve it with the tax "
                 "bureau", u->code, u->number, detail, period, u->code, u->number);
    else if (refused || r->http == 200 || r->http == 201)
        snprintf(why, len, "%s", said);   /* the uploader's words */
    else
        snprintf(why, len, "%s-%s: %s", u->code, u->number, detail);
    return refused ? FA_PLATFORM_REFUSED : FA_PLATFORM_DOWN;
}

/* POST the period's invoices in issue order: those still in the upload queue
 * (marked uploaded as the platform accepts them), or every one of them.
 * FA_OK with *sent; FA_PLATFORM_DOWN, FA_PLATFORM_REFUSED (upload_refusal) or
 * a store error with why. */
static enum fa_err send_period(struct clearing *c, bool queued_only, int64_t *sent, char *why,
                               size_t len)
{
    struct platform_reply reply;
    struct store_upload u;
    int64_t after = 0;
    enum fa_err err;
    char said[600] = "";

    *sent = 0;
    while ((err = queued_only ? store_next_queued_in_period(c->store, c->r->period, after, &u)
                              : store_next_invoice_in_period(c->store, c->r->period, after, &u)) == FA_OK) {
        after = u.invoice_id;
        if (platform_call(c->pc, "POST", "/v1/invoices", u.json, u.len, &reply) == 0 &&
            platform_upload_accepted(c->pc, &reply, u.code, u.number, u.json, u.len, said,
                                     sizeof said)) {
            err = queued_only ? store_upload_done(c->store, u.invoice_id, clock_now()) : FA_OK;
            (*sent)++;
        } else {
            err = upload_refusal(&reply, &u, c->r->period, said, why, len);
        }
        platform_reply_free(&reply);
        store_upload_free(&u);
        if (err == FA_PLATFORM_DOWN || err == FA_PLATFORM_REFUSED)
            return err;
        if (err)
            break;
    }
    if (err == FA_NOTFOUND)
        return FA_OK;
    snprintf(why, len, "cannot read or update the upload queue: %s", fa_err_str(err));
    return err;
}

static enum fa_err upload_period(struct clearing *c)
{
    const char *p = c->r->period;
    char why[700];
    int64_t sent;
    enum fa_err err = send_period(c, true, &sent, why, sizeof why);

    if (err == FA_PLATFORM_DOWN)
        return step_fail(c, STEP_UPLOAD, err, "%s; %lld invoice(s) of %s not yet uploaded; run clear "
                         "again when the platform is back", why,
                         (long long)store_count_queued_in_period(c->store, p), p);
    if (err == FA_PLATFORM_REFUSED)
        return step_fail(c, STEP_UPLOAD, err, "%s; %lld invoice(s) of %s not yet uploaded, and %s "
                         "cannot be cleared until the platform has them all", why,
                         (long long)store_count_queued_in_period(c->store, p), p, p);
    if (err)
        return step_fail(c, STEP_UPLOAD, err, "%s", why);
    uploader_kick(engine_uploader(c->e));   /* status shows the shorter queue */
    if (sent)
        step_say(c, STEP_UPLOAD, STEP_OK, "uploaded the last %lld invoice(s) of %s", (long long)sent, p);
    else
        step_say(c, STEP_UPLOAD, STEP_OK, "every invoice of %s was already uploaded", p);
    return FA_OK;
}

/* ---- step 3 ---------------------------------------------------------------- */

static void summary_words(const struct device_summary *s, char *buf, size_t len)
{
    int64_t blue = 0, red = 0, amount = 0, tax = 0;
    char a[DEC_FMT_MAX], t[DEC_FMT_MAX];
    int i;

    for (i = 0; i < s->nlines; i++) {
        if (s->lines[i].red)
            red += s->lines[i].count;
        else
            blue += s->lines[i].count;
        amount += s->lines[i].amount_fen;
        tax += s->lines[i].tax_fen;
    }
    snprintf(buf, len, "%lld blue and %lld red invoice(s), amount %s, tax %s", (long long)blue,
             (long long)red, summary_money_text(amount, a), summary_money_text(tax, t));
}

static enum fa_err compare_summaries(struct clearing *c, struct device_summary *dev_sum)
{
    struct device_summary store_sum;
    char detail[300], words[200];
    enum fa_err err;
    int attempt;

    /* A barrier first: a draft stamped in the period just before midnight
     * may still be between its stamp and its signature (both happen under the
     * issue lock, which this takes); once it is through, every later draft
     * is stamped in a later period. */
    engine_reconcile(c->e);
    for (attempt = 0; attempt < 2; attempt++) {
        err = device_period_summary(c->dev, c->r->period, dev_sum);
        if (err)
            return step_fail(c, STEP_SUMMARY, err == FA_DEV_ABSENT ? err : FA_DEV_IO,
                             "the device could not make its summary of %s: %s", c->r->period,
                             fa_err_str(err));
        err = store_period_summary(c->store, c->r->period, &store_sum);
        if (err)
            return step_fail(c, STEP_SUMMARY, err, "cannot read the store's summary of %s: %s",
                             c->r->period, fa_err_str(err));
        if (summary_equal(dev_sum, "the device", &store_sum, "the store", detail, sizeof detail)) {
            summary_words(&store_sum, words, sizeof words);
            step_say(c, STEP_SUMMARY, STEP_OK, "the device and the store agree on %s: %s%s",
                     c->r->period, words, attempt ? " (after reconciliation)" : "");
            return FA_OK;
        }
        if (attempt == 0)
            engine_reconcile(c->e);   /* an invoice signed but not stored is restored */
    }
    return step_fail(c, STEP_SUMMARY, FA_DEV_IO, "the summaries of %s differ after reconciliation: %s; "
                     "nothing was reported (see device/log and status)", c->r->period, detail);
}

/* ---- step 4 ---------------------------------------------------------------- */

static char *summary_body(const struct clearing *c, const struct device_summary *s)
{
    json_t *doc = json_object(), *lines = json_array();
    char a[DEC_FMT_MAX], t[DEC_FMT_MAX], *body = NULL;
    int i;

    if (!doc || !lines)
        goto out;
    for (i = 0; i < s->nlines; i++) {
        const struct device_summary_line *l = &s->lines[i];
        json_array_append_new(lines, json_pack("{s:s,s:b,s:i,s:I,s:s,s:s}", "type", l->type, "red",
                                               l->red, "rate_pm", l->rate_pm, "count",
                                               (json_int_t)l->count, "amount",
                                               summary_money_text(l->amount_fen, a), "tax",
                                               summary_money_text(l->tax_fen, t)));
    }
    json_object_set_new(doc, "period", json_string(s->period));
    json_object_set_new(doc, "machine_number", json_string(s->machine_number));
    json_object_set_new(doc, "seller_tax_id", json_string(c->info.seller_tax_id));
    json_object_set(doc, "lines", lines);
    json_object_set_new(doc, "device_signature", json_string(s->signature));
    json_object_set_new(doc, "device_public_key", json_string(c->info.public_key));
    body = json_dumps(doc, JSON_COMPACT);
out:
    json_decref(lines);
    json_decref(doc);
    return body;
}

static enum fa_err report_summary(struct clearing *c, const struct device_summary *s)
{
    struct platform_reply reply;
    char path[64], why[600];
    char *body = summary_body(c, s);
    enum fa_err err = FA_OK;

    if (!body)
        return step_fail(c, STEP_REPORT, FA_NOMEM, "out of memory");
    snprintf(path, sizeof path, "/v1/periods/%s/summary", c->r->period);
    if (platform_call(c->pc, "POST", path, body, strlen(body), &reply)) {
        describe_reply(&reply, why, sizeof why);
        err = step_fail(c, STEP_REPORT, FA_PLATFORM_DOWN, "%s; run clear again when it is back", why);
    } else if (platform_answered_success(&reply)) {
        step_say(c, STEP_REPORT, STEP_OK, "the platform %s the summary of %s",
                 reply.http == 201 ? "received" : "already had", c->r->period);
    } else if (reply.http == 409 && !strcmp(reply.code, "period_cleared")) {
        step_say(c, STEP_REPORT, STEP_OK, "the platform has cleared %s already", c->r->period);
    } else {
        err = unexpected_reply(c, STEP_REPORT, &reply, "the summary");
    }
    platform_reply_free(&reply);
    free(body);
    return err;
}

/* ---- step 5 ---------------------------------------------------------------- */

static enum fa_err ask_clearance(struct clearing *c, char **answer)
{
    struct platform_reply reply;
    char path[64], body[64], why[700];
    enum fa_err err = FA_OK, resend = FA_OK;
    int64_t resent = -1;
    int attempt;

    *answer = NULL;
    snprintf(path, sizeof path, "/v1/periods/%s/clearance", c->r->period);
    snprintf(body, sizeof body, "{\"machine_number\":\"%s\"}", c->info.machine_number);
    for (attempt = 0; attempt < 2; attempt++) {
        const char *detail;
        json_t *doc;

        if (platform_call(c->pc, "POST", path, body, strlen(body), &reply)) {
            describe_reply(&reply, why, sizeof why);
            err = step_fail(c, STEP_CLEARANCE, FA_PLATFORM_DOWN, "%s; run clear again when it is back",
                            why);
            break;
        }
        if (platform_answered_success(&reply)) {
            *answer = reply.body;
            reply.body = NULL;
            step_say(c, STEP_CLEARANCE, STEP_OK, "the platform sent its signed answer for %s%s",
                     c->r->period, resent > 0 ? " (after sending the period's invoices again)" : "");
            break;
        }
        doc = json_loads(reply.body ? reply.body : "", 0, NULL);
        detail = json_string_value(json_object_get(doc, "detail"));
        if (!strcmp(reply.code, "return_not_filed"))
            err = step_fail(c, STEP_CLEARANCE, FA_PLATFORM_REFUSED, "the platform refused: the tax "
                            "return of %s is not filed yet (return_not_filed); file it, then run "
                            "clear again", c->r->period);
        else if (!strcmp(reply.code, "summary_mismatch"))
            err = step_fail(c, STEP_CLEARANCE, FA_PLATFORM_REFUSED, "the platform refused: the "
                            "summary of %s does not match the invoices it received (summary_mismatch)"
                            "%s%s", c->r->period, detail ? ": " : "", detail ? detail : "");
        else if (!strcmp(reply.code, "summary_missing"))
            err = step_fail(c, STEP_CLEARANCE, FA_PLATFORM_REFUSED, "the platform has no summary of "
                            "%s (summary_missing); run clear again", c->r->period);
        /* invoices_missing although our queue is empty: the platform lost some.
         * Sending every invoice of the period again is harmless (the platform
         * answers 200 for bytes it has) and is what gets the clearing through. */
        else if (!strcmp(reply.code, "invoices_missing") && attempt == 0 &&
                 (resend = send_period(c, false, &resent, why, sizeof why)) == FA_OK) {
            json_decref(doc);
            platform_reply_free(&reply);
            continue;   /* ask again, once */
        } else if (!strcmp(reply.code, "invoices_missing") && attempt == 0)
            err = step_fail(c, STEP_CLEARANCE, resend, "the platform is missing invoices of %s "
                            "(invoices_missing), and sending them again failed: %s; run clear again "
                            "later", c->r->period, why);
        else if (!strcmp(reply.code, "invoices_missing"))
            err = step_fail(c, STEP_CLEARANCE, FA_PLATFORM_REFUSED, "the platform is missing invoices "
                            "of %s (invoices_missing) although it accepted all %lld of them again just "
                            "now; its records of %s need the tax bureau's attention", c->r->period,
                            (long long)resent, c->r->period);
        else
            err = unexpected_reply(c, STEP_CLEARANCE, &reply, "the clearance");
        json_decref(doc);
        break;
    }
    platform_reply_free(&reply);
    return err;
}

/* ---- step 6 ---------------------------------------------------------------- */

/* The answer with the platform's public key beside it: the device trusts the
 * key it was given at its first clearing and compares (device/sim.h). */
static char *answer_with_key(struct clearing *c, const char *answer, char *why, size_t len)
{
    struct platform_reply reply;
    json_t *doc = json_loads(answer, 0, NULL), *key_doc = NULL, *key;
    char *out = NULL;

    if (!json_is_object(doc)) {
        snprintf(why, len, "the platform's answer is not a JSON object");
        goto out;
    }
    if (platform_call(c->pc, "GET", "/v1/platform-key", NULL, 0, &reply) == 0 && reply.http == 200)
        key_doc = json_loads(reply.body ? reply.body : "", 0, NULL);
    else
        describe_reply(&reply, why, len);
    platform_reply_free(&reply);
    key = json_object_get(key_doc, "public_key");
    if (!json_is_string(key)) {
        if (!why[0])
            snprintf(why, len, "GET /v1/platform-key gave no public_key");
        goto out;
    }
    json_object_set(doc, "platform_public_key", key);
    out = json_dumps(doc, JSON_COMPACT);
out:
    json_decref(key_doc);
    json_decref(doc);
    return out;
}

static enum fa_err write_back(struct clearing *c, const char *answer)
{
    struct device_status ds;
    char why[600] = "", lock[32], limit[DEC_FMT_MAX], amount[DEC_FMT_MAX];
    char *blob = answer_with_key(c, answer, why, sizeof why);
    enum fa_err err;

    if (!blob)
        return step_fail(c, STEP_WRITE_BACK, FA_PLATFORM_DOWN, "cannot get the platform's key: %s; "
                         "run clear again", why);
    err = device_apply_clearance(c->dev, blob, strlen(blob));
    free(blob);
    if (err == FA_PERM || err == FA_INVAL)
        return step_fail(c, STEP_WRITE_BACK, FA_DEV_IO, "the device refused the platform's answer for "
                         "%s (%s): its signature, machine number or period does not match what the "
                         "device trusts; nothing was changed", c->r->period,
                         err == FA_PERM ? "not signed by the platform it trusts"
                                        : "malformed or out of order");
    if (err == FA_DEV_PIN)
        return step_fail(c, STEP_WRITE_BACK, err, "the device wants its PIN again; run clear pin=PIN");
    if (err)
        return step_fail(c, STEP_WRITE_BACK, err == FA_DEV_ABSENT ? err : FA_DEV_IO,
                         "the device could not take the answer: %s; run clear again", fa_err_str(err));
    if (device_get_status(c->dev, &ds) == FA_OK)
        step_say(c, STEP_WRITE_BACK, STEP_OK, "the device cleared %s: cleared through %s, lock date "
                 "%s, per-invoice limit %s, offline %lld hours / %s", c->r->period, ds.cleared_through,
                 clock_iso_cst(ds.lock_date, lock), dec_format(dec_from_fen(ds.limit_fen), 2, limit),
                 (long long)ds.offline_hours, dec_format(dec_from_fen(ds.offline_amount_fen), 2, amount));
    else
        step_say(c, STEP_WRITE_BACK, STEP_OK, "the device cleared %s", c->r->period);
    return FA_OK;
}

/* ---- the command ------------------------------------------------------------- */

int clear_parse_command(const char *line, char *pin, size_t cap, char *shown, size_t shown_len)
{
    const char *p = line, *end;
    size_t n;

    pin[0] = 0;
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    n = (size_t)(end - p);
    if (n == 5 && !strncmp(p, "clear", 5)) {
        snprintf(shown, shown_len, "clear");
        return 0;
    }
    if (n > 10 && !strncmp(p, "clear", 5) && (p[5] == ' ' || p[5] == '\t')) {
        const char *q = p + 5;
        while (*q == ' ' || *q == '\t')
            q++;
        if (!strncmp(q, "pin=", 4) && end - (q + 4) > 0 && (size_t)(end - (q + 4)) < cap) {
            const char *d;
            for (d = q + 4; d < end; d++)
                if (*d < '0' || *d > '9')
                    return -1;
            memcpy(pin, q + 4, (size_t)(end - (q + 4)));
            pin[end - (q + 4)] = 0;
            snprintf(shown, shown_len, "clear pin=********");
            return 0;
        }
    }
    return -1;
}

/* What was written, for the message and device/log (which anyone who may
 * read the mount can read): words of letters are shown, anything else in a
 * word — a mistyped PIN ("clear PIN=12345678", "clear pin = 1234"), or a PIN
 * written alone — becomes "…", so that no PIN is ever recorded.  Bounded. */
static bool word_end(char c)
{
    return !c || c == ' ' || c == '\t' || c == '=';
}

static bool ascii_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void quote_command(const char *line, char *buf, size_t len)
{
    size_t i = 0, j = 0, k;

    while (line[i] && i < 80 && j + 8 < len) {
        if (word_end(line[i])) {
            buf[j++] = line[i++] == '=' ? '=' : ' ';
            continue;
        }
        for (k = i; !word_end(line[k]) && ascii_letter(line[k]); k++)
            ;
        if (word_end(line[k])) {   /* a word of letters */
            for (; i < k && j + 8 < len; i++)
                buf[j++] = line[i];
            continue;
        }
        memcpy(buf + j, "\xe2\x80\xa6", 3);   /* "…" in UTF-8 */
        j += 3;
        while (!word_end(line[i]))
            i++;
    }
    buf[j] = 0;
}

/* The device must have a session open (a right PIN) to take the write-back.
 * A plain "clear" uses the session the daemon opened with the configured PIN
 * and tries no PIN itself: if that PIN was refused at mount, trying it again
 * at every clear (a cron job retrying after EAGAIN) would use up the device's
 * tries and lock it.  "clear pin=PIN" checks the PIN given, and a right one
 * opens the session, for waiting drafts too. */
static enum fa_err login(struct clearing *c, const char *command_pin, const struct device_status *now)
{
    struct device_status ds;
    enum fa_err err;

    if (!command_pin[0] && now->session_open)
        return FA_OK;
    if (!command_pin[0] && now->pin_retries_left <= 0)
        return step_fail(c, STEP_FIND, FA_DEV_PIN, "the device is locked after 5 wrong PINs; it must "
                         "be unlocked by its administrator (the simulated device: fapiaofs-sim "
                         "reset-pin)");
    if (!command_pin[0])
        return step_fail(c, STEP_FIND, FA_DEV_PIN, "the device refused the configured PIN ([device] "
                         "pin_file, or the demo PIN when none is set) when it was opened; it is not "
                         "tried again, so that retries cannot lock the device (%d tries left); give "
                         "the PIN: echo clear pin=PIN > device/clear", now->pin_retries_left);
    err = device_verify_pin(c->dev, command_pin);
    if (err == FA_DEV_PIN) {
        int left = device_get_status(c->dev, &ds) == FA_OK ? ds.pin_retries_left : -1;
        if (left <= 0)
            return step_fail(c, STEP_FIND, err, "the device is locked after 5 wrong PINs; it must "
                             "be unlocked by its administrator (the simulated device: fapiaofs-sim "
                             "reset-pin)");
        return step_fail(c, STEP_FIND, err, "the device refused the PIN: %d tries left before it "
                         "locks itself", left);
    }
    if (err)
        return step_fail(c, STEP_FIND, err == FA_DEV_ABSENT ? err : FA_DEV_IO,
                         "the device did not answer the PIN check: %s", fa_err_str(err));
    return FA_OK;
}

static enum fa_err run_steps(struct clearing *c, const char *pin)
{
    struct device_summary dev_sum;
    struct device_status ds;
    char *answer = NULL;
    enum fa_err err;

    err = device_get_status(c->dev, &ds);
    if (err == FA_OK)
        err = device_get_info(c->dev, &c->info);
    if (err)
        return step_fail(c, STEP_FIND, err == FA_DEV_ABSENT ? err : FA_DEV_IO, "%s%s",
                         err == FA_DEV_ABSENT ? "no device: " : "device failure: ", fa_err_str(err));
    if ((err = login(c, pin, &ds)) != FA_OK || (err = find_period(c, &ds)) != FA_OK ||
        c->r->nothing_to_clear)
        return err;
    if (!platform_configured(c->pc))
        return step_fail(c, STEP_UPLOAD, FA_PLATFORM_DOWN, "no platform url is configured ([platform] url)");
    fault_point(c, STEP_FIND);
    if ((err = upload_period(c)) != FA_OK)
        return err;
    fault_point(c, STEP_UPLOAD);
    if ((err = compare_summaries(c, &dev_sum)) != FA_OK)
        return err;
    fault_point(c, STEP_SUMMARY);
    if ((err = report_summary(c, &dev_sum)) != FA_OK)
        return err;
    fault_point(c, STEP_REPORT);
    if ((err = ask_clearance(c, &answer)) != FA_OK)
        return err;
    fault_point(c, STEP_CLEARANCE);
    /* Step 7 records the outcome; a crash between the device taking the
     * answer and that record would leave no trace of the clearing but the
     * device's cleared_through.  This line is the trace. */
    engine_log_as(c->e, c->r->uid, "clear-write-back", "%s: the platform's clearing answer goes into "
                  "the device now", c->r->period);
    err = write_back(c, answer);
    free(answer);
    if (err == FA_OK)
        fault_point(c, STEP_WRITE_BACK);
    return err;
}

static const char *errno_name(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case EAGAIN: return "EAGAIN";
    case EPERM: return "EPERM";
    case EIO: return "EIO";
    default: return "error";
    }
}

static char *result_text(const struct clear_result *r)
{
    char *buf = NULL, t1[32], t2[32];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int i, e = fa_err_errno(r->err);

    if (!f)
        return NULL;
    fprintf(f, "result: %s\n", r->err == FA_OK ? "ok" : "failed");
    fprintf(f, "%s: %s\n", r->err == FA_OK ? "outcome" : "reason", r->reason);
    fprintf(f, "period: %s\n", r->period[0] ? r->period : "none");
    fprintf(f, "errno: %s%s%s%s\n", errno_name(e), e ? " (" : "", e ? strerror(e) : "", e ? ")" : "");
    fprintf(f, "command: %s\nuid: %lld\nstarted: %s\nfinished: %s\n", r->command, (long long)r->uid,
            clock_iso_cst(r->started, t1), clock_iso_cst(r->finished, t2));
    for (i = 0; i < CLEAR_STEPS; i++)
        fprintf(f, "step_%d_%s: %s%s%s\n", i + 1, step_names[i],
                r->steps[i].state == STEP_OK ? "ok" : r->steps[i].state == STEP_FAILED ? "failed"
                                                                                      : "not run",
                r->steps[i].text[0] ? ": " : "", r->steps[i].text);
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    return buf;
}

enum fa_err engine_clear(struct engine *e, const char *command, int64_t uid, struct clear_result *out)
{
    struct clearing c = { .e = e, .dev = engine_device(e), .store = engine_store(e), .r = out };
    char pin[64], quoted[48], *text;
    bool busy = false;

    memset(out, 0, sizeof *out);
    out->started = clock_now();
    out->uid = uid;
    if (clear_parse_command(command, pin, sizeof pin, out->command, sizeof out->command)) {
        quote_command(command, quoted, sizeof quoted);
        snprintf(out->command, sizeof out->command, "%s", quoted);
        out->err = step_fail(&c, STEP_FIND, FA_INVAL, "unknown command \"%s\": write \"clear\" or "
                             "\"clear pin=PIN\"", quoted);
    } else if (!engine_clear_begin(e)) {
        busy = true;
        out->err = step_fail(&c, STEP_FIND, FA_BUSY, "a clearing is already running; wait for it "
                             "and read device/clear");
    } else {
        if (platform_client_open(engine_config(e), &c.pc))
            out->err = step_fail(&c, STEP_FIND, FA_NOMEM, "cannot start a platform client");
        else
            out->err = run_steps(&c, pin);
        platform_client_close(c.pc);
        engine_clear_end(e);
    }
    if (out->err == FA_OK)
        snprintf(out->reason, sizeof out->reason, "%s",
                 out->nothing_to_clear ? out->steps[STEP_FIND].text : out->steps[STEP_WRITE_BACK].text);
    explicit_bzero(pin, sizeof pin);
    out->finished = clock_now();
    step_say(&c, STEP_RECORD, STEP_OK, "device/log and this file");
    engine_log_as(e, uid, "clear", "%s%s%s: %s", out->err ? "failed" : "ok", out->period[0] ? " " : "",
                  out->period, out->reason);
    /* a refused second command must not hide the result of the one running */
    text = busy ? NULL : result_text(out);
    if (text)
        store_put_meta(c.store, LAST_RESULT_KEY, text);
    free(text);
    return out->err;
}

char *clear_last_text(struct engine *e)
{
    char *text = NULL;

    if (store_get_meta(engine_store(e), LAST_RESULT_KEY, &text) == FA_OK)
        return text;
    return strdup("result: none\nreason: no clearing attempted yet; write \"clear\" to this file\n");
}
