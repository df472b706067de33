/*
 * upper.c — Chinese upper-case amounts (人民币大写), SPEC §3.4; see upper.h.
 *
 * Design
 *   The amount is rounded to the fen (half away from zero) and split into
 *   yuan, 角 and 分.  The yuan are written in groups of four digits
 *   (digit + 仟佰拾) from the top, each non-zero group followed by its
 *   group unit 亿 or 万.  A zero seen
 *   after the first non-zero digit only sets a "zero pending" flag; the next
 *   non-zero digit writes one 零 first.  That gives "a run of zeros inside
 *   the number is one 零" across group boundaries too (壹亿零壹万, 壹万零伍),
 *   and trailing zeros write nothing (壹拾万).
 *
 *   Conventions chosen where banks differ, kept deliberately simple:
 *   - 10 is 壹拾, never 拾 (banks require the leading 壹 on cheques);
 *   - a yuan part ending in zero gets no 零 before 角 (壹拾圆伍角);
 *   - with no yuan, neither 圆 nor a leading 零 is written (伍角, 伍分);
 *   - a zero 角 before a non-zero 分 is 零 only when yuan precede it
 *     (壹万…玖圆零贰分, but 伍分);
 *   - 整 follows 圆 only when 角 and 分 are both zero (壹圆壹角, no 整);
 *   - a negative amount that rounds to zero gets no （负数） prefix.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include "engine/upper.h"

static const char *const upper_digit[10] = {
    "零", "壹", "贰", "叁", "肆", "伍", "陆", "柒", "捌", "玖",
};

/* Position inside a group of four, from the units digit up. */
static const char *const upper_position[4] = { "", "拾", "佰", "仟" };

#define UPPER_MAX_YUAN 1000000000000LL   /* 10^12: 仟亿 is the last unit */

/* Bounded appender: the worst case is far below UPPER_MAX, so running out
 * of room is a bug, asserted; release builds truncate instead of overflow. */
struct upper_out {
    char *buf;
    size_t len;
};

static void upper_put(struct upper_out *o, const char *s)
{
    size_t n = strlen(s);
    assert(o->len + n < UPPER_MAX);
    if (o->len + n < UPPER_MAX) {
        memcpy(o->buf + o->len, s, n);
        o->len += n;
        o->buf[o->len] = '\0';
    }
}

/* Write the yuan (0 < yuan < 10^12) in groups of four digits. */
static void upper_yuan(struct upper_out *o, int64_t yuan)
{
    static const struct { int64_t size; const char *unit; } group[3] = {
        { 100000000LL, "亿" }, { 10000LL, "万" }, { 1LL, "" },
    };
    bool started = false;       /* a non-zero digit has been written */
    bool zero_pending = false;  /* zeros seen since the last digit */

    assert(yuan > 0 && yuan < UPPER_MAX_YUAN);
    for (int g = 0; g < 3; g++) {
        int value = (int)(yuan / group[g].size % 10000);
        if (value == 0) {
            zero_pending = started;
            continue;
        }
        for (int pos = 3, div = 1000; pos >= 0; pos--, div /= 10) {
            int digit = value / div % 10;
            if (digit == 0) {
                zero_pending = zero_pending || started;
                continue;
            }
            if (zero_pending)
                upper_put(o, upper_digit[0]);
            upper_put(o, upper_digit[digit]);
            upper_put(o, upper_position[pos]);
            started = true;
            zero_pending = false;
        }
        upper_put(o, group[g].unit);
    }
}

char *upper_amount(dec_t amount, char buf[UPPER_MAX])
{
    struct upper_out out = { buf, 0 };

    /* Round to the fen, half away from zero, like dec_round(amount, 2) but
     * on the unsigned magnitude: dec_round must stay inside the dec_t range
     * and so rounds toward zero within half a fen of ±92 billion, while
     * here the exact rounded value always fits (2^63 + DEC_FEN/2 < 2^64). */
    uint64_t units = amount.v < 0 ? (uint64_t)(-(amount.v + 1)) + 1u
                                  : (uint64_t)amount.v;
    uint64_t fen = (units + DEC_FEN / 2) / DEC_FEN;
    int64_t yuan = (int64_t)(fen / 100);
    int jiao = (int)(fen / 10 % 10);
    int fen_digit = (int)(fen % 10);

    buf[0] = '\0';
    /* Unreachable with today's dec_t range (< 10^11 yuan), kept because the
     * contract in upper.h promises it. */
    if (yuan >= UPPER_MAX_YUAN)
        return NULL;

    if (amount.v < 0 && fen != 0)     /* -0.004 is 零圆整, no prefix */
        upper_put(&out, "（负数）");

    if (yuan > 0) {
        upper_yuan(&out, yuan);
        upper_put(&out, "圆");
    }

    if (jiao == 0 && fen_digit == 0) {
        if (yuan == 0)
            upper_put(&out, "零圆");
        upper_put(&out, "整");
    } else {
        if (jiao != 0) {
            upper_put(&out, upper_digit[jiao]);
            upper_put(&out, "角");
        } else if (yuan > 0) {
            upper_put(&out, upper_digit[0]);   /* 圆零贰分 */
        }
        if (fen_digit != 0) {
            upper_put(&out, upper_digit[fen_digit]);
            upper_put(&out, "分");
        }
    }
    return buf;
}
