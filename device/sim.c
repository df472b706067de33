/*
 * sim.c — the simulated tax-control device; see sim.h.
 *
 * It behaves as a real device would towards the engine: it refuses with the
 * same reasons (PIN, lock date, per-invoice limit, empty roll), allocates
 * numbers strictly in order, and signs with its own SM2 key.  Check code
 * and cipher area are derived from an SM3 digest of the invoice's identity,
 * which is what makes them look like, and be as unforgeable as, the real
 * ones for our purposes.
 *
 * The trade-off of the live reload: the daemon keeps the state in memory
 * and pays one stat(2) and one flock(2) per command, so that an
 * administrator's change to the file (fapiaofs-sim) is seen at the next
 * command and never overwritten by the daemon's next write.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "device/presign.h"
#include "device/proto.h"
#include "device/sim.h"
#include "engine/clock.h"
#include "engine/decimal.h"
#include "engine/uscc.h"

#define SIM_STATE_FORMAT 1
#define SIM_NUMBER_MAX 99999999u
#define SIM_PIN_CAP 32
/* |amount| in fen that a journal line may carry: above any dec_t (engine/decimal.h, 9.2e12
 * fen), and low enough that a period's sums of a million such stay in int64_t */
#define SIM_JOURNAL_AMOUNT_MAX 10000000000000LL
#define SIM_OFFLINE_HOURS_MAX 100000
#define SIM_PRESIGN_POOL 32       /* nonces ready: a burst of 32 invoices signs at full speed */
#define GENERAL_TAXPAYER "一般纳税人"
#define SMALL_TAXPAYER "小规模纳税人"

/* The highest number the journal has signed for one roll code. */
struct sim_used {
    char code[16];
    uint32_t max;
};

struct sim {
    struct device base;
    pthread_mutex_t lock;
    char path[PATH_MAX];
    char journal_path[PATH_MAX + 16];
    char lock_path[PATH_MAX + 16];
    int journal_fd;
    int lock_fd;                  /* STATE.lock, flock'd around every command */

    struct device_info info;
    char *key_pem;
    EVP_PKEY *key;
    struct presign *presign;      /* for invoices, with key; NULL: crypto_sm2_sign_b64 signs */
    char pin[SIM_PIN_CAP];
    int pin_retries_left;
    bool pin_ok;
    struct device_roll rolls[DEVICE_MAX_ROLLS];
    int nrolls;
    int64_t limit_fen, offline_hours, offline_amount_fen;
    char cleared_through[8];
    int64_t lock_date;
    char platform_key[CRYPTO_PUBLIC_B64_MAX];   /* the pinned platform key; "" none yet */
    uint64_t signed_count;
    uint64_t damaged_at;          /* replay: the byte where an entry came out of sequence */
    uint64_t indexed_count;       /* entries the journal index on disk covers */
    uint64_t index_tried_count;   /* signed_count when it was last loaded or written, or
                                     a write was tried (and failed: a full disk) */

    /* the numbers reserved by issue_begin and issue_reserve_next, in order,
     * consumed by issue_sign(_batch); req.type is NULL (the roll has it) */
    struct sim_reservation {
        int roll;
        uint32_t number;
        struct device_issue_req req;
    } reserved[DEVICE_BATCH_MAX];
    int nreserved;
    off_t journal_end;            /* where the next line goes: the end of the last one signed */

    int64_t clock_offset;         /* set_clock: device time = clock_now() + offset */
    /* the journal: byte offset of each entry (seq n at offsets[n-1]) */
    int journal_rd;
    uint64_t *offsets;
    size_t cap_offsets;
    /* per period sums for the period summary, rebuilt from the journal */
    struct device_summary *sums;
    size_t nsums;
    /* per roll code, the highest signed number: a reload never goes below it */
    struct sim_used *used;
    size_t nused;
    /* the state file as last written or read: an admin's change is reloaded */
    struct stat seen;
    bool reload_failed;           /* said once on stderr, not at every command */
};

/* ---- files ------------------------------------------------------------- */

static int fsync_dir_of(const char *path)
{
    char copy[PATH_MAX];
    int fd, rc;
    snprintf(copy, sizeof copy, "%s", path);
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* Write `text` to `path` so that a crash leaves the old or the new file:
 * PATH.new, fsync, rename, fsync of the directory.  The caller holds the
 * lock file, so PATH.new is nobody else's. */
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

static void lock_file(int fd)
{
    if (fd >= 0)
        while (flock(fd, LOCK_EX) && errno == EINTR)
            ;
}

static void unlock_file(int fd)
{
    if (fd >= 0)
        flock(fd, LOCK_UN);
}

static bool same_version(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* ---- validation, shared by create, load and the admin commands ---------- */

static bool all_digits(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return s[n] == 0;
}

static bool valid_period(const char *p)
{
    int i, m;
    if (strlen(p) != 7 || p[4] != '-')
        return false;
    for (i = 0; i < 7; i++)
        if (i != 4 && (p[i] < '0' || p[i] > '9'))
            return false;
    m = (p[5] - '0') * 10 + (p[6] - '0');
    return m >= 1 && m <= 12;
}

static int check_roll(const struct device_roll *r, char *why, size_t whylen)
{
    if (!all_digits(r->type, 3))
        snprintf(why, whylen, "type \"%s\" is not 3 digits (026, 028)", r->type);
    else if (!all_digits(r->code, 12))
        snprintf(why, whylen, "code \"%s\" is not 12 digits", r->code);
    else if (r->first < 1 || r->first > r->last || r->last > SIM_NUMBER_MAX)
        snprintf(why, whylen, "numbers %u..%u: want 1 <= first <= last <= %u", r->first, r->last,
                 SIM_NUMBER_MAX);
    else
        return 0;
    return -1;
}

static int check_rolls(const struct device_roll *rolls, int n, char *why, size_t whylen)
{
    char what[160];
    int i, j;

    if (n < 0 || n > DEVICE_MAX_ROLLS) {
        snprintf(why, whylen, "rolls: %d rolls, at most %d", n, DEVICE_MAX_ROLLS);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (check_roll(&rolls[i], what, sizeof what)) {
            snprintf(why, whylen, "roll %d: %s", i + 1, what);
            return -1;
        }
        for (j = 0; j < i; j++)
            if (!strcmp(rolls[i].code, rolls[j].code)) {
                snprintf(why, whylen, "roll %d: code %s is already roll %d", i + 1, rolls[i].code,
                         j + 1);
                return -1;
            }
    }
    return 0;
}

static int check_tax_id(const char *id, char *why, size_t whylen)
{
    size_t len;
    if (!tax_id_charset_ok(id, &len))
        snprintf(why, whylen, "seller_tax_id \"%s\": want 15, 17, 18 or 20 digits or upper-case "
                 "letters", id);
    else if (len == 18 && !uscc_valid(id))
        snprintf(why, whylen, "seller_tax_id \"%s\": not a valid unified social credit code "
                 "(check character)", id);
    else
        return 0;
    return -1;
}

static int check_pin(const char *pin, char *why, size_t whylen)
{
    size_t i, len = strlen(pin);
    for (i = 0; i < len; i++)
        if ((unsigned char)pin[i] <= ' ' || pin[i] == 0x7f)
            break;
    if (len >= 1 && len < SIM_PIN_CAP && i == len)
        return 0;
    snprintf(why, whylen, "pin: want 1 to %d characters without spaces", SIM_PIN_CAP - 1);
    return -1;
}

static int check_kind(const char *kind, char *why, size_t whylen)
{
    if (!strcmp(kind, GENERAL_TAXPAYER) || !strcmp(kind, SMALL_TAXPAYER))
        return 0;
    snprintf(why, whylen, "taxpayer_kind \"%s\": want %s or %s", kind, GENERAL_TAXPAYER,
             SMALL_TAXPAYER);
    return -1;
}

static int check_text(const char *field, const char *value, size_t cap, bool empty_ok, char *why,
                      size_t whylen)
{
    if ((empty_ok || value[0]) && strlen(value) < cap && !strchr(value, '\n'))
        return 0;
    snprintf(why, whylen, "%s: want %s1 to %zu bytes on one line", field, empty_ok ? "0 or " : "",
             cap - 1);
    return -1;
}

/* ---- the state file ---------------------------------------------------- */

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
    json_object_set_new(o, "platform_key", json_string(s->platform_key));
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return FA_NOMEM;
    rc = write_file_atomic(s->path, text);
    free(text);
    if (rc == 0 && stat(s->path, &s->seen))
        memset(&s->seen, 0, sizeof s->seen);
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

static int parse_amount(const char *text, int64_t *fen)
{
    dec_t d;
    if (!text || dec_parse(text, 2, &d) != DEC_OK || dec_is_neg(d))
        return -1;
    *fen = dec_to_fen(d);
    return 0;
}

static int json_uint32(json_t *v, uint32_t *out)
{
    json_int_t i = json_integer_value(v);
    if (!json_is_integer(v) || i < 0 || i > (json_int_t)SIM_NUMBER_MAX + 1)
        return -1;
    *out = (uint32_t)i;
    return 0;
}

/* The key in the form the state file keeps (base64 of its DER, as
 * crypto_public_b64 writes it), so that comparing two keys is comparing
 * text; "" stays "".  0, or -1 unless `b64` is an SM2 public key. */
static int canonical_platform_key(const char *b64, char out[CRYPTO_PUBLIC_B64_MAX])
{
    EVP_PKEY *key;
    int rc;

    out[0] = 0;
    if (!b64[0])
        return 0;
    key = crypto_public_from_b64(b64);
    rc = key ? crypto_public_b64(key, out, CRYPTO_PUBLIC_B64_MAX) : -1;
    EVP_PKEY_free(key);
    if (rc)
        out[0] = 0;
    return rc;
}

/* The field is absent from files written before 反写 existed: none pinned. */
static int load_platform_key(struct sim *s, json_t *v)
{
    char text[CRYPTO_PUBLIC_B64_MAX];
    s->platform_key[0] = 0;
    if (!v)
        return 0;
    return copy_str(text, sizeof text, v) || canonical_platform_key(text, s->platform_key) ? -1 : 0;
}

/* Fill `s` from its state file; nothing else of `s` is touched on failure
 * except what was half filled.  0, or -1 with the file and field in why. */
static int sim_load(struct sim *s, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *o = json_load_file(s->path, 0, &jerr), *seller, *lim, *rolls, *r;
    const char *field = NULL;
    char what[160] = "";
    size_t i;
    int rc = -1;

    if (!o) {
        snprintf(why, whylen, "device state %s: %s (line %d)", s->path, jerr.text, jerr.line);
        return -1;
    }
    seller = json_object_get(o, "seller");
    lim = json_object_get(o, "limits");
    rolls = json_object_get(o, "rolls");
    if (json_integer_value(json_object_get(o, "format")) != SIM_STATE_FORMAT)
        field = "format";
    else if (copy_str(s->info.model, sizeof s->info.model, json_object_get(o, "model")))
        field = "model";
    else if (copy_str(s->info.machine_number, sizeof s->info.machine_number,
                      json_object_get(o, "machine_number")))
        field = "machine_number";
    else if (copy_str(s->info.taxpayer_kind, sizeof s->info.taxpayer_kind,
                      json_object_get(o, "taxpayer_kind")))
        field = "taxpayer_kind";
    else if (copy_str(s->info.seller_tax_id, sizeof s->info.seller_tax_id,
                      json_object_get(seller, "tax_id")))
        field = "seller.tax_id";
    else if (copy_str(s->info.seller_name, sizeof s->info.seller_name,
                      json_object_get(seller, "name")))
        field = "seller.name";
    else if (copy_str(s->info.seller_address_phone, sizeof s->info.seller_address_phone,
                      json_object_get(seller, "address_phone")))
        field = "seller.address_phone";
    else if (copy_str(s->info.seller_bank_account, sizeof s->info.seller_bank_account,
                      json_object_get(seller, "bank_account")))
        field = "seller.bank_account";
    else if (copy_str(s->pin, sizeof s->pin, json_object_get(o, "pin")))
        field = "pin";
    else if (!json_is_integer(json_object_get(o, "pin_retries_left")))
        field = "pin_retries_left";
    else if (copy_str(s->cleared_through, sizeof s->cleared_through,
                      json_object_get(o, "cleared_through")) || !valid_period(s->cleared_through))
        field = "cleared_through";
    else if (parse_amount(json_string_value(json_object_get(lim, "per_invoice")), &s->limit_fen))
        field = "limits.per_invoice";
    else if (parse_amount(json_string_value(json_object_get(lim, "offline_amount")),
                          &s->offline_amount_fen))
        field = "limits.offline_amount";
    else if (!json_is_integer(json_object_get(lim, "offline_hours")))
        field = "limits.offline_hours";
    else if (!json_is_array(rolls) || json_array_size(rolls) > DEVICE_MAX_ROLLS)
        field = "rolls";
    else if (!json_is_string(json_object_get(o, "private_key")))
        field = "private_key";
    else if (!json_is_string(json_object_get(o, "lock_date")) ||
             clock_parse_iso(json_string_value(json_object_get(o, "lock_date")), &s->lock_date))
        field = "lock_date";
    else if (load_platform_key(s, json_object_get(o, "platform_key")))
        field = "platform_key";
    if (field) {
        snprintf(why, whylen, "device state %s: field %s is missing or invalid", s->path, field);
        goto out;
    }
    s->offline_hours = json_integer_value(json_object_get(lim, "offline_hours"));
    s->pin_retries_left = (int)json_integer_value(json_object_get(o, "pin_retries_left"));
    if (s->pin_retries_left < 0 || s->pin_retries_left > SIM_PIN_TRIES)
        s->pin_retries_left = s->pin_retries_left < 0 ? 0 : SIM_PIN_TRIES;
    json_array_foreach(rolls, i, r) {
        struct device_roll *roll = &s->rolls[i];
        if (copy_str(roll->type, sizeof roll->type, json_object_get(r, "type")) ||
            copy_str(roll->code, sizeof roll->code, json_object_get(r, "code")) ||
            json_uint32(json_object_get(r, "first"), &roll->first) ||
            json_uint32(json_object_get(r, "last"), &roll->last) ||
            json_uint32(json_object_get(r, "next"), &roll->next)) {
            snprintf(why, whylen, "device state %s: rolls[%zu]: type, code, first, last or next "
                     "missing or invalid", s->path, i);
            goto out;
        }
        if (roll->next < roll->first)
            roll->next = roll->first;
    }
    s->nrolls = (int)json_array_size(rolls);
    if (check_rolls(s->rolls, s->nrolls, what, sizeof what)) {
        snprintf(why, whylen, "device state %s: %s", s->path, what);
        goto out;
    }
    presign_free(s->presign);   /* its nonces and copy of d belong to the key replaced here */
    s->presign = NULL;
    free(s->key_pem);
    EVP_PKEY_free(s->key);
    s->key_pem = strdup(json_string_value(json_object_get(o, "private_key")));
    s->key = s->key_pem ? crypto_key_from_pem(s->key_pem, 1) : NULL;
    if (!s->key || crypto_public_b64(s->key, s->info.public_key, sizeof s->info.public_key)) {
        snprintf(why, whylen, "device state %s: field private_key: unreadable SM2 key", s->path);
        goto out;
    }
    /* no thread until the first invoice; on failure the slower signing still works */
    s->presign = presign_new(s->key, SIM_PRESIGN_POOL);
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* ---- the journal ------------------------------------------------------- */

static uint32_t used_max(const struct sim *s, const char *code)
{
    size_t i;
    for (i = 0; i < s->nused; i++)
        if (!strcmp(s->used[i].code, code))
            return s->used[i].max;
    return 0;
}

static int used_note(struct sim *s, const char *code, uint32_t number)
{
    struct sim_used *v;
    size_t i;
    for (i = 0; i < s->nused; i++)
        if (!strcmp(s->used[i].code, code)) {
            if (number > s->used[i].max)
                s->used[i].max = number;
            return 0;
        }
    v = realloc(s->used, (s->nused + 1) * sizeof *v);
    if (!v)
        return -1;
    s->used = v;
    memset(&v[s->nused], 0, sizeof v[s->nused]);   /* the index hashes and writes every byte */
    snprintf(v[s->nused].code, sizeof v[s->nused].code, "%s", code);
    v[s->nused++].max = number;
    return 0;
}

/* A roll's next number is never below what the journal has signed. */
static void rolls_follow_journal(struct sim *s)
{
    int i;
    for (i = 0; i < s->nrolls; i++) {
        uint32_t used = used_max(s, s->rolls[i].code);
        if (s->rolls[i].next < s->rolls[i].first)
            s->rolls[i].next = s->rolls[i].first;
        if (used && s->rolls[i].next <= used)
            s->rolls[i].next = used + 1;
    }
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

/* The journal's parser is hand-written, not sscanf: a replay parses every
 * line of the journal, and sscanf was most of a mount after a crash
 * (docs/BENCHMARKS.md, M1).  Each field_* takes one field at *p and moves
 * *p to the byte after it; 0, or -1 if the field is not there. */

/* A decimal integer as "%lld" writes it (no '+', no leading zero, no "-0"),
 * ended by a byte of `ends` or the end of the text. */
static int field_int(const char **p, const char *ends, long long *v)
{
    const char *d = **p == '-' ? *p + 1 : *p;
    char *end;

    if (*d < '0' || *d > '9' || (*d == '0' && (d != *p || (d[1] >= '0' && d[1] <= '9'))))
        return -1;
    errno = 0;
    *v = strtoll(*p, &end, 10);
    if (errno || !strchr(ends, *end))
        return -1;
    *p = end;
    return 0;
}

/* 1..cap-1 bytes up to the next space or the end, copied to dst. */
static int field_text(const char **p, char *dst, size_t cap)
{
    size_t n = strcspn(*p, " ");

    if (n == 0 || n >= cap)
        return -1;
    memcpy(dst, *p, n);
    dst[n] = 0;
    *p += n;
    return 0;
}

/* The byte c. */
static int field_sep(const char **p, char c)
{
    if (**p != c)
        return -1;
    (*p)++;
    return 0;
}

static bool amount_ok(long long fen)
{
    return fen >= -SIM_JOURNAL_AMOUNT_MAX && fen <= SIM_JOURNAL_AMOUNT_MAX;
}

/* "pm:amount:tax;pm:amount:tax" or "-"; pm 0..1000 (per mille) */
static int parse_rates(const char *text, struct device_rate_sum *rates, int *n)
{
    long long pm, amount, tax;

    *n = 0;
    if (!strcmp(text, "-"))
        return 0;
    for (;;) {
        if (*n == DEVICE_MAX_RATES || field_int(&text, ":", &pm) || field_sep(&text, ':') ||
            field_int(&text, ":", &amount) || field_sep(&text, ':') ||
            field_int(&text, ";", &tax) || pm < 0 || pm > 1000 || !amount_ok(amount) ||
            !amount_ok(tax))
            return -1;
        rates[(*n)++] = (struct device_rate_sum){ (int)pm, amount, tax };
        if (!*text)
            return 0;
        text++;   /* the ';' */
    }
}

int sim_format_journal_line(const struct device_journal_entry *e,
                            const struct device_rate_sum *rates, int nrates, char *line, size_t cap)
{
    int n, i;

    n = snprintf(line, cap, "%llu %s %s %s %lld %lld %s %s ", (unsigned long long)e->seq, e->code,
                 e->number, e->type, (long long)e->issued_at, (long long)e->total_fen, e->sm3_hex,
                 e->signature);
    for (i = 0; i < nrates && n > 0 && (size_t)n < cap; i++)
        n += snprintf(line + n, cap - (size_t)n, "%s%d:%lld:%lld", i ? ";" : "", rates[i].rate_pm,
                      (long long)rates[i].amount_fen, (long long)rates[i].tax_fen);
    if (n > 0 && (size_t)n < cap)
        n += snprintf(line + n, cap - (size_t)n, "%s\n", nrates ? "" : "-");
    return n > 0 && (size_t)n < cap ? n : -1;
}

int sim_parse_journal_line(const char *line, struct device_journal_entry *e,
                           struct device_rate_sum *rates, int *nrates)
{
    char rtext[SIM_JOURNAL_LINE_MAX];
    long long seq, at, total;
    const char *p = line;

    /* the fields' bounds keep a line under 900 bytes, so whatever parses
     * also fits in SIM_JOURNAL_LINE_MAX (test_sim: 16 rates at -10^13 fen) */
    memset(e, 0, sizeof *e);
    if (field_int(&p, " ", &seq) || seq < 1 || field_sep(&p, ' ') ||
        field_text(&p, e->code, sizeof e->code) || field_sep(&p, ' ') ||
        field_text(&p, e->number, sizeof e->number) || field_sep(&p, ' ') ||
        field_text(&p, e->type, sizeof e->type) || field_sep(&p, ' ') ||
        field_int(&p, " ", &at) || field_sep(&p, ' ') ||
        field_int(&p, " ", &total) || field_sep(&p, ' ') ||
        field_text(&p, e->sm3_hex, sizeof e->sm3_hex) || field_sep(&p, ' ') ||
        field_text(&p, e->signature, sizeof e->signature) || field_sep(&p, ' ') ||
        field_text(&p, rtext, sizeof rtext) || *p || !all_digits(e->code, 12) ||
        !all_digits(e->number, 8) || !all_digits(e->type, 3) || at < 0 || !amount_ok(total))
        return -1;
    e->seq = (uint64_t)seq;
    e->issued_at = at;
    e->total_fen = total;
    return parse_rates(rtext, rates, nrates);
}

/* Room for `more` entries after the signed ones. */
static int grow_offsets(struct sim *s, size_t more)
{
    if (s->signed_count + more > s->cap_offsets) {
        size_t cap = s->cap_offsets ? s->cap_offsets * 2 : 1024;
        while (cap < s->signed_count + more)
            cap *= 2;
        uint64_t *v = realloc(s->offsets, cap * sizeof *v);
        if (!v)
            return -1;
        s->offsets = v;
        s->cap_offsets = cap;
    }
    return 0;
}

/* Note entry e, the next in sequence, found at byte offset `at`. */
static int replay_entry(struct sim *s, const struct device_journal_entry *e,
                        const struct device_rate_sum *rates, int nrates, uint64_t at)
{
    if (grow_offsets(s, 1) || used_note(s, e->code, (uint32_t)strtoul(e->number, NULL, 10)))
        return -1;
    s->offsets[s->signed_count++] = at;
    add_to_sums(s, e->type, e->issued_at, e->total_fen, rates, nrates);
    return 0;
}

/* The journal is the truth about consumed numbers: a crash after the
 * journal append but before the state write must not hand a number out
 * twice.  Reading it from byte `start` on rebuilds the offsets index, the
 * highest number per code and the period sums.  It reads a megabyte at a
 * time and cuts lines itself (no stdio: one lseek per line was a fifth of a
 * replay).  A line that does not parse is skipped; so is a last line
 * without its newline (torn by a crash; sim_open cuts it off, a read-only
 * replay leaves it).  An entry whose number is beyond the next one means an
 * entry before it was lost or damaged: counting on from there would hand
 * out that entry's number again, so the replay fails (EBADMSG, and
 * damaged_at says where). */
static int sim_replay_journal(struct sim *s, uint64_t start)
{
    const size_t cap = (size_t)1 << 20;
    int fd = open(s->journal_path, O_RDONLY | O_CLOEXEC), rc = -1, err;
    char *buf = NULL;
    size_t have = 0;          /* bytes in buf, buf[0] at file offset pos */
    uint64_t pos = start;
    bool skip = false;        /* inside a line longer than buf: not an entry */

    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    buf = malloc(cap + 1);
    if (!buf)
        goto out;
    for (;;) {
        ssize_t got = pread(fd, buf + have, cap - have, (off_t)(pos + have));
        char *line = buf, *nl;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            goto out;
        if (got == 0)
            break;
        have += (size_t)got;
        while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
            struct device_journal_entry e;
            struct device_rate_sum rates[DEVICE_MAX_RATES];
            int nrates;
            *nl = 0;
            if (!skip && !memchr(line, 0, (size_t)(nl - line)) &&
                !sim_parse_journal_line(line, &e, rates, &nrates)) {
                if (e.seq > s->signed_count + 1) {
                    s->damaged_at = pos + (uint64_t)(line - buf);
                    errno = EBADMSG;
                    goto out;
                }
                if (e.seq == s->signed_count + 1 &&
                    replay_entry(s, &e, rates, nrates, pos + (uint64_t)(line - buf))) {
                    errno = ENOMEM;
                    goto out;
                }
            }
            skip = false;
            line = nl + 1;
        }
        if (line == buf && have == cap) {
            skip = true;      /* no newline in a megabyte */
            line = buf + have;
        }
        pos += (uint64_t)(line - buf);
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
    }
    rolls_follow_journal(s);
    rc = 0;
out:
    err = errno;
    free(buf);
    close(fd);
    errno = err;   /* the caller reports it */
    return rc;
}

/*
 * The journal index (STATE.journal.idx): what a replay of the journal builds
 * (the offset of every entry, the highest number per roll, the period sums),
 * so that opening the device replays only the entries after it instead of
 * the whole journal: mount time stays flat however many invoices were
 * signed.  It is written when the device closes and, while it is open,
 * whenever the entries it does not cover reach a sixteenth of the journal
 * (at least SIM_INDEX_MIN_BEHIND): after a crash a mount replays at most
 * that, and the rewrites cost 16 × 8 = 128 bytes written per entry, about
 * half a journal line (index_is_due).
 *
 * It is a cache, written without a sync: it is trusted only if it is this
 * build's layout, its body hashes as its header says (a power cut can leave
 * a renamed file whose blocks never reached the disk), and it still matches
 * the journal (the journal is at least as long, and the last entry it
 * covers hashes the same).  Anything else, and the whole journal is replayed.
 */
#define INDEX_MAGIC "FAPJIX02"
#define SIM_INDEX_MIN_BEHIND 1024

struct index_header {
    char magic[8];
    uint64_t journal_size, signed_count, nused, nsums;
    uint64_t sizeof_used, sizeof_sum;
    uint64_t last_hash;           /* hash_words() of the last entry's line */
    uint64_t body_hash;           /* hash_words() of used, sums and offsets */
};

#define HASH_START 0xcbf29ce484222325u

/* FNV-1a taken eight bytes at a time, from h (HASH_START) on: 8 MB of
 * offsets per million entries hash in a few milliseconds.  Torn writes and
 * a changed journal, not malice. */
static uint64_t hash_words(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t w;

    for (; n >= 8; n -= 8, c += 8) {
        memcpy(&w, c, 8);
        h = (h ^ w) * 0x100000001b3u;
    }
    while (n--)
        h = (h ^ *c++) * 0x100000001b3u;
    return h;
}

static uint64_t index_body_hash(const struct sim_used *used, uint64_t nused,
                                const struct device_summary *sums, uint64_t nsums,
                                const uint64_t *offsets, uint64_t noffsets)
{
    uint64_t h = hash_words(HASH_START, used, nused * sizeof *used);

    h = hash_words(h, sums, nsums * sizeof *sums);
    return hash_words(h, offsets, noffsets * sizeof *offsets);
}

/* The hash of journal bytes [from, to) (one line); 0 or -1. */
static int journal_hash(int fd, uint64_t from, uint64_t to, uint64_t *h)
{
    unsigned char line[SIM_JOURNAL_LINE_MAX];

    if (to <= from || to - from > sizeof line ||
        pread(fd, line, (size_t)(to - from), (off_t)from) != (ssize_t)(to - from))
        return -1;
    *h = hash_words(HASH_START, line, (size_t)(to - from));
    return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Best effort: a failure only means a longer replay at the next open.
 * Nothing to do when the index on disk already covers every entry. */
static void sim_write_index(struct sim *s)
{
    struct index_header h = { .magic = INDEX_MAGIC };
    char path[sizeof s->journal_path + 8], tmp[sizeof path + 8];
    off_t end = s->journal_end;
    int fd, bad;

    snprintf(path, sizeof path, "%s.idx", s->journal_path);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    if (end <= 0 || s->signed_count == 0 || (uint64_t)end <= s->offsets[s->signed_count - 1] ||
        journal_hash(s->journal_rd, s->offsets[s->signed_count - 1], (uint64_t)end, &h.last_hash)) {
        unlink(path);
        s->indexed_count = 0;
        return;
    }
    if (s->indexed_count == s->signed_count)
        return;
    s->index_tried_count = s->signed_count;
    h.journal_size = (uint64_t)end;
    h.signed_count = s->signed_count;
    h.nused = s->nused;
    h.nsums = s->nsums;
    h.sizeof_used = sizeof *s->used;
    h.sizeof_sum = sizeof *s->sums;
    h.body_hash = index_body_hash(s->used, s->nused, s->sums, s->nsums, s->offsets, s->signed_count);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    bad = write_all(fd, &h, sizeof h) || write_all(fd, s->used, s->nused * sizeof *s->used) ||
          write_all(fd, s->sums, s->nsums * sizeof *s->sums) ||
          write_all(fd, s->offsets, s->signed_count * sizeof *s->offsets);
    bad |= close(fd);
    if (bad || rename(tmp, path))
        unlink(tmp);
    else
        s->indexed_count = s->signed_count;
}

/* Whether the entries the index does not cover call for a new one. */
static bool index_is_due(const struct sim *s)
{
    uint64_t behind = s->signed_count - s->index_tried_count;

    return behind >= SIM_INDEX_MIN_BEHIND && behind >= s->signed_count / 16;
}

static int read_all(int fd, void *p, size_t n)
{
    return read(fd, p, n) == (ssize_t)n ? 0 : -1;
}

/* Load the index if it matches the journal: 0 with *start where the replay
 * goes on, or -1 (nothing changed in s). */
static int sim_load_index(struct sim *s, uint64_t *start)
{
    struct index_header h;
    char path[sizeof s->journal_path + 8], extra;
    struct sim_used *used = NULL;
    struct device_summary *sums = NULL;
    uint64_t *offsets = NULL, hash;
    struct stat st;
    int fd, jfd = -1, rc = -1;

    snprintf(path, sizeof path, "%s.idx", s->journal_path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (read_all(fd, &h, sizeof h) || memcmp(h.magic, INDEX_MAGIC, 8) ||
        h.sizeof_used != sizeof *used || h.sizeof_sum != sizeof *sums || h.signed_count == 0 ||
        h.signed_count > SIZE_MAX / 16 || h.nused > 1024 || h.nsums > 100000)
        goto out;
    used = calloc(h.nused ? h.nused : 1, sizeof *used);
    sums = calloc(h.nsums ? h.nsums : 1, sizeof *sums);
    offsets = malloc(h.signed_count * sizeof *offsets);
    if (!used || !sums || !offsets || read_all(fd, used, h.nused * sizeof *used) ||
        read_all(fd, sums, h.nsums * sizeof *sums) ||
        read_all(fd, offsets, h.signed_count * sizeof *offsets) || read(fd, &extra, 1) != 0 ||
        index_body_hash(used, h.nused, sums, h.nsums, offsets, h.signed_count) != h.body_hash)
        goto out;
    jfd = open(s->journal_path, O_RDONLY | O_CLOEXEC);
    if (jfd < 0 || fstat(jfd, &st) || (uint64_t)st.st_size < h.journal_size ||
        journal_hash(jfd, offsets[h.signed_count - 1], h.journal_size, &hash) || hash != h.last_hash)
        goto out;
    free(s->offsets);
    free(s->used);
    free(s->sums);
    s->offsets = offsets;
    s->cap_offsets = h.signed_count;
    s->signed_count = h.signed_count;
    s->indexed_count = s->index_tried_count = h.signed_count;
    s->used = used;
    s->nused = h.nused;
    s->sums = sums;
    s->nsums = h.nsums;
    offsets = NULL;
    used = NULL;
    sums = NULL;
    *start = h.journal_size;
    rc = 0;
out:
    if (jfd >= 0)
        close(jfd);
    close(fd);
    free(offsets);
    free(used);
    free(sums);
    return rc;
}

/* Why the journal could not be read, after sim_read_journal_state (errno). */
static void journal_problem(const struct sim *s, char *why, size_t whylen)
{
    if (errno == EBADMSG)
        snprintf(why, whylen, "device journal %s: the entry at byte %llu follows entry %llu with a "
                 "gap: an entry before it is damaged or missing, and the device will not sign "
                 "again over it (restore the journal from a backup)", s->journal_path,
                 (unsigned long long)s->damaged_at, (unsigned long long)s->signed_count);
    else
        snprintf(why, whylen, "device journal %s: %s", s->journal_path, strerror(errno));
}

/* Replay the journal, from the index when it is usable. */
static int sim_read_journal_state(struct sim *s)
{
    uint64_t start = 0;

    if (sim_load_index(s, &start))
        start = 0;
    return sim_replay_journal(s, start);
}

/* A crash in the middle of an append leaves a last line without its newline;
 * cut it off, or the next append would be glued to it and lost.  Then sync:
 * after a kill between an append and its fdatasync the lines may be only in
 * the page cache, and reconciliation is about to restore invoices from them. */
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
    if (rc == 0 && pos != end && ftruncate(fd, pos))
        rc = -1;
    if (rc == 0 && fsync(fd))
        rc = -1;
    close(fd);
    return rc;
}

/* ---- life cycle -------------------------------------------------------- */

static struct sim *sim_new(const char *path)
{
    struct sim *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->journal_fd = s->journal_rd = s->lock_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    snprintf(s->path, sizeof s->path, "%s", path);
    snprintf(s->journal_path, sizeof s->journal_path, "%s.journal", path);
    snprintf(s->lock_path, sizeof s->lock_path, "%s.lock", path);
    strcpy(s->info.kind, "sim");
    return s;
}

static void sim_free(struct sim *s)
{
    if (!s)
        return;
    if (s->journal_fd >= 0)
        close(s->journal_fd);
    if (s->journal_rd >= 0)
        close(s->journal_rd);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->offsets);
    free(s->sums);
    free(s->used);
    presign_free(s->presign);
    EVP_PKEY_free(s->key);
    free(s->key_pem);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int open_lock(struct sim *s, char *why, size_t whylen)
{
    s->lock_fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd >= 0)
        return 0;
    snprintf(why, whylen, "device lock file %s: %s", s->lock_path, strerror(errno));
    return -1;
}

static int64_t sim_now(const struct sim *s)
{
    return clock_now() + s->clock_offset;
}

void sim_params_demo(struct sim_params *p)
{
    memset(p, 0, sizeof *p);
    strcpy(p->seller_tax_id, "9131011259474644XJ");
    strcpy(p->seller_name, "上海发票示范科技有限公司");
    strcpy(p->seller_address_phone, "上海市徐汇区示范路88号 021-64000000");
    strcpy(p->seller_bank_account, "中国银行上海徐汇支行 4370000000001");
    strcpy(p->taxpayer_kind, GENERAL_TAXPAYER);
    strcpy(p->machine_number, "499099000001");
    strcpy(p->pin, SIM_DEMO_PIN);
    p->rolls[0] = (struct device_roll){ "026", "031001900111", 1, 100000, 1 };
    p->rolls[1] = (struct device_roll){ "028", "031001900211", 1, 100000, 1 };
    p->nrolls = 2;
    p->limit_fen = 1000000000;           /* 10,000,000.00 */
    p->offline_hours = 72;
    p->offline_amount_fen = 1000000000;
}

static int check_params(const struct sim_params *p, char *why, size_t whylen)
{
    char key[CRYPTO_PUBLIC_B64_MAX];

    if (check_tax_id(p->seller_tax_id, why, whylen) ||
        check_text("seller_name", p->seller_name, sizeof p->seller_name, false, why, whylen) ||
        check_text("seller_address_phone", p->seller_address_phone,
                   sizeof p->seller_address_phone, true, why, whylen) ||
        check_text("seller_bank_account", p->seller_bank_account, sizeof p->seller_bank_account,
                   true, why, whylen) ||
        check_kind(p->taxpayer_kind, why, whylen) || check_pin(p->pin, why, whylen))
        return -1;
    if (!all_digits(p->machine_number, 12))
        snprintf(why, whylen, "machine_number \"%s\" is not 12 digits", p->machine_number);
    else if (p->nrolls < 1)
        snprintf(why, whylen, "rolls: a device needs at least one roll");
    else if (check_rolls(p->rolls, p->nrolls, why, whylen))
        return -1;
    else if (p->limit_fen <= 0)
        snprintf(why, whylen, "limit: the per-invoice limit must be above 0.00");
    else if (p->offline_hours < 0 || p->offline_amount_fen < 0)
        snprintf(why, whylen, "offline limits must not be negative");
    else if (p->cleared_through[0] && !valid_period(p->cleared_through))
        snprintf(why, whylen, "cleared_through \"%s\": want YYYY-MM", p->cleared_through);
    else if (canonical_platform_key(p->platform_key, key))
        snprintf(why, whylen, "platform_key \"%.40s%s\": not the base64 DER of an SM2 public key",
                 p->platform_key, strlen(p->platform_key) > 40 ? "..." : "");
    else
        return 0;
    return -1;
}

enum fa_err sim_create(const char *path, const struct sim_params *p, char *why, size_t whylen)
{
    struct sim *s = sim_new(path);
    char what[200];
    enum fa_err err = FA_INVAL;
    int i;

    if (!s)
        return FA_NOMEM;
    if (check_params(p, what, sizeof what)) {
        snprintf(why, whylen, "cannot create device %s: %s", path, what);
        goto out;
    }
    strcpy(s->info.model, "fapiaofs simulated tax-control device");
    memcpy(s->info.machine_number, p->machine_number, sizeof s->info.machine_number);
    memcpy(s->info.taxpayer_kind, p->taxpayer_kind, sizeof s->info.taxpayer_kind);
    memcpy(s->info.seller_tax_id, p->seller_tax_id, sizeof s->info.seller_tax_id);
    memcpy(s->info.seller_name, p->seller_name, sizeof s->info.seller_name);
    memcpy(s->info.seller_address_phone, p->seller_address_phone,
           sizeof s->info.seller_address_phone);
    memcpy(s->info.seller_bank_account, p->seller_bank_account, sizeof s->info.seller_bank_account);
    memcpy(s->pin, p->pin, sizeof s->pin);
    s->pin_retries_left = SIM_PIN_TRIES;
    for (i = 0; i < p->nrolls; i++) {
        s->rolls[i] = p->rolls[i];
        if (s->rolls[i].next < s->rolls[i].first)
            s->rolls[i].next = s->rolls[i].first;
    }
    s->nrolls = p->nrolls;
    s->limit_fen = p->limit_fen;
    s->offline_hours = p->offline_hours;
    s->offline_amount_fen = p->offline_amount_fen;
    /* by default cleared through the month before creation, so not locked today */
    if (p->cleared_through[0])
        memcpy(s->cleared_through, p->cleared_through, sizeof s->cleared_through);
    else
        clock_month_period(clock_month_index(clock_now()) - 1, s->cleared_through);
    s->lock_date = p->lock_date ? p->lock_date : lock_date_after(s->cleared_through);
    canonical_platform_key(p->platform_key, s->platform_key);   /* checked above */
    s->key_pem = crypto_sm2_generate_pem();
    if (!s->key_pem) {
        snprintf(why, whylen, "cannot generate an SM2 key (OpenSSL without SM2?)");
        err = FA_DEV_IO;
        goto out;
    }
    err = FA_DEV_IO;
    if (open_lock(s, why, whylen))
        goto out;
    lock_file(s->lock_fd);
    if (access(path, F_OK) == 0 || access(s->journal_path, F_OK) == 0) {
        bool state = access(path, F_OK) == 0;
        snprintf(why, whylen, "cannot create device %s: %s already exists%s", path,
                 state ? path : s->journal_path,
                 state ? "" : " (the journal of an earlier device: move it away first)");
        err = FA_EXISTS;
    } else {
        char index[sizeof s->journal_path + 8];
        snprintf(index, sizeof index, "%s.idx", s->journal_path);
        unlink(index);   /* an earlier device's, if any: a new journal starts empty */
        err = sim_save(s);
        if (err)
            snprintf(why, whylen, "cannot write device state %s: %s", path, strerror(errno));
    }
    unlock_file(s->lock_fd);
out:
    sim_free(s);
    return err;
}

enum fa_err sim_create_demo(const char *path, char *why, size_t whylen)
{
    struct sim_params p;
    enum fa_err err;

    if (access(path, F_OK) == 0)
        return FA_OK;
    sim_params_demo(&p);
    err = sim_create(path, &p, why, whylen);
    if (err == FA_EXISTS && access(path, F_OK) == 0)
        err = FA_OK;   /* created by someone else in the meantime */
    return err;
}

/* ---- live reload ------------------------------------------------------- */

/* Under the lock: when someone else wrote the state file since we last
 * wrote or read it, take over what an administrator may change. */
static enum fa_err sim_refresh(struct sim *s)
{
    struct stat st;
    struct sim *t;
    char why[512];
    enum fa_err err = FA_OK;
    int i;

    if (stat(s->path, &st) == 0 && same_version(&st, &s->seen))
        return FA_OK;
    t = sim_new(s->path);
    if (!t)
        return FA_NOMEM;
    if (sim_load(t, why, sizeof why)) {
        if (!s->reload_failed)
            fprintf(stderr, "fapiaofs: cannot reload the changed device state: %s\n", why);
        s->reload_failed = true;
        err = FA_DEV_IO;
        goto out;
    }
    s->reload_failed = false;
    memcpy(s->info.seller_tax_id, t->info.seller_tax_id, sizeof s->info.seller_tax_id);
    memcpy(s->info.seller_name, t->info.seller_name, sizeof s->info.seller_name);
    memcpy(s->info.seller_address_phone, t->info.seller_address_phone,
           sizeof s->info.seller_address_phone);
    memcpy(s->info.seller_bank_account, t->info.seller_bank_account,
           sizeof s->info.seller_bank_account);
    memcpy(s->info.taxpayer_kind, t->info.taxpayer_kind, sizeof s->info.taxpayer_kind);
    memcpy(s->pin, t->pin, sizeof s->pin);
    s->pin_retries_left = t->pin_retries_left;
    s->limit_fen = t->limit_fen;
    s->offline_hours = t->offline_hours;
    s->offline_amount_fen = t->offline_amount_fen;
    memcpy(s->cleared_through, t->cleared_through, sizeof s->cleared_through);
    s->lock_date = t->lock_date;
    memcpy(s->platform_key, t->platform_key, sizeof s->platform_key);
    for (i = 0; i < t->nrolls; i++)
        s->rolls[i] = t->rolls[i];
    s->nrolls = t->nrolls;
    rolls_follow_journal(s);
    s->seen = st;
out:
    sim_free(t);
    return err;
}

/* A command begins: the mutex, the lock file, the state as an admin left it. */
static enum fa_err sim_enter(struct sim *s)
{
    pthread_mutex_lock(&s->lock);
    lock_file(s->lock_fd);
    return sim_refresh(s);
}

static void sim_leave(struct sim *s)
{
    unlock_file(s->lock_fd);
    pthread_mutex_unlock(&s->lock);
}

/* ---- commands ---------------------------------------------------------- */

/* Reading commands answer from memory when a reload fails (the daemon's
 * status files keep working); commands that change state refuse. */
static enum fa_err sim_get_info(struct device *d, struct device_info *out)
{
    struct sim *s = (struct sim *)d;
    sim_enter(s);
    *out = s->info;
    sim_leave(s);
    return FA_OK;
}

static enum fa_err sim_get_status(struct device *d, struct device_status *out)
{
    struct sim *s = (struct sim *)d;
    sim_enter(s);
    memset(out, 0, sizeof *out);
    memcpy(out->cleared_through, s->cleared_through, sizeof out->cleared_through);
    out->lock_date = s->lock_date;
    out->locked = sim_now(s) > s->lock_date;
    out->limit_fen = s->limit_fen;
    out->offline_hours = s->offline_hours;
    out->offline_amount_fen = s->offline_amount_fen;
    out->pin_retries_left = s->pin_retries_left;
    out->signed_count = (int64_t)s->signed_count;
    out->session_open = s->pin_ok && s->pin_retries_left > 0;
    sim_leave(s);
    return FA_OK;
}

static enum fa_err sim_list_rolls(struct device *d, struct device_roll *out, int max, int *n)
{
    struct sim *s = (struct sim *)d;
    int i;
    sim_enter(s);
    for (i = 0; i < s->nrolls && i < max; i++)
        out[i] = s->rolls[i];
    *n = i;
    sim_leave(s);
    return FA_OK;
}

/* a == b, in a time that does not depend on where they differ */
static bool pin_equal(const char *a, const char *b)
{
    unsigned char diff = 0;
    size_t i;

    for (i = 0; i < SIM_PIN_CAP; i++) {
        diff |= (unsigned char)(a[i] ^ b[i]);
        if (!a[i] || !b[i])   /* the length is not the secret: the stored PIN is */
            break;
    }
    return diff == 0;
}

/* A wrong PIN costs one try; with none left the device is PIN-locked and
 * refuses even the right PIN until an administrator resets it.  A wrong PIN
 * does not log out a session that the right one opened (while tries are
 * left): a mistyped `clear pin=...` must not stop issuing. */
static enum fa_err sim_verify_pin(struct device *d, const char *pin)
{
    struct sim *s = (struct sim *)d;
    enum fa_err err = sim_enter(s);

    if (err)
        goto out;
    if (s->pin_retries_left <= 0) {
        s->pin_ok = false;
        err = FA_DEV_PIN;
        goto out;
    }
    /* A smartcard's order: the try is spent, and saved, before the PIN is
     * compared, so that neither a crash nor a save that fails (a full disk)
     * gives a guess for free, or tells a right guess from a wrong one. */
    s->pin_retries_left--;
    err = sim_save(s);
    if (err)
        goto out;
    if (!pin_equal(pin, s->pin)) {
        if (s->pin_retries_left <= 0)
            s->pin_ok = false;
        err = FA_DEV_PIN;
    } else {
        s->pin_ok = true;
        s->pin_retries_left = SIM_PIN_TRIES;
        err = sim_save(s);
    }
out:
    sim_leave(s);
    return err;
}

/* Deterministic digits from an SM3 digest of the invoice identity. */
void sim_derive_digits(const char *machine_number, const char *code, uint32_t number,
                       int64_t total_fen, int64_t at, const char *salt, const char *alphabet,
                       char *out, int n)
{
    unsigned char digest[32];
    char seed[256];
    size_t alen = strlen(alphabet);
    int i, block = -1;

    for (i = 0; i < n; i++) {
        if (i / 32 != block) {
            block = i / 32;
            snprintf(seed, sizeof seed, "%s|%s|%s|%08u|%lld|%lld|%d", salt, machine_number,
                     code, number, (long long)total_fen, (long long)at, block);
            crypto_sm3(seed, strlen(seed), digest);
        }
        out[i] = alphabet[digest[i % 32] % alen];
    }
    out[n] = 0;
}

/* Whether the journal line of req would read back (sim_parse_journal_line's
 * bounds): a line the replay skips would lose its number, and hand it out
 * again.  The engine never asks for more; a host of the command set may. */
static bool req_journalable(const struct device_issue_req *req)
{
    int i;

    if (req->nrates < 0 || req->nrates > DEVICE_MAX_RATES || req->issued_at < 0 ||
        !amount_ok(req->total_fen))
        return false;
    for (i = 0; i < req->nrates; i++)
        if (req->rates[i].rate_pm < 0 || req->rates[i].rate_pm > 1000 ||
            !amount_ok(req->rates[i].amount_fen) || !amount_ok(req->rates[i].tax_fen))
            return false;
    return true;
}

/* Reserve the next free number of req->type: after the last reservation
 * with more, else from scratch (an unsigned reservation is handed out again:
 * no gaps).  A later roll of the type takes over where one runs out. */
static enum fa_err sim_reserve(struct device *d, const struct device_issue_req *req, bool more,
                               struct device_issue_fields *out)
{
    struct sim *s = (struct sim *)d;
    enum fa_err err = sim_enter(s);
    uint32_t number = 0;
    int i, k, roll = -1;

    if (err)
        goto out;
    if (!more)
        s->nreserved = 0;
    for (i = 0; i < s->nrolls && roll < 0; i++) {
        uint32_t taken = 0;
        if (strcmp(s->rolls[i].type, req->type))
            continue;
        for (k = 0; k < s->nreserved; k++)
            taken += s->reserved[k].roll == i;
        if (s->rolls[i].next + taken <= s->rolls[i].last) {
            roll = i;
            number = s->rolls[i].next + taken;
        }
    }
    if (!s->pin_ok || s->pin_retries_left <= 0)
        err = FA_DEV_PIN;
    else if (sim_now(s) > s->lock_date)
        err = FA_DEV_LOCKED;
    else if (device_req_above_limit(req, s->limit_fen))
        err = FA_DEV_LIMIT;
    else if (!req_journalable(req))
        err = FA_INVAL;
    else if (roll < 0)
        err = FA_DEV_ROLL_EMPTY;
    else if (s->nreserved == DEVICE_BATCH_MAX)
        err = FA_INVAL;   /* more than a batch: an engine bug */
    if (err == FA_OK) {
        const struct device_roll *r = &s->rolls[roll];
        struct sim_reservation *res = &s->reserved[s->nreserved++];
        memset(out, 0, sizeof *out);
        snprintf(out->code, sizeof out->code, "%s", r->code);
        snprintf(out->number, sizeof out->number, "%08u", number);
        snprintf(out->machine_number, sizeof out->machine_number, "%s", s->info.machine_number);
        sim_derive_digits(s->info.machine_number, r->code, number, req->total_fen, req->issued_at,
                          "check", "0123456789", out->check_code, 20);
        sim_derive_digits(s->info.machine_number, r->code, number, req->total_fen, req->issued_at,
                          "cipher", "0123456789+-*/<>", out->cipher, 108);
        res->roll = roll;
        res->number = number;
        res->req = *req;
        res->req.type = NULL;   /* the caller's string: the roll's type is kept instead */
    }
out:
    sim_leave(s);
    return err;
}

static enum fa_err sim_issue_begin(struct device *d, const struct device_issue_req *req,
                                   struct device_issue_fields *out)
{
    return sim_reserve(d, req, false, out);
}

static enum fa_err sim_issue_reserve_next(struct device *d, const struct device_issue_req *req,
                                          struct device_issue_fields *out)
{
    return sim_reserve(d, req, true, out);
}

/* The journal line of reservation res, signed sig, over bytes whose SM3 is
 * hex.  Its length, or -1 if it does not fit. */
static int journal_line(const struct sim *s, const struct sim_reservation *res, uint64_t seq,
                        const char hex[65], const char sig[CRYPTO_SIG_B64_MAX], char *line,
                        size_t cap)
{
    const struct device_roll *r = &s->rolls[res->roll];
    struct device_journal_entry e = { .seq = seq, .issued_at = res->req.issued_at,
                                      .total_fen = res->req.total_fen };

    memcpy(e.code, r->code, sizeof e.code);
    snprintf(e.number, sizeof e.number, "%08u", res->number);
    memcpy(e.type, r->type, sizeof e.type);
    memcpy(e.sm3_hex, hex, sizeof e.sm3_hex);
    memcpy(e.signature, sig, sizeof e.signature);
    return sim_format_journal_line(&e, res->req.rates, res->req.nrates, line, cap);
}

/* Sign the first n reservations, in order, and append their journal lines
 * with one write and one fdatasync: no signature leaves the device before
 * its line is durable, and a failure leaves none of them.  The remaining
 * reservations are dropped. */
static enum fa_err sim_issue_sign_batch(struct device *d, int n, const struct device_sign_item *items,
                                        char (*out)[CRYPTO_SIG_B64_MAX])
{
    struct sim *s = (struct sim *)d;
    unsigned char digest[32];
    char hex[65], *buf = NULL, sigs[DEVICE_BATCH_MAX][CRYPTO_SIG_B64_MAX];
    size_t used = 0, cap = (size_t)(n > 0 ? n : 1) * SIM_JOURNAL_LINE_MAX;
    int lens[DEVICE_BATCH_MAX];
    enum fa_err err = sim_enter(s);
    ssize_t written;
    off_t end;
    int k, j;

    if (err)
        goto out;
    if (n < 1 || n > s->nreserved) {
        err = FA_INVAL;   /* nothing reserved for them: an engine bug */
        goto out;
    }
    for (k = 0; k < n; k++) {
        const struct sim_reservation *res = &s->reserved[k];
        const struct device_roll *r = &s->rolls[res->roll];
        uint32_t ahead = 0;
        for (j = 0; j < k; j++)
            ahead += s->reserved[j].roll == res->roll;
        /* an administrator's change reloaded since may have moved the rolls */
        if (res->roll >= s->nrolls || strcmp(r->code, items[k].code) ||
            strtoul(items[k].number, NULL, 10) != res->number || res->number != r->next + ahead ||
            res->number > r->last) {
            err = FA_INVAL;   /* not the reserved number */
            goto out;
        }
    }
    buf = malloc(cap);
    /* room for what the append records, so nothing can fail after it */
    if (!buf || grow_offsets(s, (size_t)n)) {
        err = FA_DEV_IO;
        goto out;
    }
    for (k = 0; k < n; k++) {
        /* k·G computed ahead (presign.h); OpenSSL signs without it, or in a forked child */
        if ((!s->presign || presign_sign_b64(s->presign, items[k].bytes, items[k].len, sigs[k],
                                             CRYPTO_SIG_B64_MAX)) &&
            crypto_sm2_sign_b64(s->key, items[k].bytes, items[k].len, sigs[k], CRYPTO_SIG_B64_MAX)) {
            err = FA_DEV_IO;
            goto out;
        }
        crypto_sm3(items[k].bytes, items[k].len, digest);
        crypto_hex(digest, 32, hex);
        lens[k] = journal_line(s, &s->reserved[k], s->signed_count + 1 + (uint64_t)k, hex, sigs[k],
                               buf + used, SIM_JOURNAL_LINE_MAX);
        if (lens[k] < 0 || used_note(s, s->rolls[s->reserved[k].roll].code, 0)) {
            err = FA_DEV_IO;
            goto out;
        }
        used += (size_t)lens[k];
    }
    /* Lines a failed append could not take back are cut first: they were
     * never answered, and the next lines take their sequence numbers. */
    end = lseek(s->journal_fd, 0, SEEK_END);
    if (end != s->journal_end &&
        (ftruncate(s->journal_fd, s->journal_end) || fdatasync(s->journal_fd))) {
        err = FA_DEV_IO;
        goto out;
    }
    end = s->journal_end;
    written = write(s->journal_fd, buf, used);
    if (written != (ssize_t)used || fdatasync(s->journal_fd)) {
        /* a short write or ENOSPC: the state's disk is full, the device works */
        err = (written >= 0 && written < (ssize_t)used) || errno == ENOSPC ? FA_NOSPC : FA_DEV_IO;
        /* never leave part of a batch for the next append to be glued to */
        if (ftruncate(s->journal_fd, end) == 0)
            fdatasync(s->journal_fd);
        goto out;
    }
    s->journal_end = end + (off_t)used;
    for (k = 0; k < n; k++) {
        const struct sim_reservation *res = &s->reserved[k];
        struct device_roll *r = &s->rolls[res->roll];
        s->offsets[s->signed_count++] = (uint64_t)end;
        end += lens[k];
        used_note(s, r->code, res->number);
        add_to_sums(s, r->type, res->req.issued_at, res->req.total_fen, res->req.rates,
                    res->req.nrates);
        r->next++;
        memcpy(out[k], sigs[k], CRYPTO_SIG_B64_MAX);   /* only once the lines are durable */
    }
    /* The journal line is the durable record of the consumed number: the
     * rolls follow the journal whenever the state is loaded, so the state
     * file is not rewritten (three syncs fewer per invoice). */
    if (index_is_due(s))
        sim_write_index(s);
    err = FA_OK;
out:
    if (err != FA_INVAL)
        s->nreserved = 0;
    sim_leave(s);
    free(buf);
    return err;
}

static enum fa_err sim_issue_sign(struct device *d, const char *code, const char *number,
                                  const void *bytes, size_t len, char sig_b64[CRYPTO_SIG_B64_MAX])
{
    struct device_sign_item item = { .bytes = bytes, .len = len };
    char sig[1][CRYPTO_SIG_B64_MAX];
    enum fa_err err;

    snprintf(item.code, sizeof item.code, "%s", code);
    snprintf(item.number, sizeof item.number, "%s", number);
    err = sim_issue_sign_batch(d, 1, &item, sig);
    if (err == FA_OK)
        memcpy(sig_b64, sig[0], CRYPTO_SIG_B64_MAX);
    return err;
}

static enum fa_err sim_read_journal(struct device *d, uint64_t from,
                                    struct device_journal_entry *out, int max, int *n)
{
    struct sim *s = (struct sim *)d;
    struct device_rate_sum rates[DEVICE_MAX_RATES];
    enum fa_err err = FA_OK;
    char line[SIM_JOURNAL_LINE_MAX];
    int nrates;

    *n = 0;
    sim_enter(s);
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
        if (sim_parse_journal_line(line, &out[*n], rates, &nrates) || out[*n].seq != from) {
            err = FA_DEV_IO;
            break;
        }
        (*n)++;
    }
    sim_leave(s);
    return err;
}

static enum fa_err sim_period_summary(struct device *d, const char *period,
                                      struct device_summary *out)
{
    struct sim *s = (struct sim *)d;
    enum fa_err err = FA_OK;
    char *text;
    size_t i;

    sim_enter(s);
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
    sim_leave(s);
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

/* ---- 反写: the platform's clearance answer ------------------------------ */

/* A string of 1 to cap-1 bytes without spaces or control characters: the
 * signed text is these values joined by single spaces, so none may hide one. */
static const char *json_token(json_t *v, size_t cap)
{
    const char *t = json_string_value(v);
    size_t i, n = t ? strlen(t) : 0;

    if (n == 0 || n >= cap)
        return NULL;
    for (i = 0; i < n; i++)
        if ((unsigned char)t[i] <= ' ' || t[i] == 0x7f)
            return NULL;
    return t;
}

/* A token into a char[cap] field of struct sim_clearance; NULL when absent or bad. */
static const char *copy_token(char *dst, size_t cap, json_t *v)
{
    const char *t = json_token(v, cap);

    if (!t)
        return NULL;
    memcpy(dst, t, strlen(t) + 1);
    return dst;
}

/* Every field present and well formed; 0, or -1 (FA_INVAL). */
static int parse_clearance(json_t *o, struct sim_clearance *c)
{
    json_t *lim = json_object_get(o, "limits"), *hours = json_object_get(lim, "offline_hours");
    json_t *key = json_object_get(o, "platform_public_key");
    const char *key_text = json_token(key, CRYPTO_PUBLIC_B64_MAX);
    const char *period, *machine, *lock_text, *per_invoice, *offline_amount, *signature;

    memset(c, 0, sizeof *c);
    period = copy_token(c->period, sizeof c->period, json_object_get(o, "period"));
    machine = copy_token(c->machine_number, sizeof c->machine_number, json_object_get(o, "machine_number"));
    lock_text = copy_token(c->lock_text, sizeof c->lock_text, json_object_get(o, "lock_date"));
    per_invoice = copy_token(c->per_invoice, sizeof c->per_invoice, json_object_get(lim, "per_invoice"));
    offline_amount = copy_token(c->offline_amount, sizeof c->offline_amount,
                                json_object_get(lim, "offline_amount"));
    signature = copy_token(c->signature, sizeof c->signature, json_object_get(o, "signature"));
    if (!json_is_object(o) || !json_is_true(json_object_get(o, "cleared")) || !period ||
        !valid_period(period) || !machine || !all_digits(machine, 12) || !lock_text ||
        clock_parse_iso(lock_text, &c->lock_date) || !signature ||
        parse_amount(per_invoice, &c->limit_fen) || c->limit_fen <= 0 ||
        parse_amount(offline_amount, &c->offline_amount_fen) || !json_is_integer(hours) ||
        json_integer_value(hours) < 0 || json_integer_value(hours) > SIM_OFFLINE_HOURS_MAX ||
        (key && !key_text))
        return -1;
    c->offline_hours = json_integer_value(hours);
    if (key_text && !(c->supplied_key = crypto_public_from_b64(key_text)))
        return -1;
    return 0;
}

enum fa_err sim_parse_clearance(const char *answer, size_t len, struct sim_clearance *out)
{
    json_t *o;
    int n;

    memset(out, 0, sizeof *out);
    if (!answer || len == 0 || len > PROTO_CLEARANCE_MAX)
        return FA_INVAL;
    o = json_loadb(answer, len, JSON_REJECT_DUPLICATES, NULL);
    if (!o || parse_clearance(o, out)) {
        json_decref(o);
        sim_clearance_free(out);
        memset(out, 0, sizeof *out);
        return FA_INVAL;
    }
    json_decref(o);
    n = snprintf(out->text, sizeof out->text, "CLEARANCE %s %s %s %s %lld %s", out->period,
                 out->machine_number, out->lock_text, out->per_invoice, (long long)out->offline_hours,
                 out->offline_amount);
    assert(n > 0 && (size_t)n < sizeof out->text);   /* every field is bounded */
    out->text_len = (size_t)n;
    return FA_OK;
}

void sim_clearance_free(struct sim_clearance *c)
{
    EVP_PKEY_free(c->supplied_key);
    c->supplied_key = NULL;
}

/* The month after `period` (YYYY-MM, valid) into next. */
static void month_after(const char *period, char next[8])
{
    int y = (period[0] - '0') * 1000 + (period[1] - '0') * 100 + (period[2] - '0') * 10 +
            (period[3] - '0');
    int m = (period[5] - '0') * 10 + (period[6] - '0');
    clock_month_period(y * 12 + m - 1 + 1, next);
}

/* The checks in the order of sim.h; the pinned key decides, and a device
 * without one enrols the answer's platform_public_key (trust on first use)
 * once an answer signed by it is applied.  An answer already applied is
 * FA_OK and changes nothing, so a clearing run again after a crash passes. */
static enum fa_err sim_apply_clearance(struct device *d, const char *answer, size_t len)
{
    struct sim *s = (struct sim *)d;
    struct sim_clearance c;
    EVP_PKEY *pinned = NULL, *key;
    char next[8], enrol[CRYPTO_PUBLIC_B64_MAX] = "", old_cleared[8];
    char old_key[CRYPTO_PUBLIC_B64_MAX];
    int64_t old_lock, old_limit, old_hours, old_amount;
    enum fa_err err;

    if (sim_parse_clearance(answer, len, &c))
        return FA_INVAL;
    err = sim_enter(s);
    if (err)
        goto out;
    if (s->platform_key[0])
        pinned = crypto_public_from_b64(s->platform_key);   /* checked when loaded */
    key = s->platform_key[0] ? pinned : c.supplied_key;
    if (strcmp(c.machine_number, s->info.machine_number) || !key) {
        err = FA_PERM;   /* not ours, or no key to check it with */
        goto out;
    }
    if (crypto_sm2_verify_b64(key, c.text, c.text_len, c.signature)) {
        ERR_clear_error();
        err = FA_PERM;
        goto out;
    }
    month_after(s->cleared_through, next);
    if (strcmp(c.period, s->cleared_through) <= 0)
        goto out;        /* already applied */
    if (strcmp(c.period, next)) {
        err = FA_INVAL;  /* out of order: a period would be skipped */
        goto out;
    }
    if (!s->pin_ok || s->pin_retries_left <= 0) {
        err = FA_DEV_PIN;
        goto out;
    }
    if (!s->platform_key[0] && crypto_public_b64(key, enrol, sizeof enrol)) {
        err = FA_DEV_IO;
        goto out;
    }
    memcpy(old_cleared, s->cleared_through, sizeof old_cleared);
    memcpy(old_key, s->platform_key, sizeof old_key);
    old_lock = s->lock_date;
    old_limit = s->limit_fen;
    old_hours = s->offline_hours;
    old_amount = s->offline_amount_fen;
    memcpy(s->cleared_through, c.period, sizeof s->cleared_through);
    s->lock_date = c.lock_date;
    s->limit_fen = c.limit_fen;
    s->offline_hours = c.offline_hours;
    s->offline_amount_fen = c.offline_amount_fen;
    if (enrol[0])
        memcpy(s->platform_key, enrol, sizeof s->platform_key);
    err = sim_save(s);
    if (err) {
        /* not written: a retry must apply it again, not find it applied */
        memcpy(s->cleared_through, old_cleared, sizeof s->cleared_through);
        memcpy(s->platform_key, old_key, sizeof s->platform_key);
        s->lock_date = old_lock;
        s->limit_fen = old_limit;
        s->offline_hours = old_hours;
        s->offline_amount_fen = old_amount;
    }
out:
    sim_leave(s);
    EVP_PKEY_free(pinned);
    sim_clearance_free(&c);
    return err;
}

static void sim_close(struct device *d)
{
    struct sim *s = (struct sim *)d;

    lock_file(s->lock_fd);   /* STATE.journal.idx.new: one writer at a time */
    sim_write_index(s);
    unlock_file(s->lock_fd);
    sim_free(s);
}

static const struct device_ops sim_ops = {
    .get_info = sim_get_info,
    .get_status = sim_get_status,
    .list_rolls = sim_list_rolls,
    .verify_pin = sim_verify_pin,
    .issue_begin = sim_issue_begin,
    .issue_sign = sim_issue_sign,
    .issue_reserve_next = sim_issue_reserve_next,
    .issue_sign_batch = sim_issue_sign_batch,
    .read_journal = sim_read_journal,
    .period_summary = sim_period_summary,
    .apply_clearance = sim_apply_clearance,
    .set_clock = sim_set_clock,
    .close = sim_close,
};

enum fa_err sim_open(const char *path, struct device **out, char *why, size_t whylen)
{
    struct sim *s = sim_new(path);
    enum fa_err err = FA_DEV_IO;
    struct stat st;

    if (!s)
        return FA_NOMEM;
    s->base.ops = &sim_ops;
    if (open_lock(s, why, whylen))
        goto fail;
    lock_file(s->lock_fd);
    if (stat(path, &st) == 0)
        s->seen = st;
    if (sim_load(s, why, whylen)) {
        unlock_file(s->lock_fd);
        goto fail;
    }
    if (trim_torn_tail(s->journal_path) || sim_read_journal_state(s)) {
        journal_problem(s, why, whylen);
        unlock_file(s->lock_fd);
        goto fail;
    }
    unlock_file(s->lock_fd);
    s->journal_fd = open(s->journal_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    s->journal_rd = open(s->journal_path, O_RDONLY | O_CLOEXEC);
    if (s->journal_fd >= 0)
        s->journal_end = lseek(s->journal_fd, 0, SEEK_END);
    /* an empty journal may be a new file: its name must outlive a power
     * loss before the first signature's fdatasync, which syncs only data */
    if (s->journal_end == 0 && fsync_dir_of(s->journal_path))
        s->journal_end = -1;
    if (s->journal_fd < 0 || s->journal_rd < 0 || s->journal_end < 0) {
        snprintf(why, whylen, "device journal %s: %s", s->journal_path, strerror(errno));
        goto fail;
    }
    *out = &s->base;
    return FA_OK;
fail:
    sim_free(s);
    return err;
}

/* ---- administration ---------------------------------------------------- */

/* Lock, load the state and replay the journal (read only: the torn tail of
 * a crash is the daemon's to cut), so that the next numbers are right. */
static enum fa_err admin_begin(const char *path, struct sim **out, char *why, size_t whylen)
{
    struct sim *s = sim_new(path);
    enum fa_err err = FA_DEV_IO;

    *out = NULL;
    if (!s)
        return FA_NOMEM;
    if (access(path, F_OK)) {
        snprintf(why, whylen, "device state %s: %s", path, strerror(errno));
        err = errno == ENOENT ? FA_NOTFOUND : FA_DEV_IO;
        goto fail;
    }
    if (open_lock(s, why, whylen))
        goto fail;
    lock_file(s->lock_fd);
    if (sim_load(s, why, whylen))
        goto fail;
    if (sim_read_journal_state(s)) {
        journal_problem(s, why, whylen);
        goto fail;
    }
    *out = s;
    return FA_OK;
fail:
    sim_free(s);   /* closing the lock file unlocks it */
    return err;
}

static enum fa_err admin_end(struct sim *s, bool save, char *why, size_t whylen)
{
    enum fa_err err = FA_OK;
    if (save && (err = sim_save(s)) != FA_OK)
        snprintf(why, whylen, "cannot write device state %s: %s", s->path, strerror(errno));
    sim_free(s);
    return err;
}

static int parse_u32(const char *text, uint32_t *out)
{
    char *end;
    unsigned long long v;
    if (!*text || *text == '-' || *text == '+')
        return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno || *end || v > SIM_NUMBER_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int sim_parse_roll(const char *spec, struct device_roll *out, char *why, size_t whylen)
{
    char copy[96], *f[4], *p;
    char what[160];
    int n = 0;

    memset(out, 0, sizeof *out);
    if (strlen(spec) >= sizeof copy)
        goto bad;
    snprintf(copy, sizeof copy, "%s", spec);
    for (p = copy, f[n++] = p; (p = strchr(p, ':')) && n < 4; f[n++] = ++p)
        *p = 0;
    if (n != 4 || p || strlen(f[0]) >= sizeof out->type || strlen(f[1]) >= sizeof out->code ||
        parse_u32(f[2], &out->first) || parse_u32(f[3], &out->last))
        goto bad;
    strcpy(out->type, f[0]);
    strcpy(out->code, f[1]);
    out->next = out->first;
    if (check_roll(out, what, sizeof what)) {
        snprintf(why, whylen, "roll \"%s\": %s", spec, what);
        return -1;
    }
    return 0;
bad:
    snprintf(why, whylen, "roll \"%.80s\": want TYPE:CODE:FIRST:LAST, e.g. 026:031001900111:1:100000",
             spec);
    return -1;
}

/* One KEY=VALUE on the loaded state; 0, or -1 with the problem in why. */
static int admin_assign(struct sim *s, const char *kv, char *why, size_t whylen)
{
    const char *eq = strchr(kv, '=');
    const char *v = eq ? eq + 1 : "";
    char key[64];
    int64_t n;
    char *end;
    int i;

    if (!eq || (size_t)(eq - kv) >= sizeof key) {
        snprintf(why, whylen, "\"%.80s\": want KEY=VALUE", kv);
        return -1;
    }
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    if (!strcmp(key, "limit") || !strcmp(key, "per_invoice_limit")) {
        if (parse_amount(v, &n) || n <= 0)
            goto bad_amount;
        s->limit_fen = n;
    } else if (!strcmp(key, "offline_amount") || !strcmp(key, "offline_amount_limit")) {
        if (parse_amount(v, &n))
            goto bad_amount;
        s->offline_amount_fen = n;
    } else if (!strcmp(key, "offline_hours") || !strcmp(key, "offline_hours_limit")) {
        errno = 0;
        n = strtoll(v, &end, 10);
        if (!*v || *end || errno || n < 0 || n > SIM_OFFLINE_HOURS_MAX) {
            snprintf(why, whylen, "%s: \"%s\" is not a number of hours (0 to %d)", key, v,
                     SIM_OFFLINE_HOURS_MAX);
            return -1;
        }
        s->offline_hours = n;
    } else if (!strcmp(key, "lock_date")) {
        if (clock_parse_iso(v, &n)) {
            snprintf(why, whylen, "lock_date: \"%s\" is not an ISO 8601 time such as "
                     "2024-12-15T23:59:59+08:00", v);
            return -1;
        }
        s->lock_date = n;
    } else if (!strcmp(key, "cleared_through")) {
        if (!valid_period(v)) {
            snprintf(why, whylen, "cleared_through: \"%s\" is not a period YYYY-MM", v);
            return -1;
        }
        memcpy(s->cleared_through, v, sizeof s->cleared_through);
    } else if (!strcmp(key, "pin")) {
        if (check_pin(v, why, whylen))
            return -1;
        snprintf(s->pin, sizeof s->pin, "%s", v);
    } else if (!strcmp(key, "pin_retries_left")) {
        errno = 0;
        n = strtoll(v, &end, 10);
        if (!*v || *end || errno || n < 0 || n > SIM_PIN_TRIES) {
            snprintf(why, whylen, "pin_retries_left: \"%s\" is not 0 to %d", v, SIM_PIN_TRIES);
            return -1;
        }
        s->pin_retries_left = (int)n;
    } else if (!strcmp(key, "seller_tax_id")) {
        if (strlen(v) >= sizeof s->info.seller_tax_id || check_tax_id(v, why, whylen)) {
            if (strlen(v) >= sizeof s->info.seller_tax_id)
                snprintf(why, whylen, "seller_tax_id: \"%.40s\" is too long", v);
            return -1;
        }
        strcpy(s->info.seller_tax_id, v);
    } else if (!strcmp(key, "seller_name") || !strcmp(key, "seller_address_phone") ||
               !strcmp(key, "seller_bank_account")) {
        char *dst = !strcmp(key, "seller_name") ? s->info.seller_name :
                    !strcmp(key, "seller_address_phone") ? s->info.seller_address_phone :
                    s->info.seller_bank_account;
        if (check_text(key, v, sizeof s->info.seller_name, strcmp(key, "seller_name") != 0, why,
                       whylen))
            return -1;
        snprintf(dst, sizeof s->info.seller_name, "%s", v);
    } else if (!strcmp(key, "platform_key")) {
        char pk[CRYPTO_PUBLIC_B64_MAX];
        if (canonical_platform_key(v, pk)) {
            snprintf(why, whylen, "platform_key: \"%.40s%s\" is not the base64 DER of an SM2 public "
                     "key (GET /v1/platform-key), nor empty", v, strlen(v) > 40 ? "..." : "");
            return -1;
        }
        memcpy(s->platform_key, pk, sizeof s->platform_key);
    } else if (!strcmp(key, "taxpayer_kind")) {
        if (check_kind(v, why, whylen))
            return -1;
        snprintf(s->info.taxpayer_kind, sizeof s->info.taxpayer_kind, "%s", v);
    } else if (!strncmp(key, "roll.", 5) && strlen(key) > 10 &&
               !strcmp(key + strlen(key) - 5, ".last")) {
        uint32_t last;
        for (i = 0; i < s->nrolls; i++)
            if (strlen(s->rolls[i].code) == strlen(key) - 10 &&
                !strncmp(s->rolls[i].code, key + 5, strlen(key) - 10))
                break;
        if (i == s->nrolls) {
            snprintf(why, whylen, "%s: the device has no roll with that code", key);
            return -1;
        }
        if (parse_u32(v, &last) || last < s->rolls[i].first) {
            snprintf(why, whylen, "%s: \"%s\" is not a number from %u to %u", key, v,
                     s->rolls[i].first, SIM_NUMBER_MAX);
            return -1;
        }
        s->rolls[i].last = last;
    } else {
        snprintf(why, whylen, "unknown key \"%s\" (limit, offline_hours, offline_amount, lock_date, "
                 "cleared_through, platform_key, pin, pin_retries_left, seller_tax_id, seller_name, "
                 "seller_address_phone, seller_bank_account, taxpayer_kind, roll.CODE.last)", key);
        return -1;
    }
    return 0;
bad_amount:
    snprintf(why, whylen, "%s: \"%s\" is not an amount such as 20000.00%s", key, v,
             !strcmp(key, "limit") || !strcmp(key, "per_invoice_limit") ? " (above 0)" : "");
    return -1;
}

enum fa_err sim_admin_set(const char *path, char *const *assignments, int n, char *why,
                          size_t whylen)
{
    struct sim *s;
    char what[400];
    enum fa_err err = admin_begin(path, &s, why, whylen);
    int i;

    if (err)
        return err;
    for (i = 0; i < n; i++)
        if (admin_assign(s, assignments[i], what, sizeof what)) {
            snprintf(why, whylen, "device state %s: %s (nothing changed)", path, what);
            admin_end(s, false, why, whylen);
            return FA_INVAL;
        }
    return admin_end(s, true, why, whylen);
}

enum fa_err sim_admin_reset_pin(const char *path, char *why, size_t whylen)
{
    struct sim *s;
    enum fa_err err = admin_begin(path, &s, why, whylen);
    if (err)
        return err;
    s->pin_retries_left = SIM_PIN_TRIES;
    return admin_end(s, true, why, whylen);
}

enum fa_err sim_admin_add_roll(const char *path, const struct device_roll *roll, char *why,
                               size_t whylen)
{
    struct sim *s;
    char what[200];
    enum fa_err err = admin_begin(path, &s, why, whylen);

    if (err)
        return err;
    if (s->nrolls == DEVICE_MAX_ROLLS) {
        snprintf(why, whylen, "device state %s: already %d rolls, the most a device holds", path,
                 DEVICE_MAX_ROLLS);
        err = FA_INVAL;
    } else {
        s->rolls[s->nrolls] = *roll;
        if (check_rolls(s->rolls, s->nrolls + 1, what, sizeof what)) {
            snprintf(why, whylen, "device state %s: %s", path, what);
            err = FA_INVAL;
        }
    }
    if (err) {
        admin_end(s, false, why, whylen);
        return err;
    }
    s->nrolls++;
    rolls_follow_journal(s);
    return admin_end(s, true, why, whylen);
}

enum fa_err sim_admin_show(const char *path, FILE *out, char *why, size_t whylen)
{
    struct sim *s;
    char a[DEC_FMT_MAX], b[DEC_FMT_MAX], lock[32];
    enum fa_err err = admin_begin(path, &s, why, whylen);
    int i;

    if (err)
        return err;
    fprintf(out, "state: %s\njournal: %s\nmodel: %s\nmachine_number: %s\ntaxpayer_kind: %s\n"
            "seller_tax_id: %s\nseller_name: %s\nseller_address_phone: %s\n"
            "seller_bank_account: %s\npublic_key: %s\n",
            s->path, s->journal_path, s->info.model, s->info.machine_number, s->info.taxpayer_kind,
            s->info.seller_tax_id, s->info.seller_name, s->info.seller_address_phone,
            s->info.seller_bank_account, s->info.public_key);
    fprintf(out, "cleared_through: %s\nlock_date: %s\nlocked: %s\nper_invoice_limit: %s\n"
            "offline_hours_limit: %lld\noffline_amount_limit: %s\npin_retries_left: %d\n"
            "pin_locked: %s\nsigned_invoices: %llu\n",
            s->cleared_through, clock_iso_cst(s->lock_date, lock),
            clock_now() > s->lock_date ? "yes" : "no", fen_text(s->limit_fen, a),
            (long long)s->offline_hours, fen_text(s->offline_amount_fen, b), s->pin_retries_left,
            s->pin_retries_left <= 0 ? "yes" : "no", (unsigned long long)s->signed_count);
    fprintf(out, "platform_key: %s\n",
            s->platform_key[0] ? s->platform_key : "none (enrolled at the first clearing)");
    for (i = 0; i < s->nrolls; i++) {
        const struct device_roll *r = &s->rolls[i];
        fprintf(out, "roll: %s %s %08u %08u %08u %u\n", r->type, r->code, r->first, r->last,
                r->next, r->next > r->last ? 0 : r->last - r->next + 1);
    }
    return admin_end(s, false, why, whylen);
}
