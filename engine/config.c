/*
 * config.c — INI configuration (inih) over the embedded default.
 *
 * Relative paths in the file are taken relative to [store] state_dir, so a
 * configuration can be moved with its state (and a relative state_dir to
 * the directory the daemon started in).  Unknown sections or keys are
 * errors: a typo must not silently fall back to a default.
 */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "engine/config.h"
#include "engine/text.h"

struct config_parse {
    struct config *c;
    char why[256];
    char secret_file[PATH_MAX];
};

static int copy_value(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap)
        return -1;
    memcpy(dst, v, n + 1);
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
        *out = true;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

static int parse_hex16(const char *v, unsigned *out)
{
    char *end;
    unsigned long x = strtoul(v, &end, 16);
    if (!*v || *end || x > 0xffff)
        return -1;
    *out = (unsigned)x;
    return 0;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
    struct config_parse *p = user;
    struct config *c = p->c;
    int rc = -2;   /* -2: unknown key */

#define STR(sec, key, field) \
    if (!strcmp(section, sec) && !strcmp(name, key)) rc = copy_value(c->field, sizeof c->field, value)

    STR("store", "path", store_path);
    STR("store", "state_dir", state_dir);
    STR("device", "kind", device_kind);
    STR("device", "state", device_state);
    STR("device", "pin_file", pin_file);
    STR("platform", "url", platform_url);
    STR("platform", "app_key", app_key);
    STR("platform", "ca_file", ca_file);
    STR("fs", "group", fs_group);
    STR("clock", "file", clock_file);
    STR("invoice", "drawer", drawer);
#undef STR
    if (!strcmp(section, "platform") && !strcmp(name, "app_secret_file"))
        rc = copy_value(p->secret_file, sizeof p->secret_file, value);
    if (!strcmp(section, "device") && !strcmp(name, "vid"))
        rc = parse_hex16(value, &c->vid);
    if (!strcmp(section, "device") && !strcmp(name, "pid"))
        rc = parse_hex16(value, &c->pid);
    if (!strcmp(section, "platform") && !strcmp(name, "timeout_ms")) {
        char *end;
        long v = strtol(value, &end, 10);
        rc = (*value && !*end && v > 0 && v <= 600000) ? (c->timeout_ms = v, 0) : -1;
    }
    if (!strcmp(section, "invoice") && !strcmp(name, "line_tolerance")) {
        /* SPEC §3.3: a given tax may differ by 0.01 per line, configurable up to 0.06 */
        rc = strlen(value) == 4 && !strncmp(value, "0.0", 3) && value[3] >= '1' &&
             value[3] <= '6' ? copy_value(c->line_tolerance, sizeof c->line_tolerance, value) : -1;
    }
    if (!strcmp(section, "fs") && !strcmp(name, "allow_other"))
        rc = parse_bool(value, &c->allow_other);

    /* inih goes on after an error and reports the first one's line: keep
     * the first one's words too */
    if (rc == -2 && !p->why[0])
        snprintf(p->why, sizeof p->why, "unknown key [%s] %s", section, name);
    else if (rc < 0 && !p->why[0])
        snprintf(p->why, sizeof p->why, "[%s] %s: invalid value \"%s\"", section, name, value);
    return rc == 0;
}

/* Make `path` absolute against dir, in place. */
static int resolve_against(const char *dir, char *path, size_t cap)
{
    char tmp[PATH_MAX];
    if (!path[0] || path[0] == '/')
        return 0;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/%s", dir, path) >= sizeof tmp || strlen(tmp) >= cap)
        return -1;
    strcpy(path, tmp);
    return 0;
}

/* Make `path` absolute against the state directory, in place. */
static int resolve_path(const struct config *c, char *path, size_t cap)
{
    return resolve_against(c->state_dir, path, cap);
}

int config_read_secret(const char *file, const char *what, char *out, size_t cap, char *why,
                       size_t whylen)
{
    struct stat sb;
    FILE *f = fopen(file, "r");
    size_t n;
    int c;

    if (!f || fstat(fileno(f), &sb)) {
        snprintf(why, whylen, "%s %s: %s", what, file, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(why, whylen, "%s %s: not a regular file", what, file);
        fclose(f);
        return -1;
    }
    if (sb.st_mode & 077) {
        snprintf(why, whylen, "%s %s must be mode 0600 (it is %03o)", what, file,
                 (unsigned)(sb.st_mode & 0777));
        fclose(f);
        return -1;
    }
    n = fread(out, 1, cap - 1, f);
    /* a longer secret cut here would fail later in obscure ways (every
     * request answered 401, every PIN refused): say so now */
    while (n == cap - 1 && (c = fgetc(f)) != EOF)
        if (c != '\n' && c != '\r' && c != ' ') {
            snprintf(why, whylen, "%s %s: longer than %zu bytes", what, file, cap - 1);
            fclose(f);
            return -1;
        }
    if (ferror(f)) {
        snprintf(why, whylen, "%s %s: cannot read it", what, file);
        fclose(f);
        return -1;
    }
    fclose(f);
    out[n] = 0;
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = 0;
    if (!n) {   /* an empty PIN would cost a device try at every mount */
        snprintf(why, whylen, "%s %s is empty", what, file);
        return -1;
    }
    return 0;
}

/* SPEC §6: TLS unless the URL is loopback http:// (the simulator, a local
 * proxy).  Plain http to another host would carry the invoices and the
 * signed requests in clear text. */
static bool platform_url_allowed(const char *url)
{
    char host[64];
    size_t n;
    unsigned a, b, c, d;
    char end;

    if (!url[0] || !strncasecmp(url, "https://", 8))
        return true;
    if (strncasecmp(url, "http://", 7))
        return false;   /* curl would refuse it anyway: only http and https */
    url += 7;
    if (memchr(url, '@', strcspn(url, "/?#")))
        return false;   /* "http://localhost:x@example.com/": a user name, and another host */
    n = url[0] == '[' ? strcspn(url, "]") + 1 : strcspn(url, ":/?#");
    if (n >= sizeof host)
        return false;
    memcpy(host, url, n);
    host[n] = 0;
    if (!strcasecmp(host, "localhost") || !strcmp(host, "[::1]"))
        return true;
    /* 127.0.0.0/8, written as four numbers: "127.0.0.1.example.com" is a name */
    return sscanf(host, "%3u.%3u.%3u.%3u%c", &a, &b, &c, &d, &end) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256 && strspn(host, "0123456789.") == n;
}

int config_load(const char *path, struct config *c, char *why, size_t whylen)
{
    struct config_parse p = { .c = c };
    char cwd[PATH_MAX];
    int rc;

    memset(c, 0, sizeof *c);
    if (!getcwd(cwd, sizeof cwd)) {
        snprintf(why, whylen, "cannot read the current directory: %s", strerror(errno));
        return -1;
    }
    if ((size_t)snprintf(c->state_dir, sizeof c->state_dir, "%s/%s", cwd,
                         CONFIG_DEFAULT_STATE_DIR) >= sizeof c->state_dir) {
        snprintf(why, whylen, "the current directory's path is too long");
        return -1;
    }
    strcpy(c->store_path, "fapiaofs.db");
    strcpy(c->device_kind, "sim");
    strcpy(c->device_state, "device.json");
    strcpy(c->platform_url, CONFIG_DEFAULT_PLATFORM_URL);
    strcpy(c->app_key, CONFIG_DEFAULT_APP_KEY);
    strcpy(c->app_secret, CONFIG_DEFAULT_APP_SECRET);
    c->timeout_ms = 5000;
    strcpy(c->line_tolerance, "0.01");

    if (path) {
        rc = ini_parse(path, config_handler, &p);
        if (rc < 0) {
            snprintf(why, whylen, "%s: cannot open: %s", path, strerror(errno));
            return -1;
        }
        if (rc > 0) {
            snprintf(why, whylen, "%s:%d: %s", path, rc, p.why[0] ? p.why : "syntax error");
            return -1;
        }
        if (strcmp(c->device_kind, "sim") && strcmp(c->device_kind, "usb")) {
            snprintf(why, whylen, "%s: [device] kind must be sim or usb, not \"%s\"", path,
                     c->device_kind);
            return -1;
        }
        if (!platform_url_allowed(c->platform_url)) {
            snprintf(why, whylen, "%s: [platform] url %s: plain http is allowed only to this machine "
                     "(127.0.0.1, localhost, [::1]); use https://", path, c->platform_url);
            return -1;
        }
        if (c->drawer[0] && (text_gbk_len(c->drawer) < 0 || text_gbk_len(c->drawer) > 16)) {
            snprintf(why, whylen, "%s: [invoice] drawer \"%s\": at most 16 bytes in GBK (8 Chinese "
                     "characters), every character with a GBK form", path, c->drawer);
            return -1;
        }
    }
    /* The daemon leaves the current directory when it goes to the
     * background (fuse_daemonize): a relative state_dir would name another
     * directory then than in the checks made before. */
    if (c->state_dir[0] != '/' && resolve_against(cwd, c->state_dir, sizeof c->state_dir)) {
        snprintf(why, whylen, "a configured path is too long");
        return -1;
    }
    if (resolve_path(c, c->store_path, sizeof c->store_path) ||
        resolve_path(c, c->ca_file, sizeof c->ca_file) ||
        resolve_path(c, c->device_state, sizeof c->device_state) ||
        resolve_path(c, c->pin_file, sizeof c->pin_file) ||
        resolve_path(c, p.secret_file, sizeof p.secret_file) ||
        resolve_path(c, c->clock_file, sizeof c->clock_file)) {
        snprintf(why, whylen, "a configured path is too long");
        return -1;
    }
    if (p.secret_file[0] &&
        config_read_secret(p.secret_file, "[platform] app_secret_file", c->app_secret,
                           sizeof c->app_secret, why, whylen))
        return -1;
    return 0;
}
