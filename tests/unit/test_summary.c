/*
 * test_summary.c — engine/summary.c: invoices added to a period summary
 * (colour from the total, sums by rate, counted once under the first
 * item's rate), refusals that name the field and leave the sums alone,
 * merge, canonical order, comparison with its words, and the exact bytes
 * of reports/YYYY-MM.csv.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "engine/summary.h"
#include "tests/unit/unit.h"

/* The parts of an issued invoice that a summary reads. */
static json_t *invoice(const char *json)
{
    json_error_t err;
    json_t *doc = json_loads(json, 0, &err);

    if (doc == NULL)
        printf("# bad test JSON: %s\n", err.text);
    return doc;
}

/* Adds an invoice given as JSON text; the return of summary_add_invoice. */
static int add(struct device_summary *s, const char *json, char *why, size_t whylen)
{
    json_t *doc = invoice(json);
    int rc;

    why[0] = '\0';
    rc = summary_add_invoice(s, doc, why, whylen);
    json_decref(doc);
    return rc;
}

static struct device_summary_line line(const char *type, bool red, int rate_pm, int64_t count,
                                       int64_t amount_fen, int64_t tax_fen)
{
    struct device_summary_line l = { .red = red, .rate_pm = rate_pm, .count = count,
                                     .amount_fen = amount_fen, .tax_fen = tax_fen };

    snprintf(l.type, sizeof l.type, "%s", type);
    return l;
}

static void new_summary(struct device_summary *s, const char *period)
{
    memset(s, 0, sizeof *s);
    snprintf(s->period, sizeof s->period, "%s", period);
    snprintf(s->machine_number, sizeof s->machine_number, "499099000001");
}

static void push(struct device_summary *s, struct device_summary_line l)
{
    s->lines[s->nlines++] = l;
}

/* Whether s has exactly this line (at any place). */
static bool has_line(const struct device_summary *s, struct device_summary_line want)
{
    for (int i = 0; i < s->nlines; i++) {
        const struct device_summary_line *l = &s->lines[i];
        if (strcmp(l->type, want.type) == 0 && l->red == want.red && l->rate_pm == want.rate_pm)
            return l->count == want.count && l->amount_fen == want.amount_fen &&
                   l->tax_fen == want.tax_fen;
    }
    return false;
}

static bool same_bytes(const struct device_summary *a, const struct device_summary *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

static const char BLUE[] =
    "{\"type\": \"026\", \"totals\": {\"total\": \"339.00\"},"
    " \"items\": [{\"tax_rate\": \"0.13\", \"amount\": \"300.00\", \"tax\": \"39.00\"}]}";
static const char RED[] =
    "{\"type\": \"026\", \"totals\": {\"total\": \"-113.00\"},"
    " \"items\": [{\"tax_rate\": \"0.13\", \"amount\": \"-100.00\", \"tax\": \"-13.00\"}]}";
/* three items at two rates: counted once, under 0.06, the first item's */
static const char MULTI[] =
    "{\"type\": \"026\", \"totals\": {\"total\": \"385.00\"}, \"items\": ["
    "{\"tax_rate\": \"0.06\", \"amount\": \"100.00\", \"tax\": \"6.00\"},"
    "{\"tax_rate\": \"0.13\", \"amount\": \"200.00\", \"tax\": \"26.00\"},"
    "{\"tax_rate\": \"0.06\", \"amount\": \"50.00\", \"tax\": \"3.00\"}]}";

static void test_add_invoice(void)
{
    struct device_summary s;
    char why[256];

    new_summary(&s, "2026-11");
    CHECK_INT(add(&s, BLUE, why, sizeof why), 0);
    CHECK_INT(s.nlines, 1);
    CHECK(has_line(&s, line("026", false, 130, 1, 30000, 3900)),
          "a blue invoice: 026 blue 130, 1, 300.00, 39.00");
    CHECK_STR(why, "");
    CHECK_INT(add(&s, BLUE, why, sizeof why), 0);
    CHECK(has_line(&s, line("026", false, 130, 2, 60000, 7800)), "a second one adds to the same line");
    CHECK_INT(add(&s, RED, why, sizeof why), 0);
    CHECK_INT(s.nlines, 2);
    CHECK(has_line(&s, line("026", true, 130, 1, -10000, -1300)), "a negative total makes a red line");
    CHECK(has_line(&s, line("026", false, 130, 2, 60000, 7800)), "...and leaves the blue one alone");

    new_summary(&s, "2026-11");
    CHECK_INT(add(&s, MULTI, why, sizeof why), 0);
    CHECK_INT(s.nlines, 2);
    CHECK(has_line(&s, line("026", false, 60, 1, 15000, 900)),
          "several rates: counted once, under the first item's rate, its two items summed");
    CHECK(has_line(&s, line("026", false, 130, 0, 20000, 2600)),
          "several rates: the other rate's amounts, count 0");
    CHECK_INT(summary_count(&s), 1);

    new_summary(&s, "2026-11");
    CHECK_INT(add(&s, "{\"type\": \"028\", \"totals\": {\"total\": \"1015.00\"}, \"items\": ["
                      "{\"tax_rate\": \"0.015\", \"amount\": \"1000.00\", \"tax\": \"15.00\"}]}",
                  why, sizeof why), 0);
    CHECK(has_line(&s, line("028", false, 15, 1, 100000, 1500)), "rate 0.015: per mille 15");
    CHECK_INT(add(&s, "{\"type\": \"028\", \"totals\": {\"total\": \"80.00\"}, \"items\": ["
                      "{\"tax_rate\": \"0\", \"amount\": \"50.00\", \"tax\": \"0.00\"},"
                      "{\"tax_rate\": \"0.00\", \"amount\": \"30.00\", \"tax\": \"0.00\"}]}",
                  why, sizeof why), 0);
    CHECK(has_line(&s, line("028", false, 0, 1, 8000, 0)), "rate 0 and 0.00: one line, per mille 0");
    CHECK_INT(add(&s, "{\"type\": \"028\", \"totals\": {\"total\": \"0.00\"}, \"items\": ["
                      "{\"tax_rate\": \"0.0155\", \"amount\": \"0.00\", \"tax\": \"0.00\"}]}",
                  why, sizeof why), 0);
    CHECK(has_line(&s, line("028", false, 15, 2, 100000, 1500)),
          "rate 0.0155 truncates to per mille 15; a total of 0 is blue");
    CHECK_INT(add(&s, "{\"type\": \"028\", \"totals\": {\"total\": \"1.00\"}, \"items\": ["
                      "{\"tax_rate\": \"1\", \"amount\": \"0.50\", \"tax\": \"0.50\"}]}",
                  why, sizeof why), 0);
    CHECK(has_line(&s, line("028", false, 1000, 1, 50, 50)), "rate 1: per mille 1000");
}

static void test_add_invoice_refusals(void)
{
    static const struct { const char *json, *why; } cases[] = {
        { "{\"totals\": {\"total\": \"1.00\"}, \"items\": [{\"tax_rate\": \"0.13\", \"amount\": \"1.00\","
          " \"tax\": \"0.13\"}]}", "type: missing, or not 3 digits" },
        { "{\"type\": \"26\", \"totals\": {\"total\": \"1.00\"}, \"items\": [{\"tax_rate\": \"0.13\","
          " \"amount\": \"1.00\", \"tax\": \"0.13\"}]}", "type: missing, or not 3 digits" },
        { "{\"type\": \"026\", \"items\": [{\"tax_rate\": \"0.13\", \"amount\": \"1.00\","
          " \"tax\": \"0.13\"}]}",
          "totals.total: missing, or not an amount with at most 2 decimals" },
        { "{\"type\": \"026\", \"totals\": {\"total\": \"1.001\"}, \"items\": [{\"tax_rate\": \"0.13\","
          " \"amount\": \"1.00\", \"tax\": \"0.13\"}]}",
          "totals.total: missing, or not an amount with at most 2 decimals" },
        { "{\"type\": \"026\", \"totals\": {\"total\": 1.00}, \"items\": [{\"tax_rate\": \"0.13\","
          " \"amount\": \"1.00\", \"tax\": \"0.13\"}]}",
          "totals.total: missing, or not an amount with at most 2 decimals" },
        { "{\"type\": \"026\", \"totals\": {\"total\": \"1.00\"}}", "items: missing, or empty" },
        { "{\"type\": \"026\", \"totals\": {\"total\": \"1.00\"}, \"items\": []}",
          "items: missing, or empty" },
        { "{\"type\": \"026\", \"totals\": {\"total\": \"2.00\"}, \"items\": ["
          "{\"tax_rate\": \"0.13\", \"amount\": \"1.00\", \"tax\": \"0.13\"},"
          "{\"amount\": \"1.00\", \"tax\": \"0.13\"}]}",
          "items[1].tax_rate: missing, or not a rate from 0 to 1" },
        { "{\"type\": \"026\", \"totals\": {\"total\": \"1.00\"}, \"items\": [{\"tax_rate\": \"1.5\","
          " \"amount\": \"1.00\", \"tax\": \"0.13\"}]}",
          "items[0].tax_rate: missing, or not a rate from 0 to 1" },
        { "{\"type\": \"026\", \"totals\": {\"total\": \"1.00\"}, \"items\": [{\"tax_rate\": \"-0.13\","
          " \"amount\": \"1.00\", \"tax\": \"0.13\"}]}",
          "items[0].tax_rate: missing, or not a rate from 0 to 1" },
        { "{\"type\": \"026\", \"totals\": {\"total\": \"1.00\"}, \"items\": [{\"tax_rate\": \"0.13\","
          " \"tax\": \"0.13\"}]}", "items[0].amount: missing, or not an amount with at most 2 decimals" },
        { "{\"type\": \"026\", \"totals\": {\"total\": \"1.00\"}, \"items\": [{\"tax_rate\": \"0.13\","
          " \"amount\": \"1.00\", \"tax\": \"abc\"}]}",
          "items[0].tax: missing, or not an amount with at most 2 decimals" },
        { "[1, 2]", "type: missing, or not 3 digits" },
    };
    struct device_summary s, before;
    char why[256];

    new_summary(&s, "2026-11");
    add(&s, BLUE, why, sizeof why);
    before = s;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_INT(add(&s, cases[i].json, why, sizeof why), -1);
        CHECK_STR(why, cases[i].why);
        CHECK(same_bytes(&s, &before), "refusal %zu leaves the summary unchanged", i);
    }
    why[0] = '\0';
    CHECK_INT(summary_add_invoice(&s, NULL, why, sizeof why), -1);
    CHECK_STR(why, "type: missing, or not 3 digits");

    /* the amount of 0.13 would overflow after the 0.06 item was added */
    new_summary(&s, "2026-11");
    push(&s, line("026", false, 130, 1, INT64_MAX - 10000, 0));
    before = s;
    CHECK_INT(add(&s, MULTI, why, sizeof why), -1);
    CHECK_STR(why, "items[1]: the sums of the period would overflow");
    CHECK(same_bytes(&s, &before), "an overflow leaves the summary unchanged, the 0.06 line not added");

    new_summary(&s, "2026-11");
    for (int i = 0; i < DEVICE_SUMMARY_LINES; i++)
        push(&s, line("028", false, i, 1, 100, 0));
    before = s;
    CHECK_INT(add(&s, BLUE, why, sizeof why), -1);
    CHECK_STR(why, "the period would have more than 64 summary lines");
    CHECK(same_bytes(&s, &before), "a full summary stays unchanged");
}

static void test_merge(void)
{
    struct device_summary s, add_s, before;

    new_summary(&s, "2026-11");
    push(&s, line("026", false, 130, 3, 30000, 3900));
    push(&s, line("026", true, 130, 1, -10000, -1300));
    new_summary(&add_s, "2026-11");
    push(&add_s, line("026", false, 130, 2, 20000, 2600));
    push(&add_s, line("028", false, 60, 1, 10000, 600));
    push(&add_s, line("026", false, 90, 0, 0, 0));
    CHECK_INT(summary_merge(&s, &add_s), 0);
    CHECK_INT(s.nlines, 3);
    CHECK(has_line(&s, line("026", false, 130, 5, 50000, 6500)), "merge: the same line summed");
    CHECK(has_line(&s, line("026", true, 130, 1, -10000, -1300)), "merge: a line not in add unchanged");
    CHECK(has_line(&s, line("028", false, 60, 1, 10000, 600)), "merge: a new line added");
    CHECK_INT(summary_count(&s), 7);
    CHECK_STR(s.period, "2026-11");

    before = s;
    new_summary(&add_s, "2026-11");
    push(&add_s, line("028", false, 60, 1, 100, 6));
    push(&add_s, line("026", false, 130, 1, INT64_MAX, 0));
    CHECK_INT(summary_merge(&s, &add_s), -1);
    CHECK(same_bytes(&s, &before), "merge that overflows: -1, s unchanged");

    new_summary(&s, "2026-11");
    for (int i = 0; i < DEVICE_SUMMARY_LINES; i++)
        push(&s, line("028", false, i, 1, 100, 0));
    before = s;
    new_summary(&add_s, "2026-11");
    push(&add_s, line("028", false, 5, 1, 100, 0));
    push(&add_s, line("026", false, 130, 1, 100, 13));
    CHECK_INT(summary_merge(&s, &add_s), -1);
    CHECK(same_bytes(&s, &before), "merge without room: -1, s unchanged");
}

static void test_sort(void)
{
    static const struct { const char *type; bool red; int rate_pm; } want[] = {
        { "026", false, 15 }, { "026", false, 130 }, { "026", true, 0 }, { "026", true, 60 },
        { "028", false, 0 }, { "028", false, 130 }, { "028", true, 90 },
    };
    struct device_summary s;
    bool ordered = true;

    new_summary(&s, "2026-11");
    push(&s, line("028", false, 130, 1, 1, 0));
    push(&s, line("026", true, 60, 1, 2, 0));
    push(&s, line("028", true, 90, 1, 3, 0));
    push(&s, line("026", false, 130, 1, 4, 0));
    push(&s, line("026", false, 15, 1, 5, 0));
    push(&s, line("028", false, 0, 1, 6, 0));
    push(&s, line("026", true, 0, 1, 7, 0));
    summary_sort(&s);
    CHECK_INT(s.nlines, 7);
    for (int i = 0; i < 7; i++)
        ordered = ordered && strcmp(s.lines[i].type, want[i].type) == 0 && s.lines[i].red == want[i].red &&
                  s.lines[i].rate_pm == want[i].rate_pm;
    CHECK(ordered, "sort: type, blue before red, rate ascending");
    CHECK(s.lines[0].amount_fen == 5 && s.lines[6].amount_fen == 3, "sort moves whole lines");
}

static void test_equal(void)
{
    struct device_summary a, b;
    char detail[512];

    new_summary(&a, "2026-11");
    push(&a, line("026", false, 130, 5, 50000, 6500));
    push(&a, line("026", true, 130, 1, -10000, -1300));
    push(&a, line("028", false, 15, 1, 100000, 1500));
    new_summary(&b, "2026-11");
    push(&b, line("028", false, 15, 1, 100000, 1500));
    push(&b, line("026", true, 130, 1, -10000, -1300));
    push(&b, line("026", false, 60, 0, 0, 0));
    push(&b, line("026", false, 130, 5, 50000, 6500));
    strcpy(detail, "unchanged");
    CHECK(summary_equal(&a, "the device", &b, "the store", detail, sizeof detail),
          "equal: other order, a zero line only in one");
    CHECK_STR(detail, "");

    b.lines[3] = line("026", false, 130, 4, 40000, 5200);
    CHECK(!summary_equal(&a, "the device", &b, "the store", detail, sizeof detail), "a count that differs");
    CHECK_STR(detail, "026 blue 13%: the device counts 5 invoices, amount 500.00, tax 65.00; "
                      "the store 4, 400.00, 52.00");

    /* two differences: the first in canonical order is named, whatever the order of lines */
    b.lines[0] = line("028", false, 15, 1, 100000, 1600);
    CHECK(!summary_equal(&a, "the device", &b, "the store", detail, sizeof detail), "two differences");
    CHECK_STR(detail, "026 blue 13%: the device counts 5 invoices, amount 500.00, tax 65.00; "
                      "the store 4, 400.00, 52.00");
    b.lines[3] = a.lines[0];
    CHECK(!summary_equal(&b, "the summary", &a, "the platform", detail, sizeof detail), "a tax that differs");
    CHECK_STR(detail, "028 blue 1.5%: the summary counts 1 invoice, amount 1000.00, tax 16.00; "
                      "the platform 1, 1000.00, 15.00");

    b.lines[0] = a.lines[2];
    b.nlines = 3;
    CHECK(!summary_equal(&a, "the device", &b, "the store", detail, sizeof detail), "a line only in a");
    CHECK_STR(detail, "026 blue 13%: the device counts 5 invoices, amount 500.00, tax 65.00; "
                      "the store 0, 0.00, 0.00");
    CHECK(!summary_equal(&b, "the store", &a, "the device", detail, sizeof detail), "a line only in b");
    CHECK_STR(detail, "026 blue 13%: the store counts 0 invoices, amount 0.00, tax 0.00; "
                      "the device 5, 500.00, 65.00");

    new_summary(&b, "2026-11");
    new_summary(&a, "2026-11");
    CHECK(summary_equal(&a, "a", &b, "b", detail, sizeof detail), "two empty summaries are equal");
    push(&a, line("026", true, 0, 0, 0, 0));
    CHECK(summary_equal(&a, "a", &b, "b", detail, sizeof detail), "empty and only a zero line: equal");
    push(&b, line("028", true, 0, 0, 1, 0));
    CHECK(!summary_equal(&a, "a", &b, "b", detail, sizeof detail), "0.01 of amount is a difference");
    CHECK_STR(detail, "028 red 0%: a counts 0 invoices, amount 0.00, tax 0.00; b 0, 0.01, 0.00");
}

static void test_count(void)
{
    struct device_summary s;

    new_summary(&s, "2026-11");
    CHECK_INT(summary_count(&s), 0);
    push(&s, line("026", false, 130, 3, 1, 0));
    push(&s, line("026", false, 60, 0, 1, 0));
    push(&s, line("026", true, 130, 2, -1, 0));
    push(&s, line("028", false, 15, 7, 1, 0));
    CHECK_INT(summary_count(&s), 12);
}

static void check_csv(const struct device_summary *s, const char *want, const char *what)
{
    size_t len = 12345;
    char *csv = summary_csv(s, &len);

    CHECK(csv != NULL && len == strlen(want) && memcmp(csv, want, len) == 0, "csv: %s", what);
    if (csv != NULL && (len != strlen(want) || memcmp(csv, want, len) != 0))
        printf("# got:\n%.*s# want:\n%s", (int)len, csv, want);
    free(csv);
}

static void test_csv(void)
{
    struct device_summary s;
    size_t len;
    char *csv;

    new_summary(&s, "2026-11");
    push(&s, line("026", true, 130, 1, -10000, -1300));
    push(&s, line("026", false, 130, 3, 30000, 3900));
    check_csv(&s,
              "period,type,kind,tax_rate,invoices,amount,tax,total\n"
              "2026-11,026,blue,0.13,3,300.00,39.00,339.00\n"
              "2026-11,026,red,0.13,1,-100.00,-13.00,-113.00\n"
              "2026-11,all,blue,all,3,300.00,39.00,339.00\n"
              "2026-11,all,red,all,1,-100.00,-13.00,-113.00\n"
              "2026-11,all,all,all,4,200.00,26.00,226.00\n",
              "the example of summary.h");

    new_summary(&s, "2026-12");
    push(&s, line("028", false, 15, 1, 100000, 1500));
    push(&s, line("026", false, 60, 2, 15000, 900));
    push(&s, line("026", false, 0, 1, 5000, 0));
    push(&s, line("026", false, 90, 0, 0, 0));   /* absent */
    push(&s, line("026", false, 130, 0, 20000, 2600));
    push(&s, line("026", false, 30, 1, 1, 0));
    push(&s, line("026", false, 10, 1, 2, 0));
    push(&s, line("028", false, 1000, 1, 99, 99));
    push(&s, line("026", true, 60, 1, -5, 0));
    check_csv(&s,
              "period,type,kind,tax_rate,invoices,amount,tax,total\n"
              "2026-12,026,blue,0,1,50.00,0.00,50.00\n"
              "2026-12,026,blue,0.01,1,0.02,0.00,0.02\n"
              "2026-12,026,blue,0.03,1,0.01,0.00,0.01\n"
              "2026-12,026,blue,0.06,2,150.00,9.00,159.00\n"
              "2026-12,026,blue,0.13,0,200.00,26.00,226.00\n"
              "2026-12,026,red,0.06,1,-0.05,0.00,-0.05\n"
              "2026-12,028,blue,0.015,1,1000.00,15.00,1015.00\n"
              "2026-12,028,blue,1,1,0.99,0.99,1.98\n"
              "2026-12,all,blue,all,7,1401.02,50.99,1452.01\n"
              "2026-12,all,red,all,1,-0.05,0.00,-0.05\n"
              "2026-12,all,all,all,8,1400.97,50.99,1451.96\n",
              "every rate, a zero line left out, canonical order");

    new_summary(&s, "2027-01");
    check_csv(&s,
              "period,type,kind,tax_rate,invoices,amount,tax,total\n"
              "2027-01,all,blue,all,0,0.00,0.00,0.00\n"
              "2027-01,all,red,all,0,0.00,0.00,0.00\n"
              "2027-01,all,all,all,0,0.00,0.00,0.00\n",
              "an empty period: the header and three rows of zeros");

    /* beyond dec_t's range, still exact */
    new_summary(&s, "2027-01");
    push(&s, line("026", false, 130, 1, INT64_MAX - 1, 0));
    check_csv(&s,
              "period,type,kind,tax_rate,invoices,amount,tax,total\n"
              "2027-01,026,blue,0.13,1,92233720368547758.06,0.00,92233720368547758.06\n"
              "2027-01,all,blue,all,1,92233720368547758.06,0.00,92233720368547758.06\n"
              "2027-01,all,red,all,0,0.00,0.00,0.00\n"
              "2027-01,all,all,all,1,92233720368547758.06,0.00,92233720368547758.06\n",
              "sums beyond dec_t's range are written exactly");
    push(&s, line("028", false, 130, 1, 2, 0));
    len = 7;
    csv = summary_csv(&s, &len);
    CHECK(csv == NULL && len == 0, "csv: totals that overflow give NULL");
    free(csv);
}

/* Amounts as text and back, beyond dec_t's ±92 billion yuan too: a month's
 * sums of a big seller go past it (the clearing report wrapped negative). */
static void test_amounts(void)
{
    const struct { const char *text; bool ok; int64_t fen; } cases[] = {
        { "9500.00", true, 950000 }, { "-30.5", true, -3050 }, { "7", true, 700 },
        { "93000000000.00", true, 9300000000000 }, { "-93000000000.01", true, -9300000000001 },
        { "92233720368547758.07", true, INT64_MAX }, { "-92233720368547758.08", true, INT64_MIN },
        { "92233720368547758.08", false, 0 }, { "100000000000.001", false, 0 },
        { "100000000000.", false, 0 }, { "1e12", false, 0 }, { "", false, 0 }, { "-", false, 0 },
        { "+100000000000", false, 0 }, { "100000000000.0.0", false, 0 },
    };
    const int64_t round[] = { 0, -1, 950000, 9223372036854775807 / 1000000, 9300000000000,
                              -9300000000001, INT64_MAX, INT64_MIN };
    char buf[DEC_FMT_MAX];
    int64_t fen;
    size_t i;

    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *v = json_string(cases[i].text);
        bool ok;
        fen = 0;
        ok = summary_amount_fen(v, &fen);
        CHECK(ok == cases[i].ok && (!ok || fen == cases[i].fen), "\"%s\": %s %lld", cases[i].text,
              ok ? "read as" : "refused", (long long)fen);
        json_decref(v);
    }
    for (i = 0; i < sizeof round / sizeof *round; i++) {
        json_t *v = json_string(summary_money_text(round[i], buf));
        CHECK(summary_amount_fen(v, &fen) && fen == round[i], "%lld fen as \"%s\" and back",
              (long long)round[i], buf);
        json_decref(v);
    }
}

int main(void)
{
    test_add_invoice();
    test_add_invoice_refusals();
    test_merge();
    test_sort();
    test_equal();
    test_count();
    test_csv();
    test_amounts();
    return unit_done();
}
