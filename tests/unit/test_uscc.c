/*
 * test_uscc.c — engine/uscc.c: the GB 32100-2015 check character of SPEC §3.4
 * and the length/character-set test for 15/17/18/20-character tax ids.
 */
#include <stdlib.h>
#include "engine/uscc.h"
#include "tests/unit/unit.h"

static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/* The SPEC vectors, plus one whose check value is 31 -> '0' and one ending
 * in the last letter of the alphabet (both computed independently). */
static const char *const valid[] = {
    "91350200MA2YJ1XR9G", "9131011259474644XJ", "91440101MA5CJQ4N59",
    "91110108MA01ABC200", "91110108MA01ABC2AY",
};

/* Every other last character must fail: the check is a function. */
static void check_other_last_chars(const char *code)
{
    char buf[19];
    int accepted = 0;
    memcpy(buf, code, sizeof buf);
    for (const char *c = alphabet; *c; c++) {
        if (*c == code[17])
            continue;
        buf[17] = *c;
        accepted += uscc_valid(buf);
    }
    CHECK(accepted == 0, "%s: the 30 other check characters fail (%d accepted)", code, accepted);
}

/* Put `c` at position `pos` of a valid code. */
static bool with_char(const char *code, size_t pos, char c)
{
    char buf[19];
    memcpy(buf, code, sizeof buf);
    buf[pos] = c;
    return uscc_valid(buf);
}

static void test_uscc(void)
{
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        CHECK(uscc_valid(valid[i]), "valid: %s", valid[i]);
        check_other_last_chars(valid[i]);
    }
    CHECK(!uscc_valid("91350200MA2YJ1XR9H"), "last char changed G -> H");
    CHECK(!uscc_valid("91350200ma2yj1xr9g"), "lower case rejected");
    CHECK(!uscc_valid("91350200MA2YJ1XR9g"), "lower-case check character rejected");
    /* I O S V Z are not in the alphabet, wherever they stand. */
    const char *banned = "IOSVZ";
    for (const char *c = banned; *c; c++) {
        CHECK(!with_char(valid[0], 9, *c), "'%c' in the body rejected", *c);
        CHECK(!with_char(valid[0], 17, *c), "'%c' as check character rejected", *c);
    }
    CHECK(!uscc_valid("91350200MA2YJ1XR9"), "17 characters rejected");
    CHECK(!uscc_valid("91350200MA2YJ1XR9G0"), "19 characters rejected");
    CHECK(!uscc_valid("91350200MA2YJ1XR9GG"), "valid code plus a character rejected");
    CHECK(!uscc_valid(""), "empty rejected");
    CHECK(!uscc_valid(NULL), "NULL rejected");
    CHECK(!uscc_valid(" 91350200MA2YJ1XR9G"), "leading space rejected");
    CHECK(!uscc_valid("91350200MA2YJ1XR9G\n"), "trailing newline rejected");
    CHECK(!with_char(valid[0], 5, '\xC3'), "high-bit byte rejected");
    CHECK(!with_char(valid[0], 4, '-'), "punctuation rejected");
}

static void check_charset(const char *id, bool want, size_t want_len)
{
    size_t len = 12345;
    bool got = tax_id_charset_ok(id, &len);
    CHECK(got == want && len == want_len, "tax_id_charset_ok(\"%s\") = %s, len %zu (got %s, len %zu)",
          id ? id : "(null)", want ? "true" : "false", want_len, got ? "true" : "false", len);
}

static void test_charset(void)
{
    check_charset("110108123456789", true, 15);
    check_charset("11010812345678X", true, 15);
    check_charset("1101081234567890A", true, 17);
    check_charset("91350200MA2YJ1XR9G", true, 18);
    /* An 18-character id that fails the check still has the right shape:
     * the caller turns the failed check into a warning (SPEC §3.1). */
    check_charset("91350200MA2YJ1XR9H", true, 18);
    check_charset("913502000MA2YJIXRS", true, 18);
    check_charset("1101081234567890ABCD", true, 20);
    check_charset("11010812345678", false, 14);
    check_charset("1101081234567890", false, 16);
    check_charset("91350200MA2YJ1XR9G0", false, 19);
    check_charset("110108123456789012345", false, 21);
    check_charset("11010812345678x", false, 15);
    check_charset("1101081234-6789", false, 15);
    check_charset("110108 23456789", false, 15);
    size_t len = 0;
    bool ok = tax_id_charset_ok("91350200MA2YJ1XR9\xC3", &len);
    CHECK(!ok && len == 18,
          "high-bit byte at position 18: false, len 18 (bytes, got %zu)", len);
    check_charset("", false, 0);
    check_charset(NULL, false, 0);
    CHECK(tax_id_charset_ok("110108123456789", NULL), "len may be NULL");
}

int main(void)
{
    test_uscc();
    test_charset();
    return unit_done();
}
