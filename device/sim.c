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
    uint64_t signed_count;

    /* the number reserved by issue_begin, consumed by issue_sign */
    int reserved_roll;            /* -1: none */
    struct device_issue_req reserved;

    int64_t clock_offset;         /* set_clock: device time = clock_now() + offset */
    /* the journal: byte offset of each entry (seq n at offsets[n-1]) */
    int journal_rd;
    uint64_t *offsets;
    size_t cap_offsets;
    /* per period sums for the period summary, rebuilt from the journal */
    struct device_summary *sums;
    size_t nsums;
    /* the state file as last written or read: an admin's change is reloaded */
    ino_t state_ino;
    struct timespec state_mtime;
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

/* Add one signed invoice to the period sums; lock held or single-threaded. */
static int add_to_sums(struct sim *s, const char *type, int64_t issued_at, int64_t total_fen,
                       const struct device_rate_sum *rates, int nrates)
{
    struct device_summary *sum = NULL;
    char period[8];
    size_t i;
    int r, l;

    clock_period(issued_at, period);
    for (i = 0; i < s->nsums && !sum; i++)
        if (!strcmp(s->sums[i].period, period))
            sum = &s->sums[i];
    if (!sum) {
        struct device_summary *v = realloc(s->sums, (s->nsums + 1) * sizeof *v);
        if (!v)
            return -1;
        s->sums = v;
        sum = &s->sums[s->nsums++];
        memset(sum, 0, sizeof *sum);
        memcpy(sum->period, period, sizeof sum->period);
        snprintf(sum->machine_number, sizeof sum->machine_number, "%s", s->info.machine_number);
    }
    for (r = 0; r < nrates; r++) {
        struct device_summary_line *line = NULL;
        bool red = total_fen < 0;
        for (l = 0; l < sum->nlines && !line; l++)
            if (!strcmp(sum->lines[l].type, type) && sum->lines[l].red == red &&
                sum->lines[l].rate_pm == rates[r].rate_pm)
                line = &sum->lines[l];
        if (!line) {
            if (sum->nlines == DEVICE_SUMMARY_LINES)
                return -1;
            line = &sum->lines[sum->nlines++];
            snprintf(line->type, sizeof line->type, "%s", type);
            line->red = red;
            line->rate_pm = rates[r].rate_pm;
        }
        if (r == 0)
            line->count++;   /* an invoice counts once, under its first rate */
        line->amount_fen += rates[r].amount_fen;
        line->tax_fen += rates[r].tax_fen;
    }
    return 0;
}

/* "pm:amount:tax;pm:amount:tax" or "-" */
static int parse_rates(const char *text, struct device_rate_sum *rates, int *n)
{
    long long pm, amount, tax;
    int used;

    *n = 0;
    if (!strcmp(text, "-"))
        return 0;
    while (*text && *n < DEVICE_MAX_RATES &&
           sscanf(text, "%lld:%lld:%lld%n", &pm, &amount, &tax, &used) == 3) {
        rates[*n] = (struct device_rate_sum){ (int)pm, amount, tax };
        (*n)++;
        text += used;
        if (*text == ';')
            text++;
    }
    return *text ? -1 : 0;
}

static int parse_journal_line(const char *line, struct device_journal_entry *e,
                              struct device_rate_sum *rates, int *nrates)
{
    char rtext[640];
    unsigned long long seq;
    long long at, total;

    memset(e, 0, sizeof *e);
    if (sscanf(line, "%llu %15s %15s %3s %lld %lld %64s %111s %639s", &seq, e->code, e->number,
               e->type, &at, &total, e->sm3_hex, e->signature, rtext) != 9)
        return -1;
    e->seq = seq;
    e->issued_at = at;
    e->total_fen = total;
    return parse_rates(rtext, rates, nrates);
}

static int grow_offsets(struct sim *s)
{
    if (s->signed_count == s->cap_offsets) {
        size_t cap = s->cap_offsets ? s->cap_offsets * 2 : 1024;
        uint64_t *v = realloc(s->offsets, cap * sizeof *v);
        if (!v)
            return -1;
        s->offsets = v;
        s->cap_offsets = cap;
    }
    return 0;
}

/* The journal is the truth about consumed numbers: a crash after the
 * journal append but before the state write must not hand a number out
 * twice.  Reading it also rebuilds the offsets index and the period sums. */
static int sim_replay_journal(struct sim *s)
{
    FILE *f = fopen(s->journal_path, "r");
    char line[1024];
    long pos = 0;
    int i;

    if (!f)
        return errno == ENOENT ? 0 : -1;
    while (fgets(line, sizeof line, f)) {
        struct device_journal_entry e;
        struct device_rate_sum rates[DEVICE_MAX_RATES];
        int nrates;
        long next = ftell(f);
        if (parse_journal_line(line, &e, rates, &nrates) || e.seq != s->signed_count + 1) {
            pos = next;   /* a torn last line of a crash: ignored, overwritten by nothing */
            continue;
        }
        if (grow_offsets(s)) {
            fclose(f);
            return -1;
        }
        s->offsets[s->signed_count++] = (uint64_t)pos;
        for (i = 0; i < s->nrolls; i++) {
            uint32_t n = (uint32_t)strtoul(e.number, NULL, 10);
            if (!strcmp(s->rolls[i].code, e.code) && n >= s->rolls[i].next)
                s->rolls[i].next = n + 1;
        }
        add_to_sums(s, e.type, e.issued_at, e.total_fen, rates, nrates);
        pos = next;
    }
    fclose(f);
    return 0;
}

/* A crash in the middle of an append leaves a last line without its newline;
 * cut it off, or the next append would be glued to it and lost. */
static int trim_torn_tail(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC), rc = 0;
    off_t end, pos;
    char c;

    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    end = lseek(fd, 0, SEEK_END);
    for (pos = end; pos > 0; pos--) {
        if (pread(fd, &c, 1, pos - 1) != 1) {
            rc = -1;
            break;
        }
        if (c == '\n')
            break;
    }
    if (rc == 0 && pos != end)
        rc = ftruncate(fd, pos) || fsync(fd) ? -1 : 0;
    close(fd);
    return rc;
}

static int64_t sim_now(const struct sim *s)
{
    return clock_now() + s->clock_offset;
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
    out->locked = sim_now(s) > s->lock_date;
    out->limit_fen = s->limit_fen;
    out->offline_hours = s->offline_hours;
    out->offline_amount_fen = s->offline_amount_fen;
    out->pin_retries_left = s->pin_retries_left;
    out->signed_count = (int64_t)s->signed_count;
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
    else if (sim_now(s) > s->lock_date)
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
        s->reserved = *req;
        s->reserved.type = NULL;   /* the caller's string: the roll's type is kept instead */
    }
    pthread_mutex_unlock(&s->lock);
    return err;
}


static enum fa_err sim_issue_sign(struct device *d, const char *code, const char *number,
                                  const void *bytes, size_t len, char sig_b64[CRYPTO_SIG_B64_MAX])
{
    struct sim *s = (struct sim *)d;
    unsigned char digest[32];
    char hex[65], line[1024];
    struct device_roll *r;
    enum fa_err err = FA_OK;
    off_t end;
    int n, i;

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
    n = snprintf(line, sizeof line, "%llu %s %s %s %lld %lld %s %s ",
                 (unsigned long long)s->signed_count + 1, code, number, r->type,
                 (long long)s->reserved.issued_at, (long long)s->reserved.total_fen, hex, sig_b64);
    for (i = 0; i < s->reserved.nrates && n > 0 && (size_t)n < sizeof line; i++)
        n += snprintf(line + n, sizeof line - (size_t)n, "%s%d:%lld:%lld", i ? ";" : "",
                      s->reserved.rates[i].rate_pm, (long long)s->reserved.rates[i].amount_fen,
                      (long long)s->reserved.rates[i].tax_fen);
    if (n > 0 && (size_t)n < sizeof line - 2)
        n += snprintf(line + n, sizeof line - (size_t)n, "%s\n", s->reserved.nrates ? "" : "-");
    end = lseek(s->journal_fd, 0, SEEK_END);
    if (n <= 0 || (size_t)n >= sizeof line || end < 0 || write(s->journal_fd, line, (size_t)n) != n ||
        fdatasync(s->journal_fd) || grow_offsets(s)) {
        err = FA_DEV_IO;
        goto out;
    }
    s->offsets[s->signed_count++] = (uint64_t)end;
    add_to_sums(s, r->type, s->reserved.issued_at, s->reserved.total_fen, s->reserved.rates,
                s->reserved.nrates);
    r->next++;
    s->reserved_roll = -1;
    err = sim_save(s);
out:
    pthread_mutex_unlock(&s->lock);
    return err;
}

static enum fa_err sim_read_journal(struct device *d, uint64_t from,
                                    struct device_journal_entry *out, int max, int *n)
{
    struct sim *s = (struct sim *)d;
    struct device_rate_sum rates[DEVICE_MAX_RATES];
    enum fa_err err = FA_OK;
    char line[1024];
    int nrates;

    *n = 0;
    pthread_mutex_lock(&s->lock);
    for (; *n < max && from >= 1 && from <= s->signed_count; from++) {
        ssize_t got = pread(s->journal_rd, line, sizeof line - 1, (off_t)s->offsets[from - 1]);
        char *nl;
        if (got <= 0) {
            err = FA_DEV_IO;
            break;
        }
        line[got] = 0;
        nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        if (parse_journal_line(line, &out[*n], rates, &nrates) || out[*n].seq != from) {
            err = FA_DEV_IO;
            break;
        }
        (*n)++;
    }
    pthread_mutex_unlock(&s->lock);
    return err;
}

static enum fa_err sim_period_summary(struct device *d, const char *period,
                                      struct device_summary *out)
{
    struct sim *s = (struct sim *)d;
    enum fa_err err = FA_OK;
    char *text;
    size_t i;

    pthread_mutex_lock(&s->lock);
    memset(out, 0, sizeof *out);
    snprintf(out->period, sizeof out->period, "%s", period);
    snprintf(out->machine_number, sizeof out->machine_number, "%s", s->info.machine_number);
    for (i = 0; i < s->nsums; i++)
        if (!strcmp(s->sums[i].period, period))
            *out = s->sums[i];
    text = device_summary_text(out);
    if (!text || crypto_sm2_sign_b64(s->key, text, strlen(text), out->signature,
                                     sizeof out->signature))
        err = FA_DEV_IO;
    free(text);
    pthread_mutex_unlock(&s->lock);
    return err;
}

static enum fa_err sim_set_clock(struct device *d, int64_t now)
{
    struct sim *s = (struct sim *)d;
    pthread_mutex_lock(&s->lock);
    s->clock_offset = now - clock_now();
    pthread_mutex_unlock(&s->lock);
    return FA_OK;
}

/* 反写 comes with card clearing (SPEC §5.4), which is not built yet. */
static enum fa_err sim_apply_clearance(struct device *d, const char *answer, size_t len)
{
    (void)d;
    (void)answer;
    (void)len;
    return FA_INVAL;
}

static void sim_close(struct device *d)
{
    struct sim *s = (struct sim *)d;
    if (!s)
        return;
    if (s->journal_fd >= 0)
        close(s->journal_fd);
    if (s->journal_rd >= 0)
        close(s->journal_rd);
    free(s->offsets);
    free(s->sums);
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
    .read_journal = sim_read_journal,
    .period_summary = sim_period_summary,
    .apply_clearance = sim_apply_clearance,
    .set_clock = sim_set_clock,
    .close = sim_close,
};

enum fa_err sim_open(const char *path, struct device **out, char *why, size_t whylen)
{
    struct sim *s = calloc(1, sizeof *s);

    if (!s)
        return FA_NOMEM;
    s->base.ops = &sim_ops;
    s->journal_fd = s->journal_rd = -1;
    s->reserved_roll = -1;
    pthread_mutex_init(&s->lock, NULL);
    snprintf(s->path, sizeof s->path, "%s", path);
    snprintf(s->journal_path, sizeof s->journal_path, "%s.journal", path);
    strcpy(s->info.kind, "sim");
    if (sim_load(s, why, whylen))
        goto fail;
    if (trim_torn_tail(s->journal_path) || sim_replay_journal(s)) {
        snprintf(why, whylen, "device journal %s: %s", s->journal_path, strerror(errno));
        goto fail;
    }
    s->journal_fd = open(s->journal_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    s->journal_rd = open(s->journal_path, O_RDONLY | O_CLOEXEC);
    if (s->journal_fd < 0 || s->journal_rd < 0) {
        snprintf(why, whylen, "device journal %s: %s", s->journal_path, strerror(errno));
        goto fail;
    }
    *out = &s->base;
    return FA_OK;
fail:
    sim_close(&s->base);
    return FA_DEV_IO;
}
