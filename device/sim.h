/*
 * sim.h — the simulated tax-control device (SPEC §5.1, §5.2 `sim`).
 *
 * State lives in one JSON file, rewritten crash-safely (new file, fsync,
 * rename, fsync of the directory) whenever it changes; the journal of
 * signed invoices is a second, append-only file beside it (STATE.journal),
 * fsync'd before the state that consumes the number.  Its clock is
 * clock_now(), so the test clock moves it too.
 *
 * Administration (fapiaofs-sim, tests) goes through the sim_admin_*
 * functions while a daemon may have the device open.  Both sides take an
 * flock(2) on STATE.lock around every read-modify-write, and the daemon
 * stats the state file before every command: when someone else wrote it
 * (inode, size or times changed), it reloads what an administrator may
 * change — seller, taxpayer kind, PIN and its retry counter, limits, lock
 * date, cleared period, rolls — but never lets a roll's next number go
 * back below what its own journal has signed.  Identity (machine number,
 * key) is never reloaded.
 */
#ifndef FAPIAO_DEVICE_SIM_H
#define FAPIAO_DEVICE_SIM_H

#include <stdio.h>
#include "device/device.h"

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
};

void sim_params_demo(struct sim_params *p);
/* Create a device at `path`; FA_EXISTS when a state file (or an old journal)
 * is already there, FA_INVAL with the field named in `why` for a bad value. */
enum fa_err sim_create(const char *path, const struct sim_params *p, char *why, size_t whylen);
/* Create the demo device of SPEC §5.1 at `path` if no file is there. */
enum fa_err sim_create_demo(const char *path, char *why, size_t whylen);
enum fa_err sim_open(const char *path, struct device **out, char *why, size_t whylen);

/* ---- administration: each call is one locked read-modify-write ---------- */

/* "TYPE:CODE:FIRST:LAST", e.g. "026:031001900111:1:100000"; 0 or -1 with why. */
int sim_parse_roll(const char *spec, struct device_roll *out, char *why, size_t whylen);
/* Assignments "KEY=VALUE", all applied or none.  Keys: limit, offline_hours,
 * offline_amount, lock_date (ISO 8601), cleared_through (YYYY-MM), pin,
 * pin_retries_left (0..5), seller_tax_id, seller_name, seller_address_phone,
 * seller_bank_account, taxpayer_kind, roll.CODE.last. */
enum fa_err sim_admin_set(const char *path, char *const *assignments, int n, char *why,
                          size_t whylen);
/* The retry counter back to SIM_PIN_TRIES: the device is no longer PIN-locked. */
enum fa_err sim_admin_reset_pin(const char *path, char *why, size_t whylen);
enum fa_err sim_admin_add_roll(const char *path, const struct device_roll *roll, char *why,
                               size_t whylen);
/* "key: value" lines, one "roll: TYPE CODE FIRST LAST NEXT REMAINING" per roll. */
enum fa_err sim_admin_show(const char *path, FILE *out, char *why, size_t whylen);

#endif
