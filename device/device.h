/*
 * device.h — the tax-control device, as the engine sees it (SPEC §5).
 *
 * The command list of the device, one function each.  A device is a
 * vtable: `sim` (device/sim.c) today, `usb` over Bulk-Only Transport later;
 * both answer the same commands with the same enum fa_err refusals.
 *
 * Issuing takes two commands so that the signed bytes can contain the
 * number the device allocates:
 *   device_issue_begin  checks PIN, lock date, limits and roll and reserves
 *                       the next number (returns number, check code, cipher);
 *   device_issue_sign   signs the canonical bytes for that reserved number,
 *                       records it in the device journal and consumes it.
 * A number is consumed only by issue_sign, so a crash between the two
 * reuses it: no gaps.
 *
 * Group commit (engine.c): a device that has issue_reserve_next and
 * issue_sign_batch (the simulated one in this process) reserves up to
 * DEVICE_BATCH_MAX numbers ahead and signs them with one journal write and
 * one sync.  Over USB they are NULL (the command set reserves one number at
 * a time, device/PROTOCOL.md) and device_batch_max() is 1.
 */
#ifndef FAPIAO_DEVICE_H
#define FAPIAO_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "device/crypto.h"
#include "engine/config.h"
#include "engine/err.h"

#define DEVICE_MAX_ROLLS 8

struct device_info {
    char kind[8];                 /* sim | usb */
    char model[64];
    char machine_number[16];      /* 12 digits */
    char seller_tax_id[24];
    char seller_name[128];
    char seller_address_phone[128];
    char seller_bank_account[128];
    char taxpayer_kind[32];       /* 一般纳税人 | 小规模纳税人 */
    char public_key[256];         /* base64 DER SubjectPublicKeyInfo */
};

struct device_status {
    char cleared_through[8];      /* YYYY-MM */
    int64_t lock_date;            /* issuing allowed until this instant */
    bool locked;                  /* lock date passed */
    int64_t limit_fen;            /* per-invoice limit */
    int64_t offline_hours;
    int64_t offline_amount_fen;
    int pin_retries_left;
    int64_t signed_count;         /* invoices in the journal */
    bool session_open;            /* a right PIN was given since the device was opened */
};

struct device_roll {
    char type[4];                 /* 026 | 028 */
    char code[16];                /* 12 digits */
    uint32_t first, last, next;
};

#define DEVICE_MAX_RATES 16

/* Amounts of one tax rate; rates in per mille (0.015 → 15, 0.13 → 130). */
struct device_rate_sum {
    int rate_pm;
    int64_t amount_fen, tax_fen;
};

struct device_issue_req {
    const char *type;             /* 026 | 028 */
    int64_t total_fen;            /* amount including tax; negative for red */
    int64_t issued_at;
    int nrates;                   /* the invoice's amounts by rate, for the period summary */
    struct device_rate_sum rates[DEVICE_MAX_RATES];
};

/* Whether the request is above the device's per-invoice limit (单张开票限额),
 * blue or red.  The limit is on 销售额, the amount excluding tax: the Σ of
 * the request's rates.  A sum that overflows (a request no engine makes, but
 * the device cannot trust its host) is above any limit. */
static inline bool device_req_above_limit(const struct device_issue_req *r, int64_t limit_fen)
{
    int64_t amount = 0;
    int i;

    for (i = 0; i < r->nrates && i < DEVICE_MAX_RATES; i++)
        if (__builtin_add_overflow(amount, r->rates[i].amount_fen, &amount))
            return true;
    return amount > limit_fen || amount < -limit_fen;
}

/* One signed invoice in the device's journal. */
struct device_journal_entry {
    uint64_t seq;                 /* 1, 2, ... in signing order */
    char code[16], number[16], type[4];
    int64_t issued_at, total_fen;
    char sm3_hex[65];             /* SM3 of the signed (canonical) bytes */
    char signature[CRYPTO_SIG_B64_MAX];
};

/* The device-signed period summary (抄税): counts and amounts of blue and
 * red invoices by type and rate.  signature is over device_summary_text(). */
#define DEVICE_SUMMARY_LINES 64
struct device_summary_line {
    char type[4];
    bool red;
    int rate_pm;
    int64_t count, amount_fen, tax_fen;
};
struct device_summary {
    char period[8];
    char machine_number[16];
    int nlines;
    struct device_summary_line lines[DEVICE_SUMMARY_LINES];
    char signature[CRYPTO_SIG_B64_MAX];
};

struct device_issue_fields {
    char code[16];                /* 12 digits */
    char number[16];              /* 8 digits */
    char machine_number[16];
    char check_code[24];          /* 20 digits */
    char cipher[112];             /* 108 characters of 0-9+-*<>/ */
};

#define DEVICE_BATCH_MAX 16

/* One invoice of a batch: the reserved number and its canonical bytes. */
struct device_sign_item {
    char code[16], number[16];
    const void *bytes;
    size_t len;
};

struct device;
struct device_ops {
    enum fa_err (*get_info)(struct device *d, struct device_info *out);
    enum fa_err (*get_status)(struct device *d, struct device_status *out);
    enum fa_err (*list_rolls)(struct device *d, struct device_roll *out, int max, int *n);
    enum fa_err (*verify_pin)(struct device *d, const char *pin);
    enum fa_err (*issue_begin)(struct device *d, const struct device_issue_req *req,
                               struct device_issue_fields *out);
    enum fa_err (*issue_sign)(struct device *d, const char *code, const char *number,
                              const void *bytes, size_t len, char sig_b64[CRYPTO_SIG_B64_MAX]);
    /* Optional (NULL: no batches).  reserve_next: the number after the last
     * reserved one, with issue_begin's checks.  sign_batch: the first n
     * reservations in order, durable before any signature is returned; the
     * other reservations are dropped. */
    enum fa_err (*issue_reserve_next)(struct device *d, const struct device_issue_req *req,
                                      struct device_issue_fields *out);
    enum fa_err (*issue_sign_batch)(struct device *d, int n, const struct device_sign_item *items,
                                    char (*sigs)[CRYPTO_SIG_B64_MAX]);
    /* Journal entries with seq >= from, at most max, in order. */
    enum fa_err (*read_journal)(struct device *d, uint64_t from, struct device_journal_entry *out,
                                int max, int *n);
    enum fa_err (*period_summary)(struct device *d, const char *period, struct device_summary *out);
    /* 反写: the platform-signed clearance answer (JSON); the device checks it,
     * records the period as cleared and takes the new lock date and limits. */
    enum fa_err (*apply_clearance)(struct device *d, const char *answer, size_t len);
    enum fa_err (*set_clock)(struct device *d, int64_t now);
    void (*close)(struct device *d);
};

struct device {
    const struct device_ops *ops;
};

/* Open the configured device (and create the demo device on first use of
 * the embedded default).  With login, verify the PIN from pin_file or the
 * demo PIN: a wrong PIN costs one of the device's five tries, so a check
 * that only opens (before daemonising) must not log in. */
enum fa_err device_open(const struct config *c, bool login, struct device **out, char *why,
                        size_t whylen);
void device_close(struct device *d);

static inline enum fa_err device_get_info(struct device *d, struct device_info *o)
{ return d->ops->get_info(d, o); }
static inline enum fa_err device_get_status(struct device *d, struct device_status *o)
{ return d->ops->get_status(d, o); }
static inline enum fa_err device_list_rolls(struct device *d, struct device_roll *o, int max, int *n)
{ return d->ops->list_rolls(d, o, max, n); }
static inline enum fa_err device_verify_pin(struct device *d, const char *pin)
{ return d->ops->verify_pin(d, pin); }
static inline enum fa_err device_issue_begin(struct device *d, const struct device_issue_req *r,
                                             struct device_issue_fields *o)
{ return d->ops->issue_begin(d, r, o); }
static inline enum fa_err device_issue_sign(struct device *d, const char *code, const char *number,
                                            const void *b, size_t n, char sig[CRYPTO_SIG_B64_MAX])
{ return d->ops->issue_sign(d, code, number, b, n, sig); }
static inline int device_batch_max(struct device *d)
{ return d->ops->issue_reserve_next && d->ops->issue_sign_batch ? DEVICE_BATCH_MAX : 1; }
static inline enum fa_err device_issue_reserve_next(struct device *d,
                                                    const struct device_issue_req *r,
                                                    struct device_issue_fields *o)
{ return d->ops->issue_reserve_next(d, r, o); }
static inline enum fa_err device_issue_sign_batch(struct device *d, int n,
                                                  const struct device_sign_item *items,
                                                  char (*sigs)[CRYPTO_SIG_B64_MAX])
{ return d->ops->issue_sign_batch(d, n, items, sigs); }
static inline enum fa_err device_read_journal(struct device *d, uint64_t from,
                                              struct device_journal_entry *o, int max, int *n)
{ return d->ops->read_journal(d, from, o, max, n); }
static inline enum fa_err device_period_summary(struct device *d, const char *period,
                                                struct device_summary *o)
{ return d->ops->period_summary(d, period, o); }
static inline enum fa_err device_apply_clearance(struct device *d, const char *a, size_t n)
{ return d->ops->apply_clearance(d, a, n); }
static inline enum fa_err device_set_clock(struct device *d, int64_t now)
{ return d->ops->set_clock(d, now); }

/* The text a summary's signature covers: one line per summary line,
 * "TYPE blue|red RATE_PM COUNT AMOUNT_FEN TAX_FEN", after "PERIOD MACHINE".
 * malloc'd. */
char *device_summary_text(const struct device_summary *s);

/* Known commercial devices (SPEC §5.2): their name, or NULL. */
const char *device_known_commercial(unsigned vid, unsigned pid);

#endif
