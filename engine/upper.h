/*
 * upper.h — Chinese upper-case amounts (人民币大写), SPEC §3.4.
 */
#ifndef FAPIAO_UPPER_H
#define FAPIAO_UPPER_H

#include <stddef.h>
#include "engine/decimal.h"

/* Longest result: （负数） + 壹仟亿 ... 分, well under 256 bytes of UTF-8. */
#define UPPER_MAX 256

/* Writes the upper-case form of `amount` (rounded to the fen) into buf.
 * Negative amounts get the prefix （负数）.  Returns buf, or NULL if the amount
 * is ≥ 10^12 yuan (no unit beyond 仟亿 on an invoice). */
char *upper_amount(dec_t amount, char buf[UPPER_MAX]);

#endif
