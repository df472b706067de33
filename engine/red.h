/*
 * red.h — red invoices (红字发票, SPEC §3.5): completing a red draft against
 * the blue invoice it reverses.
 *
 * draft_parse() checks what a red draft says by itself; red_resolve() adds
 * what needs the blue invoice: the lines of a full reversal, the buyer and
 * type, the remark prefix, and the running limits: all red invoices of a
 * blue one never reverse more than its totals (amount, tax, total), nor more
 * amount or tax at a tax rate than it has at that rate, nor at a current
 * rate it does not have (a historical rate stands for the rate of the years
 * it held, and only the totals bound it).
 */
#ifndef FAPIAO_RED_H
#define FAPIAO_RED_H

#include <stddef.h>
#include <stdint.h>
#include "engine/draft.h"

/* Reason codes and their names: "01" → "开票有误"; NULL for others. */
const char *red_reason_name(const char *reason);

#define RED_RATES_MAX 16   /* tax rates on one invoice: 13 exist */

/* Amounts and taxes of invoice lines by tax rate, as positive numbers. */
struct red_sums {
    int n;
    struct red_rate_sum { dec_t rate, amount, tax; } by_rate[RED_RATES_MAX];
    dec_t amount, tax;    /* of them all */
    bool unreadable;      /* a line could not be read, or too many rates */
};

/* Adds the lines of an earlier red invoice of the blue one (its file) to the
 * struct red_sums at arg; returns 0 (the shape store_each_red() calls). */
int red_sums_add_invoice(void *arg, const void *json, size_t len);

/* A red draft that draft_parse() rejected, against its blue invoice (its
 * file): adds what that says too — itself red, another type, a notice it
 * needs, another buyer — so that all problems are listed at once (SPEC §3.2). */
void red_identity(const struct draft *d, const char *blue_json, size_t len, struct problems *p);

/* blue_json: the blue invoice file; before: what earlier red invoices of it
 * reversed.  Adds problems to p; FA_OK when none were added. */
enum fa_err red_resolve(struct draft *d, const char *blue_json, size_t len,
                        const struct red_sums *before, struct problems *p);

#endif
