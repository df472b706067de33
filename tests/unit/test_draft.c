/*
 * test_draft.c — draft parsing, validation and calculation (SPEC §3), and
 * the canonical invoice rendering (SPEC §4).
 */
#include <stdlib.h>
#include <string.h>
#include "engine/draft.h"
#include "engine/invoice.h"
#include "tests/unit/unit.h"

/* Append formatted text at `at` (the test's buffer is large enough). */
#define append(at, ...) snprintf((at), 4096, __VA_ARGS__)

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

/* Parse s; returns the problems text ("" if valid); fills d (caller frees). */
static char *parse(const char *s, struct draft *d)
{
    struct problems p = { 0 };
    struct draft_defaults defs = { .drawer = NULL };
    char *text;
    draft_parse(s, strlen(s), &defs, d, &p);
    text = strdup(p.text ? p.text : "");
    problems_free(&p);
    return text;
}

static void check_problem(const char *draft, const char *want_prefix)
{
    struct draft d;
    char *t = parse(draft, &d);
    CHECK(strstr(t, want_prefix) != NULL, "problem \"%s\" reported (got: %s)", want_prefix, t);
    free(t);
    draft_free(&d);
}

#define ITEM(extra) "{\"name\":\"n\",\"category\":\"c\",\"tax_code\":\"3040201000000000000\"," extra "}"
#define DRAFT(items, extra) "{\"buyer\":{\"name\":\"B\"},\"drawer\":\"张三\",\"items\":[" items "]" extra "}"

static void test_example(void)
{
    size_t len;
    char *body = read_file("examples/basic.json", &len);
    struct problems p = { 0 };
    struct draft d;
    char a[DEC_FMT_MAX];

    CHECK(body != NULL, "examples/basic.json readable");
    if (!body)
        return;
    CHECK(draft_parse(body, len, NULL, &d, &p) == FA_OK, "example parses (%s)", p.text ? p.text : "");
    CHECK_STR(dec_format(d.total_amount, 2, a), "9500.00");
    CHECK_STR(dec_format(d.total_tax, 2, a), "570.00");
    CHECK_STR(dec_format(d.total, 2, a), "10070.00");
    CHECK_STR(d.type, "026");
    CHECK_STR(d.request_id, "SO-2024-000123");
    draft_free(&d);
    problems_free(&p);
    free(body);
}

static void test_calculation(void)
{
    struct draft d;
    char a[DEC_FMT_MAX], *t;

    /* tax = round(amount × rate), half away from zero: 0.25 × 0.06 = 0.015 → 0.02 */
    t = parse(DRAFT(ITEM("\"amount\":\"0.25\",\"tax_rate\":\"0.06\""), ""), &d);
    CHECK_STR(t, "");
    CHECK_STR(dec_format(d.items[0].tax, 2, a), "0.02");
    free(t);
    draft_free(&d);

    /* prices including tax: 106.00 at 6 % → tax 6.00, amount 100.00 */
    t = parse(DRAFT(ITEM("\"quantity\":2,\"unit_price\":53,\"amount\":106.00,\"tax_rate\":\"0.06\""),
                    ",\"prices_include_tax\":true"), &d);
    CHECK_STR(t, "");
    CHECK_STR(dec_format(d.items[0].tax, 2, a), "6.00");
    CHECK_STR(dec_format(d.items[0].amount, 2, a), "100.00");
    CHECK_STR(dec_format(d.items[0].unit_price, 8, a), "50.00000000");
    CHECK_STR(dec_format(d.total, 2, a), "106.00");
    free(t);
    draft_free(&d);

    /* JSON numbers are exact: 0.1 + 0.2 stays 0.30 */
#define ZERO_RATED(a) ITEM("\"amount\":" a ",\"tax_rate\":0,\"zero_rate\":\"exempt\"")
    t = parse(DRAFT(ZERO_RATED("0.1") "," ZERO_RATED("0.2"), ""), &d);
    CHECK_STR(t, "");
    CHECK_STR(dec_format(d.total, 2, a), "0.30");
    free(t);
    draft_free(&d);

    /* quantity × unit price within 0.01 of the amount */
    t = parse(DRAFT(ITEM("\"quantity\":\"3\",\"unit_price\":\"0.33333333\",\"amount\":\"1.00\","
                         "\"tax_rate\":\"0.13\""), ""), &d);
    CHECK_STR(t, "");
    free(t);
    draft_free(&d);
}

static void test_problems(void)
{
    check_problem("{\n \"a\": 1,\n}", "(document): invalid JSON at line 3, column 1");
    check_problem("[]", "(document): must be a JSON object");
    check_problem(DRAFT(ITEM("\"amount\":\"1.00\",\"tax_rate\":\"0.07\""), ""),
                  "items[0].tax_rate: 0.07 is not an allowed rate");
    check_problem(DRAFT(ITEM("\"amount\":\"1.001\",\"tax_rate\":\"0.06\""), ""),
                  "items[0].amount: \"1.001\" has too many decimals");
    check_problem(DRAFT(ITEM("\"amount\":1e41,\"tax_rate\":\"0.06\""), ""),
                  "items[0].amount: \"1e41\" is not a plain decimal");
    check_problem(DRAFT(ITEM("\"amount\":\"1e 3\",\"tax_rate\":\"0.06\""), ""),
                  "items[0].amount: \"1e 3\" is not a plain decimal");
    check_problem(DRAFT(ITEM("\"amount\":1.005e0,\"tax_rate\":\"0.06\""), ""),
                  "items[0].amount: \"1.005e0\" has too many decimals");
    check_problem(DRAFT(ITEM("\"quantity\":\"2\",\"amount\":\"1.00\",\"tax_rate\":\"0.06\""), ""),
                  "items[0].unit_price: required when quantity is given");
    check_problem(DRAFT(ITEM("\"quantity\":\"2\",\"unit_price\":\"1\",\"amount\":\"3.00\","
                             "\"tax_rate\":\"0.13\""), ""),
                  "items[0].amount: 3.00 but quantity × unit_price is 2.00");
    check_problem(DRAFT(ITEM("\"amount\":\"100.00\",\"tax_rate\":\"0.06\",\"tax\":\"6.02\""), ""),
                  "items[0].tax: 6.02 differs from the computed 6.00");
    check_problem(DRAFT(ITEM("\"amount\":\"1.00\",\"tax_rate\":\"0.06\",\"colour\":\"red\""), ""),
                  "items[0].colour: unknown field");
    check_problem(DRAFT("", ""), "items: has 0 lines");
    check_problem(DRAFT(ITEM("\"amount\":\"1.00\",\"tax_rate\":\"0.06\""), ",\"type\":\"028\""),
                  "buyer.tax_id: required for type 028");
    check_problem("{\"items\":[]}", "buyer: required");
    check_problem("{\"buyer\":{\"name\":\"B\"},\"items\":["
                  ITEM("\"amount\":\"1\",\"tax_rate\":\"0.03\"") "]}", "drawer: required");
    check_problem(DRAFT(ITEM("\"amount\":\"1.00\",\"tax_rate\":\"0.06\""), ",\"request_id\":\"\""),
                  "request_id: must be 1-64 printable ASCII");
}

/* With line_tolerance 0.06 every line may pass while the sum passes ±1.27. */
static void test_invoice_tolerance(void)
{
    struct draft_defaults defs = { .drawer = "张三" };
    struct problems p = { 0 };
    struct draft d;
    char *body = malloc(64 * 1024), *at = body;
    int i;

    dec_parse("0.06", 2, &defs.line_tolerance);
    at += append(at, "{\"buyer\":{\"name\":\"B\"},\"items\":[");
    for (i = 0; i < 30; i++)   /* 100.00 at 13 % is 13.00; each line says 13.05 */
        at += append(at, "%s" ITEM("\"amount\":\"100.00\",\"tax_rate\":\"0.13\","
                                      "\"tax\":\"13.05\""), i ? "," : "");
    at += append(at, "]}");
    draft_parse(body, strlen(body), &defs, &d, &p);
    CHECK(p.text && strstr(p.text, "items: the given taxes differ from the computed ones by 1.50")
          && p.count == 1, "30 lines each 0.05 off: the ±1.27 invoice tolerance (got %s)",
          p.text ? p.text : "");
    draft_free(&d);
    problems_free(&p);
    free(body);
}

static void test_numbers_as_strings(void)
{
    const char *in = "{\"a\":-1.50,\"b\":\"x\\\"1\",\"c\":[2,true]}";
    size_t n;
    char *s = json_numbers_as_strings(in, strlen(in), &n);
    CHECK_STR(s, "{\"a\":\"-1.50\",\"b\":\"x\\\"1\",\"c\":[\"2\",true]}");
    free(s);
}

static void test_canonical(void)
{
    struct draft d;
    struct device_info seller = { .seller_tax_id = "9131011259474644XJ", .seller_name = "S" };
    struct device_issue_fields f = { .code = "031001900111", .number = "00000001",
                                     .machine_number = "499099000001",
                                     .check_code = "12345678901234567890", .cipher = "0+" };
    struct invoice_meta m = { .draft_name = "x.json", .issued_at = 1732241000, .seller = &seller,
                              .dev = &f };
    char *t = parse(DRAFT(ITEM("\"amount\":\"100.00\",\"tax_rate\":\"0.13\""), ""), &d);
    json_t *inv = invoice_build(&d, &m);
    size_t clen = 0, flen = 0;
    char *canon = invoice_canonical(inv, &clen), *file, *again;
    json_t *reparsed;

    CHECK(canon && !strchr(canon, '\n'), "canonical bytes are compact");
    CHECK(canon && !strncmp(canon, "{\"code\":\"031001900111\",\"number\":\"00000001\",", 42),
          "canonical bytes start with code and number");
    CHECK(canon && strstr(canon, "\"issued_at\":\"2024-11-22T10:03:20+08:00\"") != NULL,
          "issued_at in CST");
    CHECK(canon && strstr(canon, "\"total_upper\":\"壹佰壹拾叁圆整\"") != NULL, "upper-case total");
    file = invoice_render(inv, "SIG", &flen);
    reparsed = file ? json_loads(file, 0, NULL) : NULL;
    again = reparsed ? invoice_canonical(reparsed, &flen) : NULL;
    CHECK(again && canon && !strcmp(again, canon), "file → drop signature → same canonical bytes");
    CHECK(file && file[strlen(file) - 1] == '\n', "file ends with a newline");
    free(again);
    json_decref(reparsed);
    free(file);
    free(canon);
    json_decref(inv);
    free(t);
    draft_free(&d);
}

int main(void)
{
    test_example();
    test_calculation();
    test_problems();
    test_numbers_as_strings();
    test_invoice_tolerance();
    test_canonical();
    return unit_done();
}
