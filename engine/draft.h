/*
 * draft.h — a draft (SPEC §3): parsing, validation and calculation.
 *
 * draft_parse() turns the bytes dropped into pending/ into a normalised
 * draft with every tax computed, or lists every problem it found, one per
 * line, each naming the field by its path (items[1].tax_rate: ...).
 * Numbers are never converted through binary floating point: JSON numbers
 * are turned into strings before jansson sees them (json_numbers_as_strings)
 * and every amount is an exact dec_t.
 */
#ifndef FAPIAO_DRAFT_H
#define FAPIAO_DRAFT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "engine/decimal.h"
#include "engine/err.h"

#define DRAFT_MAX_BYTES (1024 * 1024)
#define DRAFT_MAX_ITEMS 100

/* Problems found in a draft: text, one per line. */
struct problems {
    char *text;
    size_t len, cap;
    int count;
};
void problems_add(struct problems *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void problems_free(struct problems *p);
/* The lines as a JSON array of strings (new reference). */
json_t *problems_json(const struct problems *p);

struct draft_item {
    bool discount;                 /* kind == "discount" */
    const char *name, *category, *tax_code, *spec, *unit, *zero_rate;
    bool has_quantity;
    dec_t quantity, unit_price;    /* unit_price excluding tax, 8 decimals */
    dec_t amount, tax_rate, tax;   /* amount excluding tax */
};

/* "red": reverses a blue invoice of this device (SPEC §3.5). */
struct draft_red {
    bool present;
    const char *code, *number;     /* the blue invoice */
    bool names_blue;               /* code and number well formed: it can be looked up */
    const char *reason;            /* 01 开票有误 02 销货退回 03 服务中止 04 销售折让 */
    const char *notice;            /* 16-digit 红字信息表 number, type 028 */
    bool full;                     /* no items: every line of the blue invoice negated */
};

struct draft {
    json_t *root;                  /* owns the strings below ... */
    json_t *blue;                  /* ... or this, the blue invoice of a full reversal */
    char *remark_owned;            /* a red invoice's remark with its prefix */
    const char *request_id;        /* NULL if absent */
    const char *type;              /* "026" | "028" */
    const char *buyer_name, *buyer_tax_id, *buyer_address_phone, *buyer_bank_account,
               *buyer_email;
    bool prices_include_tax;
    int nitems;
    struct draft_item items[DRAFT_MAX_ITEMS];
    const char *remark, *drawer, *payee, *reviewer;
    struct draft_red red;
    dec_t total_amount, total_tax, total;
    dec_t tax_deviation;           /* Σ (given tax − computed tax), within ±1.27 */
    struct problems warnings;      /* accepted, but worth saying (receipt "warnings") */
};

struct draft_defaults {
    const char *drawer;            /* used when the draft has none; may be NULL */
    dec_t line_tolerance;          /* given vs computed tax per line; 0 means 0.01 */
};

#define DRAFT_INVOICE_TOLERANCE_FEN 127   /* ±1.27 over all lines (SPEC §3.3) */

/* Sum the lines into the totals and check the invoice tolerance. */
/* Whether rate is one of the historical rates allowed only on red invoices
 * (0.10 0.11 0.16 0.17: they reverse blue invoices of the years they held). */
bool draft_rate_is_historical(dec_t rate);
void draft_totals(struct draft *d, struct problems *p);

/* FA_OK with *d filled, or FA_REJECTED with every problem in p.  Other
 * errors (FA_NOMEM) leave p empty.  draft_free() in every case. */
enum fa_err draft_parse(const void *bytes, size_t len, const struct draft_defaults *defs,
                        struct draft *d, struct problems *p);
void draft_free(struct draft *d);

/* Copy of `in` in which every JSON number outside a string is quoted, so
 * jansson hands it over as the exact text.  malloc'd, NUL-terminated. */
char *json_numbers_as_strings(const char *in, size_t len, size_t *out_len);

#endif
