/*
 * draft.c — parse, validate and compute a draft; see draft.h.
 *
 * Validation never stops at the first problem: every field is checked and
 * every problem recorded, so a legacy system's operator can fix a draft in
 * one round trip.  Calculation (SPEC §3.3) runs only on lines whose own
 * fields are valid, so one bad line does not cause a cascade of messages.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/draft.h"

#define PROBLEMS_MAX_BYTES (64 * 1024)

void problems_add(struct problems *p, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    p->count++;
    if (p->len + (size_t)n + 1 > PROBLEMS_MAX_BYTES)
        return;   /* bounded: a draft with thousands of problems is still one screen of file */
    if (p->len + (size_t)n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 512;
        char *t;
        while (cap < p->len + (size_t)n + 1)
            cap *= 2;
        t = realloc(p->text, cap);
        if (!t)
            return;
        p->text = t;
        p->cap = cap;
    }
    memcpy(p->text + p->len, line, (size_t)n);
    p->len += (size_t)n;
    p->text[p->len] = 0;
}

void problems_free(struct problems *p)
{
    free(p->text);
    memset(p, 0, sizeof *p);
}

/* ---- JSON numbers as exact text ----------------------------------------- */

static int is_num_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

char *json_numbers_as_strings(const char *in, size_t len, size_t *out_len)
{
    /* Worst case every other byte starts a number: 2 quotes per input byte. */
    char *out = malloc(len * 3 + 1);
    size_t i = 0, o = 0;
    int in_string = 0;

    if (!out)
        return NULL;
    while (i < len) {
        char c = in[i];
        if (in_string) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len)
                out[o++] = in[++i];
            else if (c == '"')
                in_string = 0;
            i++;
        } else if (c == '"') {
            in_string = 1;
            out[o++] = in[i++];
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            out[o++] = '"';
            while (i < len && is_num_char(in[i]))
                out[o++] = in[i++];
            out[o++] = '"';
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

/* ---- field access ------------------------------------------------------- */

struct ctx {
    struct problems *p;
    struct draft *d;
};

static const char *const allowed_rates[] = { "0", "0.01", "0.015", "0.03", "0.04", "0.05",
                                             "0.06", "0.09", "0.13" };
#define ALLOWED_RATES_TEXT "0 0.01 0.015 0.03 0.04 0.05 0.06 0.09 0.13"

/* Reject members not in `known` (NULL-terminated). */
static void check_unknown(struct ctx *c, json_t *obj, const char *path, const char *const *known)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int i, ok = 0;
        for (i = 0; known[i]; i++)
            if (!strcmp(key, known[i]))
                ok = 1;
        if (!ok)
            problems_add(c->p, "%s%s%s: unknown field (check the spelling; see SPEC §3.1)", path,
                         *path ? "." : "", key);
    }
}

/* A string member; NULL if absent.  `required` adds a problem when missing. */
static const char *get_str(struct ctx *c, json_t *obj, const char *path, const char *key,
                           int required, size_t max_bytes)
{
    json_t *v = json_object_get(obj, key);
    const char *s;
    if (!v || json_is_null(v)) {
        if (required)
            problems_add(c->p, "%s%s%s: required", path, *path ? "." : "", key);
        return NULL;
    }
    if (!json_is_string(v)) {
        problems_add(c->p, "%s%s%s: must be a string", path, *path ? "." : "", key);
        return NULL;
    }
    s = json_string_value(v);
    if (required && !*s) {
        problems_add(c->p, "%s%s%s: required, but empty", path, *path ? "." : "", key);
        return NULL;
    }
    if (max_bytes && strlen(s) > max_bytes * 3 / 2) {
        problems_add(c->p, "%s%s%s: longer than %zu bytes", path, *path ? "." : "", key,
                     max_bytes);
        return NULL;
    }
    return s;
}

/* A decimal member (string, or JSON number turned into a string). */
static int get_dec(struct ctx *c, json_t *obj, const char *path, const char *key, int required,
                   int max_decimals, dec_t *out)
{
    const char *s = get_str(c, obj, path, key, required, 64);
    enum dec_parse_rc rc;
    if (!s)
        return -1;
    rc = dec_parse(s, max_decimals, out);
    if (rc != DEC_OK) {
        problems_add(c->p, "%s.%s: \"%s\" %s%s", path, key, s, dec_parse_strerror(rc),
                     rc == DEC_TOO_PRECISE ? (max_decimals == 2 ? " (at most 2)" : " (at most 8)")
                                           : "");
        return -1;
    }
    return 0;
}

static int all_digits(const char *s, size_t n)
{
    size_t i;
    if (strlen(s) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* ---- items -------------------------------------------------------------- */

static const char *const item_fields[] = { "kind", "name", "category", "tax_code", "spec", "unit",
                                           "quantity", "unit_price", "amount", "tax_rate", "tax",
                                           "zero_rate", NULL };

static void parse_item(struct ctx *c, json_t *it, int index, struct draft_item *item)
{
    char path[32];
    const char *kind, *rate_text;
    int ok = 1, has_q, has_p, has_tax, i, rate_ok = 0;
    dec_t given_tax = { 0 }, computed;

    snprintf(path, sizeof path, "items[%d]", index);
    if (!json_is_object(it)) {
        problems_add(c->p, "%s: must be an object", path);
        return;
    }
    check_unknown(c, it, path, item_fields);
    kind = get_str(c, it, path, "kind", 0, 16);
    if (kind && strcmp(kind, "normal") && strcmp(kind, "discount"))
        problems_add(c->p, "%s.kind: \"%s\" is not normal or discount", path, kind);
    item->discount = kind && !strcmp(kind, "discount");
    item->name = get_str(c, it, path, "name", 1, 92);
    item->category = get_str(c, it, path, "category", 1, 92);
    item->tax_code = get_str(c, it, path, "tax_code", 1, 19);
    if (item->tax_code && !all_digits(item->tax_code, 19))
        problems_add(c->p, "%s.tax_code: \"%s\" is not 19 digits (税收分类编码)", path,
                     item->tax_code);
    item->spec = get_str(c, it, path, "spec", 0, 36);
    item->unit = get_str(c, it, path, "unit", 0, 20);
    item->zero_rate = get_str(c, it, path, "zero_rate", 0, 16);

    has_q = json_object_get(it, "quantity") != NULL;
    has_p = json_object_get(it, "unit_price") != NULL;
    if (has_q != has_p) {
        problems_add(c->p, "%s.%s: required when %s is given", path,
                     has_q ? "unit_price" : "quantity", has_q ? "quantity" : "unit_price");
        ok = 0;
    }
    item->has_quantity = has_q && has_p;
    if (item->has_quantity) {
        ok &= get_dec(c, it, path, "quantity", 1, 8, &item->quantity) == 0;
        ok &= get_dec(c, it, path, "unit_price", 1, 8, &item->unit_price) == 0;
    }
    ok &= get_dec(c, it, path, "amount", 1, 2, &item->amount) == 0;
    rate_text = get_str(c, it, path, "tax_rate", 1, 16);
    if (rate_text) {
        for (i = 0; i < (int)(sizeof allowed_rates / sizeof allowed_rates[0]); i++) {
            dec_t a;
            if (dec_parse(rate_text, 8, &item->tax_rate) == DEC_OK &&
                dec_parse(allowed_rates[i], 8, &a) == DEC_OK && !dec_cmp(a, item->tax_rate))
                rate_ok = 1;
        }
        if (!rate_ok)
            problems_add(c->p, "%s.tax_rate: %s is not an allowed rate (" ALLOWED_RATES_TEXT ")",
                         path, rate_text);
    }
    ok &= rate_ok;
    has_tax = json_object_get(it, "tax") != NULL;
    if (has_tax)
        ok &= get_dec(c, it, path, "tax", 1, 2, &given_tax) == 0;
    if (item->zero_rate) {
        if (strcmp(item->zero_rate, "exempt") && strcmp(item->zero_rate, "not_taxable") &&
            strcmp(item->zero_rate, "zero"))
            problems_add(c->p, "%s.zero_rate: \"%s\" is not exempt, not_taxable or zero", path,
                         item->zero_rate);
        else if (rate_ok && !dec_is_zero(item->tax_rate))
            problems_add(c->p, "%s.zero_rate: only with tax_rate 0", path);
    }
    if (!ok)
        return;

    /* SPEC §3.3: tax, and the amount excluding tax when prices include it. */
    if (c->d->prices_include_tax) {
        dec_t one_plus = { DEC_SCALE + item->tax_rate.v }, excl;
        if (!dec_muldiv(item->amount, item->tax_rate, one_plus, 2, &computed) ||
            !dec_sub(item->amount, computed, &excl)) {
            problems_add(c->p, "%s.amount: out of range", path);
            return;
        }
        item->amount = excl;
    } else if (!dec_mul(item->amount, item->tax_rate, 2, &computed)) {
        problems_add(c->p, "%s.amount: out of range", path);
        return;
    }
    if (has_tax) {
        dec_t diff;
        dec_sub(given_tax, computed, &diff);
        if (dec_abs(diff).v > DEC_FEN) {
            char g[DEC_FMT_MAX], w[DEC_FMT_MAX];
            problems_add(c->p, "%s.tax: %s differs from the computed %s by more than 0.01", path,
                         dec_format(given_tax, 2, g), dec_format(computed, 2, w));
            return;
        }
        item->tax = given_tax;
    } else {
        item->tax = computed;
    }
    if (item->has_quantity) {
        dec_t product, diff, listed;
        /* quantity × unit_price is compared with the amount as written */
        listed = c->d->prices_include_tax ? (dec_t){ item->amount.v + item->tax.v } : item->amount;
        if (!dec_mul(item->quantity, item->unit_price, 8, &product) ||
            !dec_sub(product, listed, &diff)) {
            problems_add(c->p, "%s.quantity: quantity × unit_price is out of range", path);
            return;
        }
        if (dec_abs(diff).v > DEC_FEN) {
            char a[DEC_FMT_MAX], b[DEC_FMT_MAX];
            problems_add(c->p, "%s.amount: %s but quantity × unit_price is %s (tolerance 0.01)",
                         path, dec_format(listed, 2, a), dec_format(product, 2, b));
        }
        if (c->d->prices_include_tax && !dec_is_zero(item->quantity))
            dec_muldiv(item->amount, (dec_t){ DEC_SCALE }, item->quantity, 8, &item->unit_price);
    }
}

/* ---- the draft ---------------------------------------------------------- */

static const char *const draft_fields[] = { "request_id", "type", "buyer", "prices_include_tax",
                                            "items", "remark", "drawer", "payee", "reviewer",
                                            "red", NULL };
static const char *const buyer_fields[] = { "name", "tax_id", "address_phone", "bank_account",
                                            "email", NULL };

static void parse_body(struct ctx *c, const struct draft_defaults *defs)
{
    struct draft *d = c->d;
    json_t *root = d->root, *buyer, *items, *pit;
    size_t i;

    if (!json_is_object(root)) {
        problems_add(c->p, "(document): must be a JSON object");
        return;
    }
    check_unknown(c, root, "", draft_fields);
    if (json_object_get(root, "red"))
        problems_add(c->p, "red: red invoices are not supported yet");

    d->request_id = get_str(c, root, "", "request_id", 0, 64);
    if (d->request_id) {
        const char *s;
        size_t n = strlen(d->request_id);
        for (s = d->request_id; *s; s++)
            if (*s < 0x20 || *s > 0x7e)
                break;
        if (n == 0 || n > 64 || *s)
            problems_add(c->p, "request_id: must be 1-64 printable ASCII characters");
    }
    d->type = get_str(c, root, "", "type", 0, 3);
    if (!d->type)
        d->type = "026";
    else if (strcmp(d->type, "026") && strcmp(d->type, "028"))
        problems_add(c->p, "type: \"%s\" is not 026 (增值税电子普通发票) or 028 (增值税电子专用发票)",
                     d->type);

    buyer = json_object_get(root, "buyer");
    if (!json_is_object(buyer)) {
        problems_add(c->p, buyer ? "buyer: must be an object" : "buyer: required");
    } else {
        int special = !strcmp(d->type, "028");
        check_unknown(c, buyer, "buyer", buyer_fields);
        d->buyer_name = get_str(c, buyer, "buyer", "name", 1, 100);
        d->buyer_tax_id = get_str(c, buyer, "buyer", "tax_id", 0, 20);
        d->buyer_address_phone = get_str(c, buyer, "buyer", "address_phone", 0, 100);
        d->buyer_bank_account = get_str(c, buyer, "buyer", "bank_account", 0, 100);
        d->buyer_email = get_str(c, buyer, "buyer", "email", 0, 100);
        if (special && (!d->buyer_tax_id || !*d->buyer_tax_id))
            problems_add(c->p, "buyer.tax_id: required for type 028 (增值税电子专用发票)");
        if (d->buyer_tax_id && *d->buyer_tax_id) {
            size_t n = strlen(d->buyer_tax_id);
            if (n != 15 && n != 17 && n != 18 && n != 20)
                problems_add(c->p, "buyer.tax_id: \"%s\" must have 15, 17, 18 or 20 characters",
                             d->buyer_tax_id);
        }
    }

    pit = json_object_get(root, "prices_include_tax");
    if (pit && !json_is_boolean(pit))
        problems_add(c->p, "prices_include_tax: must be true or false");
    d->prices_include_tax = json_is_true(pit);

    d->remark = get_str(c, root, "", "remark", 0, 230);
    d->drawer = get_str(c, root, "", "drawer", 0, 16);
    if ((!d->drawer || !*d->drawer) && defs && defs->drawer && *defs->drawer)
        d->drawer = defs->drawer;
    if (!d->drawer || !*d->drawer)
        problems_add(c->p, "drawer: required (开票人), or set [invoice] drawer in the configuration");
    d->payee = get_str(c, root, "", "payee", 0, 16);
    d->reviewer = get_str(c, root, "", "reviewer", 0, 16);

    items = json_object_get(root, "items");
    if (!json_is_array(items)) {
        problems_add(c->p, items ? "items: must be an array" : "items: required (1-100 lines)");
        return;
    }
    if (json_array_size(items) < 1 || json_array_size(items) > DRAFT_MAX_ITEMS) {
        problems_add(c->p, "items: has %zu lines; an invoice has 1-%d", json_array_size(items),
                     DRAFT_MAX_ITEMS);
        return;
    }
    d->nitems = (int)json_array_size(items);
    json_array_foreach(items, i, pit)
        parse_item(c, pit, (int)i, &d->items[i]);
    if (c->p->count)
        return;
    for (i = 0; i < (size_t)d->nitems; i++) {
        if (!dec_add(d->total_amount, d->items[i].amount, &d->total_amount) ||
            !dec_add(d->total_tax, d->items[i].tax, &d->total_tax)) {
            problems_add(c->p, "items: totals out of range");
            return;
        }
    }
    if (!dec_add(d->total_amount, d->total_tax, &d->total))
        problems_add(c->p, "items: totals out of range");
}

enum fa_err draft_parse(const void *bytes, size_t len, const struct draft_defaults *defs,
                        struct draft *d, struct problems *p)
{
    const unsigned char *b = bytes;
    struct ctx c = { .p = p, .d = d };
    json_error_t jerr;
    char *quoted;
    size_t qlen;

    memset(d, 0, sizeof *d);
    if (len >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF) {   /* UTF-8 BOM */
        b += 3;
        len -= 3;
    }
    if (len > DRAFT_MAX_BYTES) {
        problems_add(p, "(document): larger than 1 MiB");
        return FA_REJECTED;
    }
    quoted = json_numbers_as_strings((const char *)b, len, &qlen);
    if (!quoted)
        return FA_NOMEM;
    d->root = json_loadb(quoted, qlen, JSON_REJECT_DUPLICATES, &jerr);
    free(quoted);
    if (!d->root) {
        /* Report the position in the bytes as written, not in our quoted copy. */
        json_t *orig = json_loadb((const char *)b, len, JSON_REJECT_DUPLICATES, &jerr);
        json_decref(orig);
        if (orig)
            problems_add(p, "(document): invalid JSON");
        else
            problems_add(p, "(document): invalid JSON at line %d, column %d: %s", jerr.line,
                         jerr.column, jerr.text);
        return FA_REJECTED;
    }
    parse_body(&c, defs);
    return p->count ? FA_REJECTED : FA_OK;
}

void draft_free(struct draft *d)
{
    json_decref(d->root);
    d->root = NULL;
}
