/*
 * red.h — red invoices (红字发票, SPEC §3.5): completing a red draft against
 * the blue invoice it reverses.
 *
 * draft_parse() checks what a red draft says by itself; red_resolve() adds
 * what needs the blue invoice: the lines of a full reversal, the buyer and
 * type, the remark prefix, and the running limit that all red invoices of a
 * blue one never reverse more than its total.
 */
#ifndef FAPIAO_RED_H
#define FAPIAO_RED_H

#include <stddef.h>
#include <stdint.h>
#include "engine/draft.h"

/* Reason codes and their names: "01" → "开票有误"; NULL for others. */
const char *red_reason_name(const char *reason);

/* blue_json: the blue invoice file; reversed_fen: the total (incl. tax, as a
 * positive number) already reversed by earlier red invoices.  Adds problems
 * to p; FA_OK when none were added. */
enum fa_err red_resolve(struct draft *d, const char *blue_json, size_t len, int64_t reversed_fen,
                        struct problems *p);

#endif
