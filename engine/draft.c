/*
 * draft.c — parse, validate and compute a draft; see draft.h.
 *
 * Validation never stops at the first problem: every field is checked and
 * every problem recorded, so a legacy system's operator can fix a draft in
 * one round trip.  Calculation (SPEC §3.3) runs only on lines whose own
 * fields are valid, so one bad line does not cause a cascade of messages.
 */
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/draft.h"
#include "engine/text.h"
#include "engine/uscc.h"

#define PROBLEMS_MAX_BYTES (64 * 1024)

void problems_add(struct problems *p, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n, i;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    for (i = 0; i < n; i++)   /* one problem, one line: a key may contain a line break */
        if ((unsigned char)line[i] < 0x20)
            line[i] = ' ';
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

json_t *problems_json(const struct problems *p)
{
    json_t *arr = json_array();
    const char *line = p->text, *nl;
    while (arr && line && *line && (nl = strchr(line, '\n'))) {
        json_array_append_new(arr, json_stringn(line, (size_t)(nl - line)));
        line = nl + 1;
    }
    return arr;
}

/* ---- JSON numbers as exact text ----------------------------------------- */

static int is_num_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static size_t digits(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* The JSON number grammar (RFC 8259): -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s, size_t n)
{
    size_t i = 0, k;
    if (i < n && s[i] == '-')
        i++;
    k = digits(s + i, n - i);
    if (k == 0 || (k > 1 && s[i] == '0'))
        return 0;
    i += k;
    if (i < n && s[i] == '.') {
        i++;
        k = digits(s + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        k = digits(s + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return i == n;
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
            size_t start = i, n;
            while (i < len && is_num_char(in[i]))
                i++;
            n = i - start;
            /* not a JSON number (01, 1., --1): left as is, for jansson to report */
            if (is_json_number(in + start, n))
                out[o++] = '"';
            memcpy(out + o, in + start, n);
            o += n;
            if (is_json_number(in + start, n))
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
    dec_t line_tolerance;
};

/* Tax rates of SPEC §3.1; the historical ones only on red invoices. */
static const char *const current_rates[] = { "0", "0.01", "0.015", "0.03", "0.04", "0.05", "0.06",
                                             "0.09", "0.13", NULL };
static const char *const historical_rates[] = { "0.10", "0.11", "0.16", "0.17", NULL };
#define CURRENT_RATES_TEXT "0 0.01 0.015 0.03 0.04 0.05 0.06 0.09 0.13"

static bool rate_in(const char *const *list, dec_t rate)
{
    dec_t r;
    for (; *list; list++)
        if (dec_parse(*list, 8, &r) == DEC_OK && !dec_cmp(r, rate))
            return true;
    return false;
}

bool draft_rate_is_historical(dec_t rate)
{
    return rate_in(historical_rates, rate);
}

/* "path.key" or "key" at the top level. */
static const char *field(char buf[64], const char *path, const char *key)
{
    snprintf(buf, 64, "%s%s%s", path, *path ? "." : "", key);
    return buf;
}

/* Reject members not in `known` (NULL-terminated). */
static void check_unknown(struct ctx *c, json_t *obj, const char *path, const char *const *known)
{
    const char *key;
    char f[64];
    json_t *v;
    json_object_foreach(obj, key, v) {
        int i, ok = 0;
        for (i = 0; known[i]; i++)
            if (!strcmp(key, known[i]))
                ok = 1;
        if (!ok)
            problems_add(c->p, "%s: unknown field (check the spelling; see SPEC §3.1)",
                         field(f, path, key));
    }
}

/* A text member; NULL if absent.  max_gbk: the limit in GBK bytes (0: none). */
/* Whether obj has key with a value: null is absent, as get_str() has it. */
static bool given(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v);
}

static const char *get_str(struct ctx *c, json_t *obj, const char *path, const char *key,
                           int required, long max_gbk)
{
    json_t *v = json_object_get(obj, key);
    const char *s, *t;
    char f[64];
    long n;

    field(f, path, key);
    if (!v || json_is_null(v)) {
        if (required)
            problems_add(c->p, "%s: required", f);
        return NULL;
    }
    if (!json_is_string(v)) {
        problems_add(c->p, "%s: must be a string", f);
        return NULL;
    }
    s = json_string_value(v);
    if (required && !*s) {
        problems_add(c->p, "%s: required, but empty", f);
        return NULL;
    }
    for (t = s; *t; t++)
        if ((unsigned char)*t < 0x20 &&
            !((*t == '\n' || (*t == '\r' && t[1] == '\n')) && !strcmp(key, "remark"))) {
            problems_add(c->p, "%s: contains a control character (byte 0x%02X)", f,
                         (unsigned char)*t);
            return NULL;
        }
    if (max_gbk) {
        /* bound the work before converting: GBK never takes fewer bytes than characters */
        n = json_string_length(v) > (size_t)max_gbk * 4 ? max_gbk + 1 : text_gbk_len(s);
        if (n < 0) {
            problems_add(c->p, "%s: contains a character that GBK cannot encode (the device "
                               "stores GBK)", f);
            return NULL;
        }
        if (n > max_gbk) {
            problems_add(c->p, "%s: longer than %ld bytes in GBK", f, max_gbk);
            return NULL;
        }
    }
    return s;
}

/* A number written with an exponent ("1E+2", "1.05e3", "-2.5E-1") as plain
 * decimal text in buf ("100", "1050", "-0.25"), exactly: the digits are
 * moved, never computed.  s itself when it has no exponent; NULL when the
 * plain form would not fit (an exponent beyond ±40: no amount is that large
 * or that precise), or s is not a number with an exponent. */
static const char *plain_number(const char *s, char buf[128])
{
    char digits_buf[48];
    const char *e = strpbrk(s, "eE"), *p = s;
    size_t nd = 0, nint = 0, i, o = 0;
    long exp, point;
    char *end;

    if (!e)
        return s;
    if (*p == '-')
        buf[o++] = *p++;
    for (; p < e && nd < sizeof digits_buf; p++) {
        if (*p == '.' && nint == 0 && nd > 0) {
            nint = nd;
            continue;
        }
        if (*p < '0' || *p > '9')
            return NULL;
        digits_buf[nd++] = *p;
    }
    if (p != e || nd == 0)
        return NULL;
    if (nint == 0)
        nint = nd;
    if (!((e[1] >= '0' && e[1] <= '9') ||
          ((e[1] == '+' || e[1] == '-') && e[2] >= '0' && e[2] <= '9')))
        return NULL;   /* strtol would skip spaces: "1e 5" is not a number */
    errno = 0;
    exp = strtol(e + 1, &end, 10);
    if (errno || *end || end == e + 1 || exp > 40 || exp < -40)
        return NULL;
    while (nd > nint && digits_buf[nd - 1] == '0')   /* 1.2300e1 is 12.3 */
        nd--;
    point = (long)nint + exp;   /* the point after this many digits */
    if (point <= 0) {
        buf[o++] = '0';
        buf[o++] = '.';
        for (; point < 0; point++)
            buf[o++] = '0';
        for (i = 0; i < nd; i++)
            buf[o++] = digits_buf[i];
    } else {
        for (i = 0; i < nd || (long)i < point; i++) {
            if ((long)i == point)
                buf[o++] = '.';
            buf[o++] = i < nd ? digits_buf[i] : '0';
        }
    }
    buf[o] = 0;
    return buf;
}

/* A decimal member (string, or JSON number turned into a string). */
static int get_dec(struct ctx *c, json_t *obj, const char *path, const char *key, int required,
                   int max_decimals, dec_t *out)
{
    const char *s = get_str(c, obj, path, key, required, 0), *plain;
    enum dec_parse_rc rc;
    char f[64], buf[128];
    if (!s)
        return -1;
    if (strlen(s) > 40) {
        problems_add(c->p, "%s: \"%.40s...\" is out of range", field(f, path, key), s);
        return -1;
    }
    plain = plain_number(s, buf);
    rc = plain ? dec_parse(plain, max_decimals, out) : DEC_SYNTAX;
    if (rc != DEC_OK) {
        problems_add(c->p, "%s: \"%s\" %s%s", field(f, path, key), s, dec_parse_strerror(rc),
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

/* Returns 0 when the line is valid and its tax computed. */
static int parse_item(struct ctx *c, json_t *it, int index, struct draft_item *item)
{
    const struct draft *d = c->d;
    char path[32], a[DEC_FMT_MAX], b[DEC_FMT_MAX], rate_buf[128];
    const char *kind, *rate_text;
    int ok = 1, has_q, has_p, has_tax, rate_ok = 0;
    dec_t given_tax = { 0 }, computed, diff;

    snprintf(path, sizeof path, "items[%d]", index);
    if (!json_is_object(it)) {
        problems_add(c->p, "%s: must be an object", path);
        return -1;
    }
    check_unknown(c, it, path, item_fields);
    kind = get_str(c, it, path, "kind", 0, 16);
    if (kind && strcmp(kind, "normal") && strcmp(kind, "discount")) {
        problems_add(c->p, "%s.kind: \"%s\" is not normal or discount", path, kind);
        ok = 0;
    }
    item->discount = kind && !strcmp(kind, "discount");
    item->name = get_str(c, it, path, "name", 1, 92);
    item->category = get_str(c, it, path, "category", 1, 92);
    if (item->name && item->category &&
        text_gbk_len(item->name) + text_gbk_len(item->category) > 92)
        problems_add(c->p, "%s.name: category and name together are longer than 92 bytes in GBK "
                           "(printed as *%s*%s)", path, item->category, item->name);
    item->tax_code = get_str(c, it, path, "tax_code", 1, 19);
    if (item->tax_code && !all_digits(item->tax_code, 19))
        problems_add(c->p, "%s.tax_code: \"%s\" is not 19 digits (税收分类编码)", path,
                     item->tax_code);
    item->spec = get_str(c, it, path, "spec", 0, 36);
    item->unit = get_str(c, it, path, "unit", 0, 20);
    item->zero_rate = get_str(c, it, path, "zero_rate", 0, 16);

    has_q = given(it, "quantity");
    has_p = given(it, "unit_price");
    if (item->discount) {
        static const char *const not_on_discount[] = { "quantity", "unit_price", "spec", "unit",
                                                       NULL };
        const char *const *k;
        for (k = not_on_discount; *k; k++)
            if (given(it, *k)) {
                problems_add(c->p, "%s.%s: not allowed on a discount line", path, *k);
                ok = 0;
            }
        has_q = has_p = 0;
    } else if (has_q != has_p) {
        problems_add(c->p, "%s.%s: required when %s is given", path,
                     has_q ? "unit_price" : "quantity", has_q ? "quantity" : "unit_price");
        ok = 0;
    }
    item->has_quantity = has_q && has_p;
    if (item->has_quantity) {
        ok &= get_dec(c, it, path, "quantity", 1, 8, &item->quantity) == 0;
        ok &= get_dec(c, it, path, "unit_price", 1, 8, &item->unit_price) == 0;
        if (ok && dec_is_neg(item->unit_price)) {
            problems_add(c->p, "%s.unit_price: must not be negative (a red line has a negative "
                               "quantity)", path);
            ok = 0;
        }
        if (ok && dec_is_zero(item->quantity)) {
            problems_add(c->p, "%s.quantity: must not be 0", path);
            ok = 0;
        }
    }
    ok &= get_dec(c, it, path, "amount", 1, 2, &item->amount) == 0;
    if (ok && item->discount && !dec_is_neg(item->amount)) {
        problems_add(c->p, "%s.amount: a discount line has a negative amount", path);
        ok = 0;
    }
    if (ok && !item->discount && d->red.present && !dec_is_neg(item->amount)) {
        problems_add(c->p, "%s.amount: lines of a red invoice are negative", path);
        ok = 0;
    }
    if (ok && !item->discount && !d->red.present && dec_is_neg(item->amount)) {
        problems_add(c->p, "%s.amount: negative; use a discount line or a red invoice", path);
        ok = 0;
    }

    rate_text = get_str(c, it, path, "tax_rate", 1, 16);
    if (rate_text) {
        const char *plain = plain_number(rate_text, rate_buf);
        bool parsed = plain && dec_parse(plain, 8, &item->tax_rate) == DEC_OK;
        if (parsed && rate_in(current_rates, item->tax_rate))
            rate_ok = 1;
        else if (parsed && rate_in(historical_rates, item->tax_rate))
            rate_ok = d->red.present;
        if (!rate_ok)
            problems_add(c->p, "%s.tax_rate: %s is not an allowed rate (" CURRENT_RATES_TEXT
                               "%s)", path, rate_text,
                         d->red.present ? "; on red invoices also 0.10 0.11 0.16 0.17" : "");
    }
    ok &= rate_ok;
    if (rate_ok && dec_is_zero(item->tax_rate)) {
        if (!item->zero_rate) {
            problems_add(c->p, "%s.zero_rate: required with tax_rate 0: exempt (免税), "
                               "not_taxable (不征税) or zero (零税率)", path);
            ok = 0;
        } else if (strcmp(item->zero_rate, "exempt") && strcmp(item->zero_rate, "not_taxable") &&
                   strcmp(item->zero_rate, "zero")) {
            problems_add(c->p, "%s.zero_rate: \"%s\" is not exempt, not_taxable or zero", path,
                         item->zero_rate);
            ok = 0;
        }
    } else if (rate_ok && item->zero_rate) {
        problems_add(c->p, "%s.zero_rate: only with tax_rate 0", path);
        ok = 0;
    }
    has_tax = given(it, "tax");
    if (has_tax)
        ok &= get_dec(c, it, path, "tax", 1, 2, &given_tax) == 0;
    if (!ok)
        return -1;

    /* SPEC §3.3: tax, and the amount excluding tax when prices include it. */
    if (d->prices_include_tax) {
        dec_t one_plus = { DEC_SCALE + item->tax_rate.v }, excl;
        if (!dec_muldiv(item->amount, item->tax_rate, one_plus, 2, &computed) ||
            !dec_sub(item->amount, computed, &excl)) {
            problems_add(c->p, "%s.amount: out of range", path);
            return -1;
        }
        if (has_tax && !dec_sub(item->amount, given_tax, &excl)) {
            problems_add(c->p, "%s.tax: out of range", path);
            return -1;
        }
        item->amount = excl;
    } else if (!dec_mul(item->amount, item->tax_rate, 2, &computed)) {
        problems_add(c->p, "%s.amount: out of range", path);
        return -1;
    }
    item->tax = computed;
    if (has_tax) {
        if (!dec_sub(given_tax, computed, &diff) || dec_cmp(dec_abs(diff), c->line_tolerance) > 0) {
            problems_add(c->p, "%s.tax: %s differs from the computed %s by more than %s", path,
                         dec_format(given_tax, 2, a), dec_format(computed, 2, b),
                         dec_format(c->line_tolerance, 2, (char[DEC_FMT_MAX]){ 0 }));
            return -1;
        }
        item->tax = given_tax;
        dec_add(c->d->tax_deviation, diff, &c->d->tax_deviation);
    }
    if (item->has_quantity) {
        dec_t product, listed = item->amount;
        /* quantity × unit_price is compared with the amount as written */
        if (d->prices_include_tax)
            dec_add(item->amount, item->tax, &listed);
        if (!dec_mul(item->quantity, item->unit_price, 8, &product) ||
            !dec_sub(product, listed, &diff)) {
            problems_add(c->p, "%s.quantity: quantity × unit_price is out of range", path);
            return -1;
        }
        if (!dec_product_within(item->quantity, item->unit_price, listed, (dec_t){ DEC_FEN })) {
            problems_add(c->p, "%s.amount: %s but quantity × unit_price is %s (tolerance 0.01)",
                         path, dec_format(listed, 2, a), dec_format(product, 2, b));
            return -1;
        }
        if (d->prices_include_tax)   /* the printed unit price excludes tax */
            dec_muldiv(item->amount, (dec_t){ DEC_SCALE }, item->quantity, 8, &item->unit_price);
    }
    return 0;
}

/* Differ, or one is NULL because it was already reported as invalid. */
static bool differs(const char *a, const char *b)
{
    return a && b && strcmp(a, b);
}

/* A discount line directly follows the line it discounts and matches it. */
static void check_discounts(struct ctx *c)
{
    const struct draft *d = c->d;
    int i;
    for (i = 0; i < d->nitems; i++) {
        const struct draft_item *it = &d->items[i], *prev = i ? &d->items[i - 1] : NULL;
        if (!it->discount)
            continue;
        if (d->red.present) {
            problems_add(c->p, "items[%d].kind: no discount lines on a red invoice", i);
        } else if (!prev || prev->discount) {
            problems_add(c->p, "items[%d].kind: a discount line must directly follow the line it "
                               "discounts (at most one discount per line)", i);
        } else if (differs(prev->name, it->name) || differs(prev->category, it->category)) {
            problems_add(c->p, "items[%d].name: a discount line has the name and category of "
                               "items[%d]", i, i - 1);
        } else if (differs(prev->tax_code, it->tax_code)) {
            problems_add(c->p, "items[%d].tax_code: a discount line has the tax_code of items[%d]",
                         i, i - 1);
        } else if (dec_cmp(prev->tax_rate, it->tax_rate)) {
            problems_add(c->p, "items[%d].tax_rate: a discount line has the rate of items[%d]",
                         i, i - 1);
        } else if (dec_cmp(dec_abs(it->amount), prev->amount) > 0) {
            problems_add(c->p, "items[%d].amount: the discount is larger than items[%d]'s amount",
                         i, i - 1);
        }
    }
}

void draft_totals(struct draft *d, struct problems *p)
{
    int i;
    char a[DEC_FMT_MAX];

    d->total_amount = d->total_tax = d->total = (dec_t){ 0 };
    for (i = 0; i < d->nitems; i++) {
        if (!dec_add(d->total_amount, d->items[i].amount, &d->total_amount) ||
            !dec_add(d->total_tax, d->items[i].tax, &d->total_tax)) {
            problems_add(p, "items: totals out of range");
            return;
        }
    }
    if (!dec_add(d->total_amount, d->total_tax, &d->total))
        problems_add(p, "items: totals out of range");
    else if (d->total.v == 0)   /* it would use up a number and mean nothing */
        problems_add(p, "items: the invoice's total is 0.00; an invoice must have an amount");
    if (dec_abs(d->tax_deviation).v > DRAFT_INVOICE_TOLERANCE_FEN * DEC_FEN)
        problems_add(p, "items: the given taxes differ from the computed ones by %s in total; "
                        "at most ±1.27 per invoice", dec_format(d->tax_deviation, 2, a));
}

/* ---- the draft ---------------------------------------------------------- */

static const char *const draft_fields[] = { "request_id", "type", "buyer", "prices_include_tax",
                                            "items", "remark", "drawer", "payee", "reviewer",
                                            "red", NULL };
static const char *const buyer_fields[] = { "name", "tax_id", "address_phone", "bank_account",
                                            "email", NULL };
static const char *const red_fields[] = { "code", "number", "reason", "notice", NULL };

/* The 16-digit 红字信息表 number: its last digit is the units digit of the
 * sum of the first 15. */
static bool notice_valid(const char *n)
{
    int i, sum = 0;
    if (!all_digits(n, 16))
        return false;
    for (i = 0; i < 15; i++)
        sum += n[i] - '0';
    return n[15] - '0' == sum % 10;
}

static void parse_red(struct ctx *c, json_t *red)
{
    struct draft *d = c->d;
    bool code_ok, number_ok;

    if (!json_is_object(red)) {
        problems_add(c->p, "red: must be an object with code, number and reason");
        return;
    }
    d->red.present = true;
    check_unknown(c, red, "red", red_fields);
    d->red.code = get_str(c, red, "red", "code", 1, 12);
    code_ok = d->red.code && all_digits(d->red.code, 12);
    if (d->red.code && !code_ok)
        problems_add(c->p, "red.code: \"%s\" is not a 12-digit invoice code", d->red.code);
    d->red.number = get_str(c, red, "red", "number", 1, 8);
    number_ok = d->red.number && all_digits(d->red.number, 8);
    if (d->red.number && !number_ok)
        problems_add(c->p, "red.number: \"%s\" is not an 8-digit invoice number", d->red.number);
    d->red.names_blue = code_ok && number_ok;
    d->red.reason = get_str(c, red, "red", "reason", 1, 2);
    if (d->red.reason && (strlen(d->red.reason) != 2 || d->red.reason[0] != '0' ||
                          d->red.reason[1] < '1' || d->red.reason[1] > '4'))
        problems_add(c->p, "red.reason: \"%s\" is not 01 (开票有误), 02 (销货退回), 03 (服务中止) "
                           "or 04 (销售折让)", d->red.reason);
    d->red.notice = get_str(c, red, "red", "notice", 0, 16);
    if (d->red.notice && !notice_valid(d->red.notice))
        problems_add(c->p, "red.notice: \"%s\" is not a 16-digit 红字信息表 number with a valid "
                           "check digit", d->red.notice);
}

static void parse_buyer(struct ctx *c, json_t *buyer)
{
    struct draft *d = c->d;
    int special = !strcmp(d->type, "028");
    size_t n;

    if (!buyer && d->red.present)
        return;   /* a red invoice takes the buyer of its blue invoice */
    if (!json_is_object(buyer)) {
        problems_add(c->p, buyer ? "buyer: must be an object" : "buyer: required");
        return;
    }
    check_unknown(c, buyer, "buyer", buyer_fields);
    d->buyer_name = get_str(c, buyer, "buyer", "name", 1, 100);
    d->buyer_tax_id = get_str(c, buyer, "buyer", "tax_id", 0, 20);
    d->buyer_address_phone = get_str(c, buyer, "buyer", "address_phone", 0, 100);
    d->buyer_bank_account = get_str(c, buyer, "buyer", "bank_account", 0, 100);
    d->buyer_email = get_str(c, buyer, "buyer", "email", 0, 100);
    if (d->buyer_email && *d->buyer_email && !strchr(d->buyer_email, '@'))
        problems_add(c->p, "buyer.email: \"%s\" is not an e-mail address", d->buyer_email);
    if (special) {
        static const char *const need[] = { "tax_id", "address_phone", "bank_account" };
        const char *have[] = { d->buyer_tax_id, d->buyer_address_phone, d->buyer_bank_account };
        unsigned i;
        for (i = 0; i < 3; i++)
            if (!json_is_string(json_object_get(buyer, need[i])) || (have[i] && !*have[i]))
                problems_add(c->p, "buyer.%s: required for type 028 (增值税电子专用发票)", need[i]);
    }
    if (d->buyer_tax_id && *d->buyer_tax_id) {
        if (!tax_id_charset_ok(d->buyer_tax_id, &n))
            problems_add(c->p, "buyer.tax_id: \"%s\" must have 15, 17, 18 or 20 digits and "
                               "upper-case letters", d->buyer_tax_id);
        else if (n == 18 && !uscc_valid(d->buyer_tax_id))
            problems_add(&d->warnings, "buyer.tax_id: %s fails the unified social credit code "
                                       "check (GB 32100-2015); issued as given", d->buyer_tax_id);
    }
}

static void parse_body(struct ctx *c, const struct draft_defaults *defs)
{
    struct draft *d = c->d;
    json_t *root = d->root, *items, *v;
    size_t i;
    int valid_lines = 1;

    if (!json_is_object(root)) {
        problems_add(c->p, "(document): must be a JSON object");
        return;
    }
    check_unknown(c, root, "", draft_fields);
    if ((v = json_object_get(root, "red")))
        parse_red(c, v);

    d->request_id = get_str(c, root, "", "request_id", 0, 0);
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
    if (d->type && strcmp(d->type, "026") && strcmp(d->type, "028")) {
        problems_add(c->p, "type: \"%s\" is not 026 (增值税电子普通发票) or 028 (增值税电子专用发票)",
                     d->type);
        d->type = NULL;
    }
    if (!d->type)
        d->type = "026";
    if (d->red.present && !strcmp(d->type, "028") && !d->red.notice)
        problems_add(c->p, "red.notice: required for a red 028 invoice (the 16-digit "
                           "红字信息表 number)");
    parse_buyer(c, json_object_get(root, "buyer"));

    v = json_object_get(root, "prices_include_tax");
    if (v && !json_is_boolean(v))
        problems_add(c->p, "prices_include_tax: must be true or false");
    d->prices_include_tax = json_is_true(v);

    d->remark = get_str(c, root, "", "remark", 0, 230);
    v = json_object_get(root, "drawer");
    d->drawer = get_str(c, root, "", "drawer", 0, 16);
    if (!json_is_string(v) || !*json_string_value(v)) {   /* absent, null or empty */
        if (defs && defs->drawer && *defs->drawer)
            d->drawer = defs->drawer;
        else if (!v || json_is_null(v) || json_is_string(v))
            problems_add(c->p, "drawer: required (开票人), or set [invoice] drawer in the "
                               "configuration");
    }
    d->payee = get_str(c, root, "", "payee", 0, 16);
    d->reviewer = get_str(c, root, "", "reviewer", 0, 16);

    items = json_object_get(root, "items");
    if (!items && d->red.present) {
        d->red.full = true;   /* the lines come from the blue invoice: red_resolve() */
        return;
    }
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
    json_array_foreach(items, i, v)
        if (parse_item(c, v, (int)i, &d->items[i]))
            valid_lines = 0;
    if (!valid_lines)
        return;
    check_discounts(c);
    if (!c->p->count)
        draft_totals(d, c->p);
}

enum fa_err draft_parse(const void *bytes, size_t len, const struct draft_defaults *defs,
                        struct draft *d, struct problems *p)
{
    struct ctx c = { .p = p, .d = d, .line_tolerance = { DEC_FEN } };
    json_error_t jerr;
    char *utf8 = NULL, *quoted = NULL, why[256];
    size_t utf8_len = 0, qlen;
    enum fa_err err;

    memset(d, 0, sizeof *d);
    if (defs && defs->line_tolerance.v > 0)
        c.line_tolerance = defs->line_tolerance;
    if (len > DRAFT_MAX_BYTES + 3) {
        problems_add(p, "(document): larger than 1 MiB");
        return FA_REJECTED;
    }
    err = text_to_utf8(bytes, len, &utf8, &utf8_len, why, sizeof why);
    if (err == FA_REJECTED)
        problems_add(p, "%s", why);
    if (err)
        goto out;
    quoted = json_numbers_as_strings(utf8, utf8_len, &qlen);
    if (!quoted) {
        err = FA_NOMEM;
        goto out;
    }
    d->root = json_loadb(quoted, qlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!d->root) {
        /* Report the position in the text as written, not in our quoted copy. */
        json_t *orig = json_loadb(utf8, utf8_len, JSON_REJECT_DUPLICATES, &jerr);
        json_decref(orig);
        if (orig)
            problems_add(p, "(document): invalid JSON");
        else
            problems_add(p, "(document): invalid JSON at line %d, column %d: %s", jerr.line,
                         jerr.column, jerr.text);
        err = FA_REJECTED;
        goto out;
    }
    parse_body(&c, defs);
    err = p->count ? FA_REJECTED : FA_OK;
out:
    free(quoted);
    free(utf8);
    return err;
}

void draft_free(struct draft *d)
{
    json_decref(d->root);
    json_decref(d->blue);
    free(d->remark_owned);
    problems_free(&d->warnings);
    d->root = d->blue = NULL;
    d->remark_owned = NULL;
}
