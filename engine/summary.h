/*
 * summary.h — period summaries (抄税, SPEC §5.4 step 3): counts and amounts
 * of blue and red invoices by type and tax rate, made from the invoices
 * themselves, compared line by line, and written as reports/YYYY-MM.csv.
 *
 * One definition serves three places that must never drift apart: the
 * store's running sums (engine/store.c), the clearing's comparison with the
 * device's signed summary (engine/clearing.c), and the platform simulator's
 * check of what it received (platform/sim.c).  The device (device/sim.c)
 * keeps the same sums from its journal.
 *
 * The rules: an invoice is red when its total is negative; its amounts and
 * taxes are summed by the rate of each item (per mille: 0.13 → 130,
 * 0.015 → 15); it is counted once, under the rate of its first item.
 */
#ifndef FAPIAO_SUMMARY_H
#define FAPIAO_SUMMARY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "device/device.h"
#include "engine/decimal.h"

/* Add one invoice (its JSON object as issued: type, totals.total,
 * items[].tax_rate, .amount, .tax) to s.  0, or -1 with why (a field named)
 * when the invoice lacks what that needs or the sums would overflow; s is
 * then unchanged. */
int summary_add_invoice(struct device_summary *s, json_t *invoice, char *why, size_t whylen);

/* Add every line of `add` into s (lines with the same type, colour and
 * rate are summed).  0, or -1 when s has no room or a sum overflows. */
int summary_merge(struct device_summary *s, const struct device_summary *add);

/* Lines in canonical order: type, blue before red, rate ascending. */
void summary_sort(struct device_summary *s);

/* Whether a and b have the same lines, whatever their order (a line with
 * count, amount and tax all 0 counts as absent).  If not, detail gets the
 * first difference in words, naming both sides by a_name and b_name:
 *   "026 blue 13%: the device counts 5 invoices, amount 500.00, tax 65.00;
 *    the store 4, 400.00, 52.00" */
bool summary_equal(const struct device_summary *a, const char *a_name,
                   const struct device_summary *b, const char *b_name, char *detail, size_t len);

/* Index of the line for type, colour and rate in s, or -1. */
int summary_find_line(const struct device_summary *s, const char *type, bool red, int rate_pm);

/* An amount as JSON text with at most 2 decimals ("9500.00", "-30.00"), in fen;
 * sums beyond dec_t's range (±92 billion yuan) too. */
bool summary_amount_fen(json_t *v, int64_t *fen);
/* Fen as money text with two decimals, over the whole int64 range; buf is
 * returned. */
char *summary_money_text(int64_t fen, char buf[DEC_FMT_MAX]);

/* Invoices counted in s. */
int64_t summary_count(const struct device_summary *s);

/* The report of reports/YYYY-MM.csv (malloc'd, *len bytes, no NUL needed):
 *   period,type,kind,tax_rate,invoices,amount,tax,total
 *   2026-11,026,blue,0.13,3,300.00,39.00,339.00
 *   2026-11,026,red,0.13,1,-100.00,-13.00,-113.00
 *   2026-11,all,blue,all,3,300.00,39.00,339.00
 *   2026-11,all,red,all,1,-100.00,-13.00,-113.00
 *   2026-11,all,all,all,4,200.00,26.00,226.00
 * Lines in canonical order, then the three total rows (always present,
 * zeros when the period has none of a kind).  Rates as decimals without
 * trailing zeros (0.13, 0.015, 0).  Money with exactly two decimals. */
char *summary_csv(const struct device_summary *s, size_t *len);

#endif
