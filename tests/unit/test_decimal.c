/*
 * test_decimal.c — engine/decimal.c: parsing, formatting, rounding half away
 * from zero, overflow checks and the 128-bit products of §3.3.
 */
#include <limits.h>
#include "engine/decimal.h"
#include "tests/unit/unit.h"

#define MAX_TEXT "92233720368.54775807"   /* INT64_MAX units */

/* A value from text with up to 8 decimals; a bad literal is a failed check. */
static dec_t D(const char *s)
{
    dec_t d = { 0 };
    enum dec_parse_rc rc = dec_parse(s, 8, &d);
    if (rc != DEC_OK)
        CHECK(false, "test literal \"%s\" parses (%s)", s, dec_parse_strerror(rc));
    return d;
}

/* Formatted text in one of a few rotating buffers, for use inside a check. */
static const char *F(dec_t d, int decimals)
{
    static char ring[8][DEC_FMT_MAX];
    static int next;
    char *buf = ring[next++ % 8];
    return dec_format(d, decimals, buf);
}

/* ---- parsing ---------------------------------------------------------- */

static void check_parse_ok(const char *s, int max_decimals, int64_t want)
{
    dec_t d = { -1 };
    enum dec_parse_rc rc = dec_parse(s, max_decimals, &d);
    CHECK(rc == DEC_OK && d.v == want,
          "parse \"%s\" (max %d) = %lld units", s, max_decimals, (long long)want);
}

static void check_parse_err(const char *s, int max_decimals,
                            enum dec_parse_rc want)
{
    dec_t d = { 12345 };
    enum dec_parse_rc rc = dec_parse(s, max_decimals, &d);
    CHECK(rc == want && d.v == 12345,
          "parse \"%s\" (max %d) fails: %s", s ? s : "(null)", max_decimals,
          dec_parse_strerror(want));
}

static void test_parse(void)
{
    check_parse_ok("0", 2, 0);
    check_parse_ok("123", 0, 123 * DEC_SCALE);
    check_parse_ok("-0.5", 2, -DEC_SCALE / 2);
    check_parse_ok("10000.00", 2, 10000 * DEC_SCALE);
    check_parse_ok("007.5", 2, 7 * DEC_SCALE + DEC_SCALE / 2);
    check_parse_ok("-0", 2, 0);
    check_parse_ok("-0.00", 2, 0);
    check_parse_ok("0.00000001", 8, 1);
    check_parse_ok("1.000", 3, DEC_SCALE);
    check_parse_ok("0.33333333", 8, 33333333);
    check_parse_ok("0000000000000000000000000001.5", 1, DEC_SCALE * 3 / 2);
    check_parse_ok(MAX_TEXT, 8, INT64_MAX);
    check_parse_ok("-" MAX_TEXT, 8, -INT64_MAX);
    check_parse_ok("92233720368", 0, 92233720368LL * DEC_SCALE);

    /* DEC_SYNTAX */
    check_parse_err(NULL, 2, DEC_SYNTAX);
    check_parse_err("", 2, DEC_SYNTAX);
    check_parse_err("-", 2, DEC_SYNTAX);
    check_parse_err("+1", 2, DEC_SYNTAX);
    check_parse_err(".5", 2, DEC_SYNTAX);
    check_parse_err("-.5", 2, DEC_SYNTAX);
    check_parse_err("1.", 2, DEC_SYNTAX);
    check_parse_err("1e5", 2, DEC_SYNTAX);
    check_parse_err("1.5E2", 2, DEC_SYNTAX);
    check_parse_err(" 1", 2, DEC_SYNTAX);
    check_parse_err("1 ", 2, DEC_SYNTAX);
    check_parse_err("1,000", 2, DEC_SYNTAX);
    check_parse_err("1.2.3", 2, DEC_SYNTAX);
    check_parse_err("--1", 2, DEC_SYNTAX);
    check_parse_err("- 1", 2, DEC_SYNTAX);
    check_parse_err("0x10", 2, DEC_SYNTAX);
    check_parse_err("1-", 2, DEC_SYNTAX);
    check_parse_err("abc", 2, DEC_SYNTAX);
    check_parse_err("１", 2, DEC_SYNTAX);              /* full-width digit */
    check_parse_err("1.0000000000x", 2, DEC_SYNTAX);   /* syntax wins */

    /* DEC_TOO_PRECISE: every written decimal counts, zeros too */
    check_parse_err("1.000", 2, DEC_TOO_PRECISE);
    check_parse_err("1.001", 2, DEC_TOO_PRECISE);
    check_parse_err("1.5", 0, DEC_TOO_PRECISE);
    check_parse_err("0.123456789", 8, DEC_TOO_PRECISE);
    check_parse_err("99999999999999999999.123", 2, DEC_TOO_PRECISE);

    /* DEC_RANGE: must fit int64 in 10^-8 units */
    check_parse_err("92233720368.54775808", 8, DEC_RANGE);
    check_parse_err("-92233720368.54775808", 8, DEC_RANGE);
    check_parse_err("92233720369", 0, DEC_RANGE);
    check_parse_err("99999999999999999999999999999999", 0, DEC_RANGE);

    /* strerror: each code has its own text */
    const char *t_ok = dec_parse_strerror(DEC_OK);
    const char *t_syn = dec_parse_strerror(DEC_SYNTAX);
    const char *t_pre = dec_parse_strerror(DEC_TOO_PRECISE);
    const char *t_rng = dec_parse_strerror(DEC_RANGE);
    CHECK(t_ok && t_syn && t_pre && t_rng && strcmp(t_syn, t_pre) != 0 &&
          strcmp(t_pre, t_rng) != 0 && strcmp(t_syn, t_rng) != 0,
          "dec_parse_strerror: distinct texts (%s / %s / %s)", t_syn, t_pre, t_rng);
}

/* ---- formatting and rounding ------------------------------------------ */

static void test_format(void)
{
    CHECK_STR(F(D("1.005"), 2), "1.01");
    CHECK_STR(F(D("-1.005"), 2), "-1.01");
    CHECK_STR(F(D("2.675"), 2), "2.68");       /* 2.67499999… in binary */
    CHECK_STR(F(D("1.004"), 2), "1.00");
    CHECK_STR(F(D("1.00499999"), 2), "1.00");
    CHECK_STR(F(D("-0.004"), 2), "0.00");      /* never "-0.00" */
    CHECK_STR(F(D("-0.005"), 2), "-0.01");
    CHECK_STR(F(D("0"), 2), "0.00");
    CHECK_STR(F(D("-0"), 0), "0");
    CHECK_STR(F(D("2.5"), 0), "3");
    CHECK_STR(F(D("-2.5"), 0), "-3");
    CHECK_STR(F(D("0.5"), 0), "1");
    CHECK_STR(F(D("-0.49999999"), 0), "0");
    CHECK_STR(F(D("1.23456789"), 8), "1.23456789");
    CHECK_STR(F(D("1.5"), 8), "1.50000000");
    CHECK_STR(F(D("-12345.6"), 2), "-12345.60");
    CHECK_STR(F(D("0.00000001"), 8), "0.00000001");
    CHECK_STR(F(D("9.995"), 2), "10.00");
    CHECK_STR(F(D(MAX_TEXT), 8), MAX_TEXT);
    CHECK_STR(F(D(MAX_TEXT), 2), "92233720368.55");   /* past INT64_MAX, exact */
    CHECK_STR(F(D("-" MAX_TEXT), 0), "-92233720369");
    dec_t min = { INT64_MIN };                         /* built by hand */
    CHECK_STR(F(min, 8), "-92233720368.54775808");
    CHECK_STR(F(dec_from_fen(1234), 2), "12.34");
    CHECK_INT(dec_to_fen(D("-12.34")), -1234);
}

static void test_round(void)
{
    CHECK_STR(F(dec_round(D("1.005"), 2), 8), "1.01000000");
    CHECK_STR(F(dec_round(D("-1.005"), 2), 8), "-1.01000000");
    CHECK_STR(F(dec_round(D("2.675"), 2), 8), "2.68000000");
    CHECK_STR(F(dec_round(D("-0.125"), 2), 8), "-0.13000000");
    CHECK_STR(F(dec_round(D("-0.12499999"), 2), 8), "-0.12000000");
    CHECK_STR(F(dec_round(D("2.5"), 0), 8), "3.00000000");
    CHECK_STR(F(dec_round(D("-2.5"), 0), 8), "-3.00000000");
    CHECK_STR(F(dec_round(D("0.33333333"), 8), 8), "0.33333333");
    CHECK_INT(dec_round(D("-0.004"), 2).v, 0);
    /* half a step from the limit: the nearest value that fits is toward 0 */
    CHECK_STR(F(dec_round(D(MAX_TEXT), 2), 8), "92233720368.54000000");
    CHECK_STR(F(dec_round(D("-" MAX_TEXT), 0), 8), "-92233720368.00000000");
}

/* ---- arithmetic ------------------------------------------------------- */

static void test_add_sub(void)
{
    dec_t r = { 0 };
    dec_t max = D(MAX_TEXT), min = D("-" MAX_TEXT), tiny = D("0.00000001");

    CHECK(dec_add(D("0.1"), D("0.2"), &r) && r.v == D("0.3").v,
          "0.1 + 0.2 = 0.3 exactly");
    CHECK(dec_add(D("-500.00"), D("10000.00"), &r) && r.v == D("9500").v,
          "-500.00 + 10000.00 = 9500");
    CHECK(dec_add(max, min, &r) && r.v == 0, "max + -max = 0");
    CHECK(dec_add(max, D("0"), &r) && r.v == INT64_MAX, "max + 0 fits");
    CHECK(!dec_add(max, tiny, &r), "add overflow: max + 0.00000001");
    CHECK(!dec_add(min, dec_neg(tiny), &r), "add overflow: -max - 0.00000001");
    CHECK(!dec_add(max, max, &r), "add overflow: max + max");
    CHECK(dec_sub(D("10000.00"), D("600.00"), &r) && r.v == D("9400").v,
          "10000.00 - 600.00 = 9400");
    CHECK(dec_sub(D("0"), max, &r) && r.v == -INT64_MAX, "0 - max fits");
    CHECK(!dec_sub(min, tiny, &r), "sub overflow: -max - 0.00000001");
    CHECK(!dec_sub(max, min, &r), "sub overflow: max - -max");
    CHECK(!dec_sub(D("-1"), max, &r), "sub overflow: -1 - max (INT64_MIN excluded)");
}

static void test_mul(void)
{
    dec_t r = { 0 };

    CHECK(dec_mul(D("3"), D("0.33333333"), 2, &r) && r.v == D("1.00").v,
          "3 x 0.33333333 to 2 decimals = 1.00 (%s)", F(r, 8));
    CHECK(dec_mul(D("3"), D("0.33333333"), 8, &r) && r.v == D("0.99999999").v,
          "3 x 0.33333333 to 8 decimals = 0.99999999");
    CHECK(dec_mul(D("10000.00"), D("0.06"), 2, &r) && r.v == D("600").v,
          "10000.00 x 0.06 = 600.00");
    /* the exact product against a tolerance: rounding it first to 8 decimals made
     * 1.00000001 x 1.00999999 = 1.0100000100999999 look 0.01 away from 1.00 */
    CHECK(!dec_product_within(D("1.00000001"), D("1.00999999"), D("1.00"), D("0.01")),
          "1.00000001 x 1.00999999 is more than 0.01 from 1.00");
    CHECK(dec_product_within(D("1"), D("1.01"), D("1.00"), D("0.01")), "1 x 1.01 is 0.01 from 1.00");
    CHECK(dec_product_within(D("-3"), D("0.33333333"), D("-1.00"), D("0.01")),
          "-3 x 0.33333333 is within 0.01 of -1.00");
    CHECK(!dec_product_within(D("92233720368"), D("92233720368"), D("0"), D("0.01")),
          "a huge product is far from 0, without overflow");
    CHECK(dec_mul(D("0.5"), D("0.01"), 2, &r) && r.v == D("0.01").v,
          "0.5 x 0.01 = 0.005 -> 0.01");
    CHECK(dec_mul(D("-0.5"), D("0.01"), 2, &r) && r.v == D("-0.01").v,
          "-0.5 x 0.01 = -0.005 -> -0.01 (half away from zero)");
    CHECK(dec_mul(D("0.5"), D("-0.01"), 2, &r) && r.v == D("-0.01").v,
          "0.5 x -0.01 = -0.005 -> -0.01");
    CHECK(dec_mul(D("-1.15"), D("-0.5"), 2, &r) && r.v == D("0.58").v,
          "-1.15 x -0.5 = 0.575 -> 0.58");
    CHECK(dec_mul(D("-1.15"), D("0.5"), 2, &r) && r.v == D("-0.58").v,
          "-1.15 x 0.5 = -0.575 -> -0.58");
    CHECK(dec_mul(D("-0.00000001"), D("0.5"), 8, &r) && r.v == -1,
          "-0.00000001 x 0.5 -> -0.00000001");
    CHECK(dec_mul(D("0.00000001"), D("0.00000001"), 8, &r) && r.v == 0,
          "0.00000001 squared rounds to 0");
    CHECK(dec_mul(D(MAX_TEXT), D("1"), 8, &r) && r.v == INT64_MAX,
          "max x 1 fits");
    CHECK(dec_mul(D(MAX_TEXT), D("-1"), 8, &r) && r.v == -INT64_MAX,
          "max x -1 fits");
    CHECK(!dec_mul(D(MAX_TEXT), D("1"), 2, &r),
          "mul overflow: max x 1 rounded up to 2 decimals");
    CHECK(!dec_mul(D("92233720368"), D("2"), 2, &r), "mul overflow: 92233720368 x 2");
    CHECK(!dec_mul(D("100000"), D("1000000"), 2, &r), "mul overflow: 10^5 x 10^6");
    CHECK(!dec_mul(D(MAX_TEXT), D("-" MAX_TEXT), 2, &r), "mul overflow: max x -max");
    CHECK(dec_mul(D("100000"), D("100000"), 2, &r) && r.v == D("10000000000").v,
          "10^5 x 10^5 = 10^10 fits");
}

static void test_muldiv(void)
{
    dec_t r = { 0 };

    CHECK(dec_muldiv(D("10600.00"), D("0.06"), D("1.06"), 2, &r) &&
          r.v == D("600.00").v,
          "10600.00 x 0.06 / 1.06 = 600.00 (%s)", F(r, 8));
    CHECK(dec_muldiv(D("100.00"), D("0.13"), D("1.13"), 2, &r) &&
          r.v == D("11.50").v,
          "100.00 x 0.13 / 1.13 = 11.504… -> 11.50 (%s)", F(r, 8));
    CHECK(dec_muldiv(D("-100.00"), D("0.13"), D("1.13"), 2, &r) &&
          r.v == D("-11.50").v,
          "-100.00 x 0.13 / 1.13 = -11.50");
    CHECK(dec_muldiv(D("113.00"), D("0.13"), D("1.13"), 2, &r) &&
          r.v == D("13.00").v,
          "113.00 x 0.13 / 1.13 = 13.00");
    CHECK(dec_muldiv(D("1"), D("1"), D("8"), 2, &r) && r.v == D("0.13").v,
          "1 x 1 / 8 = 0.125 -> 0.13");
    CHECK(dec_muldiv(D("-1"), D("1"), D("8"), 2, &r) && r.v == D("-0.13").v,
          "-1 x 1 / 8 = -0.125 -> -0.13");
    CHECK(dec_muldiv(D("1"), D("1"), D("-8"), 2, &r) && r.v == D("-0.13").v,
          "1 x 1 / -8 = -0.125 -> -0.13");
    CHECK(dec_muldiv(D("-1"), D("-1"), D("-8"), 2, &r) && r.v == D("-0.13").v,
          "-1 x -1 / -8 = -0.125 -> -0.13");
    CHECK(dec_muldiv(D("1"), D("1"), D("3"), 8, &r) && r.v == 33333333,
          "1 / 3 to 8 decimals = 0.33333333");
    CHECK(dec_muldiv(D("2"), D("1"), D("3"), 8, &r) && r.v == 66666667,
          "2 / 3 to 8 decimals = 0.66666667");
    CHECK(dec_muldiv(D(MAX_TEXT), D(MAX_TEXT), D(MAX_TEXT), 8, &r) &&
          r.v == INT64_MAX,
          "max x max / max = max (exact 128-bit intermediate)");
    CHECK(dec_muldiv(D(MAX_TEXT), D("-" MAX_TEXT), D(MAX_TEXT), 8, &r) &&
          r.v == -INT64_MAX,
          "max x -max / max = -max");
    CHECK(!dec_muldiv(D(MAX_TEXT), D("2"), D("1"), 2, &r),
          "muldiv overflow: max x 2 / 1");
    CHECK(dec_muldiv(D("1"), D("1"), D("0.00000001"), 0, &r) &&
          r.v == DEC_SCALE * 100000000LL,
          "1 / 0.00000001 = 10^8");
    CHECK(!dec_muldiv(D("1000"), D("1"), D("0.00000001"), 0, &r),
          "muldiv overflow: 1000 / 0.00000001");
    CHECK(!dec_muldiv(D("1"), D("1"), D("0"), 2, &r), "muldiv: divisor 0 is refused");
}

static void test_misc(void)
{
    CHECK_INT(dec_cmp(D("1.5"), D("1.50")), 0);
    CHECK_INT(dec_cmp(D("-1"), D("0.01")), -1);
    CHECK_INT(dec_cmp(D(MAX_TEXT), D("-" MAX_TEXT)), 1);
    CHECK_STR(F(dec_abs(D("-3.25")), 2), "3.25");
    CHECK_STR(F(dec_abs(D("3.25")), 2), "3.25");
    CHECK_STR(F(dec_neg(D("3.25")), 2), "-3.25");
    CHECK_STR(F(dec_neg(D("-0")), 2), "0.00");
    CHECK_INT(dec_neg(D(MAX_TEXT)).v, -INT64_MAX);
    CHECK(dec_is_zero(D("-0.00")) && !dec_is_neg(D("-0.00")), "-0.00 is zero, not negative");
    CHECK(dec_is_neg(D("-0.00000001")), "-0.00000001 is negative");

    CHECK_INT(dec_decimals_used(D("1.50")), 1);
    CHECK_INT(dec_decimals_used(D("0")), 0);
    CHECK_INT(dec_decimals_used(D("100")), 0);
    CHECK_INT(dec_decimals_used(D("0.00000001")), 8);
    CHECK_INT(dec_decimals_used(D("-1.25")), 2);
    CHECK_INT(dec_decimals_used(D("1.10000000")), 1);
    CHECK_INT(dec_decimals_used(D("0.015")), 3);
    CHECK_INT(dec_decimals_used(D(MAX_TEXT)), 8);
}

int main(void)
{
    test_parse();
    test_format();
    test_round();
    test_add_sub();
    test_mul();
    test_muldiv();
    test_misc();
    return unit_done();
}
