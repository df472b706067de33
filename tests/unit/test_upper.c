/*
 * test_upper.c — engine/upper.c: every SPEC §3.4 vector, the 万/亿 group
 * boundaries as banks write them, rounding to the fen and negatives.
 */
#include <limits.h>
#include <string.h>
#include "engine/decimal.h"
#include "engine/upper.h"
#include "tests/unit/unit.h"

static const struct { const char *amount, *upper; } vectors[] = {
    /* SPEC §3.4, verbatim */
    { "0.00",          "零圆整" },
    { "0.05",          "伍分" },
    { "1.10",          "壹圆壹角" },
    { "100.00",        "壹佰圆整" },
    { "1409.50",       "壹仟肆佰零玖圆伍角" },
    { "6007.14",       "陆仟零柒圆壹角肆分" },
    { "16409.02",      "壹万陆仟肆佰零玖圆零贰分" },
    { "325.04",        "叁佰贰拾伍圆零肆分" },
    { "10005.00",      "壹万零伍圆整" },
    { "100000001.00",  "壹亿零壹圆整" },
    { "-500.00",       "（负数）伍佰圆整" },
    /* group boundaries and 壹拾 */
    { "100000.00",     "壹拾万圆整" },
    { "1000000000.01", "壹拾亿圆零壹分" },
    { "10.00",         "壹拾圆整" },
    { "11.00",         "壹拾壹圆整" },
    { "20.00",         "贰拾圆整" },
    { "101.00",        "壹佰零壹圆整" },
    { "110.00",        "壹佰壹拾圆整" },
    { "1010.00",       "壹仟零壹拾圆整" },
    { "1000000.00",    "壹佰万圆整" },
    { "110000.00",     "壹拾壹万圆整" },
    { "100100.00",     "壹拾万零壹佰圆整" },
    { "10001000.00",   "壹仟万零壹仟圆整" },
    { "200000000.00",  "贰亿圆整" },
    { "100010000.00",  "壹亿零壹万圆整" },
    { "1001000100.10", "壹拾亿零壹佰万零壹佰圆壹角" },
    { "12345678.90",   "壹仟贰佰叁拾肆万伍仟陆佰柒拾捌圆玖角" },
    { "50000000001.00", "伍佰亿零壹圆整" },
    { "87654321098.76", "捌佰柒拾陆亿伍仟肆佰叁拾贰万壹仟零玖拾捌圆柒角陆分" },
    /* 角 and 分 */
    { "0.10",          "壹角" },
    { "0.50",          "伍角" },
    { "0.55",          "伍角伍分" },
    { "0.01",          "壹分" },
    { "10.05",         "壹拾圆零伍分" },
    { "1000.50",       "壹仟圆伍角" },
    { "1.01",          "壹圆零壹分" },
    { "10070.00",      "壹万零柒拾圆整" },
    /* rounded to the fen first, half away from zero */
    { "0.005",         "壹分" },
    { "0.004",         "零圆整" },
    { "1.995",         "贰圆整" },
    { "16409.015",     "壹万陆仟肆佰零玖圆零贰分" },
    { "-0.004",        "零圆整" },
    { "-0.005",        "（负数）壹分" },
    /* negatives */
    { "-0.50",         "（负数）伍角" },
    { "-16409.02",     "（负数）壹万陆仟肆佰零玖圆零贰分" },
    { "-100000001.00", "（负数）壹亿零壹圆整" },
    /* the dec_t limit: rounds up to .55 although that exceeds INT64_MAX */
    { "92233720368.54775807",  "玖佰贰拾贰亿叁仟叁佰柒拾贰万零叁佰陆拾捌圆伍角伍分" },
    { "-92233720368.54775807", "（负数）玖佰贰拾贰亿叁仟叁佰柒拾贰万零叁佰陆拾捌圆伍角伍分" },
};

int main(void)
{
    char buf[UPPER_MAX];

    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        dec_t amount = { 0 };
        const char *want = vectors[i].upper;
        const char *got = NULL;
        if (dec_parse(vectors[i].amount, 8, &amount) == DEC_OK)
            got = upper_amount(amount, buf);
        bool same = got == buf && strcmp(got, want) == 0;
        CHECK(same, "upper_amount(%s) = %s%s%s", vectors[i].amount, want,
              same ? "" : ", got ", same ? "" : got ? got : "NULL");
    }

    /* An INT64_MIN built by hand still converts, without overflow. */
    dec_t min = { INT64_MIN };
    CHECK_STR(upper_amount(min, buf),
              "（负数）玖佰贰拾贰亿叁仟叁佰柒拾贰万零叁佰陆拾捌圆伍角伍分");

    /* dec_from_fen round trip, as the engine calls it with totals. */
    CHECK_STR(upper_amount(dec_from_fen(1007000), buf), "壹万零柒拾圆整");

    /* The longest outputs stay well inside UPPER_MAX. */
    dec_t longest = { -8765432109876000000LL };   /* -87654321098.76 */
    const char *text = upper_amount(longest, buf);
    CHECK(text && strlen(text) < UPPER_MAX / 2,
          "longest amount uses %zu of %d bytes", text ? strlen(text) : 0,
          UPPER_MAX);

    return unit_done();
}
