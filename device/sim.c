/*
 * sim.c — the simulated tax-control device; see sim.h.
 *
 * It behaves as a real device would towards the engine: it refuses with the
 * same reasons (PIN, lock date, per-invoice limit, empty roll), allocates
 * numbers strictly in order, and signs with its own SM2 key.  Check code
 * and cipher area are derived from an SM3 digest of the invoice's identity,
 * which is what makes them look like, and be as unforgeable as, the real
 * ones for our purposes.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "device/sim.h"
#include "engine/clock.h"
#include "engine/decimal.h"

#define SIM_STATE_FORMAT 1
#define SIM_PIN_TRIES 5

struct sim {
    struct device base;
    pthread_mutex_t lock;
    char path[PATH_MAX];
    char journal_path[PATH_MAX + 16];
    int journal_fd;

    struct device_info info;
    char *key_pem;
    EVP_PKEY *key;
    char pin[32];
    int pin_retries_left;
    bool pin_ok;
    struct device_roll rolls[DEVICE_MAX_ROLLS];
    int nrolls;
    int64_t limit_fen, offline_hours, offline_amount_fen;
    char cleared_through[8];
    int64_t lock_date;
    int64_t signed_count;

    /* the number reserved by issue_begin, consumed by issue_sign */
    int reserved_roll;            /* -1: none */
    int64_t reserved_at;
};

/* ---- state file -------------------------------------------------------- */

static int fsync_dir_of(const char *path)
{
    char copy[PATH_MAX];
    int fd, rc;
    snprintf(copy, sizeof copy, "%s", path);
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* Write `text` to `path` so that a crash leaves the old or the new file. */
static int write_file_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    size_t len = strlen(text), off = 0;
    int fd, rc = -1;

    snprintf(tmp, sizeof tmp, "%s.new", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        off += (size_t)n;
    }
    if (fsync(fd))
        goto out;
    rc = 0;
out:
    if (close(fd))
        rc = -1;
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc == 0)
        rc = fsync_dir_of(path);
    else
        unlink(tmp);
    return rc;
}

static char *fen_text(int64_t fen, char buf[DEC_FMT_MAX])
{
    return dec_format(dec_from_fen(fen), 2, buf);
}

static enum fa_err sim_save(struct sim *s)
{
    json_t *o = json_object(), *rolls = json_array(), *seller = json_object(), *lim = json_object();
    char a[DEC_FMT_MAX], b[DEC_FMT_MAX], lock[32];
    char *text;
    int i, rc;

    for (i = 0; i < s->nrolls; i++)
        json_array_append_new(rolls, json_pack("{s:s,s:s,s:I,s:I,s:I}", "type", s->rolls[i].type,
                                               "code", s->rolls[i].code,
                                               "first", (json_int_t)s->rolls[i].first,
                                               "last", (json_int_t)s->rolls[i].last,
                                               "next", (json_int_t)s->rolls[i].next));
    json_object_set_new(seller, "tax_id", json_string(s->info.seller_tax_id));
    json_object_set_new(seller, "name", json_string(s->info.seller_name));
    json_object_set_new(seller, "address_phone", json_string(s->info.seller_address_phone));
    json_object_set_new(seller, "bank_account", json_string(s->info.seller_bank_account));
    json_object_set_new(lim, "per_invoice", json_string(fen_text(s->limit_fen, a)));
    json_object_set_new(lim, "offline_hours", json_integer(s->offline_hours));
    json_object_set_new(lim, "offline_amount", json_string(fen_text(s->offline_amount_fen, b)));
    json_object_set_new(o, "format", json_integer(SIM_STATE_FORMAT));
    json_object_set_new(o, "model", json_string(s->info.model));
    json_object_set_new(o, "machine_number", json_string(s->info.machine_number));
    json_object_set_new(o, "taxpayer_kind", json_string(s->info.taxpayer_kind));
    json_object_set_new(o, "seller", seller);
    json_object_set_new(o, "private_key", json_string(s->key_pem));
    json_object_set_new(o, "pin", json_string(s->pin));
    json_object_set_new(o, "pin_retries_left", json_integer(s->pin_retries_left));
    json_object_set_new(o, "rolls", rolls);
    json_object_set_new(o, "limits", lim);
    json_object_set_new(o, "cleared_through", json_string(s->cleared_through));
    json_object_set_new(o, "lock_date", json_string(clock_iso_cst(s->lock_date, lock)));
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return FA_NOMEM;
    rc = write_file_atomic(s->path, text);
    free(text);
    return rc ? FA_DEV_IO : FA_OK;
}

/* 15th of the second month after `period`, 23:59:59 +08:00. */
static int64_t lock_date_after(const char *period)
{
    int y = 0, m = 0;
    char iso[40], later[8];
    int64_t t = 0;
    if (sscanf(period, "%4d-%2d", &y, &m) != 2)
        return 0;
    snprintf(iso, sizeof iso, "%s-15T23:59:59+08:00", clock_month_period(y * 12 + m - 1 + 2, later));
    clock_parse_iso(iso, &t);
    return t;
}

static int copy_str(char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) >= cap)
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int parse_fen(json_t *v, int64_t *fen)
{
    dec_t d;
    if (!json_is_string(v) || dec_parse(json_string_value(v), 2, &d) != DEC_OK)
        return -1;
    *fen = dec_to_fen(d);
    return 0;
}

static int sim_load(struct sim *s, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *o = json_load_file(s->path, 0, &jerr), *seller, *lim, *rolls, *r;
    size_t i;
    int rc = -1;

    if (!o) {
        snprintf(why, whylen, "device state %s: %s (line %d)", s->path, jerr.text, jerr.line);
        return -1;
    }
    seller = json_object_get(o, "seller");
    lim = json_object_get(o, "limits");
    rolls = json_object_get(o, "rolls");
    if (json_integer_value(json_object_get(o, "format")) != SIM_STATE_FORMAT ||
        copy_str(s->info.model, sizeof s->info.model, json_object_get(o, "model")) ||
        copy_str(s->info.machine_number, sizeof s->info.machine_number,
                 json_object_get(o, "machine_number")) ||
        copy_str(s->info.taxpayer_kind, sizeof s->info.taxpayer_kind,
                 json_object_get(o, "taxpayer_kind")) ||
        copy_str(s->info.seller_tax_id, sizeof s->info.seller_tax_id,
                 json_object_get(seller, "tax_id")) ||
        copy_str(s->info.seller_name, sizeof s->info.seller_name, json_object_get(seller, "name")) ||
        copy_str(s->info.seller_address_phone, sizeof s->info.seller_address_phone,
                 json_object_get(seller, "address_phone")) ||
        copy_str(s->info.seller_bank_account, sizeof s->info.seller_bank_account,
                 json_object_get(seller, "bank_account")) ||
        copy_str(s->pin, sizeof s->pin, json_object_get(o, "pin")) ||
        copy_str(s->cleared_through, sizeof s->cleared_through,
                 json_object_get(o, "cleared_through")) ||
        parse_fen(json_object_get(lim, "per_invoice"), &s->limit_fen) ||
        parse_fen(json_object_get(lim, "offline_amount"), &s->offline_amount_fen) ||
        !json_is_array(rolls) || json_array_size(rolls) > DEVICE_MAX_ROLLS ||
        !json_is_string(json_object_get(o, "private_key")) ||
        clock_parse_iso(json_string_value(json_object_get(o, "lock_date")) ?
                        json_string_value(json_object_get(o, "lock_date")) : "", &s->lock_date)) {
        snprintf(why, whylen, "device state %s: missing or invalid fields", s->path);
        goto out;
    }
    s->offline_hours = json_integer_value(json_object_get(lim, "offline_hours"));
    s->pin_retries_left = (int)json_integer_value(json_object_get(o, "pin_retries_left"));
    json_array_foreach(rolls, i, r) {
        struct device_roll *roll = &s->rolls[i];
        if (copy_str(roll->type, sizeof roll->type, json_object_get(r, "type")) ||
            copy_str(roll->code, sizeof roll->code, json_object_get(r, "code"))) {
            snprintf(why, whylen, "device state %s: roll %zu is invalid", s->path, i);
            goto out;
        }
        roll->first = (uint32_t)json_integer_value(json_object_get(r, "first"));
        roll->last = (uint32_t)json_integer_value(json_object_get(r, "last"));
        roll->next = (uint32_t)json_integer_value(json_object_get(r, "next"));
    }
    s->nrolls = (int)json_array_size(rolls);
    s->key_pem = strdup(json_string_value(json_object_get(o, "private_key")));
    s->key = s->key_pem ? crypto_key_from_pem(s->key_pem, 1) : NULL;
    if (!s->key || crypto_public_b64(s->key, s->info.public_key, sizeof s->info.public_key)) {
        snprintf(why, whylen, "device state %s: unreadable SM2 key", s->path);
        goto out;
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* The journal is the truth about consumed numbers: a crash after the
 * journal append but before the state write must not hand a number out twice. */
static int sim_replay_journal(struct sim *s)
{
    FILE *f = fopen(s->journal_path, "r");
    char line[512], code[16], number[16];
    int i;

    if (!f)
        return errno == ENOENT ? 0 : -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%15s %15s", code, number) != 2)
            continue;
        s->signed_count++;
        for (i = 0; i < s->nrolls; i++) {
            uint32_t n = (uint32_t)strtoul(number, NULL, 10);
            if (!strcmp(s->rolls[i].code, code) && n >= s->rolls[i].next)
                s->rolls[i].next = n + 1;
        }
    }
    fclose(f);
    return 0;
}

enum fa_err sim_create_demo(const char *path, char *why, size_t whylen)
{
    struct sim s = { .reserved_roll = -1 };
    int64_t now = clock_now();
    enum fa_err err;

    if (access(path, F_OK) == 0)
        return FA_OK;
    snprintf(s.path, sizeof s.path, "%s", path);
    strcpy(s.info.model, "fapiaofs simulated tax-control device");
    strcpy(s.info.machine_number, "499099000001");
    strcpy(s.info.taxpayer_kind, "一般纳税人");
    strcpy(s.info.seller_tax_id, "9131011259474644XJ");
    strcpy(s.info.seller_name, "上海发票示范科技有限公司");
    strcpy(s.info.seller_address_phone, "上海市徐汇区示范路88号 021-64000000");
    strcpy(s.info.seller_bank_account, "中国银行上海徐汇支行 4370000000001");
    strcpy(s.pin, SIM_DEMO_PIN);
    s.pin_retries_left = SIM_PIN_TRIES;
    s.rolls[0] = (struct device_roll){ "026", "031001900111", 1, 100000, 1 };
    s.rolls[1] = (struct device_roll){ "028", "031001900211", 1, 100000, 1 };
    s.nrolls = 2;
    s.limit_fen = 1000000000;           /* 10,000,000.00 */
    s.offline_hours = 72;
    s.offline_amount_fen = 1000000000;
    /* cleared through the month before creation, so not locked today */
    clock_month_period(clock_month_index(now) - 1, s.cleared_through);
    s.lock_date = lock_date_after(s.cleared_through);
    s.key_pem = crypto_sm2_generate_pem();
    if (!s.key_pem) {
        snprintf(why, whylen, "cannot generate an SM2 key (OpenSSL without SM2?)");
        return FA_DEV_IO;
    }
    err = sim_save(&s);
    if (err)
        snprintf(why, whylen, "cannot write device state %s: %s", path, strerror(errno));
    free(s.key_pem);
    return err;
}

/* ---- commands ---------------------------------------------------------- */

static enum fa_err sim_get_info(struct device *d, struct device_info *out)
{
    struct sim *s = (struct sim *)d;
    pthread_mutex_lock(&s->lock);
    *out = s->info;
    pthread_mutex_unlock(&s->lock);
    return FA_OK;
}

static enum fa_err sim_get_status(struct device *d, struct device_status *out)
{
    struct sim *s = (struct sim *)d;
    pthread_mutex_lock(&s->lock);
    memset(out, 0, sizeof *out);
    memcpy(out->cleared_through, s->cleared_through, sizeof out->cleared_through);
    out->lock_date = s->lock_date;
    out->locked = clock_now() > s->lock_date;
    out->limit_fen = s->limit_fen;
    out->offline_hours = s->offline_hours;
    out->offline_amount_fen = s->offline_amount_fen;
    out->pin_retries_left = s->pin_retries_left;
    out->signed_count = s->signed_count;
    pthread_mutex_unlock(&s->lock);
    return FA_OK;
}

static enum fa_err sim_list_rolls(struct device *d, struct device_roll *out, int max, int *n)
{
    struct sim *s = (struct sim *)d;
    int i;
    pthread_mutex_lock(&s->lock);
    for (i = 0; i < s->nrolls && i < max; i++)
        out[i] = s->rolls[i];
    *n = i;
    pthread_mutex_unlock(&s->lock);
    return FA_OK;
}

static enum fa_err sim_verify_pin(struct device *d, const char *pin)
{
    struct sim *s = (struct sim *)d;
    enum fa_err err = FA_OK;

    pthread_mutex_lock(&s->lock);
    if (s->pin_retries_left <= 0) {
        err = FA_DEV_PIN;
    } else if (strcmp(pin, s->pin)) {
        s->pin_retries_left--;
        s->pin_ok = false;
        err = sim_save(s);
        if (err == FA_OK)
            err = FA_DEV_PIN;
    } else {
        s->pin_ok = true;
        if (s->pin_retries_left != SIM_PIN_TRIES) {
            s->pin_retries_left = SIM_PIN_TRIES;
            err = sim_save(s);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return err;
}

/* Deterministic digits from an SM3 digest of the invoice identity. */
static void derive_digits(const struct sim *s, const char *code, uint32_t number, int64_t total_fen,
                          int64_t at, const char *salt, const char *alphabet, char *out, int n)
{
    unsigned char digest[32];
    char seed[256];
    size_t alen = strlen(alphabet);
    int i, block = -1;

    for (i = 0; i < n; i++) {
        if (i / 32 != block) {
            block = i / 32;
            snprintf(seed, sizeof seed, "%s|%s|%s|%08u|%lld|%lld|%d", salt, s->info.machine_number,
                     code, number, (long long)total_fen, (long long)at, block);
            crypto_sm3(seed, strlen(seed), digest);
        }
        out[i] = alphabet[digest[i % 32] % alen];
    }
    out[n] = 0;
}

static enum fa_err sim_issue_begin(struct device *d, const struct device_issue_req *req,
                                   struct device_issue_fields *out)
{
    struct sim *s = (struct sim *)d;
    enum fa_err err = FA_OK;
    int i, roll = -1;

    pthread_mutex_lock(&s->lock);
    for (i = 0; i < s->nrolls; i++)
        if (!strcmp(s->rolls[i].type, req->type)) {
            if (roll < 0)
                roll = i;
            if (s->rolls[i].next <= s->rolls[i].last) {
                roll = i;
                break;
            }
        }
    if (!s->pin_ok)
        err = FA_DEV_PIN;
    else if (req->issued_at > s->lock_date)
        err = FA_DEV_LOCKED;
    else if (req->total_fen > s->limit_fen || -req->total_fen > s->limit_fen)
        err = FA_DEV_LIMIT;
    else if (roll < 0 || s->rolls[roll].next > s->rolls[roll].last)
        err = FA_DEV_ROLL_EMPTY;
    if (err == FA_OK) {
        const struct device_roll *r = &s->rolls[roll];
        memset(out, 0, sizeof *out);
        snprintf(out->code, sizeof out->code, "%s", r->code);
        snprintf(out->number, sizeof out->number, "%08u", r->next);
        snprintf(out->machine_number, sizeof out->machine_number, "%s", s->info.machine_number);
        derive_digits(s, r->code, r->next, req->total_fen, req->issued_at, "check", "0123456789",
                      out->check_code, 20);
        derive_digits(s, r->code, r->next, req->total_fen, req->issued_at, "cipher",
                      "0123456789+-*/<>", out->cipher, 108);
        s->reserved_roll = roll;
        s->reserved_at = req->issued_at;
    }
    pthread_mutex_unlock(&s->lock);
    return err;
}

static enum fa_err sim_issue_sign(struct device *d, const char *code, const char *number,
                                  const void *bytes, size_t len, char sig_b64[CRYPTO_SIG_B64_MAX])
{
    struct sim *s = (struct sim *)d;
    unsigned char digest[32];
    char hex[65], line[512];
    struct device_roll *r;
    enum fa_err err = FA_OK;
    int n;

    pthread_mutex_lock(&s->lock);
    r = s->reserved_roll >= 0 ? &s->rolls[s->reserved_roll] : NULL;
    if (!r || strcmp(r->code, code) || strtoul(number, NULL, 10) != r->next) {
        err = FA_INVAL;   /* not the reserved number: an engine bug */
        goto out;
    }
    if (crypto_sm2_sign_b64(s->key, bytes, len, sig_b64, CRYPTO_SIG_B64_MAX)) {
        err = FA_DEV_IO;
        goto out;
    }
    crypto_sm3(bytes, len, digest);
    crypto_hex(digest, 32, hex);
    n = snprintf(line, sizeof line, "%s %s %lld %s %s\n", code, number, (long long)s->reserved_at,
                 hex, sig_b64);
    if (n <= 0 || (size_t)n >= sizeof line || write(s->journal_fd, line, (size_t)n) != n ||
        fdatasync(s->journal_fd)) {
        err = FA_DEV_IO;
        goto out;
    }
    r->next++;
    s->signed_count++;
    s->reserved_roll = -1;
    err = sim_save(s);
out:
    pthread_mutex_unlock(&s->lock);
    return err;
}

static void sim_close(struct device *d)
{
    struct sim *s = (struct sim *)d;
    if (!s)
        return;
    if (s->journal_fd >= 0)
        close(s->journal_fd);
    EVP_PKEY_free(s->key);
    free(s->key_pem);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const struct device_ops sim_ops = {
    .get_info = sim_get_info,
    .get_status = sim_get_status,
    .list_rolls = sim_list_rolls,
    .verify_pin = sim_verify_pin,
    .issue_begin = sim_issue_begin,
    .issue_sign = sim_issue_sign,
    .close = sim_close,
};

enum fa_err sim_open(const char *path, struct device **out, char *why, size_t whylen)
{
    struct sim *s = calloc(1, sizeof *s);

    if (!s)
        return FA_NOMEM;
    s->base.ops = &sim_ops;
    s->journal_fd = -1;
    s->reserved_roll = -1;
    pthread_mutex_init(&s->lock, NULL);
    snprintf(s->path, sizeof s->path, "%s", path);
    snprintf(s->journal_path, sizeof s->journal_path, "%s.journal", path);
    strcpy(s->info.kind, "sim");
    if (sim_load(s, why, whylen))
        goto fail;
    if (sim_replay_journal(s)) {
        snprintf(why, whylen, "device journal %s: %s", s->journal_path, strerror(errno));
        goto fail;
    }
    s->journal_fd = open(s->journal_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (s->journal_fd < 0) {
        snprintf(why, whylen, "device journal %s: %s", s->journal_path, strerror(errno));
        goto fail;
    }
    *out = &s->base;
    return FA_OK;
fail:
    sim_close(&s->base);
    return FA_DEV_IO;
}
