/*
 * decimal.c — exact decimal arithmetic for money; see decimal.h.
 *
 * Design
 *   A value is an int64 count of 10^-8 units.  The valid range is kept
 *   symmetric, |v| <= INT64_MAX: nothing here ever produces INT64_MIN, so
 *   negation and absolute value cannot overflow.  Every operation that can
 *   leave the range either reports it (parse, add, sub, mul, muldiv) or is
 *   defined so that it cannot (round, format).
 *
 *   Products and quotients are formed in 128-bit integers, where they are
 *   exact (|a.v * b.v| < 2^126), and divided once with rounding half away
 *   from zero.  "Round to N decimals" is always "divide by 10^(8-N) with
 *   rounding, then multiply back", so a result is rounded exactly once.
 *
 *   No binary floating point is used anywhere: 2.675 is 267500000 units and
 *   rounds to 2.68, as a person would expect.
 */
#include <assert.h>
#include <limits.h>
#include <string.h>
#include "engine/decimal.h"

__extension__ typedef __int128 dec_i128;
__extension__ typedef unsigned __int128 dec_u128;

/* 10^0 .. 10^8: the size of one step of the last kept decimal, in units. */
static const int64_t dec_pow10[DEC_SCALE_DIGITS + 1] = {
    1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL,
    100000000LL,
};

/* Units in one step of the `decimals`-th digit, e.g. 2 -> 10^6 (0.01). */
static int64_t dec_step(int decimals)
{
    assert(decimals >= 0 && decimals <= DEC_SCALE_DIGITS);
    if (decimals < 0)
        decimals = 0;
    if (decimals > DEC_SCALE_DIGITS)
        decimals = DEC_SCALE_DIGITS;
    return dec_pow10[DEC_SCALE_DIGITS - decimals];
}

/* |v| without overflow, also for INT64_MIN (which callers may build by
 * hand with dec_from_fen even though this file never produces it). */
static uint64_t dec_magnitude(int64_t v)
{
    return v < 0 ? (uint64_t)(-(v + 1)) + 1u : (uint64_t)v;
}

/* num / den rounded half away from zero; den != 0.  Magnitudes are taken
 * unsigned so that 2*remainder cannot overflow for any den < 2^126. */
static dec_i128 dec_div_round(dec_i128 num, dec_i128 den)
{
    assert(den != 0);
    bool negative = (num < 0) != (den < 0);
    dec_u128 n = num < 0 ? (dec_u128)0 - (dec_u128)num : (dec_u128)num;
    dec_u128 d = den < 0 ? (dec_u128)0 - (dec_u128)den : (dec_u128)den;
    dec_u128 q = n / d;
    dec_u128 r = n % d;
    if (r >= d - r)             /* r >= d/2, without computing 2*r */
        q++;
    return negative ? -(dec_i128)q : (dec_i128)q;
}

/* Store q steps of `step` units in *out if the result is inside the range. */
static bool dec_from_steps(dec_i128 q, int64_t step, dec_t *out)
{
    dec_i128 limit = (dec_i128)(INT64_MAX / step);
    bool fits = q >= -limit && q <= limit;
    if (fits)
        out->v = (int64_t)(q * step);
    return fits;
}

/* Checks run in the order syntax, precision, range, so a draft's error
 * names the most basic problem.  *out is written only on DEC_OK. */
enum dec_parse_rc dec_parse(const char *s, int max_decimals, dec_t *out)
{
    enum dec_parse_rc rc = DEC_OK;
    const char *p = s;
    const char *int_start, *int_end, *frac_start = NULL, *frac_end = NULL;
    bool negative = false;

    assert(max_decimals >= 0 && max_decimals <= DEC_SCALE_DIGITS);
    assert(out != NULL);
    if (max_decimals > DEC_SCALE_DIGITS)
        max_decimals = DEC_SCALE_DIGITS;

    /* Syntax first, over the whole string: -?[0-9]+(\.[0-9]+)? */
    if (s == NULL)
        return DEC_SYNTAX;
    if (*p == '-') {
        negative = true;
        p++;
    }
    int_start = p;
    while (*p >= '0' && *p <= '9')
        p++;
    int_end = p;
    if (int_end == int_start)
        return DEC_SYNTAX;      /* "", "-", ".5", "+1", " 1" */
    if (*p == '.') {
        p++;
        frac_start = p;
        while (*p >= '0' && *p <= '9')
            p++;
        frac_end = p;
        if (frac_end == frac_start)
            return DEC_SYNTAX;  /* "1." */
    }
    if (*p != '\0')
        return DEC_SYNTAX;      /* "1e5", "1 ", "1.2.3" */

    /* Precision: every written decimal counts, trailing zeros too, so
     * "1.000" is refused for an amount; the rule stays easy to explain. */
    int n_frac = frac_start ? (int)(frac_end - frac_start) : 0;
    if (n_frac > max_decimals)
        return DEC_TOO_PRECISE;

    /* Range: accumulate the integer part, stopping as soon as it cannot
     * fit; leading zeros ("007.5") cost nothing. */
    const dec_i128 max_int = INT64_MAX / DEC_SCALE;
    dec_i128 int_part = 0;
    for (const char *q = int_start; q < int_end && rc == DEC_OK; q++) {
        int_part = int_part * 10 + (*q - '0');
        if (int_part > max_int)
            rc = DEC_RANGE;
    }
    if (rc != DEC_OK)
        return rc;

    dec_i128 frac_part = 0;
    for (int i = 0; i < n_frac; i++)
        frac_part = frac_part * 10 + (frac_start[i] - '0');
    frac_part *= dec_pow10[DEC_SCALE_DIGITS - n_frac];

    dec_i128 units = int_part * DEC_SCALE + frac_part;
    if (units > INT64_MAX)
        return DEC_RANGE;
    out->v = (int64_t)(negative ? -units : units);   /* "-0" is 0 */
    return rc;
}

static const char *const dec_parse_text[] = {
    [DEC_OK]          = "ok",
    [DEC_SYNTAX]      = "is not a plain decimal number",
    [DEC_TOO_PRECISE] = "has too many decimals",
    [DEC_RANGE]       = "is out of range",
};

const char *dec_parse_strerror(enum dec_parse_rc rc)
{
    const char *text = "is not a valid number";
    if ((unsigned)rc < sizeof dec_parse_text / sizeof dec_parse_text[0])
        text = dec_parse_text[rc];
    return text;
}

char *dec_format(dec_t d, int decimals, char buf[DEC_FMT_MAX])
{
    int64_t step = dec_step(decimals);
    if (decimals < 0)
        decimals = 0;
    if (decimals > DEC_SCALE_DIGITS)
        decimals = DEC_SCALE_DIGITS;

    /* Round the magnitude in unsigned arithmetic: near the range limit the
     * rounded value may exceed INT64_MAX, but still fits a uint64. */
    uint64_t mag = dec_magnitude(d.v);
    uint64_t steps = mag / (uint64_t)step;
    uint64_t rest = mag % (uint64_t)step;
    if (rest >= (uint64_t)step - rest)
        steps++;

    /* Digits right to left; at least one integer digit. */
    char digits[DEC_FMT_MAX];
    int n = 0;
    for (int i = 0; i < decimals; i++) {
        digits[n++] = (char)('0' + steps % 10);
        steps /= 10;
    }
    if (decimals > 0)
        digits[n++] = '.';
    do {
        digits[n++] = (char)('0' + steps % 10);
        steps /= 10;
    } while (steps > 0);

    /* A sign only if something non-zero is printed: never "-0.00". */
    bool printed_nonzero = false;
    for (int i = 0; i < n; i++)
        if (digits[i] >= '1' && digits[i] <= '9')
            printed_nonzero = true;

    char *w = buf;
    if (d.v < 0 && printed_nonzero)
        *w++ = '-';
    while (n > 0)
        *w++ = digits[--n];
    *w = '\0';
    assert(w - buf < DEC_FMT_MAX);
    return buf;
}

dec_t dec_round(dec_t d, int decimals)
{
    int64_t step = dec_step(decimals);
    dec_t r = { 0 };
    if (!dec_from_steps(dec_div_round(d.v, step), step, &r)) {
        /* Rounding away from zero left the range (only within half a step
         * of ±92 billion): the nearest representable multiple is toward
         * zero.  No invoice gets near this. */
        dec_i128 toward_zero = (dec_i128)(d.v / step);
        bool fits = dec_from_steps(toward_zero, step, &r);
        assert(fits);
        (void)fits;
    }
    return r;
}

bool dec_add(dec_t a, dec_t b, dec_t *out)
{
    dec_i128 sum = (dec_i128)a.v + b.v;
    bool fits = sum >= -(dec_i128)INT64_MAX && sum <= INT64_MAX;
    if (fits)
        out->v = (int64_t)sum;
    return fits;
}

bool dec_sub(dec_t a, dec_t b, dec_t *out)
{
    dec_i128 diff = (dec_i128)a.v - b.v;
    bool fits = diff >= -(dec_i128)INT64_MAX && diff <= INT64_MAX;
    if (fits)
        out->v = (int64_t)diff;
    return fits;
}

bool dec_mul(dec_t a, dec_t b, int decimals, dec_t *out)
{
    /* a.v*b.v is in 10^-16 units; one division by 10^8 * step both brings
     * it back to 10^-8 units and rounds it to `decimals`. */
    int64_t step = dec_step(decimals);
    dec_i128 product = (dec_i128)a.v * b.v;
    dec_i128 steps = dec_div_round(product, (dec_i128)DEC_SCALE * step);
    return dec_from_steps(steps, step, out);
}

bool dec_product_within(dec_t a, dec_t b, dec_t c, dec_t tolerance)
{
    /* in 10^-16 units: |a.v*b.v| < 2^126 and c.v*10^8 < 2^90, no overflow */
    dec_i128 diff = (dec_i128)a.v * b.v - (dec_i128)c.v * DEC_SCALE;

    if (diff < 0)
        diff = -diff;
    return diff <= (dec_i128)tolerance.v * DEC_SCALE;
}

bool dec_muldiv(dec_t a, dec_t b, dec_t c, int decimals, dec_t *out)
{
    /* (a.v*b.v / c.v) is already in 10^-8 units: the scales cancel. */
    bool rc = false;
    int64_t step = dec_step(decimals);
    if (c.v != 0) {
        dec_i128 product = (dec_i128)a.v * b.v;
        dec_i128 steps = dec_div_round(product, (dec_i128)c.v * step);
        rc = dec_from_steps(steps, step, out);
    }
    return rc;
}

int dec_cmp(dec_t a, dec_t b)
{
    return (a.v > b.v) - (a.v < b.v);
}

dec_t dec_abs(dec_t d)
{
    return d.v < 0 ? dec_neg(d) : d;
}

dec_t dec_neg(dec_t d)
{
    /* INT64_MIN is outside the range this file produces; saturate rather
     * than invoke undefined behaviour if a caller built one by hand. */
    assert(d.v != INT64_MIN);
    dec_t r = { d.v == INT64_MIN ? INT64_MAX : -d.v };
    return r;
}

int dec_decimals_used(dec_t d)
{
    uint64_t mag = dec_magnitude(d.v);
    int used = DEC_SCALE_DIGITS;
    if (mag == 0)
        return 0;
    while (used > 0 && mag % 10 == 0) {
        mag /= 10;
        used--;
    }
    return used;
}
