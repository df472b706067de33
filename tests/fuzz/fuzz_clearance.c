/*
 * fuzz_clearance.c — libFuzzer target for the platform's answers as the
 * device and the engine read them.  Built and run by `make fuzz` /
 * `make fuzz-smoke`; seeds come from tests/fuzz/make_seeds.c.
 *
 * Every input is given, whole, to both parsers (both read JSON, so one
 * corpus serves both, and seeds stay plain files):
 *   - sim_parse_clearance() (device/sim.h): the signed clearance answer of
 *     反写 (SPEC §5.4 step 6), what the device parses before it looks at
 *     itself or at the signature;
 *   - summary_add_invoice() (engine/summary.h) over json_loadb() of the
 *     bytes: one invoice, or an array of invoices added in turn to one
 *     period summary, then compared and written as the report.
 *
 * Besides what ASan and UBSan catch, it traps (so libFuzzer saves the input)
 * when a promise is broken:
 *   clearance FA_OK    -> every field a NUL-terminated token without spaces
 *                         or control characters, a valid period and machine
 *                         number, limit > 0, offline amount >= 0, offline
 *                         hours 0..100000, and the signed text exactly
 *                         "CLEARANCE" and the fields joined by single
 *                         spaces (nothing can be slipped into it);
 *   clearance FA_INVAL -> nothing left behind (no key);
 *   summary            -> an invoice refused leaves the sums as they were
 *                         and names a field; one taken adds exactly one
 *                         invoice; lines stay within 64 and unique; the
 *                         summary equals itself sorted; the report has one
 *                         row per non-empty line plus the header and three
 *                         totals, or is refused for overflow.
 */
#include <jansson.h>
#include <stdlib.h>
#include "device/proto.h"
#include "device/sim.h"
#include "engine/summary.h"

#define FUZZ_NAME "fuzz_clearance"
#include "tests/fuzz/fuzz.h"

#define INVOICES_MAX 200

/* A token as the signed text needs it: 1..cap-1 bytes, none a space, a
 * control character or DEL (bytes above 0x7f are UTF-8, as JSON gave them). */
static bool token_ok(const char *t, size_t cap)
{
    size_t i, n = strnlen(t, cap);

    if (n == 0 || n >= cap)
        return false;
    for (i = 0; i < n; i++)
        if ((unsigned char)t[i] <= ' ' || t[i] == 0x7f)
            return false;
    return true;
}

/* n digits at s (what follows does not matter). */
static bool digits(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static void fuzz_answer(const uint8_t *data, size_t size)
{
    static struct sim_clearance c;   /* a few hundred bytes of text: keep it off the stack */
    char want[SIM_CLEARANCE_TEXT_MAX + 64];
    int month, n;

    if (sim_parse_clearance((const char *)data, size, &c) != FA_OK) {
        FUZZ_CHECK(!c.supplied_key && !c.text_len && !c.text[0], "refused, yet a key or text is left");
        return;
    }
    FUZZ_CHECK(size >= 1 && size <= PROTO_CLEARANCE_MAX, "an answer of %zu bytes accepted", size);
    FUZZ_CHECK(token_ok(c.period, sizeof c.period) && token_ok(c.machine_number, sizeof c.machine_number) &&
               token_ok(c.lock_text, sizeof c.lock_text) && token_ok(c.per_invoice, sizeof c.per_invoice) &&
               token_ok(c.offline_amount, sizeof c.offline_amount) &&
               token_ok(c.signature, sizeof c.signature), "a field is not a token");
    month = (c.period[5] - '0') * 10 + (c.period[6] - '0');
    FUZZ_CHECK(strlen(c.period) == 7 && digits(c.period, 4) && c.period[4] == '-' &&
               digits(c.period + 5, 2) && month >= 1 && month <= 12, "period \"%s\" accepted", c.period);
    FUZZ_CHECK(strlen(c.machine_number) == 12 && digits(c.machine_number, 12),
               "machine_number \"%s\" accepted", c.machine_number);
    FUZZ_CHECK(c.limit_fen > 0 && c.offline_amount_fen >= 0, "limits %lld / %lld fen accepted",
               (long long)c.limit_fen, (long long)c.offline_amount_fen);
    FUZZ_CHECK(c.offline_hours >= 0 && c.offline_hours <= 100000, "offline_hours %lld accepted",
               (long long)c.offline_hours);
    n = snprintf(want, sizeof want, "CLEARANCE %s %s %s %s %lld %s", c.period, c.machine_number, c.lock_text,
                 c.per_invoice, (long long)c.offline_hours, c.offline_amount);
    FUZZ_CHECK(n > 0 && (size_t)n == c.text_len && c.text_len == strlen(c.text) && !strcmp(c.text, want),
               "signed text \"%s\" is not the fields joined (\"%s\")", c.text, want);
    sim_clearance_free(&c);
    FUZZ_CHECK(!c.supplied_key, "sim_clearance_free left the key");
}

/* Lines unique by type, colour and rate, their types three digits. */
static void check_lines(const struct device_summary *s)
{
    int i;

    FUZZ_CHECK(s->nlines >= 0 && s->nlines <= DEVICE_SUMMARY_LINES, "%d summary lines", s->nlines);
    for (i = 0; i < s->nlines; i++) {
        const struct device_summary_line *l = &s->lines[i];

        FUZZ_CHECK(FUZZ_STR_OK(l->type) && strlen(l->type) == 3 && digits(l->type, 3),
                   "line %d: type \"%.4s\"", i, l->type);
        FUZZ_CHECK(summary_find_line(s, l->type, l->red, l->rate_pm) == i, "line %d is there twice", i);
        FUZZ_CHECK(l->rate_pm >= 0 && l->rate_pm <= 1000, "line %d: rate %d per mille", i, l->rate_pm);
    }
}

static void check_report(const struct device_summary *s)
{
    static struct device_summary sorted;
    char detail[512];
    size_t len = 0, i, rows = 0;
    int nonzero = 0, k;
    char *csv;

    sorted = *s;
    summary_sort(&sorted);
    FUZZ_CHECK(summary_equal(s, "a", &sorted, "b", detail, sizeof detail),
               "a summary differs from itself sorted: %s", detail);
    csv = summary_csv(s, &len);
    if (!csv)
        return;   /* the totals overflow */
    FUZZ_CHECK(len > 0 && csv[len - 1] == '\n' && strlen(csv) == len, "report not text lines");
    for (i = 0; i < len; i++)
        rows += csv[i] == '\n';
    for (k = 0; k < s->nlines; k++)
        nonzero += s->lines[k].count || s->lines[k].amount_fen || s->lines[k].tax_fen;
    FUZZ_CHECK(rows == (size_t)nonzero + 4, "report has %zu rows for %d lines", rows, nonzero);
    free(csv);
}

static void add_one(struct device_summary *s, json_t *invoice)
{
    static struct device_summary before;
    char why[256] = "";
    int rc;

    before = *s;
    rc = summary_add_invoice(s, invoice, why, sizeof why);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1, "summary_add_invoice returned %d", rc);
        FUZZ_CHECK(!memcmp(&before, s, sizeof before), "a refused invoice changed the sums (%s)", why);
        FUZZ_CHECK(why[0] && strchr(why, ' '), "a refused invoice without a reason");
        return;
    }
    FUZZ_CHECK(summary_count(s) == summary_count(&before) + 1 || summary_count(&before) == INT64_MAX,
               "an invoice taken counts %lld, was %lld", (long long)summary_count(s),
               (long long)summary_count(&before));
    check_lines(s);
}

static void fuzz_summary(const uint8_t *data, size_t size)
{
    static struct device_summary s;
    json_t *doc = json_loadb((const char *)data, size, 0, NULL), *v;
    size_t i;

    if (!doc)
        return;
    memset(&s, 0, sizeof s);
    snprintf(s.period, sizeof s.period, "2026-11");
    snprintf(s.machine_number, sizeof s.machine_number, "499099000001");
    if (json_is_array(doc)) {
        json_array_foreach(doc, i, v) {
            if (i >= INVOICES_MAX)
                break;
            add_one(&s, v);
        }
    } else {
        add_one(&s, doc);
    }
    check_report(&s);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_answer(data, size);
    fuzz_summary(data, size);
    return 0;
}
