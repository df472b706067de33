/*
 * simtool.c — fapiaofs-sim, the administrator of the simulated device.
 *
 *   fapiaofs-sim create STATE [options]     a new device (refuses to overwrite one)
 *   fapiaofs-sim show STATE                 key: value lines, rolls, journal count
 *   fapiaofs-sim reset-pin STATE            PIN retry counter back to 5
 *   fapiaofs-sim set STATE KEY=VALUE...     monitoring data, PIN, seller, roll ends,
 *                                           the pinned platform key
 *   fapiaofs-sim add-roll STATE TYPE:CODE:FIRST:LAST
 *
 * Every command is one call of the sim_admin_* functions of device/sim.c,
 * the code the daemon itself runs: the same lock file, the same crash-safe
 * write, and a running daemon picks the change up at its next command.
 * Kept out of libfapiao.a by the Makefile (it has a main()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device/sim.h"
#include "engine/clock.h"
#include "engine/decimal.h"

static const char usage[] =
    "usage: fapiaofs-sim COMMAND STATE [ARGS]\n"
    "\n"
    "Administers the simulated tax-control device whose state file is STATE\n"
    "(the [device] state of fapiaofs.conf; the journal is STATE.journal).\n"
    "A mounted fapiaofs sees a change at its next device command.\n"
    "\n"
    "commands:\n"
    "  create STATE [OPTIONS]        create a device; the demo device's values unless given:\n"
    "      --seller-tax-id ID          unified social credit code (9131011259474644XJ)\n"
    "      --seller-name NAME\n"
    "      --seller-address-phone TEXT\n"
    "      --seller-bank-account TEXT\n"
    "      --taxpayer-kind KIND        general | small | 一般纳税人 | 小规模纳税人\n"
    "      --machine-number N          12 digits (499099000001)\n"
    "      --pin PIN                   (12345678)\n"
    "      --roll TYPE:CODE:FIRST:LAST a roll, e.g. 026:031001900111:1:100000; repeat for\n"
    "                                  several (used in the order given); any --roll replaces\n"
    "                                  the demo rolls (one 026, one 028 of 100000 numbers)\n"
    "      --limit AMOUNT              per-invoice limit (10000000.00)\n"
    "      --offline-hours H           (72)\n"
    "      --offline-amount AMOUNT     (10000000.00)\n"
    "      --cleared-through YYYY-MM   (the month before now); the lock date is the 15th of\n"
    "                                  the month after next, 23:59:59 +08:00\n"
    "      --lock-date ISO             instead of that lock date\n"
    "      --platform-key B64          the platform's SM2 public key, base64 DER (what\n"
    "                                  GET /v1/platform-key returns), that clearance answers\n"
    "                                  must be signed with; without it the first clearing\n"
    "                                  enrols the key the answer brings (trust on first use)\n"
    "  show STATE                    the device as key: value lines (platform_key: the pinned\n"
    "                                key, or none until the first clearing enrols one)\n"
    "  reset-pin STATE               the PIN retry counter back to 5 (unlocks a PIN-locked device)\n"
    "  set STATE KEY=VALUE...        change, all or nothing; keys: limit, offline_hours,\n"
    "                                offline_amount, lock_date (ISO 8601), cleared_through (YYYY-MM),\n"
    "                                platform_key (base64 DER SM2 public key; platform_key= forgets\n"
    "                                it and the next clearing enrols one again),\n"
    "                                pin, pin_retries_left (0..5), seller_tax_id, seller_name,\n"
    "                                seller_address_phone, seller_bank_account, taxpayer_kind,\n"
    "                                roll.CODE.last\n"
    "  add-roll STATE TYPE:CODE:FIRST:LAST   a new roll, used after the others of its type\n"
    "\n"
    "exit status: 0 done, 1 refused or failed (the reason on stderr), 2 usage\n";

static int fail_usage(const char *fmt, const char *arg)
{
    fputs("fapiaofs-sim: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(fapiaofs-sim --help for the usage)\n", stderr);
    return 2;
}

static int fail(const char *why)
{
    fprintf(stderr, "fapiaofs-sim: %s\n", why);
    return 1;
}

/* Copy an option's value into a fixed field; -1 when it does not fit. */
static int set_field(char *dst, size_t cap, const char *value)
{
    if (strlen(value) >= cap)
        return -1;
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}

static int parse_amount_opt(const char *opt, const char *value, int64_t *fen)
{
    dec_t d;
    if (dec_parse(value, 2, &d) != DEC_OK || dec_is_neg(d)) {
        fprintf(stderr, "fapiaofs-sim: %s: \"%s\" is not an amount such as 20000.00\n", opt, value);
        return -1;
    }
    *fen = dec_to_fen(d);
    return 0;
}

static int cmd_create(const char *state, int argc, char **argv)
{
    struct sim_params p;
    char why[512];
    bool rolls_given = false;
    int i;

    sim_params_demo(&p);
    for (i = 0; i < argc; i++) {
        const char *opt = argv[i], *eq = strchr(opt, '=');
        char name[40];
        const char *v;
        int bad = 0;

        if (strncmp(opt, "--", 2))
            return fail_usage("create: unexpected argument \"%s\"", opt);
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - opt) : (int)strlen(opt), opt);
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return fail_usage("create: %s needs a value", opt);
        if (!strcmp(name, "--seller-tax-id"))
            bad = set_field(p.seller_tax_id, sizeof p.seller_tax_id, v);
        else if (!strcmp(name, "--seller-name"))
            bad = set_field(p.seller_name, sizeof p.seller_name, v);
        else if (!strcmp(name, "--seller-address-phone"))
            bad = set_field(p.seller_address_phone, sizeof p.seller_address_phone, v);
        else if (!strcmp(name, "--seller-bank-account"))
            bad = set_field(p.seller_bank_account, sizeof p.seller_bank_account, v);
        else if (!strcmp(name, "--taxpayer-kind"))
            bad = set_field(p.taxpayer_kind, sizeof p.taxpayer_kind,
                            !strcmp(v, "general") ? "一般纳税人" : !strcmp(v, "small") ? "小规模纳税人" : v);
        else if (!strcmp(name, "--machine-number"))
            bad = set_field(p.machine_number, sizeof p.machine_number, v);
        else if (!strcmp(name, "--pin"))
            bad = set_field(p.pin, sizeof p.pin, v);
        else if (!strcmp(name, "--roll")) {
            if (!rolls_given)
                p.nrolls = 0;
            rolls_given = true;
            if (p.nrolls == DEVICE_MAX_ROLLS) {
                snprintf(why, sizeof why, "--roll: at most %d rolls", DEVICE_MAX_ROLLS);
                return fail(why);
            }
            if (sim_parse_roll(v, &p.rolls[p.nrolls], why, sizeof why)) {
                fprintf(stderr, "fapiaofs-sim: --roll: %s\n", why);
                return 1;
            }
            p.nrolls++;
        } else if (!strcmp(name, "--limit")) {
            if (parse_amount_opt(name, v, &p.limit_fen))
                return 1;
        } else if (!strcmp(name, "--offline-amount")) {
            if (parse_amount_opt(name, v, &p.offline_amount_fen))
                return 1;
        } else if (!strcmp(name, "--offline-hours")) {
            char *end;
            errno = 0;
            p.offline_hours = strtoll(v, &end, 10);
            if (!*v || *end || errno || p.offline_hours < 0) {
                fprintf(stderr, "fapiaofs-sim: --offline-hours: \"%s\" is not a number of hours\n", v);
                return 1;
            }
        } else if (!strcmp(name, "--cleared-through"))
            bad = set_field(p.cleared_through, sizeof p.cleared_through, v);
        else if (!strcmp(name, "--lock-date")) {
            if (clock_parse_iso(v, &p.lock_date)) {
                fprintf(stderr, "fapiaofs-sim: --lock-date: \"%s\" is not an ISO 8601 time such as "
                        "2024-12-15T23:59:59+08:00\n", v);
                return 1;
            }
        } else if (!strcmp(name, "--platform-key"))
            bad = set_field(p.platform_key, sizeof p.platform_key, v);
        else
            return fail_usage("create: unknown option %s", name);
        if (bad) {
            fprintf(stderr, "fapiaofs-sim: %s: \"%s\" is too long\n", name, v);
            return 1;
        }
    }
    if (sim_create(state, &p, why, sizeof why))
        return fail(why);
    return 0;
}

int main(int argc, char **argv)
{
    struct device_roll roll;
    const char *cmd, *state;
    char why[512];

    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
                      !strcmp(argv[1], "help"))) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 3)
        return fail_usage("%s", argc < 2 ? "a command and a state file are needed" :
                                           "a state file is needed");
    cmd = argv[1];
    state = argv[2];
    if (!strcmp(cmd, "create"))
        return cmd_create(state, argc - 3, argv + 3);
    if (!strcmp(cmd, "show")) {
        if (argc != 3)
            return fail_usage("show: unexpected argument \"%s\"", argv[3]);
        if (sim_admin_show(state, stdout, why, sizeof why))
            return fail(why);
        return fflush(stdout) ? 1 : 0;
    }
    if (!strcmp(cmd, "reset-pin")) {
        if (argc != 3)
            return fail_usage("reset-pin: unexpected argument \"%s\"", argv[3]);
        return sim_admin_reset_pin(state, why, sizeof why) ? fail(why) : 0;
    }
    if (!strcmp(cmd, "set")) {
        if (argc < 4)
            return fail_usage("%s", "set: KEY=VALUE expected");
        return sim_admin_set(state, argv + 3, argc - 3, why, sizeof why) ? fail(why) : 0;
    }
    if (!strcmp(cmd, "add-roll")) {
        if (argc != 4)
            return fail_usage("%s", "add-roll: one TYPE:CODE:FIRST:LAST expected");
        if (sim_parse_roll(argv[3], &roll, why, sizeof why)) {
            fprintf(stderr, "fapiaofs-sim: add-roll %s: %s\n", state, why);
            return 1;
        }
        return sim_admin_add_roll(state, &roll, why, sizeof why) ? fail(why) : 0;
    }
    return fail_usage("unknown command \"%s\"", cmd);
}
