/*
 * red.c — completing a red draft; see red.h.
 *
 * A full reversal negates every line of the blue invoice.  Red invoices have
 * no discount lines, so a blue line and its discount are merged into one
 * negative line (without quantity and unit price, which no longer multiply
 * to the merged amount).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/red.h"
#include "engine/text.h"

#define RED_REMARK_MAX_GBK 230

const char *red_reason_name(const char *reason)
{
    static const char *const names[] = { "开票有误", "销货退回", "服务中止", "销售折让" };
    if (!reason || strlen(reason) != 2 || reason[0] != '0' || reason[1] < '1' || reason[1] > '4')
        return NULL;
    return names[reason[1] - '1'];
}

static const char *str_at(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int dec_at(json_t *o, const char *key, dec_t *out)
{
    const char *s = str_at(o, key);
    return s && dec_parse(s, 8, out) == DEC_OK ? 0 : -1;
}

/* The category-less name of a blue line: "*category*name" → name. */
static const char *plain_name(json_t *item)
{
    const char *printed = str_at(item, "name"), *cat = str_at(item, "category");
    size_t n = cat ? strlen(cat) : 0;
    if (printed && cat && printed[0] == '*' && !strncmp(printed + 1, cat, n) &&
        printed[n + 1] == '*')
        return printed + n + 2;
    return printed;
}

/* ---- sums by tax rate ---------------------------------------------------- */

static const struct red_rate_sum *sums_find(const struct red_sums *s, dec_t rate)
{
    int i;

    for (i = 0; i < s->n; i++)
        if (dec_cmp(s->by_rate[i].rate, rate) == 0)
            return &s->by_rate[i];
    return NULL;
}

/* The sums at rate, a new zero entry if there are none yet; NULL (and s
 * unreadable) past RED_RATES_MAX rates. */
static struct red_rate_sum *sums_at(struct red_sums *s, dec_t rate)
{
    const struct red_rate_sum *found = sums_find(s, rate);

    if (found)
        return &s->by_rate[found - s->by_rate];
    if (s->n == RED_RATES_MAX) {
        s->unreadable = true;
        return NULL;
    }
    s->by_rate[s->n] = (struct red_rate_sum){ .rate = rate };
    return &s->by_rate[s->n++];
}

/* Adds a line; a red invoice's lines are negative, and negated here. */
static void sums_add(struct red_sums *s, dec_t rate, dec_t amount, dec_t tax, bool red)
{
    struct red_rate_sum *r = sums_at(s, rate);

    if (red) {
        amount = dec_neg(amount);
        tax = dec_neg(tax);
    }
    if (!r || !dec_add(r->amount, amount, &r->amount) || !dec_add(r->tax, tax, &r->tax) ||
        !dec_add(s->amount, amount, &s->amount) || !dec_add(s->tax, tax, &s->tax))
        s->unreadable = true;
}

/* The lines of an invoice file's "items" (a blue one's discount lines
 * subtract from their rate). */
static void sums_add_items(struct red_sums *s, json_t *items, bool red)
{
    size_t i;
    json_t *it;

    if (!json_is_array(items))
        s->unreadable = true;
    json_array_foreach(items, i, it) {
        dec_t rate, amount, tax;
        if (dec_at(it, "tax_rate", &rate) || dec_at(it, "amount", &amount) || dec_at(it, "tax", &tax))
            s->unreadable = true;
        else
            sums_add(s, rate, amount, tax, red);
    }
}

int red_sums_add_invoice(void *arg, const void *json, size_t len)
{
    struct red_sums *s = arg;
    json_t *doc = json_loadb(json, len, 0, NULL);

    sums_add_items(s, json_object_get(doc, "items"), true);
    json_decref(doc);
    return 0;
}

/* The rates of s as "0.13 0.06", for a message. */
static void rate_list(const struct red_sums *s, char *buf, size_t len)
{
    char r[DEC_FMT_MAX];
    size_t used = 0;
    int i;

    buf[0] = 0;
    for (i = 0; i < s->n && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? " " : "",
                         dec_format(s->by_rate[i].rate, dec_decimals_used(s->by_rate[i].rate), r));
        used += n > 0 ? (size_t)n : 0;
    }
}

/* Each rate of this red invoice against the blue one's, with what earlier
 * red invoices reversed at it. */
static void check_by_rate(const struct draft *d, const struct red_sums *blue, const struct red_sums *before,
                          struct problems *p)
{
    static const struct red_rate_sum none;
    struct red_sums mine = { 0 };
    char rate[DEC_FMT_MAX], a[DEC_FMT_MAX], b[DEC_FMT_MAX], c[DEC_FMT_MAX], rates[128];
    int i, k;

    for (i = 0; i < d->nitems; i++)
        sums_add(&mine, d->items[i].tax_rate, d->items[i].amount, d->items[i].tax, true);
    for (i = 0; i < mine.n; i++) {
        const struct red_rate_sum *m = &mine.by_rate[i], *bl = sums_find(blue, m->rate);
        const struct red_rate_sum *was = sums_find(before, m->rate);
        dec_format(m->rate, dec_decimals_used(m->rate), rate);
        if (!bl && draft_rate_is_historical(m->rate))
            continue;   /* the rate of the years it held: the totals bound it */
        if (!bl) {
            rate_list(blue, rates, sizeof rates);
            problems_add(p, "items: the blue invoice %s-%s has no line at tax rate %s (its rates: %s)",
                         d->red.code, d->red.number, rate, rates);
            continue;
        }
        if (!was)
            was = &none;
        for (k = 0; k < 2; k++) {
            dec_t now = k ? m->tax : m->amount, earlier = k ? was->tax : was->amount, sum;
            dec_t limit = k ? bl->tax : bl->amount;
            if (dec_add(now, earlier, &sum) && dec_cmp(sum, limit) <= 0)
                continue;
            problems_add(p, "items: at tax rate %s this red invoice reverses %s %s; with the %s already "
                            "reversed that is more than the blue invoice's %s", rate,
                         k ? "tax" : "amount", dec_format(now, 2, a), dec_format(earlier, 2, b),
                         dec_format(limit, 2, c));
        }
    }
}

/* The lines of the blue invoice, negated, discounts merged. */
static int negate_blue_lines(struct draft *d, json_t *items, struct problems *p)
{
    size_t i, n = json_array_size(items);

    d->nitems = 0;
    for (i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i), *next = json_array_get(items, i + 1);
        struct draft_item *r = &d->items[d->nitems];
        dec_t amount, tax, damount, dtax;
        bool merged = next && str_at(next, "kind") && !strcmp(str_at(next, "kind"), "discount");

        if (d->nitems == DRAFT_MAX_ITEMS || dec_at(it, "amount", &amount) ||
            dec_at(it, "tax", &tax) || dec_at(it, "tax_rate", &r->tax_rate)) {
            problems_add(p, "red.number: the blue invoice's line %zu cannot be read", i + 1);
            return -1;
        }
        memset(r, 0, sizeof *r);
        dec_at(it, "tax_rate", &r->tax_rate);
        r->name = plain_name(it);
        r->category = str_at(it, "category");
        r->tax_code = str_at(it, "tax_code");
        r->spec = str_at(it, "spec");
        r->unit = str_at(it, "unit");
        r->zero_rate = str_at(it, "zero_rate");
        if (merged) {
            if (dec_at(next, "amount", &damount) || dec_at(next, "tax", &dtax)) {
                problems_add(p, "red.number: the blue invoice's line %zu cannot be read", i + 2);
                return -1;
            }
            dec_add(amount, damount, &amount);
            dec_add(tax, dtax, &tax);
            i++;
        } else if (json_object_get(it, "quantity") && !dec_at(it, "quantity", &r->quantity) &&
                   !dec_at(it, "unit_price", &r->unit_price)) {
            r->has_quantity = true;
            r->quantity = dec_neg(r->quantity);
        }
        r->amount = dec_neg(amount);
        r->tax = dec_neg(tax);
        if (!dec_is_zero(r->amount) || !dec_is_zero(r->tax))
            d->nitems++;   /* a line discounted to zero has nothing to reverse */
    }
    if (d->nitems == 0) {
        problems_add(p, "red.number: the blue invoice has nothing left to reverse");
        return -1;
    }
    return 0;
}

/* The buyer of a red invoice is the blue invoice's. */
static void check_buyer(const struct draft *d, json_t *blue_buyer, struct problems *p)
{
    const char *name = str_at(blue_buyer, "name"), *tax_id = str_at(blue_buyer, "tax_id");
    if (d->buyer_name && name && strcmp(d->buyer_name, name))
        problems_add(p, "buyer.name: \"%s\" differs from the blue invoice's buyer \"%s\"",
                     d->buyer_name, name);
    if (d->buyer_tax_id && *d->buyer_tax_id && tax_id && strcmp(d->buyer_tax_id, tax_id))
        problems_add(p, "buyer.tax_id: %s differs from the blue invoice's buyer %s",
                     d->buyer_tax_id, tax_id);
}

/* The blue invoice's buyer, which check_buyer() has compared already. */
static void take_buyer(struct draft *d, json_t *blue_buyer)
{
    const char *name = str_at(blue_buyer, "name"), *tax_id = str_at(blue_buyer, "tax_id");
    d->buyer_name = name;
    d->buyer_tax_id = tax_id;
    d->buyer_address_phone = str_at(blue_buyer, "address_phone");
    d->buyer_bank_account = str_at(blue_buyer, "bank_account");
    if (!d->buyer_email)
        d->buyer_email = str_at(blue_buyer, "email");
}

/* "对应正数发票代码:CODE号码:NUMBER", then the draft's own remark. */
static void set_remark(struct draft *d, struct problems *p)
{
    char prefix[96];
    size_t n;
    long gbk;

    n = (size_t)snprintf(prefix, sizeof prefix, "对应正数发票代码:%s号码:%s", d->red.code,
                         d->red.number);
    if (d->remark && !strncmp(d->remark, prefix, n))
        return;
    if (asprintf(&d->remark_owned, "%s%s%s", prefix, d->remark && *d->remark ? " " : "",
                 d->remark ? d->remark : "") < 0) {
        d->remark_owned = NULL;
        problems_add(p, "remark: out of memory");
        return;
    }
    d->remark = d->remark_owned;
    gbk = text_gbk_len(d->remark);
    if (gbk > RED_REMARK_MAX_GBK)
        problems_add(p, "remark: with the prefix \"%s\" it is %ld bytes in GBK; at most %d",
                     prefix, gbk, RED_REMARK_MAX_GBK);
}

/* The totals of SPEC §3.5 (amount, tax and total) over all red invoices of
 * the blue one; the number of problems added. */
static int check_totals(const struct draft *d, const struct red_sums *blue, const struct red_sums *before,
                        dec_t blue_total, struct problems *p)
{
    static const char *const what[] = { "total", "amount", "tax" };
    char a[DEC_FMT_MAX], b[DEC_FMT_MAX], c[DEC_FMT_MAX];
    int k, n = 0;

    for (k = 0; k < 3; k++) {
        dec_t now = k == 0 ? d->total : k == 1 ? d->total_amount : d->total_tax, earlier, limit, sum;
        earlier = k == 0 ? dec_add(before->amount, before->tax, &sum) ? sum : blue_total
                         : k == 1 ? before->amount : before->tax;
        limit = k == 0 ? blue_total : k == 1 ? blue->amount : blue->tax;
        now = dec_neg(now);   /* a red invoice's totals are negative */
        if (dec_add(now, earlier, &sum) && dec_cmp(sum, limit) <= 0)
            continue;
        problems_add(p, "items: this red invoice reverses %s %s; with the %s already reversed that "
                        "is more than the blue invoice's %s %s", what[k], dec_format(now, 2, a),
                     dec_format(earlier, 2, b), what[k], dec_format(limit, 2, c));
        n++;
        if (k == 0)
            break;   /* the total says it; its parts would repeat it */
    }
    return n;
}

/* What the blue invoice says of the draft before its lines count: -1 when
 * nothing more can be checked against it (it is itself red). */
static int check_identity(const struct draft *d, json_t *blue, struct problems *p)
{
    const char *blue_type = str_at(blue, "type"), *own_type = str_at(d->root, "type");

    if (json_object_get(blue, "red")) {
        problems_add(p, "red.number: %s-%s is itself a red invoice; reverse its blue invoice",
                     d->red.code, d->red.number);
        return -1;
    }
    /* an own type other than these two draft_parse() has named already */
    if (own_type && (!strcmp(own_type, "026") || !strcmp(own_type, "028")) && blue_type &&
        strcmp(own_type, blue_type))
        problems_add(p, "type: %s, but the blue invoice %s-%s is of type %s", own_type,
                     d->red.code, d->red.number, blue_type);
    /* a type given as 028 without a notice draft_parse() has named already */
    if (!own_type && blue_type && !strcmp(blue_type, "028") && !d->red.notice)
        problems_add(p, "red.notice: required for a red 028 invoice (the 16-digit 红字信息表 "
                        "number)");
    check_buyer(d, json_object_get(blue, "buyer"), p);
    return 0;
}

static void blue_unreadable(const struct draft *d, struct problems *p)
{
    problems_add(p, "red.number: the blue invoice %s-%s cannot be read", d->red.code,
                 d->red.number);
}

void red_identity(const struct draft *d, const char *blue_json, size_t len, struct problems *p)
{
    json_t *blue = json_loadb(blue_json, len, 0, NULL);

    if (blue)
        check_identity(d, blue, p);
    else
        blue_unreadable(d, p);
    json_decref(blue);
}

enum fa_err red_resolve(struct draft *d, const char *blue_json, size_t len,
                        const struct red_sums *reversed, struct problems *p)
{
    int before = p->count;
    const char *blue_type;
    struct red_sums blue = { 0 };
    dec_t blue_total;

    d->blue = json_loadb(blue_json, len, 0, NULL);
    if (!d->blue || dec_at(json_object_get(d->blue, "totals"), "total", &blue_total)) {
        blue_unreadable(d, p);
        return FA_REJECTED;
    }
    if (check_identity(d, d->blue, p))
        return FA_REJECTED;
    blue_type = str_at(d->blue, "type");
    if (blue_type)
        d->type = blue_type;
    take_buyer(d, json_object_get(d->blue, "buyer"));
    if (d->red.full && negate_blue_lines(d, json_object_get(d->blue, "items"), p))
        return FA_REJECTED;
    set_remark(d, p);
    draft_totals(d, p);
    if (p->count == before) {
        sums_add_items(&blue, json_object_get(d->blue, "items"), false);
        if (blue.unreadable || reversed->unreadable)
            problems_add(p, "red.number: the lines of %s-%s or of its earlier red invoices cannot be "
                            "read", d->red.code, d->red.number);
        else if (check_totals(d, &blue, reversed, blue_total, p) == 0)
            check_by_rate(d, &blue, reversed, p);
    }
    return p->count == before ? FA_OK : FA_REJECTED;
}
