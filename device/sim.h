/*
 * sim.h — the simulated tax-control device (SPEC §5.1, §5.2 `sim`).
 *
 * State lives in one JSON file, rewritten crash-safely (new file, fsync,
 * rename, fsync of the directory) whenever a setting changes; the journal
 * of signed invoices is a second, append-only file beside it
 * (STATE.journal), fdatasync'd at every signature.  The journal alone
 * records which numbers are consumed: a roll's next number is always at
 * least one past the highest the journal signed, so signing does not
 * rewrite the state file.  A third file, STATE.journal.idx, caches what a
 * replay of the journal builds, so that opening the device replays only
 * the entries after it (sim.c says when it is written and trusted).  Its
 * clock is clock_now(), so the test clock moves it too.
 *
 * Administration (fapiaofs-sim, tests) goes through the sim_admin_*
 * functions while a daemon may have the device open.  Both sides take an
 * flock(2) on STATE.lock around every read-modify-write, and the daemon
 * stats the state file before every command: when someone else wrote it
 * (inode, size or times changed), it reloads what an administrator may
 * change — seller, taxpayer kind, PIN and its retry counter, limits, lock
 * date, cleared period, platform key, rolls — but never lets a roll's next
 * number go back below what its own journal has signed.  Identity (machine
 * number, key) is never reloaded.
 *
 * 反写 (SPEC §5.4 step 6, device_apply_clearance): the answer is the
 * platform's clearance JSON (platform/sim.c, clearance_answer), at most
 * 64 KiB, plus an optional "platform_public_key" (base64 DER SPKI, what
 * GET /v1/platform-key returns).  Its signature (SM2/SM3, id
 * 1234567812345678) covers the one line
 *   CLEARANCE PERIOD MACHINE LOCK_DATE PER_INVOICE OFFLINE_HOURS OFFLINE_AMOUNT
 * and is checked with the device's pinned platform key; a device without
 * one (platform_key "") pins the supplied key once an answer it signed is
 * applied (trust on first use), and a supplied key that differs from the
 * pinned one is ignored.  Checks and answers, in this order:
 *   malformed JSON, a field missing or bad      FA_INVAL
 *   machine_number not this device's            FA_PERM
 *   no key to check with, bad signature         FA_PERM
 *   period <= cleared_through (already applied) FA_OK, nothing changes
 *   period not the month after cleared_through  FA_INVAL
 *   PIN not verified in this session, PIN-locked FA_DEV_PIN
 * then cleared_through, lock date and limits are the answer's, written
 * crash-safely.
 */
#ifndef FAPIAO_DEVICE_SIM_H
#define FAPIAO_DEVICE_SIM_H

#include <stdio.h>
#include "device/device.h"
#include "engine/decimal.h"

#define SIM_DEMO_PIN "12345678"
#define SIM_PIN_TRIES 5

/* Everything a new simulated device is made of.  sim_params_demo() fills in
 * the demo device of SPEC §5.1; change what you need, then sim_create(). */
struct sim_params {
    char seller_tax_id[24];
    char seller_name[128];
    char seller_address_phone[128];
    char seller_bank_account[128];
    char taxpayer_kind[32];       /* 一般纳税人 | 小规模纳税人 */
    char machine_number[16];      /* 12 digits */
    char pin[32];
    int nrolls;                   /* at least one, at most DEVICE_MAX_ROLLS */
    struct device_roll rolls[DEVICE_MAX_ROLLS];   /* next: 0 means first */
    int64_t limit_fen;            /* per-invoice limit */
    int64_t offline_hours;
    int64_t offline_amount_fen;
    char cleared_through[8];      /* YYYY-MM; "" means the month before now */
    int64_t lock_date;            /* 0: the 15th of the month after next, 23:59:59 +08:00 */
    /* base64 DER SPKI of the platform's SM2 key (GET /v1/platform-key), which
     * the answers of 反写 must be signed with; "": none, the first clearing
     * enrols the key it brings */
    char platform_key[CRYPTO_PUBLIC_B64_MAX];
};

void sim_params_demo(struct sim_params *p);
/* Create a device at `path`; FA_EXISTS when a state file (or an old journal)
 * is already there, FA_INVAL with the field named in `why` for a bad value. */
enum fa_err sim_create(const char *path, const struct sim_params *p, char *why, size_t whylen);
/* Create the demo device of SPEC §5.1 at `path` if no file is there. */
enum fa_err sim_create_demo(const char *path, char *why, size_t whylen);
enum fa_err sim_open(const char *path, struct device **out, char *why, size_t whylen);
/* The check code (salt "check") or cipher ("cipher") the device derives for an
 * invoice: n characters of alphabet from SM3 over the invoice's identity, into
 * out (n + 1 bytes).  For tools that build a device's history without it
 * (tests/bench/genstore). */
void sim_derive_digits(const char *machine_number, const char *code, uint32_t number,
                       int64_t total_fen, int64_t at, const char *salt, const char *alphabet,
                       char *out, int n);

/* ---- the journal, one line per signed invoice --------------------------- */

#define SIM_JOURNAL_LINE_MAX 1024 /* one journal line, its newline included */

/* "SEQ CODE NUMBER TYPE ISSUED_AT TOTAL_FEN SM3_HEX SIGNATURE RATES\n", RATES
 * "PM:AMOUNT:TAX" joined by ';' or "-" for none; integers as "%lld" writes
 * them.  Format: the length, newline included, or -1 if it does not fit in
 * cap (the device gives SIM_JOURNAL_LINE_MAX).  Parse (the line without its
 * newline, NUL-terminated): 0, or -1 for anything the device's formatter
 * would not have written (a field missing, too long or spelt otherwise, a
 * space too many, more than DEVICE_MAX_RATES rates)
 * and for what no device signs: SEQ 0, CODE not 12 digits, NUMBER not 8,
 * TYPE not 3, ISSUED_AT before 1970, PM outside 0..1000, an amount beyond
 * ±10^13 fen. */
int sim_format_journal_line(const struct device_journal_entry *e,
                            const struct device_rate_sum *rates, int nrates, char *line, size_t cap);
int sim_parse_journal_line(const char *line, struct device_journal_entry *e,
                           struct device_rate_sum *rates, int *nrates);

/* ---- 反写: the platform's clearance answer ------------------------------ */

#define SIM_CLEARANCE_TEXT_MAX 256

/* A clearance answer as apply_clearance reads it, before it looks at the
 * device: every field present and well formed (the first row of the checks
 * above), each a token without spaces or control characters, so that
 * `text`, the line the signature covers, is exactly these values joined by
 * single spaces. */
struct sim_clearance {
    char period[8];               /* YYYY-MM */
    char machine_number[16];      /* 12 digits */
    char lock_text[40];           /* lock_date as written (ISO 8601) */
    char per_invoice[DEC_FMT_MAX], offline_amount[DEC_FMT_MAX];   /* as written */
    char signature[CRYPTO_SIG_B64_MAX];
    int64_t lock_date, limit_fen, offline_hours, offline_amount_fen;
    EVP_PKEY *supplied_key;       /* platform_public_key, or NULL when absent */
    char text[SIM_CLEARANCE_TEXT_MAX];
    size_t text_len;
};

/* Parse `len` bytes of answer (at most PROTO_CLEARANCE_MAX, 64 KiB; not
 * necessarily NUL-terminated).  FA_OK, or FA_INVAL with *out zeroed.  No
 * device, no file, no signature check: sim_clearance_free() after FA_OK. */
enum fa_err sim_parse_clearance(const char *answer, size_t len, struct sim_clearance *out);
void sim_clearance_free(struct sim_clearance *c);

/* ---- administration: each call is one locked read-modify-write ---------- */

/* "TYPE:CODE:FIRST:LAST", e.g. "026:031001900111:1:100000"; 0 or -1 with why. */
int sim_parse_roll(const char *spec, struct device_roll *out, char *why, size_t whylen);
/* Assignments "KEY=VALUE", all applied or none.  Keys: limit, offline_hours,
 * offline_amount, lock_date (ISO 8601), cleared_through (YYYY-MM),
 * platform_key (base64 DER SPKI of an SM2 key; empty: forget it, the next
 * clearing enrols one again), pin, pin_retries_left (0..5), seller_tax_id,
 * seller_name, seller_address_phone, seller_bank_account, taxpayer_kind,
 * roll.CODE.last. */
enum fa_err sim_admin_set(const char *path, char *const *assignments, int n, char *why,
                          size_t whylen);
/* The retry counter back to SIM_PIN_TRIES: the device is no longer PIN-locked. */
enum fa_err sim_admin_reset_pin(const char *path, char *why, size_t whylen);
enum fa_err sim_admin_add_roll(const char *path, const struct device_roll *roll, char *why,
                               size_t whylen);
/* "key: value" lines (platform_key: B64, or "none (enrolled at the first
 * clearing)"), one "roll: TYPE CODE FIRST LAST NEXT REMAINING" per roll. */
enum fa_err sim_admin_show(const char *path, FILE *out, char *why, size_t whylen);

#endif
