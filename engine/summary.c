/*
 * summary.c — period summaries (抄税): the one definition of how invoices
 * add up by type, colour and rate, how two summaries compare and how the
 * report reads.
 *
 * Trade-off: every change is made on a copy and kept only when all of it
 * succeeded.  A struct device_summary is a few KiB, so the copy costs
 * nothing next to the guarantee that a refused invoice or merge leaves
 * the sums as they were.  Lines whose count, amount and tax are all 0 are
 * treated as absent everywhere (merge, compare, report), so two summaries
 * that are equal also print the same report.
 */
#include "engine/summary.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/decimal.h"

/* "026", "028": three digits, as the device and the platform expect. */
static bool valid_type(const char *s)
{
    return s != NULL && strlen(s) == 3 && s[0] >= '0' && s[0] <= '9' && s[1] >= '0' &&
           s[1] <= '9' && s[2] >= '0' && s[2] <= '9';
}

/* "[-]digits[.d[d]]" into fen, for sums beyond dec_t's range. */
static bool big_amount_fen(const char *s, int64_t *fen)
{
    bool neg = *s == '-';
    int64_t v = 0;
    int decimals = -1;

    s += neg;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s; s++) {
        if (*s == '.' && decimals < 0) {
            decimals = 0;
            continue;
        }
        if (*s < '0' || *s > '9' || decimals == 2 || __builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, neg ? -(*s - '0') : *s - '0', &v))
            return false;
        decimals += decimals >= 0;
    }
    if (decimals == 0)
        return false;   /* "1." */
    for (decimals = decimals < 0 ? 0 : decimals; decimals < 2; decimals++)
        if (__builtin_mul_overflow(v, 10, &v))
            return false;
    *fen = v;
    return true;
}

bool summary_amount_fen(json_t *v, int64_t *fen)
{
    const char *s = json_string_value(v);
    dec_t d;

    if (s == NULL)
        return false;
    if (dec_parse(s, 2, &d) != DEC_OK)
        return big_amount_fen(s, fen);
    *fen = dec_to_fen(d);
    return true;
}

static bool line_is_zero(const struct device_summary_line *l)
{
    return l->count == 0 && l->amount_fen == 0 && l->tax_fen == 0;
}

int summary_find_line(const struct device_summary *s, const char *type, bool red, int rate_pm)
{
    for (int i = 0; i < s->nlines; i++)
        if (strcmp(s->lines[i].type, type) == 0 && s->lines[i].red == red &&
            s->lines[i].rate_pm == rate_pm)
            return i;
    return -1;
}

/* The line for type, colour and rate, added (all zero) when s has none;
 * NULL when s is full. */
static struct device_summary_line *line_for(struct device_summary *s, const char *type, bool red,
                                            int rate_pm)
{
    struct device_summary_line *l;
    int n = summary_find_line(s, type, red, rate_pm);

    if (n >= 0)
        return &s->lines[n];
    if (s->nlines == DEVICE_SUMMARY_LINES)
        return NULL;
    l = &s->lines[s->nlines++];
    memset(l, 0, sizeof *l);
    snprintf(l->type, sizeof l->type, "%s", type);
    l->red = red;
    l->rate_pm = rate_pm;
    return l;
}

/* l += count, amount, tax; false (l partly changed) on overflow. */
static bool line_add(struct device_summary_line *l, int64_t count, int64_t amount, int64_t tax)
{
    return !__builtin_add_overflow(l->count, count, &l->count) &&
           !__builtin_add_overflow(l->amount_fen, amount, &l->amount_fen) &&
           !__builtin_add_overflow(l->tax_fen, tax, &l->tax_fen);
}

int summary_add_invoice(struct device_summary *s, json_t *invoice, char *why, size_t whylen)
{
    const char *type = json_string_value(json_object_get(invoice, "type"));
    json_t *items = json_object_get(invoice, "items"), *item;
    struct device_summary t = *s;
    int64_t total;
    size_t i;

    if (!valid_type(type)) {
        snprintf(why, whylen, "type: missing, or not 3 digits");
        return -1;
    }
    if (!summary_amount_fen(json_object_get(json_object_get(invoice, "totals"), "total"), &total)) {
        snprintf(why, whylen, "totals.total: missing, or not an amount with at most 2 decimals");
        return -1;
    }
    if (!json_is_array(items) || json_array_size(items) == 0) {
        snprintf(why, whylen, "items: missing, or empty");
        return -1;
    }
    json_array_foreach(items, i, item) {
        const char *rate_text = json_string_value(json_object_get(item, "tax_rate"));
        struct device_summary_line *l;
        int64_t amount, tax;
        dec_t rate;

        if (rate_text == NULL || dec_parse(rate_text, DEC_SCALE_DIGITS, &rate) != DEC_OK ||
            rate.v < 0 || rate.v > DEC_SCALE) {
            snprintf(why, whylen, "items[%zu].tax_rate: missing, or not a rate from 0 to 1", i);
            return -1;
        }
        if (!summary_amount_fen(json_object_get(item, "amount"), &amount)) {
            snprintf(why, whylen, "items[%zu].amount: missing, or not an amount with at most 2 decimals",
                     i);
            return -1;
        }
        if (!summary_amount_fen(json_object_get(item, "tax"), &tax)) {
            snprintf(why, whylen, "items[%zu].tax: missing, or not an amount with at most 2 decimals", i);
            return -1;
        }
        /* per mille, truncated, as sum_rates() in engine/engine.c gives the device */
        l = line_for(&t, type, total < 0, (int)(rate.v / (DEC_SCALE / 1000)));
        if (l == NULL) {
            snprintf(why, whylen, "the period would have more than %d summary lines",
                     DEVICE_SUMMARY_LINES);
            return -1;
        }
        /* counted once, under the rate of its first item */
        if (!line_add(l, i == 0 ? 1 : 0, amount, tax)) {
            snprintf(why, whylen, "items[%zu]: the sums of the period would overflow", i);
            return -1;
        }
    }
    *s = t;
    return 0;
}

int summary_merge(struct device_summary *s, const struct device_summary *add)
{
    struct device_summary t = *s;

    for (int i = 0; i < add->nlines; i++) {
        const struct device_summary_line *a = &add->lines[i];
        struct device_summary_line *l;

        if (line_is_zero(a))
            continue;
        l = line_for(&t, a->type, a->red, a->rate_pm);
        if (l == NULL || !line_add(l, a->count, a->amount_fen, a->tax_fen))
            return -1;
    }
    *s = t;
    return 0;
}

static int line_cmp(const struct device_summary_line *a, const struct device_summary_line *b)
{
    int c = strcmp(a->type, b->type);

    if (c != 0)
        return c;
    if (a->red != b->red)
        return a->red ? 1 : -1;
    return (a->rate_pm > b->rate_pm) - (a->rate_pm < b->rate_pm);
}

static int line_qsort_cmp(const void *a, const void *b)
{
    return line_cmp(a, b);
}

void summary_sort(struct device_summary *s)
{
    if (s->nlines > 1)
        qsort(s->lines, (size_t)s->nlines, sizeof s->lines[0], line_qsort_cmp);
}

/* s made canonical: one line per type, colour and rate, no zero line, sorted. */
static int canonical(const struct device_summary *s, struct device_summary *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->period, s->period, sizeof out->period);
    memcpy(out->machine_number, s->machine_number, sizeof out->machine_number);
    if (summary_merge(out, s) != 0)
        return -1;
    summary_sort(out);
    return 0;
}

/* A per-mille rate as a decimal of `per` (10 for percent, 1000 for a
 * fraction), without trailing zeros: 130 → "13" or "0.13", 15 → "1.5" or
 * "0.015", 0 → "0". */
static char *rate_text(int rate_pm, int per, char buf[DEC_FMT_MAX])
{
    dec_t d = { (int64_t)rate_pm * (DEC_SCALE / per) };
    size_t n;

    dec_format(d, per == 10 ? 1 : 3, buf);
    n = strlen(buf);
    if (strchr(buf, '.') != NULL) {
        while (buf[n - 1] == '0')
            buf[--n] = '\0';
        if (buf[n - 1] == '.')
            buf[--n] = '\0';
    }
    return buf;
}

/* Sums of many invoices may leave dec_t's range (±92 billion yuan), so
 * those are written from the integer. */
char *summary_money_text(int64_t fen, char buf[DEC_FMT_MAX])
{
    uint64_t m = fen < 0 ? -(uint64_t)fen : (uint64_t)fen;

    if (fen >= -(INT64_MAX / DEC_FEN) && fen <= INT64_MAX / DEC_FEN)
        return dec_format(dec_from_fen(fen), 2, buf);
    snprintf(buf, DEC_FMT_MAX, "%s%" PRIu64 ".%02" PRIu64, fen < 0 ? "-" : "", m / 100, m % 100);
    return buf;
}

static void describe_difference(const struct device_summary_line *key,
                                const struct device_summary_line *a, const char *a_name,
                                const struct device_summary_line *b, const char *b_name,
                                char *detail, size_t len)
{
    static const struct device_summary_line none;
    char rate[DEC_FMT_MAX], am[2][DEC_FMT_MAX], tx[2][DEC_FMT_MAX];

    if (a == NULL)
        a = &none;
    if (b == NULL)
        b = &none;
    snprintf(detail, len, "%s %s %s%%: %s counts %" PRId64 " invoice%s, amount %s, tax %s; "
             "%s %" PRId64 ", %s, %s", key->type, key->red ? "red" : "blue",
             rate_text(key->rate_pm, 10, rate), a_name, a->count, a->count == 1 ? "" : "s",
             summary_money_text(a->amount_fen, am[0]), summary_money_text(a->tax_fen, tx[0]), b_name,
             b->count, summary_money_text(b->amount_fen, am[1]),
             summary_money_text(b->tax_fen, tx[1]));
}

bool summary_equal(const struct device_summary *a, const char *a_name,
                   const struct device_summary *b, const char *b_name, char *detail, size_t len)
{
    struct device_summary ca, cb;
    int i = 0, j = 0;

    const char *overflows = canonical(a, &ca) != 0 ? a_name : canonical(b, &cb) != 0 ? b_name : NULL;

    if (overflows != NULL) {
        snprintf(detail, len, "the sums of %s overflow", overflows);
        return false;
    }
    while (i < ca.nlines || j < cb.nlines) {
        const struct device_summary_line *la = i < ca.nlines ? &ca.lines[i] : NULL;
        const struct device_summary_line *lb = j < cb.nlines ? &cb.lines[j] : NULL;
        int c = la == NULL ? 1 : lb == NULL ? -1 : line_cmp(la, lb);

        if (c < 0) {
            describe_difference(la, la, a_name, NULL, b_name, detail, len);
            return false;
        }
        if (c > 0) {
            describe_difference(lb, NULL, a_name, lb, b_name, detail, len);
            return false;
        }
        if (la->count != lb->count || la->amount_fen != lb->amount_fen || la->tax_fen != lb->tax_fen) {
            describe_difference(la, la, a_name, lb, b_name, detail, len);
            return false;
        }
        i++;
        j++;
    }
    if (len > 0)
        detail[0] = '\0';
    return true;
}

int64_t summary_count(const struct device_summary *s)
{
    int64_t n = 0;

    for (int i = 0; i < s->nlines; i++)
        if (__builtin_add_overflow(n, s->lines[i].count, &n))
            return INT64_MAX;
    return n;
}

/* One report row; false when amount + tax does not fit. */
static bool csv_row(FILE *f, const char *period, const char *type, const char *kind, const char *rate,
                    const struct device_summary_line *l)
{
    char am[DEC_FMT_MAX], tx[DEC_FMT_MAX], tot[DEC_FMT_MAX];
    int64_t total;

    if (__builtin_add_overflow(l->amount_fen, l->tax_fen, &total))
        return false;
    fprintf(f, "%s,%s,%s,%s,%" PRId64 ",%s,%s,%s\n", period, type, kind, rate, l->count,
            summary_money_text(l->amount_fen, am), summary_money_text(l->tax_fen, tx),
            summary_money_text(total, tot));
    return true;
}

char *summary_csv(const struct device_summary *s, size_t *len)
{
    struct device_summary c;
    struct device_summary_line sums[3] = { { .red = false }, { .red = true }, { .red = false } };
    char period[sizeof s->period], rate[DEC_FMT_MAX], *text = NULL;
    bool fits;
    FILE *f;

    *len = 0;
    if (canonical(s, &c) != 0) {
        errno = EOVERFLOW;
        return NULL;
    }
    snprintf(period, sizeof period, "%.*s", (int)sizeof period - 1, c.period);
    f = open_memstream(&text, len);
    if (f == NULL)
        return NULL;
    fputs("period,type,kind,tax_rate,invoices,amount,tax,total\n", f);
    fits = true;
    for (int i = 0; i < c.nlines && fits; i++) {
        const struct device_summary_line *l = &c.lines[i];

        fits = csv_row(f, period, l->type, l->red ? "red" : "blue", rate_text(l->rate_pm, 1000, rate), l) &&
               line_add(&sums[l->red ? 1 : 0], l->count, l->amount_fen, l->tax_fen) &&
               line_add(&sums[2], l->count, l->amount_fen, l->tax_fen);
    }
    fits = fits && csv_row(f, period, "all", "blue", "all", &sums[0]) &&
           csv_row(f, period, "all", "red", "all", &sums[1]) &&
           csv_row(f, period, "all", "all", "all", &sums[2]);
    if (fclose(f) != 0 || !fits) {
        if (!fits)
            errno = EOVERFLOW;
        free(text);
        *len = 0;
        return NULL;
    }
    return text;
}
