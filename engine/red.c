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
static void take_buyer(struct draft *d, json_t *blue_buyer, struct problems *p)
{
    const char *name = str_at(blue_buyer, "name"), *tax_id = str_at(blue_buyer, "tax_id");
    if (d->buyer_name && name && strcmp(d->buyer_name, name))
        problems_add(p, "buyer.name: \"%s\" differs from the blue invoice's buyer \"%s\"",
                     d->buyer_name, name);
    if (d->buyer_tax_id && *d->buyer_tax_id && tax_id && strcmp(d->buyer_tax_id, tax_id))
        problems_add(p, "buyer.tax_id: %s differs from the blue invoice's buyer %s",
                     d->buyer_tax_id, tax_id);
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

enum fa_err red_resolve(struct draft *d, const char *blue_json, size_t len, int64_t reversed_fen,
                        struct problems *p)
{
    int before = p->count;
    const char *blue_type;
    dec_t blue_total, would;
    char a[DEC_FMT_MAX], b[DEC_FMT_MAX], c[DEC_FMT_MAX];

    d->blue = json_loadb(blue_json, len, 0, NULL);
    if (!d->blue || dec_at(json_object_get(d->blue, "totals"), "total", &blue_total)) {
        problems_add(p, "red.number: the blue invoice %s-%s cannot be read", d->red.code,
                     d->red.number);
        return FA_REJECTED;
    }
    if (json_object_get(d->blue, "red")) {
        problems_add(p, "red.number: %s-%s is itself a red invoice; reverse its blue invoice",
                     d->red.code, d->red.number);
        return FA_REJECTED;
    }
    blue_type = str_at(d->blue, "type");
    if (json_object_get(d->root, "type") && blue_type && strcmp(d->type, blue_type))
        problems_add(p, "type: %s, but the blue invoice %s-%s is of type %s", d->type,
                     d->red.code, d->red.number, blue_type);
    if (blue_type)
        d->type = blue_type;
    if (!strcmp(d->type, "028") && !d->red.notice)
        problems_add(p, "red.notice: required for a red 028 invoice (the 16-digit 红字信息表 "
                        "number)");
    take_buyer(d, json_object_get(d->blue, "buyer"), p);
    if (d->red.full && negate_blue_lines(d, json_object_get(d->blue, "items"), p))
        return FA_REJECTED;
    set_remark(d, p);
    draft_totals(d, p);
    if (p->count == before) {
        dec_t reversed = dec_from_fen(reversed_fen);
        dec_add(reversed, dec_abs(d->total), &would);
        if (dec_cmp(would, blue_total) > 0)
            problems_add(p, "items: this red invoice reverses %s; with the %s already reversed "
                            "that is more than the blue invoice's total %s",
                         dec_format(dec_abs(d->total), 2, a), dec_format(reversed, 2, b),
                         dec_format(blue_total, 2, c));
    }
    return p->count == before ? FA_OK : FA_REJECTED;
}
