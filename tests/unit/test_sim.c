/*
 * test_sim.c — the simulated tax-control device (device/sim.c): a device
 * created with chosen parameters, rolls used in order and running out,
 * every refusal (limit, lock date, roll, PIN and PIN lock), batches of
 * reserved numbers signed with one journal write, the admin
 * commands of fapiaofs-sim seen live by an open device, the journal and the
 * signed period summary, a torn journal line, the journal index (used
 * after a crash, rewritten while the device signs, refused when damaged),
 * the journal parser's strictness, 反写 of platform-signed
 * clearance answers (trust on first use of the platform key, every refusal,
 * idempotence), and the state file and journal surviving SIGKILL at random
 * moments of a signing loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "device/sim.h"
#include "engine/clock.h"
#include "tests/unit/unit.h"

static char dir[64];

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static int64_t iso(const char *s)
{
    int64_t t = 0;
    clock_parse_iso(s, &t);
    return t;
}

/* The bytes an invoice's signature covers, here just its identity. */
static void invoice_bytes(const char *code, const char *number, char buf[64])
{
    snprintf(buf, 64, "invoice %.15s-%.15s", code, number);
}

/* A request for one invoice of total_fen at 13 %. */
static struct device_issue_req request(const char *type, int64_t total_fen, int64_t at)
{
    struct device_issue_req req = { .type = type, .total_fen = total_fen, .issued_at = at,
                                    .nrates = 1 };
    req.rates[0] = (struct device_rate_sum){ 130, total_fen * 100 / 113, total_fen * 13 / 113 };
    return req;
}

static enum fa_err begin(struct device *d, const char *type, int64_t total_fen, int64_t at,
                         struct device_issue_fields *f)
{
    struct device_issue_req req = request(type, total_fen, at);
    return device_issue_begin(d, &req, f);
}

/* begin + sign; the invoice's "CODE-NUMBER" into out. */
static enum fa_err issue(struct device *d, const char *type, int64_t total_fen, int64_t at,
                         char out[40])
{
    struct device_issue_fields f;
    char bytes[64], sig[CRYPTO_SIG_B64_MAX];
    enum fa_err err = begin(d, type, total_fen, at, &f);
    if (err == FA_OK) {
        invoice_bytes(f.code, f.number, bytes);
        err = device_issue_sign(d, f.code, f.number, bytes, strlen(bytes), sig);
    }
    snprintf(out, 40, "%s-%s", err ? "" : f.code, err ? "" : f.number);
    return err;
}

static EVP_PKEY *public_key(struct device *d)
{
    struct device_info di;
    char pem[512];
    int n = 0;
    size_t i, len;

    device_get_info(d, &di);
    len = strlen(di.public_key);
    n += snprintf(pem + n, sizeof pem - (size_t)n, "-----BEGIN PUBLIC KEY-----\n");
    for (i = 0; i < len; i += 64)
        n += snprintf(pem + n, sizeof pem - (size_t)n, "%.64s\n", di.public_key + i);
    snprintf(pem + n, sizeof pem - (size_t)n, "-----END PUBLIC KEY-----\n");
    return crypto_key_from_pem(pem, 0);
}

static struct device_status status_of(struct device *d)
{
    struct device_status ds;
    device_get_status(d, &ds);
    return ds;
}

static struct device_roll roll_of(struct device *d, const char *code)
{
    struct device_roll r[DEVICE_MAX_ROLLS], none = { "", "", 0, 0, 0 };
    int n = 0, i;
    device_list_rolls(d, r, DEVICE_MAX_ROLLS, &n);
    for (i = 0; i < n; i++)
        if (!strcmp(r[i].code, code))
            return r[i];
    return none;
}

static enum fa_err set1(const char *path, const char *kv)
{
    char why[512], *a[1] = { (char *)kv };
    enum fa_err err = sim_admin_set(path, a, 1, why, sizeof why);
    if (err)
        printf("# set %s: %s\n", kv, why);
    return err;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static int write_all(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    int rc;
    if (!f)
        return -1;
    rc = fputs(text, f) < 0;
    return fclose(f) || rc ? -1 : 0;
}

static char *show(const char *path)
{
    char *out = NULL, why[512];
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (sim_admin_show(path, f, why, sizeof why))
        fprintf(f, "error: %s\n", why);
    fclose(f);
    return out;
}

/* ---- creation ---------------------------------------------------------- */

static void test_create(const char *path)
{
    struct sim_params p;
    struct device *d = NULL;
    struct device_info di;
    struct device_status ds;
    struct device_roll r[DEVICE_MAX_ROLLS];
    char why[512], other[PATH_MAX], jpath[PATH_MAX + 16], lock[32];
    int n = 0;

    sim_params_demo(&p);
    strcpy(p.seller_tax_id, "91350200MA2YJ1XR9G");
    strcpy(p.seller_name, "厦门测试有限公司");
    strcpy(p.seller_address_phone, "厦门市思明区测试路2号 0592-1234567");
    strcpy(p.seller_bank_account, "建设银行厦门分行 3510000000002");
    strcpy(p.taxpayer_kind, "小规模纳税人");
    strcpy(p.machine_number, "499099000777");
    strcpy(p.pin, "87654321");
    p.nrolls = 3;
    p.rolls[0] = (struct device_roll){ "026", "035001900111", 1, 2, 0 };
    p.rolls[1] = (struct device_roll){ "028", "035001900211", 1, 1, 0 };
    p.rolls[2] = (struct device_roll){ "026", "035001900112", 10, 11, 0 };
    p.limit_fen = 100000;          /* 1,000.00 */
    p.offline_hours = 24;
    p.offline_amount_fen = 500000;
    strcpy(p.cleared_through, "2024-10");
    CHECK_INT(sim_create(path, &p, why, sizeof why), FA_OK);
    CHECK_INT(sim_create(path, &p, why, sizeof why), FA_EXISTS);
    CHECK(strstr(why, "already exists") != NULL, "a second create is refused: %s", why);

    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    device_get_info(d, &di);
    CHECK_STR(di.kind, "sim");
    CHECK_STR(di.seller_tax_id, "91350200MA2YJ1XR9G");
    CHECK_STR(di.seller_name, "厦门测试有限公司");
    CHECK_STR(di.seller_address_phone, "厦门市思明区测试路2号 0592-1234567");
    CHECK_STR(di.seller_bank_account, "建设银行厦门分行 3510000000002");
    CHECK_STR(di.taxpayer_kind, "小规模纳税人");
    CHECK_STR(di.machine_number, "499099000777");
    CHECK(strlen(di.public_key) > 80, "public key present");
    ds = status_of(d);
    CHECK_STR(ds.cleared_through, "2024-10");
    CHECK_STR(clock_iso_cst(ds.lock_date, lock), "2024-12-15T23:59:59+08:00");
    CHECK_INT(ds.limit_fen, 100000);
    CHECK_INT(ds.offline_hours, 24);
    CHECK_INT(ds.offline_amount_fen, 500000);
    CHECK_INT(ds.pin_retries_left, 5);
    CHECK_INT(ds.signed_count, 0);
    device_list_rolls(d, r, DEVICE_MAX_ROLLS, &n);
    CHECK_INT(n, 3);
    CHECK(n == 3 && r[2].first == 10 && r[2].next == 10 && r[2].last == 11,
          "third roll 10..11, next 10");
    device_close(d);

    /* bad parameters name their field */
    path_in(other, sizeof other, "bad.json");
    p.machine_number[3] = 'x';
    CHECK_INT(sim_create(other, &p, why, sizeof why), FA_INVAL);
    CHECK(strstr(why, "machine_number") != NULL, "bad machine number named: %s", why);
    strcpy(p.machine_number, "499099000777");
    strcpy(p.rolls[2].code, p.rolls[0].code);
    CHECK_INT(sim_create(other, &p, why, sizeof why), FA_INVAL);
    CHECK(strstr(why, "roll 3") != NULL, "duplicate roll code named: %s", why);
    strcpy(p.rolls[2].code, "035001900112");
    strcpy(p.seller_tax_id, "91350200MA2YJ1XR9H");
    CHECK_INT(sim_create(other, &p, why, sizeof why), FA_INVAL);
    CHECK(strstr(why, "seller_tax_id") != NULL, "bad tax id named: %s", why);
    strcpy(p.seller_tax_id, "91350200MA2YJ1XR9G");
    strcpy(p.cleared_through, "2024-13");
    CHECK_INT(sim_create(other, &p, why, sizeof why), FA_INVAL);
    CHECK(strstr(why, "cleared_through") != NULL, "bad period named: %s", why);
    CHECK(access(other, F_OK) != 0, "nothing written for bad parameters");
    /* a journal without its state: never mixed into a new device */
    strcpy(p.cleared_through, "2024-10");
    snprintf(jpath, sizeof jpath, "%s.journal", other);
    write_all(jpath, "");
    CHECK_INT(sim_create(other, &p, why, sizeof why), FA_EXISTS);
    CHECK(strstr(why, ".journal") != NULL, "an old journal is named: %s", why);
    unlink(jpath);
}

static void test_demo(void)
{
    struct device *d = NULL;
    struct device_info di;
    struct device_status ds;
    struct device_roll r[DEVICE_MAX_ROLLS];
    char path[PATH_MAX], why[512], prev[8];
    int n = 0;

    path_in(path, sizeof path, "demo.json");
    CHECK_INT(sim_create_demo(path, why, sizeof why), FA_OK);
    CHECK_INT(sim_create_demo(path, why, sizeof why), FA_OK);
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    device_get_info(d, &di);
    ds = status_of(d);
    device_list_rolls(d, r, DEVICE_MAX_ROLLS, &n);
    CHECK_STR(di.taxpayer_kind, "一般纳税人");
    CHECK_STR(di.seller_tax_id, "9131011259474644XJ");
    CHECK(n == 2 && !strcmp(r[0].type, "026") && !strcmp(r[1].type, "028") &&
          r[0].last - r[0].first + 1 == 100000 && r[1].last - r[1].first + 1 == 100000,
          "demo: a 026 and a 028 roll of 100,000 numbers");
    CHECK_INT(ds.limit_fen, 1000000000);
    CHECK_INT(ds.offline_hours, 72);
    CHECK_INT(ds.offline_amount_fen, 1000000000);
    CHECK_STR(ds.cleared_through, clock_month_period(clock_month_index(clock_now()) - 1, prev));
    CHECK(!ds.locked, "demo device not locked today");
    CHECK_INT(d->ops->verify_pin(d, SIM_DEMO_PIN), FA_OK);
    device_close(d);
}

/* ---- issuing and refusals ---------------------------------------------- */

static void test_issue(const char *path)
{
    struct device *d = NULL;
    struct device_issue_fields f;
    char why[512], got[40];
    int64_t now = iso("2024-11-20T10:00:00+08:00");
    int i;

    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    device_set_clock(d, now);
    CHECK(!status_of(d).locked, "clock in 2024-11: not locked");
    CHECK_INT(begin(d, "026", 100, now, &f), FA_DEV_PIN);
    CHECK_INT(d->ops->verify_pin(d, "87654321"), FA_OK);

    /* rolls of a type in order, then empty */
    const char *want026[] = { "035001900111-00000001", "035001900111-00000002",
                              "035001900112-00000010", "035001900112-00000011" };
    for (i = 0; i < 4; i++) {
        CHECK_INT(issue(d, "026", 11300, now, got), FA_OK);
        CHECK_STR(got, want026[i]);
    }
    CHECK_INT(issue(d, "026", 11300, now, got), FA_DEV_ROLL_EMPTY);
    CHECK_INT(issue(d, "028", 11300, now, got), FA_OK);
    CHECK_STR(got, "035001900211-00000001");
    CHECK_INT(issue(d, "028", 11300, now, got), FA_DEV_ROLL_EMPTY);
    CHECK_INT(issue(d, "004", 11300, now, got), FA_DEV_ROLL_EMPTY);
    CHECK_INT(status_of(d).signed_count, 5);
    CHECK_INT(roll_of(d, "035001900111").next, 3);

    /* per-invoice limit, blue and red, on the amount excluding tax: 1,131.14 at 13 % is
     * 1,001.00 of it; 1,129.99 (999.99 of it) is within although its total is not, and
     * meets the next check, the 026 roll used up above */
    CHECK_INT(begin(d, "026", 113114, now, &f), FA_DEV_LIMIT);
    CHECK_INT(begin(d, "026", -113114, now, &f), FA_DEV_LIMIT);
    CHECK_INT(begin(d, "026", 112999, now, &f), FA_DEV_ROLL_EMPTY);

    /* lock date passed (device clock) */
    device_set_clock(d, iso("2024-12-16T00:00:00+08:00"));
    CHECK(status_of(d).locked, "after the lock date: locked");
    CHECK_INT(begin(d, "026", 100, now, &f), FA_DEV_LOCKED);
    device_set_clock(d, now);
    CHECK_INT(begin(d, "026", 100, now, &f), FA_DEV_ROLL_EMPTY);
    device_close(d);

    /* numbers persist */
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    CHECK_INT(status_of(d).signed_count, 5);
    CHECK_INT(roll_of(d, "035001900112").next, 12);
    device_close(d);
}

/* ---- batches (group commit) ---------------------------------------------- */

static enum fa_err reserve_next(struct device *d, const char *type, int64_t total_fen, int64_t at,
                                struct device_issue_fields *f)
{
    struct device_issue_req req = request(type, total_fen, at);
    return device_issue_reserve_next(d, &req, f);
}

static void test_batch(void)
{
    struct sim_params p;
    struct device *d = NULL;
    struct device_issue_fields f[DEVICE_BATCH_MAX + 1];
    struct device_sign_item items[DEVICE_BATCH_MAX];
    struct device_journal_entry je[DEVICE_BATCH_MAX];
    char sigs[DEVICE_BATCH_MAX][CRYPTO_SIG_B64_MAX], bytes[DEVICE_BATCH_MAX][64];
    char why[512], path[PATH_MAX], got[40];
    const char *want[] = { "035001900111-00000001", "035001900211-00000001",
                           "035001900111-00000002", "035001900111-00000003",
                           "035001900112-00000010" };
    int64_t now = iso("2024-11-20T10:00:00+08:00");
    EVP_PKEY *pub;
    int i, n = 0, bad = 0;

    path_in(path, sizeof path, "batch.json");
    sim_params_demo(&p);
    p.nrolls = 3;
    p.rolls[0] = (struct device_roll){ "026", "035001900111", 1, 3, 0 };
    p.rolls[1] = (struct device_roll){ "028", "035001900211", 1, 5, 0 };
    p.rolls[2] = (struct device_roll){ "026", "035001900112", 10, 40, 0 };
    strcpy(p.cleared_through, "2024-10");
    CHECK_INT(sim_create(path, &p, why, sizeof why), FA_OK);
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    CHECK_INT(device_batch_max(d), DEVICE_BATCH_MAX);
    device_set_clock(d, now);
    CHECK_INT(device_verify_pin(d, p.pin), FA_OK);

    /* reservations follow each roll, and the next roll of a type takes over */
    CHECK_INT(begin(d, "026", 11300, now, &f[0]), FA_OK);
    CHECK_INT(reserve_next(d, "028", 11300, now, &f[1]), FA_OK);
    CHECK_INT(reserve_next(d, "026", 11300, now, &f[2]), FA_OK);
    CHECK_INT(reserve_next(d, "026", 11300, now, &f[3]), FA_OK);
    CHECK_INT(reserve_next(d, "026", 11300, now, &f[4]), FA_OK);
    for (i = 0; i < 5; i++) {
        snprintf(got, sizeof got, "%.15s-%.15s", f[i].code, f[i].number);
        CHECK_STR(got, want[i]);
        invoice_bytes(f[i].code, f[i].number, bytes[i]);
        items[i] = (struct device_sign_item){ .bytes = bytes[i], .len = strlen(bytes[i]) };
        strcpy(items[i].code, f[i].code);
        strcpy(items[i].number, f[i].number);
    }
    CHECK_INT(reserve_next(d, "026", 2000000000, now, &f[5]), FA_DEV_LIMIT);

    /* out of order: refused, nothing signed, the reservations stay */
    struct device_sign_item swapped[2] = { items[1], items[0] };
    CHECK_INT(device_issue_sign_batch(d, 2, swapped, sigs), FA_INVAL);
    CHECK_INT(device_issue_sign_batch(d, 6, items, sigs), FA_INVAL);
    CHECK_INT(status_of(d).signed_count, 0);

    /* the first three, one journal write; the other two are dropped */
    CHECK_INT(device_issue_sign_batch(d, 3, items, sigs), FA_OK);
    CHECK_INT(status_of(d).signed_count, 3);
    CHECK_INT(roll_of(d, "035001900111").next, 3);
    CHECK_INT(roll_of(d, "035001900211").next, 2);
    CHECK_INT(device_read_journal(d, 1, je, DEVICE_BATCH_MAX, &n), FA_OK);
    CHECK_INT(n, 3);
    pub = public_key(d);
    for (i = 0; i < n && pub; i++) {
        bad += je[i].seq != (uint64_t)i + 1 || strcmp(je[i].code, f[i].code) ||
               strcmp(je[i].number, f[i].number) || strcmp(je[i].signature, sigs[i]) ||
               crypto_sm2_verify_b64(pub, bytes[i], strlen(bytes[i]), sigs[i]) != 0;
    }
    CHECK(pub && bad == 0, "journal lines 1-3 in order, their signatures verify (%d bad)", bad);
    EVP_PKEY_free(pub);
    CHECK_INT(device_issue_sign_batch(d, 1, &items[3], sigs), FA_INVAL);

    /* a dropped reservation is handed out again: no gap */
    CHECK_INT(issue(d, "026", 11300, now, got), FA_OK);
    CHECK_STR(got, "035001900111-00000003");

    /* at most DEVICE_BATCH_MAX reserved at once */
    CHECK_INT(begin(d, "026", 100, now, &f[0]), FA_OK);
    for (i = 1; i < DEVICE_BATCH_MAX; i++)
        bad += reserve_next(d, "026", 100, now, &f[i]) != FA_OK;
    CHECK_INT(bad, 0);
    CHECK_INT(reserve_next(d, "026", 100, now, &f[DEVICE_BATCH_MAX]), FA_INVAL);
    for (i = 0; i < DEVICE_BATCH_MAX; i++) {
        invoice_bytes(f[i].code, f[i].number, bytes[i]);
        items[i] = (struct device_sign_item){ .bytes = bytes[i], .len = strlen(bytes[i]) };
        strcpy(items[i].code, f[i].code);
        strcpy(items[i].number, f[i].number);
    }
    CHECK_INT(device_issue_sign_batch(d, DEVICE_BATCH_MAX, items, sigs), FA_OK);
    CHECK_INT(roll_of(d, "035001900112").next, 10 + DEVICE_BATCH_MAX);
    device_close(d);

    /* after a reopen the journal says the same */
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    CHECK_INT(status_of(d).signed_count, 4 + DEVICE_BATCH_MAX);
    CHECK_INT(roll_of(d, "035001900112").next, 10 + DEVICE_BATCH_MAX);
    CHECK_INT(device_read_journal(d, 5, je, DEVICE_BATCH_MAX, &n), FA_OK);
    CHECK(n == DEVICE_BATCH_MAX && !strcmp(je[n - 1].number, f[DEVICE_BATCH_MAX - 1].number) &&
          je[n - 1].seq == 4 + DEVICE_BATCH_MAX, "the batch's last line is seq %d, number %s",
          4 + DEVICE_BATCH_MAX, f[DEVICE_BATCH_MAX - 1].number);
    device_close(d);
}

/* ---- live reload ------------------------------------------------------- */

static void test_live(const char *path)
{
    struct device *d = NULL;
    struct device_issue_fields f;
    struct device_roll add;
    char why[512], got[40], lock[32], *old = NULL, *text = NULL;
    int64_t now = iso("2024-11-20T11:00:00+08:00");

    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    device_set_clock(d, now);
    CHECK_INT(d->ops->verify_pin(d, "87654321"), FA_OK);
    CHECK_INT(issue(d, "026", 100, now, got), FA_DEV_ROLL_EMPTY);

    /* add-roll while open: the waiting type issues from the new roll */
    CHECK_INT(sim_parse_roll("026:035001900113:1:100", &add, why, sizeof why), 0);
    CHECK_INT(sim_admin_add_roll(path, &add, why, sizeof why), FA_OK);
    CHECK_INT(issue(d, "026", 100, now, got), FA_OK);
    CHECK_STR(got, "035001900113-00000001");
    CHECK_INT(sim_admin_add_roll(path, &add, why, sizeof why), FA_INVAL);
    CHECK(strstr(why, "already") != NULL, "the same roll twice is refused: %s", why);
    CHECK_INT(sim_parse_roll("026:0350019001:1:100", &add, why, sizeof why), -1);
    CHECK(strstr(why, "12 digits") != NULL, "a short code is refused: %s", why);
    CHECK_INT(sim_parse_roll("026:035001900114:5:4", &add, why, sizeof why), -1);
    CHECK_INT(sim_parse_roll("026:035001900114:1", &add, why, sizeof why), -1);

    /* limits */
    CHECK_INT(begin(d, "026", 150000, now, &f), FA_DEV_LIMIT);
    CHECK_INT(set1(path, "limit=2000.00"), FA_OK);
    CHECK_INT(status_of(d).limit_fen, 200000);
    CHECK_INT(begin(d, "026", 150000, now, &f), FA_OK);
    CHECK_INT(set1(path, "limit=abc"), FA_INVAL);
    CHECK_INT(set1(path, "nonsense=1"), FA_INVAL);
    {
        char *two[2] = { "offline_hours=12", "limit=-1" };
        CHECK_INT(sim_admin_set(path, two, 2, why, sizeof why), FA_INVAL);
        CHECK(strstr(why, "limit") && strstr(why, "nothing changed"), "all or nothing: %s", why);
        CHECK_INT(status_of(d).offline_hours, 24);
    }

    /* lock date through the admin command */
    CHECK_INT(set1(path, "lock_date=2000-01-01T00:00:00+08:00"), FA_OK);
    CHECK(status_of(d).locked, "lock date in the past: locked");
    CHECK_INT(begin(d, "026", 100, now, &f), FA_DEV_LOCKED);
    CHECK_INT(set1(path, "lock_date=2024-12-15T23:59:59+08:00"), FA_OK);
    CHECK_STR(clock_iso_cst(status_of(d).lock_date, lock), "2024-12-15T23:59:59+08:00");
    CHECK_INT(set1(path, "cleared_through=2024-11"), FA_OK);
    CHECK_STR(status_of(d).cleared_through, "2024-11");

    /* the daemon's next write keeps the admin's change */
    CHECK_INT(set1(path, "offline_hours=48"), FA_OK);
    CHECK_INT(issue(d, "026", 100, now, got), FA_OK);
    CHECK_STR(got, "035001900113-00000002");
    text = show(path);
    CHECK(text && strstr(text, "offline_hours_limit: 48\n"), "admin's offline_hours survives a "
          "signature");
    CHECK(text && strstr(text, "per_invoice_limit: 2000.00\n"), "admin's limit survives too");
    free(text);

    /* a stale file written back (an admin's copy from before a signature)
     * never moves a roll's next number back below the journal */
    old = read_all(path);
    CHECK_INT(issue(d, "026", 100, now, got), FA_OK);
    CHECK_STR(got, "035001900113-00000003");
    {
        char tmp[PATH_MAX + 16];
        snprintf(tmp, sizeof tmp, "%s.stale", path);
        CHECK(old && write_all(tmp, old) == 0 && rename(tmp, path) == 0, "stale state put back");
    }
    CHECK_INT(roll_of(d, "035001900113").next, 4);
    CHECK_INT(issue(d, "026", 100, now, got), FA_OK);
    CHECK_STR(got, "035001900113-00000004");
    free(old);

    /* seller and PIN fields reload too */
    CHECK_INT(set1(path, "seller_name=厦门改名有限公司"), FA_OK);
    {
        struct device_info di;
        device_get_info(d, &di);
        CHECK_STR(di.seller_name, "厦门改名有限公司");
        CHECK_STR(di.machine_number, "499099000777");
    }
    CHECK_INT(set1(path, "roll.035001900113.last=5"), FA_OK);
    CHECK_INT(roll_of(d, "035001900113").last, 5);
    CHECK_INT(issue(d, "026", 100, now, got), FA_OK);
    CHECK_STR(got, "035001900113-00000005");
    CHECK_INT(issue(d, "026", 100, now, got), FA_DEV_ROLL_EMPTY);
    CHECK_INT(set1(path, "roll.035001900113.last=100"), FA_OK);
    CHECK_INT(set1(path, "roll.999999999999.last=100"), FA_INVAL);

    /* a file an admin broke in place: commands that change state refuse,
     * reads go on; repaired, all is well again */
    old = read_all(path);
    CHECK(old && write_all(path, "{ broken") == 0, "state file broken in place");
    CHECK_INT(begin(d, "026", 100, now, &f), FA_DEV_IO);
    CHECK_INT(status_of(d).limit_fen, 200000);
    CHECK(old && write_all(path, old) == 0, "state file repaired in place");
    CHECK_INT(begin(d, "026", 100, now, &f), FA_OK);
    free(old);
    device_close(d);
}

/* ---- journal and period summary ---------------------------------------- */

static void test_journal(const char *path)
{
    struct device *d = NULL;
    struct device_journal_entry e[32];
    struct device_summary sum;
    EVP_PKEY *pub;
    char why[512], bytes[64], *text;
    unsigned char digest[32];
    char hex[65];
    int n = 0, i, bad_sig = 0, bad_hash = 0, bad_seq = 0;
    int64_t blue026 = 0;

    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    CHECK_INT(device_read_journal(d, 1, e, 32, &n), FA_OK);
    CHECK_INT(n, status_of(d).signed_count);
    pub = public_key(d);
    CHECK(pub != NULL, "public key parses");
    for (i = 0; i < n && pub; i++) {
        invoice_bytes(e[i].code, e[i].number, bytes);
        crypto_sm3(bytes, strlen(bytes), digest);
        crypto_hex(digest, 32, hex);
        bad_seq += e[i].seq != (uint64_t)i + 1;
        bad_hash += strcmp(hex, e[i].sm3_hex) != 0;
        bad_sig += crypto_sm2_verify_b64(pub, bytes, strlen(bytes), e[i].signature) != 0;
        blue026 += !strcmp(e[i].type, "026");
    }
    CHECK_INT(bad_seq, 0);
    CHECK_INT(bad_hash, 0);
    CHECK_INT(bad_sig, 0);
    CHECK(n > 2 && !strcmp(e[2].code, "035001900112") && !strcmp(e[2].number, "00000010") &&
          !strcmp(e[2].type, "026") && e[2].total_fen == 11300, "entry 3 is 035001900112-00000010");
    CHECK_INT(device_read_journal(d, 3, e, 2, &n), FA_OK);
    CHECK(n == 2 && e[0].seq == 3 && e[1].seq == 4, "read_journal from 3, max 2");
    CHECK_INT(device_read_journal(d, 1000, e, 2, &n), FA_OK);
    CHECK_INT(n, 0);

    CHECK_INT(device_period_summary(d, "2024-11", &sum), FA_OK);
    CHECK_STR(sum.machine_number, "499099000777");
    CHECK(sum.nlines == 2 && !strcmp(sum.lines[0].type, "026") && !sum.lines[0].red &&
          sum.lines[0].rate_pm == 130 && sum.lines[0].count == blue026 - 0 &&
          !strcmp(sum.lines[1].type, "028") && sum.lines[1].count == 1,
          "summary: 026 blue 13%% x %lld, 028 x 1", (long long)blue026);
    text = device_summary_text(&sum);
    CHECK(text && pub && crypto_sm2_verify_b64(pub, text, strlen(text), sum.signature) == 0,
          "period summary signature verifies with the public key");
    free(text);
    sum.lines[0].count++;
    text = device_summary_text(&sum);
    CHECK(text && pub && crypto_sm2_verify_b64(pub, text, strlen(text), sum.signature) != 0,
          "a changed summary fails verification");
    free(text);
    CHECK_INT(device_period_summary(d, "2024-10", &sum), FA_OK);
    CHECK_INT(sum.nlines, 0);
    EVP_PKEY_free(pub);
    device_close(d);
}

static void test_torn(const char *path)
{
    struct device *d = NULL;
    struct device_journal_entry e[40];
    char why[512], jpath[PATH_MAX + 16], got[40], *text;
    int64_t now = iso("2024-11-21T09:00:00+08:00"), count;
    int n = 0, fd;

    snprintf(jpath, sizeof jpath, "%s.journal", path);
    fd = open(jpath, O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "99 035001900113 000000", 22) == 22, "half a line appended");
    if (fd >= 0)
        close(fd);
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    count = status_of(d).signed_count;
    CHECK_INT(count, 10);
    device_set_clock(d, now);
    CHECK_INT(d->ops->verify_pin(d, "87654321"), FA_OK);
    CHECK_INT(issue(d, "026", 100, now, got), FA_OK);
    CHECK_STR(got, "035001900113-00000006");
    CHECK_INT(device_read_journal(d, 1, e, 40, &n), FA_OK);
    CHECK_INT(n, count + 1);
    CHECK(n > 0 && e[n - 1].seq == (uint64_t)count + 1 && !strcmp(e[n - 1].number, "00000006"),
          "the entry after the torn line reads back");
    device_close(d);
    text = read_all(jpath);
    CHECK(text && !strstr(text, "000000\n") && text[strlen(text) - 1] == '\n',
          "the torn line is gone, the journal ends with a newline");
    free(text);
}

/* Copy the device at `from` (state, journal, index) to `to`, as a crash
 * would leave it: the device at `from` stays open. */
static int snapshot(const char *from, const char *to)
{
    const char *ext[] = { "", ".journal", ".journal.idx" };
    char src[PATH_MAX + 16], dst[PATH_MAX + 16], buf[65536];
    size_t i, n;
    int bad = 0;

    for (i = 0; i < sizeof ext / sizeof *ext; i++) {
        snprintf(src, sizeof src, "%s%s", from, ext[i]);
        snprintf(dst, sizeof dst, "%s%s", to, ext[i]);
        FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
        while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0)
            bad |= fwrite(buf, 1, n, out) != n;
        bad |= !in || !out;
        if (in)
            fclose(in);
        if (out)
            bad |= fclose(out) != 0;
    }
    return bad ? -1 : 0;
}

/* The entries the journal index of the device at path covers (its header:
 * magic, journal size, entry count), or -1. */
static long long index_covers(const char *path)
{
    char ipath[PATH_MAX + 16];
    unsigned char h[24];
    uint64_t n = 0;
    FILE *f;

    snprintf(ipath, sizeof ipath, "%s.journal.idx", path);
    f = fopen(ipath, "rb");
    if (!f)
        return -1;
    if (fread(h, 1, sizeof h, f) == sizeof h)
        memcpy(&n, h + 16, 8);
    fclose(f);
    return n ? (long long)n : -1;
}

/* One byte of the device file path+ext at offset (from the end if < 0). */
static int poke(const char *path, const char *ext, long long offset, char c)
{
    char p[PATH_MAX + 16];
    struct stat st;
    int fd, rc;

    snprintf(p, sizeof p, "%s%s", path, ext);
    fd = open(p, O_WRONLY);
    if (fd < 0 || fstat(fd, &st)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    rc = pwrite(fd, &c, 1, offset < 0 ? st.st_size + offset : offset) == 1 ? 0 : -1;
    close(fd);
    return rc;
}

/* The journal index written at close: a reopen replays only what follows it,
 * and an index that does not match the journal is ignored. */
static void test_index(const char *path)
{
    struct device *d = NULL;
    struct device_journal_entry e[40];
    struct device_summary before, after;
    struct device_roll roll;
    char why[512], ipath[PATH_MAX + 32], old[PATH_MAX + 40], got[40];
    int64_t now = iso("2024-11-22T09:00:00+08:00"), count;
    int n = 0, m = 0;

    snprintf(ipath, sizeof ipath, "%s.journal.idx", path);
    snprintf(old, sizeof old, "%s.old", ipath);
    CHECK(access(ipath, F_OK) == 0, "closing the device wrote the journal index");
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    count = status_of(d).signed_count;
    CHECK_INT(count, 11);
    CHECK_INT(device_read_journal(d, 1, e, 40, &n), FA_OK);
    CHECK_INT(n, count);
    device_period_summary(d, "2024-11", &before);
    CHECK(rename(ipath, old) == 0, "index kept aside");
    device_set_clock(d, now);
    CHECK_INT(d->ops->verify_pin(d, "87654321"), FA_OK);
    CHECK_INT(issue(d, "026", 200, now, got), FA_OK);
    CHECK_STR(got, "035001900113-00000007");
    device_close(d);
    /* as after a crash: the index of the last clean close, behind the journal */
    CHECK(rename(old, ipath) == 0, "the older index back");
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    CHECK_INT(status_of(d).signed_count, count + 1);
    roll = roll_of(d, "035001900113");
    CHECK_INT(roll.next, 8);
    CHECK_INT(device_read_journal(d, 1, e, 40, &m), FA_OK);
    CHECK(m == n + 1 && e[m - 1].seq == (uint64_t)count + 1 && !strcmp(e[m - 1].number, "00000007"),
          "every entry reads back through the index's offsets");
    device_period_summary(d, "2024-11", &after);
    CHECK(after.nlines == before.nlines && after.lines[0].count == before.lines[0].count + 1,
          "the period sums come back and go on");
    device_close(d);
    /* an index that no longer matches: ignored */
    CHECK(poke(path, ".journal.idx", 0, 'X') == 0, "index damaged");
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    CHECK_INT(status_of(d).signed_count, count + 1);
    CHECK_INT(roll_of(d, "035001900113").next, 8);
    device_close(d);
}

/* While the device is open the index follows the journal (once 1,024
 * entries, and a sixteenth of the journal, are not covered), so a crash
 * replays only what came after it; an index whose body does not hash as its
 * header says (a power cut) is not trusted. */
static void test_index_open(void)
{
    struct sim_params p;
    struct device *d = NULL, *c = NULL;
    struct device_journal_entry e[1];
    char why[512], path[PATH_MAX], snap[PATH_MAX], got[40];
    enum fa_err err = FA_OK;
    long long covered;
    int i, n = 0;

    path_in(path, sizeof path, "reindex.json");
    path_in(snap, sizeof snap, "snap.json");
    sim_params_demo(&p);
    p.nrolls = 1;
    CHECK_INT(sim_create(path, &p, why, sizeof why), FA_OK);
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    CHECK_INT(device_verify_pin(d, p.pin), FA_OK);
    for (i = 0; i < 1100 && !err; i++)
        err = issue(d, "026", 100, clock_now(), got);
    CHECK_INT(err, FA_OK);
    covered = index_covers(path);
    CHECK(covered >= 1024 && covered < 1100,
          "the index was rewritten while the device signed (it covers %lld of 1100)", covered);

    /* a crash now, with the first journal line damaged: only a replay from
     * the start would read it (and then lose every entry after it) */
    CHECK_INT(snapshot(path, snap), 0);
    CHECK_INT(poke(snap, ".journal", 0, 'x'), 0);
    for (i = 0; i < 2; i++) {   /* the second time after a close with nothing new */
        CHECK_INT(sim_open(snap, &c, why, sizeof why), FA_OK);
        if (!c)
            break;
        CHECK_INT(status_of(c).signed_count, 1100);
        CHECK_INT(roll_of(c, p.rolls[0].code).next, p.rolls[0].first + 1100);
        device_close(c);
        c = NULL;
    }

    /* the first offset in the index damaged: the body hash refuses it */
    CHECK_INT(snapshot(path, snap), 0);
    CHECK_INT(poke(snap, ".journal.idx", -8 * covered, 1), 0);
    CHECK_INT(sim_open(snap, &c, why, sizeof why), FA_OK);
    if (c) {
        CHECK_INT(status_of(c).signed_count, 1100);
        CHECK_INT(device_read_journal(c, 1, e, 1, &n), FA_OK);
        CHECK(n == 1 && e[0].seq == 1, "entry 1 reads back from the journal, not the bad offset");
        device_close(c);
    }
    CHECK_INT(index_covers(snap), 1100);   /* the refused index, written again at close */
    device_close(d);
}

/* The entries the device at path has once `line` is appended to a copy of
 * it at snap, after `junk` bytes of a line that is no entry (0: none); -2 if
 * the last of them does not read back. */
static int64_t entries_with(const char *path, const char *snap, size_t junk, const char *line)
{
    struct device *d = NULL;
    char jpath[PATH_MAX + 16], why[512];
    int64_t n = -1;
    size_t i;
    FILE *f;

    if (snapshot(path, snap))
        return -1;
    snprintf(jpath, sizeof jpath, "%s.journal", snap);
    f = fopen(jpath, "a");
    if (!f)
        return -1;
    for (i = 0; i < junk; i++)
        fputc('x', f);
    fprintf(f, "%s%s\n", junk ? "\n" : "", line);
    fclose(f);
    if (sim_open(snap, &d, why, sizeof why) == FA_OK) {
        struct device_journal_entry e;
        int got = 0;
        n = status_of(d).signed_count;
        /* the last entry reads back from its offset: -2 if not */
        if (n > 0 && (device_read_journal(d, (uint64_t)n, &e, 1, &got) || got != 1 ||
                      e.seq != (uint64_t)n))
            n = -2;
        device_close(d);
    }
    return n;
}

/* Field by field: the structs' padding is whatever the stack held. */
static bool same_rates(const struct device_rate_sum *a, const struct device_rate_sum *b, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (a[i].rate_pm != b[i].rate_pm || a[i].amount_fen != b[i].amount_fen ||
            a[i].tax_fen != b[i].tax_fen)
            return false;
    return true;
}

/* The journal parser: a line counts only as journal_line() writes it. */
static void test_journal_lines(const char *path)
{
    /* how the next entry is spelt wrong; "%s" is the right spelling */
    const char *bad[] = { "%s ", "+%s", "0%s", " %s", "%s\t", "%s;", "%s:1" };
    struct device *d = NULL;
    char why[512], snap[PATH_MAX], jpath[PATH_MAX + 16], line[1200], next[1200], *text, *last;
    int64_t count = -1;
    size_t i;

    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (d) {
        count = status_of(d).signed_count;
        device_close(d);
        d = NULL;
    }
    snprintf(jpath, sizeof jpath, "%s.journal", path);
    text = read_all(jpath);
    if (!CHECK(text && count > 0 && strlen(text) > 1 && strchr(text, ' '),
               "the journal has %lld entries", (long long)count)) {
        free(text);
        return;
    }
    text[strlen(text) - 1] = 0;
    last = strrchr(text, '\n') ? strrchr(text, '\n') + 1 : text;
    /* the last line, numbered as the next */
    snprintf(next, sizeof next, "%lld%s", (long long)count + 1, strchr(last, ' '));
    free(text);
    path_in(snap, sizeof snap, "lines.json");
    for (i = 0; i <= sizeof bad / sizeof *bad; i++) {
        const char *how = i < sizeof bad / sizeof *bad ? bad[i] : "%s";
        int64_t got;
        snprintf(line, sizeof line, how, next);
        got = entries_with(path, snap, 0, line);
        if (i < sizeof bad / sizeof *bad)
            CHECK(got == count, "spelt \"%s\": not an entry (%lld entries)", how, (long long)got);
        else
            CHECK(got == count + 1, "spelt right: the next entry (%lld entries)", (long long)got);
    }
    /* a line longer than the replay's megabyte buffer neither stops nor
     * hangs the replay: the entry after it counts */
    CHECK_INT(entries_with(path, snap, 3u << 20, next), count + 1);

    /* whatever the formatter writes within a line, the parser reads back:
     * DEVICE_MAX_RATES rates at the largest amounts; one fen more is refused */
    struct device_journal_entry e = { .seq = 1, .code = "031001900111", .number = "00000001",
                                      .type = "026", .issued_at = 1, .total_fen = -10000000000000 },
                                back;
    struct device_rate_sum rates[DEVICE_MAX_RATES], rback[DEVICE_MAX_RATES];
    int nback = -1, len;
    memset(e.sm3_hex, 'f', 64);
    memset(e.signature, 'A', sizeof e.signature - 1);
    for (i = 0; i < DEVICE_MAX_RATES; i++)
        rates[i] = (struct device_rate_sum){ 1000, -10000000000000, -10000000000000 };
    len = sim_format_journal_line(&e, rates, DEVICE_MAX_RATES, line, SIM_JOURNAL_LINE_MAX);
    CHECK(len > 0, "%d rates at -10^13 fen fit in a line (%d bytes)", DEVICE_MAX_RATES, len);
    if (len > 0)
        line[len - 1] = 0;
    CHECK(len > 0 && sim_parse_journal_line(line, &back, rback, &nback) == 0 &&
              nback == DEVICE_MAX_RATES && same_rates(rback, rates, DEVICE_MAX_RATES) &&
              back.total_fen == e.total_fen && !strcmp(back.signature, e.signature),
          "and read back the same (%d rates)", nback);
    rates[DEVICE_MAX_RATES - 1].tax_fen--;
    len = sim_format_journal_line(&e, rates, DEVICE_MAX_RATES, line, SIM_JOURNAL_LINE_MAX);
    if (len > 0)
        line[len - 1] = 0;
    CHECK(len > 0 && sim_parse_journal_line(line, &back, rback, &nback) == -1,
          "one fen beyond 10^13: refused");
}

/* A demo device made afresh as `name` in the test directory, open; its path
 * (PATH_MAX) and parameters into path and p; NULL if that failed. */
static struct device *new_demo(const char *name, char *path, struct sim_params *p)
{
    struct device *d = NULL;
    char why[512];

    path_in(path, PATH_MAX, name);
    sim_params_demo(p);
    CHECK_INT(sim_create(path, p, why, sizeof why), FA_OK);
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    return d;
}

/* A request whose journal line would not read back is refused before a
 * number is reserved; a journal with an entry lost in its middle is refused
 * at open (counting on would hand that entry's number out again). */
static void test_journal_gap(void)
{
    struct sim_params p;
    struct device *d = NULL;
    struct device_issue_fields f;
    struct device_issue_req req = request("026", 113, clock_now());
    char path[PATH_MAX], jpath[PATH_MAX + 16], why[512], got[40], *text, *second;
    int i;

    if (!(d = new_demo("gap.json", path, &p)))
        return;
    CHECK_INT(device_verify_pin(d, p.pin), FA_OK);
    req.rates[0].rate_pm = 2000;
    CHECK_INT(device_issue_begin(d, &req, &f), FA_INVAL);
    req.rates[0].rate_pm = 130;
    req.issued_at = -1;
    CHECK_INT(device_issue_begin(d, &req, &f), FA_INVAL);
    for (i = 0; i < 3; i++)
        CHECK_INT(issue(d, "026", 100, clock_now(), got), FA_OK);
    CHECK_STR(got, "031001900111-00000003");
    device_close(d);
    d = NULL;

    /* entry 2 damaged, and no index to start after it: a crash's state */
    snprintf(jpath, sizeof jpath, "%s.journal.idx", path);
    CHECK_INT(unlink(jpath), 0);
    snprintf(jpath, sizeof jpath, "%s.journal", path);
    text = read_all(jpath);
    second = text ? strchr(text, '\n') : NULL;
    CHECK(second && poke(path, ".journal", second + 1 - text, 'x') == 0, "entry 2 damaged");
    free(text);
    why[0] = 0;
    CHECK(sim_open(path, &d, why, sizeof why) != FA_OK && !d, "the device does not open");
    CHECK(strstr(why, "follows entry 1 with a gap") != NULL, "and says why: %s", why);
    device_close(d);
}

/* ---- the PIN ----------------------------------------------------------- */

static void test_pin(void)
{
    struct sim_params p;
    struct device *d = NULL;
    struct device_issue_fields f;
    char path[PATH_MAX], why[512], got[40], *text;
    int i;

    path_in(path, sizeof path, "pin.json");
    sim_params_demo(&p);
    strcpy(p.pin, "11112222");
    CHECK_INT(sim_create(path, &p, why, sizeof why), FA_OK);
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    for (i = 4; i >= 1; i--) {
        CHECK_INT(d->ops->verify_pin(d, "00000000"), FA_DEV_PIN);
        CHECK_INT(status_of(d).pin_retries_left, i);
    }
    CHECK_INT(d->ops->verify_pin(d, "11112222"), FA_OK);
    CHECK_INT(status_of(d).pin_retries_left, 5);
    for (i = 0; i < 5; i++)
        CHECK_INT(d->ops->verify_pin(d, "00000000"), FA_DEV_PIN);
    CHECK_INT(status_of(d).pin_retries_left, 0);
    CHECK_INT(d->ops->verify_pin(d, "11112222"), FA_DEV_PIN);
    CHECK_INT(begin(d, "026", 100, clock_now(), &f), FA_DEV_PIN);
    device_close(d);

    /* PIN-locked across a reopen, even with the right PIN */
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        return;
    CHECK_INT(status_of(d).pin_retries_left, 0);
    CHECK_INT(d->ops->verify_pin(d, "11112222"), FA_DEV_PIN);
    text = show(path);
    CHECK(text && strstr(text, "pin_locked: yes\n"), "show says pin_locked: yes");
    free(text);
    /* reset, the code path of fapiaofs-sim reset-pin, seen by the open device */
    CHECK_INT(sim_admin_reset_pin(path, why, sizeof why), FA_OK);
    CHECK_INT(status_of(d).pin_retries_left, 5);
    CHECK_INT(d->ops->verify_pin(d, "11112222"), FA_OK);
    CHECK_INT(issue(d, "026", 100, clock_now(), got), FA_OK);
    CHECK_STR(got, "031001900111-00000001");
    /* locked by the admin while logged in: refused too */
    CHECK_INT(set1(path, "pin_retries_left=0"), FA_OK);
    CHECK_INT(begin(d, "026", 100, clock_now(), &f), FA_DEV_PIN);
    CHECK_INT(set1(path, "pin_retries_left=5"), FA_OK);
    CHECK_INT(set1(path, "pin=33334444"), FA_OK);
    CHECK_INT(d->ops->verify_pin(d, "11112222"), FA_DEV_PIN);
    CHECK_INT(d->ops->verify_pin(d, "33334444"), FA_OK);
    CHECK_INT(set1(path, "pin_retries_left=6"), FA_INVAL);
    CHECK_INT(set1(path, "pin=has space"), FA_INVAL);
    device_close(d);
}

/* ---- 反写: clearance answers ------------------------------------------- */

/* What an answer says; the platform signs exactly these values. */
struct answer_fields {
    const char *period, *machine, *lock_date, *per_invoice, *offline_amount;
    int offline_hours;
};

static const struct answer_fields nov = { "2026-11", "499099000001", "2027-01-15T23:59:59+08:00",
                                          "5000000.00", "2000000.00", 48 };

/* The clearance answer of platform/sim.c signed by `signer` over `f`, with
 * platform_public_key when key_b64 is given and lock_date replaced by
 * shown_lock (a tampered answer) when that is given.  malloc'd. */
static char *make_answer(EVP_PKEY *signer, const struct answer_fields *f, const char *key_b64,
                         const char *shown_lock)
{
    char text[256], sig[CRYPTO_SIG_B64_MAX];
    json_t *o;
    char *out;

    snprintf(text, sizeof text, "CLEARANCE %s %s %s %s %d %s", f->period, f->machine, f->lock_date,
             f->per_invoice, f->offline_hours, f->offline_amount);
    if (crypto_sm2_sign_b64(signer, text, strlen(text), sig, sizeof sig))
        return NULL;
    o = json_pack("{s:s,s:s,s:b,s:s,s:{s:s,s:i,s:s},s:s}", "period", f->period,
                  "machine_number", f->machine, "cleared", 1,
                  "lock_date", shown_lock ? shown_lock : f->lock_date,
                  "limits", "per_invoice", f->per_invoice, "offline_hours", f->offline_hours,
                  "offline_amount", f->offline_amount, "signature", sig);
    if (key_b64)
        json_object_set_new(o, "platform_public_key", json_string(key_b64));
    out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

static enum fa_err apply(struct device *d, const char *answer)
{
    return answer ? device_apply_clearance(d, answer, strlen(answer)) : FA_NOMEM;
}

/* apply() of an answer made and freed in place */
static enum fa_err apply_made(struct device *d, EVP_PKEY *signer, const struct answer_fields *f,
                              const char *key_b64, const char *shown_lock)
{
    char *a = make_answer(signer, f, key_b64, shown_lock);
    enum fa_err err = apply(d, a);
    free(a);
    return err;
}

/* A fresh SM2 key pair standing for the platform's, and its base64 SPKI. */
static EVP_PKEY *platform_key(char b64[CRYPTO_PUBLIC_B64_MAX])
{
    char *pem = crypto_sm2_generate_pem();
    EVP_PKEY *key = pem ? crypto_key_from_pem(pem, 1) : NULL;
    free(pem);
    if (key && crypto_public_b64(key, b64, CRYPTO_PUBLIC_B64_MAX)) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

static void set_clock_file(const char *file, const char *when)
{
    write_all(file, when);
    clock_set_file(file);
}

/* Malformed answers, all FA_INVAL, on a logged-in device without a key. */
static void clearance_malformed(struct device *d, EVP_PKEY *pk, const char *pk_b64)
{
    static const char *bad[] = {
        "{", "[]", "null", "{\"period\":\"2026-11\"}",
        "{\"period\":\"2026-11\",\"period\":\"2026-11\"}",
    };
    struct answer_fields a;
    json_t *o, *lim;
    char *ans, *mod;
    size_t i;

    CHECK_INT(device_apply_clearance(d, "", 0), FA_INVAL);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(apply(d, bad[i]) == FA_INVAL, "malformed answer %s is FA_INVAL", bad[i]);
    a = nov;
    a.period = "2026-13";
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_INVAL);
    a = nov;
    a.per_invoice = "1.234";
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_INVAL);
    a = nov;
    a.per_invoice = "0.00";
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_INVAL);
    a = nov;
    a.offline_amount = "-1.00";
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_INVAL);
    a = nov;
    a.offline_hours = -1;
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_INVAL);
    a = nov;
    a.lock_date = "2027-01-15 23:59:59";
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_INVAL);
    a = nov;
    a.lock_date = " 2027-01-15T23:59:59+08:00";   /* would slip a space into the signed text */
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_INVAL);
    a = nov;
    a.machine = "49909900000";
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_INVAL);
    CHECK_INT(apply_made(d, pk, &nov, "AAAA", NULL), FA_INVAL);   /* not a key */

    ans = make_answer(pk, &nov, pk_b64, NULL);
    o = ans ? json_loads(ans, 0, NULL) : NULL;
    lim = json_object_get(o, "limits");
    CHECK(o != NULL, "answer made");
    json_object_set_new(lim, "offline_hours", json_string("48"));
    mod = json_dumps(o, JSON_COMPACT);
    CHECK(apply(d, mod) == FA_INVAL, "offline_hours as a string is FA_INVAL");
    free(mod);
    json_object_set_new(lim, "offline_hours", json_integer(48));
    json_object_set_new(o, "cleared", json_false());
    mod = json_dumps(o, JSON_COMPACT);
    CHECK(apply(d, mod) == FA_INVAL, "\"cleared\": false is FA_INVAL");
    free(mod);
    json_object_set_new(o, "cleared", json_true());
    json_object_del(o, "signature");
    mod = json_dumps(o, JSON_COMPACT);
    CHECK(apply(d, mod) == FA_INVAL, "an answer without signature is FA_INVAL");
    free(mod);
    json_decref(o);
    /* above 64 KiB, even when it is the good answer followed by blanks */
    if (ans) {
        size_t n = 64 * 1024 + 1, len = strlen(ans);
        char *big = malloc(n + 1);
        if (big) {
            memcpy(big, ans, len);
            memset(big + len, ' ', n - len);
            big[n] = 0;
            CHECK_INT(device_apply_clearance(d, big, n), FA_INVAL);
            free(big);
        }
    }
    free(ans);
    CHECK_STR(status_of(d).cleared_through, "2026-10");
}

static void test_clearance(void)
{
    struct sim_params p;
    struct device *d = NULL;
    struct device_issue_fields f;
    struct device_status ds;
    struct answer_fields a;
    EVP_PKEY *pk = NULL, *other = NULL;
    char path[PATH_MAX], clockf[PATH_MAX], why[512], lock[32], pk_b64[CRYPTO_PUBLIC_B64_MAX];
    char other_b64[CRYPTO_PUBLIC_B64_MAX], want[CRYPTO_PUBLIC_B64_MAX + 32], *text, *before, *after;
    json_t *raw;

    path_in(path, sizeof path, "clear.json");
    path_in(clockf, sizeof clockf, "clock");
    /* the day after the lock date that clearing 2026-10 gave: locked until 2026-11 is cleared */
    set_clock_file(clockf, "2026-12-16T10:00:00+08:00");
    pk = platform_key(pk_b64);
    other = platform_key(other_b64);
    CHECK(pk && other && strcmp(pk_b64, other_b64), "two platform SM2 keys made");
    if (!pk || !other)
        goto out;
    sim_params_demo(&p);
    strcpy(p.cleared_through, "2026-10");
    CHECK_INT(sim_create(path, &p, why, sizeof why), FA_OK);
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        goto out;
    ds = status_of(d);
    CHECK_STR(clock_iso_cst(ds.lock_date, lock), "2026-12-15T23:59:59+08:00");
    CHECK(ds.locked, "2026-12-16 with 2026-11 not cleared: locked");
    text = show(path);
    CHECK(text && strstr(text, "platform_key: none (enrolled at the first clearing)\n"),
          "show: no platform key yet");
    free(text);

    /* nothing pinned: refused without a key, and without the PIN */
    CHECK_INT(apply_made(d, pk, &nov, NULL, NULL), FA_PERM);
    CHECK_INT(apply_made(d, pk, &nov, pk_b64, NULL), FA_DEV_PIN);
    text = show(path);
    CHECK(text && strstr(text, "platform_key: none") && strstr(text, "cleared_through: 2026-10\n"),
          "refused answers neither enrol the key nor clear");
    free(text);
    CHECK_INT(d->ops->verify_pin(d, SIM_DEMO_PIN), FA_OK);
    CHECK_INT(begin(d, "026", 100, clock_now(), &f), FA_DEV_LOCKED);
    clearance_malformed(d, pk, pk_b64);

    /* signed right but refused */
    a = nov;
    a.machine = "499099000002";
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_PERM);            /* not this device */
    CHECK_INT(apply_made(d, pk, &nov, pk_b64, "2099-01-15T23:59:59+08:00"), FA_PERM); /* tampered */
    CHECK_INT(apply_made(d, other, &nov, pk_b64, NULL), FA_PERM);       /* not by the key given */
    a = nov;
    a.period = "2026-12";
    a.lock_date = "2027-02-15T23:59:59+08:00";
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_INVAL);           /* skips 2026-11 */
    a.period = "2027-01";
    CHECK_INT(apply_made(d, pk, &a, pk_b64, NULL), FA_INVAL);
    ds = status_of(d);
    CHECK_STR(ds.cleared_through, "2026-10");
    CHECK_INT(ds.limit_fen, 1000000000);

    /* the good answer: cleared, new lock date and limits, key enrolled */
    CHECK_INT(apply_made(d, pk, &nov, pk_b64, NULL), FA_OK);
    ds = status_of(d);
    CHECK_STR(ds.cleared_through, "2026-11");
    CHECK_STR(clock_iso_cst(ds.lock_date, lock), "2027-01-15T23:59:59+08:00");
    CHECK_INT(ds.limit_fen, 500000000);
    CHECK_INT(ds.offline_hours, 48);
    CHECK_INT(ds.offline_amount_fen, 200000000);
    CHECK(!ds.locked, "cleared: no longer locked");
    CHECK_INT(begin(d, "026", 100, clock_now(), &f), FA_OK);
    snprintf(want, sizeof want, "platform_key: %s\n", pk_b64);
    text = show(path);
    CHECK(text && strstr(text, want), "show: the platform key enrolled");
    free(text);

    /* the same answer again (a clearing run again after a crash): OK, nothing written */
    before = read_all(path);
    CHECK_INT(apply_made(d, pk, &nov, pk_b64, NULL), FA_OK);
    CHECK_INT(apply_made(d, pk, &nov, NULL, NULL), FA_OK);   /* the pinned key suffices */
    after = read_all(path);
    CHECK(before && after && !strcmp(before, after), "an answer applied twice changes nothing");
    free(before);
    free(after);
    a = nov;
    a.period = "2026-10";
    a.lock_date = "2026-12-15T23:59:59+08:00";
    CHECK_INT(apply_made(d, pk, &a, NULL, NULL), FA_OK);     /* an older one: also nothing */
    ds = status_of(d);
    CHECK_STR(ds.cleared_through, "2026-11");
    CHECK_STR(clock_iso_cst(ds.lock_date, lock), "2027-01-15T23:59:59+08:00");

    /* after enrolment another key is refused, even when the answer brings it */
    a = nov;
    a.period = "2026-12";
    a.lock_date = "2027-02-15T23:59:59+08:00";
    CHECK_INT(apply_made(d, other, &a, other_b64, NULL), FA_PERM);
    CHECK_STR(status_of(d).cleared_through, "2026-11");
    device_close(d);
    d = NULL;

    /* reopened: all kept, the pinned key too */
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (!d)
        goto out;
    ds = status_of(d);
    CHECK_STR(ds.cleared_through, "2026-11");
    CHECK_STR(clock_iso_cst(ds.lock_date, lock), "2027-01-15T23:59:59+08:00");
    CHECK_INT(ds.limit_fen, 500000000);
    raw = json_load_file(path, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(raw, "platform_key")), pk_b64);
    json_decref(raw);
    CHECK_INT(d->ops->verify_pin(d, SIM_DEMO_PIN), FA_OK);
    /* the pinned key decides: a different supplied key is ignored */
    CHECK_INT(apply_made(d, pk, &a, other_b64, NULL), FA_OK);
    CHECK_STR(status_of(d).cleared_through, "2026-12");

    /* the administrator forgets the key: the next clearing enrols one again */
    CHECK_INT(set1(path, "platform_key=AAAA"), FA_INVAL);
    CHECK_INT(set1(path, "platform_key=not base64!"), FA_INVAL);
    CHECK_INT(set1(path, "platform_key="), FA_OK);
    text = show(path);
    CHECK(text && strstr(text, "platform_key: none (enrolled at the first clearing)\n"),
          "show: key forgotten");
    free(text);
    a.period = "2027-01";
    a.lock_date = "2027-03-15T23:59:59+08:00";
    CHECK_INT(apply_made(d, other, &a, other_b64, NULL), FA_OK);
    snprintf(want, sizeof want, "platform_key: %s\n", other_b64);
    text = show(path);
    CHECK(text && strstr(text, want), "show: the other key enrolled by the open device");
    free(text);
    device_close(d);
    d = NULL;

    /* an old state file without the field loads: no key */
    raw = json_load_file(path, 0, NULL);
    json_object_del(raw, "platform_key");
    CHECK(raw && json_dump_file(raw, path, JSON_INDENT(2)) == 0, "state without platform_key");
    json_decref(raw);
    CHECK_INT(sim_open(path, &d, why, sizeof why), FA_OK);
    if (d)
        CHECK_STR(status_of(d).cleared_through, "2027-01");
    text = show(path);
    CHECK(text && strstr(text, "platform_key: none"), "an old state file: no key pinned");
    free(text);
    {
        char kv[CRYPTO_PUBLIC_B64_MAX + 16];
        snprintf(kv, sizeof kv, "platform_key=%s", pk_b64);
        CHECK_INT(set1(path, kv), FA_OK);
        snprintf(want, sizeof want, "platform_key: %s\n", pk_b64);
        text = show(path);
        CHECK(text && strstr(text, want), "set platform_key=B64 pins it");
        free(text);
    }

    /* created with a key */
    {
        char other_path[PATH_MAX];
        path_in(other_path, sizeof other_path, "clear2.json");
        sim_params_demo(&p);
        strcpy(p.platform_key, "AAAA");
        CHECK_INT(sim_create(other_path, &p, why, sizeof why), FA_INVAL);
        CHECK(strstr(why, "platform_key") != NULL, "a bad key is named: %s", why);
        strcpy(p.platform_key, other_b64);
        CHECK_INT(sim_create(other_path, &p, why, sizeof why), FA_OK);
        snprintf(want, sizeof want, "platform_key: %s\n", other_b64);
        text = show(other_path);
        CHECK(text && strstr(text, want), "create with a platform key pins it");
        free(text);
    }
out:
    if (d)
        device_close(d);
    EVP_PKEY_free(pk);
    EVP_PKEY_free(other);
    clock_set_file(NULL);
}

/* A wrong PIN costs a try but does not log out the session of the right one. */
static void test_pin_session(void)
{
    struct sim_params p;
    struct device *d = NULL;
    struct device_issue_fields f;
    char path[PATH_MAX], why[512];
    int i;

    if (!(d = new_demo("session.json", path, &p)))
        return;
    CHECK_INT(d->ops->verify_pin(d, SIM_DEMO_PIN), FA_OK);
    CHECK_INT(d->ops->verify_pin(d, "WRONG"), FA_DEV_PIN);
    CHECK_INT(status_of(d).pin_retries_left, 4);
    CHECK_INT(begin(d, "026", 100, clock_now(), &f), FA_OK);
    for (i = 3; i >= 1; i--)
        CHECK_INT(d->ops->verify_pin(d, "WRONG"), FA_DEV_PIN);
    CHECK_INT(status_of(d).pin_retries_left, 1);
    CHECK_INT(begin(d, "026", 100, clock_now(), &f), FA_OK);
    CHECK_INT(d->ops->verify_pin(d, "WRONG"), FA_DEV_PIN);   /* the last try: PIN-locked */
    CHECK_INT(status_of(d).pin_retries_left, 0);
    CHECK_INT(begin(d, "026", 100, clock_now(), &f), FA_DEV_PIN);
    CHECK_INT(sim_admin_reset_pin(path, why, sizeof why), FA_OK);
    CHECK_INT(begin(d, "026", 100, clock_now(), &f), FA_DEV_PIN);   /* logged out by the lock */
    CHECK_INT(d->ops->verify_pin(d, SIM_DEMO_PIN), FA_OK);
    CHECK_INT(begin(d, "026", 100, clock_now(), &f), FA_OK);
    device_close(d);
}

/* ---- SIGKILL at random moments ----------------------------------------- */

static void crash_child(const char *path)
{
    struct device *d = NULL;
    char why[512], got[40];
    enum fa_err err;

    if (sim_open(path, &d, why, sizeof why) || d->ops->verify_pin(d, SIM_DEMO_PIN))
        _exit(3);
    for (;;) {
        err = issue(d, "026", 100, clock_now(), got);
        if (err)
            _exit(4);
    }
}

/* After a kill: the state parses, the journal has no gap, and every number
 * in it is below its roll's next (which is exactly one above the last). */
static int crash_check(const char *path, int round, int64_t *signed_total, int *lagged)
{
    struct device *d = NULL;
    struct device_journal_entry e[64];
    struct device_roll r;
    json_t *raw;
    char why[512];
    uint64_t seq = 1;
    int n = 0, bad = 0;
    uint32_t last = 0;
    long long raw_next;

    raw = json_load_file(path, 0, NULL);
    raw_next = json_integer_value(json_object_get(json_array_get(json_object_get(raw, "rolls"), 0),
                                                  "next"));
    json_decref(raw);
    if (sim_open(path, &d, why, sizeof why)) {
        printf("# round %d: %s\n", round, why);
        return -1;
    }
    r = roll_of(d, "031001900111");
    do {
        int i;
        if (device_read_journal(d, seq, e, 64, &n))
            bad++;
        for (i = 0; i < n; i++, seq++) {
            uint32_t num = (uint32_t)strtoul(e[i].number, NULL, 10);
            bad += e[i].seq != seq || strcmp(e[i].code, "031001900111") || num != last + 1 ||
                   num >= r.next;
            last = num;
        }
    } while (n == 64);
    if ((int64_t)seq - 1 != status_of(d).signed_count || r.next != last + 1)
        bad++;
    /* signing does not rewrite the state file: it may lag the journal, never lead it */
    if (raw_next > (long long)r.next)
        bad++;
    *lagged += raw_next < (long long)r.next;
    if (bad)
        printf("# round %d: %d problems, %llu entries, next %u, file next %lld\n", round, bad,
               (unsigned long long)seq - 1, r.next, raw_next);
    *signed_total = (int64_t)seq - 1;
    device_close(d);
    return bad ? -1 : 0;
}

static void test_crash(void)
{
    struct sim_params p;
    char path[PATH_MAX], newpath[PATH_MAX + 16], why[512], kv[40], *text;
    int round, bad = 0, killed = 0, admin_lost = 0, lagged = 0, torn_state = 0;
    int64_t total = 0, before = 0;

    path_in(path, sizeof path, "crash.json");
    sim_params_demo(&p);
    p.nrolls = 1;
    CHECK_INT(sim_create(path, &p, why, sizeof why), FA_OK);
    snprintf(newpath, sizeof newpath, "%s.new", path);
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    for (round = 1; round <= 20; round++) {
        int st = 0;
        pid_t pid = fork();
        if (pid == 0)
            crash_child(path);
        if (pid < 0)
            break;
        usleep(20000 + (useconds_t)(rand() % 60000));
        /* an admin change while the child signs must survive its writes */
        snprintf(kv, sizeof kv, "offline_hours=%d", round);
        if (set1(path, kv))
            admin_lost++;
        usleep((useconds_t)(rand() % 30000));
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
        torn_state += access(newpath, F_OK) == 0;
        unlink(newpath);
        if (crash_check(path, round, &total, &lagged))
            bad++;
        text = show(path);
        snprintf(kv, sizeof kv, "offline_hours_limit: %d\n", round);
        admin_lost += !text || !strstr(text, kv);
        free(text);
        if (total == before)
            printf("# round %d: nothing signed before the kill\n", round);
        before = total;
    }
    printf("# note: of 20 kills, %d were inside the state write (crash.json.new left behind), "
           "%d found the state file behind the journal (it is not rewritten at signing)\n",
           torn_state, lagged);
    CHECK_INT(killed, 20);
    CHECK_INT(bad, 0);
    CHECK_INT(admin_lost, 0);
    CHECK(total > 20, "the children signed %lld invoices in all", (long long)total);
}

int main(void)
{
    char path[PATH_MAX];

    snprintf(dir, sizeof dir, "/tmp/fapiaofs-test-sim.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    path_in(path, sizeof path, "device.json");
    test_create(path);
    test_demo();
    test_issue(path);
    test_batch();
    test_live(path);
    test_journal(path);
    test_torn(path);
    test_index(path);
    test_index_open();
    test_journal_lines(path);
    test_journal_gap();
    test_pin();
    test_pin_session();
    test_clearance();
    test_crash();
    unit_remove_tree(dir);
    return unit_done();
}
