/*
 * invoice.c — building and rendering the canonical invoice; see invoice.h.
 *
 * jansson keeps object members in insertion order, so the order of the
 * json_object_set_new() calls below *is* the stable key order of SPEC §4.
 * Every number is written as a string with a fixed number of decimals, so
 * the rendering never depends on a floating-point formatter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device/crypto.h"
#include "engine/clock.h"
#include "engine/invoice.h"
#include "engine/red.h"
#include "engine/upper.h"

#define INVOICE_DUMP_FLAGS (JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17))

static void set_str(json_t *o, const char *key, const char *value)
{
    json_object_set_new(o, key, json_string(value ? value : ""));
}

static void set_dec(json_t *o, const char *key, dec_t v, int decimals)
{
    char buf[DEC_FMT_MAX];
    json_object_set_new(o, key, json_string(dec_format(v, decimals, buf)));
}

/* Quantities and unit prices keep the decimals they need (at least none). */
static void set_dec_trimmed(json_t *o, const char *key, dec_t v)
{
    set_dec(o, key, v, dec_decimals_used(v));
}

static json_t *build_items(const struct draft *d)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; arr && i < d->nitems; i++) {
        const struct draft_item *it = &d->items[i];
        json_t *o = json_object();
        char printed[512];
        snprintf(printed, sizeof printed, "*%s*%s", it->category, it->name);
        json_object_set_new(o, "line", json_integer(i + 1));
        set_str(o, "kind", it->discount ? "discount" : "normal");
        set_str(o, "name", printed);
        set_str(o, "category", it->category);
        set_str(o, "tax_code", it->tax_code);
        set_str(o, "spec", it->spec);
        set_str(o, "unit", it->unit);
        if (it->has_quantity) {
            set_dec_trimmed(o, "quantity", it->quantity);
            set_dec_trimmed(o, "unit_price", it->unit_price);
        }
        set_dec(o, "amount", it->amount, 2);
        set_dec_trimmed(o, "tax_rate", it->tax_rate);
        set_dec(o, "tax", it->tax, 2);
        if (it->zero_rate)
            set_str(o, "zero_rate", it->zero_rate);
        json_array_append_new(arr, o);
    }
    return arr;
}

json_t *invoice_build(const struct draft *d, const struct invoice_meta *m)
{
    json_t *inv = json_object(), *seller = json_object(), *buyer = json_object(),
           *totals = json_object();
    char issued[32], period[8], ymd[9], amount[DEC_FMT_MAX], upper[UPPER_MAX], qr[256];
    unsigned char digest[32];

    if (!inv || !seller || !buyer || !totals) {
        json_decref(inv);
        json_decref(seller);
        json_decref(buyer);
        json_decref(totals);
        return NULL;
    }
    clock_iso_cst(m->issued_at, issued);
    clock_period(m->issued_at, period);
    memcpy(ymd, issued, 4);
    memcpy(ymd + 4, issued + 5, 2);
    memcpy(ymd + 6, issued + 8, 2);
    ymd[8] = 0;

    set_str(inv, "code", m->dev->code);
    set_str(inv, "number", m->dev->number);
    set_str(inv, "type", d->type);
    set_str(inv, "type_name", strcmp(d->type, "028") ? "增值税电子普通发票" : "增值税电子专用发票");
    set_str(inv, "issued_at", issued);
    set_str(inv, "period", period);

    set_str(seller, "tax_id", m->seller->seller_tax_id);
    set_str(seller, "name", m->seller->seller_name);
    set_str(seller, "address_phone", m->seller->seller_address_phone);
    set_str(seller, "bank_account", m->seller->seller_bank_account);
    set_str(seller, "taxpayer_kind", m->seller->taxpayer_kind);
    json_object_set_new(inv, "seller", seller);

    set_str(buyer, "name", d->buyer_name);
    set_str(buyer, "tax_id", d->buyer_tax_id);
    set_str(buyer, "address_phone", d->buyer_address_phone);
    set_str(buyer, "bank_account", d->buyer_bank_account);
    set_str(buyer, "email", d->buyer_email);
    json_object_set_new(inv, "buyer", buyer);

    set_str(inv, "machine_number", m->dev->machine_number);
    set_str(inv, "check_code", m->dev->check_code);
    set_str(inv, "cipher", m->dev->cipher);
    json_object_set_new(inv, "items", build_items(d));

    set_dec(totals, "amount", d->total_amount, 2);
    set_dec(totals, "tax", d->total_tax, 2);
    set_dec(totals, "total", d->total, 2);
    set_str(totals, "total_upper", upper_amount(d->total, upper));
    json_object_set_new(inv, "totals", totals);

    set_str(inv, "remark", d->remark);
    set_str(inv, "drawer", d->drawer);
    set_str(inv, "payee", d->payee);
    set_str(inv, "reviewer", d->reviewer);

    /* QR payload: 01 (version), 10 e-普票 / 08 e-专票, then a 4-character check. */
    snprintf(qr, sizeof qr, "01,%s,%s,%s,%s,%s,%s,", strcmp(d->type, "028") ? "10" : "08",
             m->dev->code, m->dev->number, dec_format(d->total_amount, 2, amount), ymd,
             m->dev->check_code);
    crypto_sm3(qr, strlen(qr), digest);
    snprintf(qr + strlen(qr), sizeof qr - strlen(qr), "%02X%02X,", digest[0], digest[1]);
    set_str(inv, "qr", qr);

    if (d->red.present) {
        json_t *red = json_object();
        set_str(red, "code", d->red.code);
        set_str(red, "number", d->red.number);
        set_str(red, "reason", d->red.reason);
        set_str(red, "reason_name", red_reason_name(d->red.reason));
        if (d->red.notice)
            set_str(red, "notice", d->red.notice);
        json_object_set_new(inv, "red", red);
    }
    set_str(inv, "draft", m->draft_name);
    if (d->request_id)
        set_str(inv, "request_id", d->request_id);
    else
        json_object_set_new(inv, "request_id", json_null());
    return inv;
}

char *invoice_canonical(json_t *inv, size_t *len)
{
    json_t *copy = json_copy(inv);
    char *s;
    if (!copy)
        return NULL;
    json_object_del(copy, "signature");
    s = json_dumps(copy, JSON_COMPACT | INVOICE_DUMP_FLAGS);
    json_decref(copy);
    if (s)
        *len = strlen(s);
    return s;
}

/* json_dumps plus a final newline, the way text files end. */
static char *dump_with_newline(json_t *o, size_t *len)
{
    char *s = json_dumps(o, JSON_INDENT(2) | INVOICE_DUMP_FLAGS), *t;
    size_t n;
    if (!s)
        return NULL;
    n = strlen(s);
    t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return NULL;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    *len = n + 1;
    return t;
}

char *invoice_render(json_t *inv, const char *signature_b64, size_t *len)
{
    json_object_set_new(inv, "signature", json_string(signature_b64));
    return dump_with_newline(inv, len);
}

char *receipt_render(const char *draft_name, const char *request_id, const char *status,
                     const char *code, const char *number, const char *path,
                     int64_t issued_at, const char *total, json_t *warnings, size_t *len)
{
    json_t *o = json_object();
    char issued[32], *s;

    set_str(o, "draft", draft_name);
    json_object_set_new(o, "request_id", request_id ? json_string(request_id) : json_null());
    set_str(o, "status", status);
    set_str(o, "code", code);
    set_str(o, "number", number);
    set_str(o, "path", path);
    set_str(o, "issued_at", clock_iso_cst(issued_at, issued));
    set_str(o, "total", total);
    json_object_set_new(o, "warnings", warnings ? json_incref(warnings) : json_array());
    s = dump_with_newline(o, len);
    json_decref(o);
    return s;
}
