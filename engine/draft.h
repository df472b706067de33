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

struct draft_item {
    bool discount;                 /* kind == "discount" */
    const char *name, *category, *tax_code, *spec, *unit, *zero_rate;
    bool has_quantity;
    dec_t quantity, unit_price;    /* unit_price excluding tax, 8 decimals */
    dec_t amount, tax_rate, tax;   /* amount excluding tax */
};

struct draft {
    json_t *root;                  /* owns every string below */
    const char *request_id;        /* NULL if absent */
    const char *type;              /* "026" | "028" */
    const char *buyer_name, *buyer_tax_id, *buyer_address_phone, *buyer_bank_account,
               *buyer_email;
    bool prices_include_tax;
    int nitems;
    struct draft_item items[DRAFT_MAX_ITEMS];
    const char *remark, *drawer, *payee, *reviewer;
    dec_t total_amount, total_tax, total;
};

struct draft_defaults {
    const char *drawer;            /* used when the draft has none; may be NULL */
};

/* FA_OK with *d filled, or FA_REJECTED with every problem in p.  Other
 * errors (FA_NOMEM) leave p empty.  draft_free() in every case. */
enum fa_err draft_parse(const void *bytes, size_t len, const struct draft_defaults *defs,
                        struct draft *d, struct problems *p);
void draft_free(struct draft *d);

/* Copy of `in` in which every JSON number outside a string is quoted, so
 * jansson hands it over as the exact text.  malloc'd, NUL-terminated. */
char *json_numbers_as_strings(const char *in, size_t len, size_t *out_len);

#endif
