/*
 * decimal.h — exact decimal numbers for money, quantities and rates.
 *
 * Every number of a draft is held as a signed 64-bit count of 10^-8 units
 * (DEC_SCALE).  That covers quantities and unit prices with up to 8 decimals
 * and amounts up to ±92,233,720,368.54775807, far above any invoice limit.
 * Products and quotients are computed in 128-bit integers and rounded once,
 * half away from zero, so no binary floating point ever touches money.
 */
#ifndef FAPIAO_DECIMAL_H
#define FAPIAO_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEC_SCALE_DIGITS 8
#define DEC_SCALE        100000000LL  /* 10^8 */
#define DEC_FEN          1000000LL    /* 0.01 in DEC units */

typedef struct { int64_t v; } dec_t;   /* value = v / 10^8 */

enum dec_parse_rc {
    DEC_OK = 0,
    DEC_SYNTAX,      /* not a plain decimal: sign, digits, optional point and digits */
    DEC_TOO_PRECISE, /* more decimals than allowed */
    DEC_RANGE,       /* does not fit */
};

/* Parse "123", "-0.5", "10000.00" (no exponent, no spaces, no '+', no leading
 * point).  At most max_decimals digits after the point (<= 8). */
enum dec_parse_rc dec_parse(const char *s, int max_decimals, dec_t *out);

/* Text of a dec_parse_rc for error messages ("has more than N decimals", ...). */
const char *dec_parse_strerror(enum dec_parse_rc rc);

/* Format with exactly `decimals` digits after the point (0..8), rounding half
 * away from zero if the value has more.  buf needs DEC_FMT_MAX bytes. */
#define DEC_FMT_MAX 32
char *dec_format(dec_t d, int decimals, char buf[DEC_FMT_MAX]);

/* Round half away from zero to `decimals` digits (0..8). */
dec_t dec_round(dec_t d, int decimals);

/* Overflow-checked arithmetic; false when the result does not fit. */
bool dec_add(dec_t a, dec_t b, dec_t *out);
bool dec_sub(dec_t a, dec_t b, dec_t *out);
/* a × b, rounded half away from zero to `decimals` digits. */
bool dec_mul(dec_t a, dec_t b, int decimals, dec_t *out);
/* a × b / c, computed exactly and rounded once to `decimals` digits; c != 0. */
bool dec_muldiv(dec_t a, dec_t b, dec_t c, int decimals, dec_t *out);
/* |a × b − c| ≤ tolerance, with the product exact (not rounded first). */
bool dec_product_within(dec_t a, dec_t b, dec_t c, dec_t tolerance);

int  dec_cmp(dec_t a, dec_t b);
dec_t dec_abs(dec_t d);
dec_t dec_neg(dec_t d);
static inline bool dec_is_zero(dec_t d) { return d.v == 0; }
static inline bool dec_is_neg(dec_t d) { return d.v < 0; }
static inline dec_t dec_from_fen(int64_t fen) { dec_t d = { fen * DEC_FEN }; return d; }
/* Whole fen of a value that has at most 2 decimals. */
static inline int64_t dec_to_fen(dec_t d) { return d.v / DEC_FEN; }
/* Number of decimals actually used (0..8), e.g. 1.50 -> 1. */
int dec_decimals_used(dec_t d);

#endif
