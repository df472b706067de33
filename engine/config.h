/*
 * config.h — the configuration (INI, SPEC §2.4) and the embedded default.
 *
 * With no file, everything lives under the state directory (./var from a
 * checkout): store, simulated device, and the platform simulator that
 * `make run` starts on 127.0.0.1:8470.
 */
#ifndef FAPIAO_CONFIG_H
#define FAPIAO_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define CONFIG_DEFAULT_STATE_DIR    "var"
#define CONFIG_DEFAULT_PLATFORM_URL "http://127.0.0.1:8470"
#define CONFIG_DEFAULT_APP_KEY      "demo-app"
#define CONFIG_DEFAULT_APP_SECRET   "demo-secret"

struct config {
    char state_dir[PATH_MAX];    /* [store] state_dir: default for relative paths */
    char store_path[PATH_MAX];   /* [store] path */
    char device_kind[8];         /* [device] kind: sim | usb */
    char device_state[PATH_MAX]; /* [device] state: the simulated device's file */
    unsigned vid, pid;           /* [device] vid, pid (usb) */
    char pin_file[PATH_MAX];     /* [device] pin_file; empty: the demo PIN */
    char platform_url[512];      /* [platform] url; empty: no uploads */
    char app_key[128];           /* [platform] app_key */
    char app_secret[256];        /* read from [platform] app_secret_file */
    char ca_file[PATH_MAX];      /* [platform] ca_file */
    long timeout_ms;             /* [platform] timeout_ms */
    char fs_group[64];           /* [fs] group */
    bool allow_other;            /* [fs] allow_other */
    char clock_file[PATH_MAX];   /* [clock] file (tests only) */
    char drawer[64];             /* [invoice] drawer: default 开票人 */
    char line_tolerance[8];      /* [invoice] line_tolerance: 0.01 (default) to 0.06 */
};

/* Fill `c` with the embedded default, then apply `path` if not NULL.
 * Returns 0, or -1 with a sentence in why ("config.ini:3: unknown key ..."). */
int config_load(const char *path, struct config *c, char *why, size_t whylen);

/* Read a one-line secret (PIN, app secret) from `file` into out, without the
 * line end.  A file readable by group or others is refused: whoever reads
 * the PIN or the app secret can issue, upload or clear as this taxpayer.
 * `what` names the setting in the message ("[device] pin_file"). */
int config_read_secret(const char *file, const char *what, char *out, size_t cap, char *why,
                       size_t whylen);

#endif
