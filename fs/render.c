/*
 * render.c — README, status, device/ and platform/ files; see render.h.
 *
 * key: value files follow /proc/meminfo style (SPEC §2): lower-case keys,
 * money with exactly two decimals, times ISO 8601 with +08:00.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include "device/crypto.h"
#include "engine/clock.h"
#include "engine/clearing.h"
#include "engine/decimal.h"
#include "engine/summary.h"
#include "fs/fs.h"
#include "fs/pending.h"
#include "fs/render.h"

#define SNAPSHOT_MS 1000

struct text {
    char *buf;
    size_t len, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        char *b;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        b = realloc(t->buf, cap);
        if (!b)
            return;
        t->buf = b;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static const char *fen(int64_t v, char buf[DEC_FMT_MAX])
{
    return dec_format(dec_from_fen(v), 2, buf);
}

static const char *when(int64_t t, char buf[32])
{
    if (!t)
        return "never";
    return clock_iso_cst(t, buf);
}

static void render_readme(struct text *t)
{
    put(t,
        "fapiaofs — VAT e-invoices (发票) issued through file drops\n"
        "\n"
        "TO ISSUE AN INVOICE\n"
        "  Write a JSON draft into pending/, e.g.  cp order-123.json pending/\n"
        "  The draft is processed when the file is closed; close() returns the result:\n"
        "    success   the draft left pending/; the invoice is in issued/YYYY-MM/ and\n"
        "              receipts/NAME says which one it is;\n"
        "    success   but the draft stays in pending/ (read-only): it waits for the\n"
        "              device, and `cat status` says why; it is issued automatically;\n"
        "    EINVAL    \"Invalid argument\": rejected; rejected/NAME.error says why,\n"
        "              one problem per line, naming the field.\n"
        "  Only names ending in .json and not starting with \".\" are drafts.  Write to\n"
        "  any other name (x.json.tmp, .x.json.part) and rename it to x.json when done.\n"
        "  Drafts are at most 1 MiB, in UTF-8 (with or without BOM) or GB18030/GBK.\n"
        "\n"
        "WHAT IS HERE\n"
        "  README            this text\n"
        "  status            one screen of health: device, period, uploads, waiting drafts\n"
        "  pending/          drop drafts here\n"
        "  receipts/NAME     outcome of each issued draft (JSON); rm to acknowledge\n"
        "  rejected/NAME     a rejected draft as dropped, and NAME.error, why; rm to acknowledge\n"
        "  issued/YYYY-MM/   the invoices, CODE-NUMBER.json, immutable and signed by the device\n"
        "  reports/          YYYY-MM.csv: each period's summary, what clearing reports\n"
        "  device/           the tax-control device: info, status, rolls, log\n"
        "  device/clear      echo clear > device/clear  clears the card (清卡) for the\n"
        "                    finished period, once its tax return is filed; cat it to\n"
        "                    see what the last clearing did and why it failed\n"
        "  platform/status   uploads to the tax platform\n"
        "\n"
        "Every draft ever received stays in the store for audit, also after rm.\n"
        "The draft format and everything else: docs/ in the fapiaofs sources, and\n"
        "the manual page there (man -l docs/fapiaofs.8).\n");
}

static void render_device_info(struct text *t)
{
    struct device_info di;
    if (device_get_info(engine_device(g_fs.engine), &di)) {
        put(t, "kind: absent\n");
        return;
    }
    put(t, "kind: %s\nmodel: %s\nmachine_number: %s\nseller_tax_id: %s\nseller_name: %s\n"
           "seller_address_phone: %s\nseller_bank_account: %s\ntaxpayer_kind: %s\n"
           "public_key: %s\n",
        di.kind, di.model, di.machine_number, di.seller_tax_id, di.seller_name,
        di.seller_address_phone, di.seller_bank_account, di.taxpayer_kind, di.public_key);
}

static void render_device_status(struct text *t)
{
    struct device_status ds;
    char a[DEC_FMT_MAX], b[DEC_FMT_MAX], lock[32], period[8];
    if (device_get_status(engine_device(g_fs.engine), &ds)) {
        put(t, "present: no\n");
        return;
    }
    put(t, "present: yes\nperiod: %s\ncleared_through: %s\nlock_date: %s\nlocked: %s\n"
           "per_invoice_limit: %s\noffline_hours_limit: %lld\noffline_amount_limit: %s\n"
           "pin_retries_left: %d\nsigned_invoices: %lld\n",
        clock_period(clock_now(), period), ds.cleared_through, when(ds.lock_date, lock),
        ds.locked ? "yes" : "no", fen(ds.limit_fen, a), (long long)ds.offline_hours,
        fen(ds.offline_amount_fen, b), ds.pin_retries_left, (long long)ds.signed_count);
}

static void render_device_rolls(struct text *t)
{
    struct device_roll r[DEVICE_MAX_ROLLS];
    int n = 0, i;
    device_list_rolls(engine_device(g_fs.engine), r, DEVICE_MAX_ROLLS, &n);
    for (i = 0; i < n; i++)   /* SPEC §2: one line per roll, nothing else */
        put(t, "%s %s %08u %08u %08u %u\n", r[i].type, r[i].code, r[i].first, r[i].last,
            r[i].next, r[i].next > r[i].last ? 0 : r[i].last - r[i].next + 1);
    if (!t->len)
        put(t, "%s", "");   /* none (a USB device absent): an empty file, not ENOMEM */
}

/* yes / no, or unknown before the first call */
static const char *platform_reachability(const struct platform_status *ps)
{
    if (!ps->last_contact && !ps->last_error[0])
        return "unknown";
    return ps->reachable ? "yes" : "no";
}

#define LOG_LINES_MAX 20000

static int log_line(void *ctx, int64_t id, int64_t at, int64_t uid, const char *op,
                    const char *result)
{
    struct text *t = ctx;
    char when[32];
    (void)id;
    put(t, "%s uid=%lld %s: %s\n", clock_iso_cst(at, when), (long long)uid, op, result);
    return 0;
}

/* The history of device operations, oldest first (the newest LOG_LINES_MAX). */
static void render_device_log(struct text *t)
{
    struct store_counts sc;
    store_counts(engine_store(g_fs.engine), &sc);
    store_list_log(engine_store(g_fs.engine), sc.log_entries > LOG_LINES_MAX ?
                   sc.log_last_id - LOG_LINES_MAX : 0, LOG_LINES_MAX, log_line, t);
    if (!t->len)
        put(t, "%s", "");
}

static void render_platform_status(struct text *t)
{
    struct platform_status ps;
    struct store_counts sc;
    struct store_refused r;
    char c1[32], c2[32], c3[32], a[DEC_FMT_MAX];
    uploader_status(engine_uploader(g_fs.engine), &ps);
    store_counts(engine_store(g_fs.engine), &sc);
    put(t, "url: %s\nreachable: %s\nlast_contact: %s\nlast_error: %s\nqueued: %lld\n"
           "queued_amount: %s\noldest: %s\nnext_retry: %s\n",
        ps.url[0] ? ps.url : "(not configured)", platform_reachability(&ps),
        when(ps.last_contact, c1), ps.last_error[0] ? ps.last_error : "none",
        (long long)sc.upload_queued, fen(sc.upload_queued_fen, a),
        when(sc.upload_oldest_issued_at, c2), when(ps.next_retry, c3));
    /* Invoices the platform refused for good stay queued outside the order
     * (engine/upload.c); last_error forgets them at the next success. */
    if (store_first_refused(engine_store(g_fs.engine), &r) == FA_OK)
        put(t, "refused: %lld\nrefused_first: %s-%s: %s\n", (long long)r.count, r.code, r.number,
            r.error);
    else
        put(t, "refused: 0\n");
}

/* The device's line in status: what stops issuing first, or "ready". */
static const char *device_state(const struct device_status *ds, char *buf, size_t len)
{
    if (ds->pin_retries_left <= 0)
        return "PIN-locked after 5 wrong PINs (its administrator must reset it)";
    if (!ds->session_open) {
        snprintf(buf, len, "PIN refused, %d tries left (correct [device] pin_file and remount, or "
                 "echo clear pin=PIN > device/clear)", ds->pin_retries_left);
        return buf;
    }
    return ds->locked ? "locked (echo clear > device/clear)" : "ready";
}

static void render_status(struct text *t)
{
    struct device_status ds;
    struct store_counts sc;
    char now[32], lock[32], ran[32], oldest[32], a[DEC_FMT_MAX], b[DEC_FMT_MAX], state[160], *lines;
    bool have_ds;
    struct platform_status ps;
    struct engine_reconcile rec;
    struct device_info di;

    store_counts(engine_store(g_fs.engine), &sc);
    uploader_status(engine_uploader(g_fs.engine), &ps);
    have_ds = device_get_status(engine_device(g_fs.engine), &ds) == FA_OK;
    if (have_ds)
        put(t, "device: %s\nperiod: %s\ncleared_through: %s\nlock_date: %s\n",
            device_state(&ds, state, sizeof state), clock_period(clock_now(), now),
            ds.cleared_through, when(ds.lock_date, lock));
    else if (device_get_info(engine_device(g_fs.engine), &di) == FA_OK && di.model[0])
        put(t, "device: absent\ndevice_reason: %s\n", di.model);
    else
        put(t, "device: absent\n");
    put(t, "invoices: %lld\nrejected: %lld\n", (long long)sc.invoices, (long long)sc.rejected);
    engine_reconcile_report(g_fs.engine, &rec);
    put(t, "reconciliation: device journal %lld, store %lld, restored %lld, alarms %lld%s%s\n",
        (long long)rec.journal, (long long)rec.store, (long long)rec.restored,
        (long long)rec.alarms, rec.last[0] ? "; last: " : "", rec.last);   /* long: see device/log */
    /* the counts above are the comparison's, not today's: say when it ran */
    put(t, "reconciled_at: %s\n", when(rec.at, ran));
    put(t, "platform: %s\nplatform_error: %s\nupload_queued: %lld\nupload_queued_amount: %s\n",
        !ps.url[0] ? "not configured" : !ps.last_contact && !ps.last_error[0] ? "unknown (no call yet)"
        : ps.reachable ? "reachable" : "unreachable",
        ps.last_error[0] ? ps.last_error : "none", (long long)sc.upload_queued,
        fen(sc.upload_queued_fen, a));
    /* Offline usage against the device's limits (SPEC §5.3): the amount is of
     * blue invoices only, which is what the limit counts (red ones do not
     * give room back), so it can differ from upload_queued_amount. */
    if (have_ds)
        put(t, "offline_amount: %s\noffline_amount_limit: %s\noffline_oldest: %s\n"
               "offline_hours_limit: %lld\n", fen(sc.upload_queued_blue_fen, a),
            fen(ds.offline_amount_fen, b), when(sc.upload_oldest_issued_at, oldest),
            (long long)ds.offline_hours);
    put(t, "waiting: %lld\n", (long long)sc.drafts_waiting);
    lines = pending_waiting_text(g_fs.pending, 8);   /* status stays one screen */
    if (lines) {
        put(t, "%s", lines);
        free(lines);
    }
}

/*
 * Snapshots and pins.  A generated file is rendered at most once a second
 * into an immutable, reference-counted snapshot; its mtime changes only when
 * its bytes do.  The first stat or open of a file by a process pins the
 * snapshot it saw to (file, pid) for PIN_MS, and that process keeps seeing
 * it: tar's lstat, open, read and fstat agree even when the file changes in
 * between, so tar never reports "file changed as we read it".  The pin goes
 * when the process closes its last descriptor of the file: tar is done with
 * it then, and a process that opens status again (a monitor polling it)
 * must see what changed, not the same bytes for ten seconds.
 */
#define PIN_MS 10000
#define PINS 64

struct snapshot {
    int refs;
    char *buf;
    size_t len;
    int64_t mtime;          /* wall clock when these bytes first appeared */
    struct timespec at;     /* monotonic, when last confirmed current */
};

struct pin {
    uint64_t ino;
    pid_t pid;
    struct snapshot *snap;
    struct timespec at;
    int opens;              /* the process's open descriptors of the file */
};

/* The current snapshot of each file: fixed nodes, and the reports of the
 * periods read lately (a report not read for a while is re-rendered). */
#define SLOTS (FIXED_COUNT + 32)
struct slot {
    uint64_t ino;
    struct snapshot *snap;
};

static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SLOTS];
static struct pin pins[PINS];

static long elapsed_ms(const struct timespec *from)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - from->tv_sec) * 1000 + (now.tv_nsec - from->tv_nsec) / 1000000;
}

static void snap_unref(struct snapshot *s)
{
    if (s && --s->refs == 0) {
        free(s->buf);
        free(s);
    }
}

static bool is_static(uint64_t ino)
{
    return ino == FIXED_README || ino == FIXED_DEVICE_TAG || ino == FIXED_PLATFORM_TAG;
}

/* reports/YYYY-MM.csv: the period's summary from the store (SPEC §5.4). */
static int render_report(uint64_t month, struct text *t)
{
    struct device_summary sum;
    char period[8], *csv;
    size_t len = 0;

    if (!store_has_period(engine_store(g_fs.engine), (int)month))
        return ENOENT;
    if (store_period_summary(engine_store(g_fs.engine), clock_month_period((int)month, period), &sum))
        return EIO;
    csv = summary_csv(&sum, &len);
    if (!csv)
        return ENOMEM;
    put(t, "%.*s", (int)len, csv);
    free(csv);
    return 0;
}

static void render_device_clear(struct text *t)
{
    char *text = clear_last_text(g_fs.engine);
    if (text)
        put(t, "%s", text);
    free(text);
}

/* Render ino into text; 0 or an errno. */
static int render(uint64_t ino, struct text *t)
{
    if (ino_space(ino) == SPACE_REPORT)
        return render_report(ino_id(ino), t);
    switch (ino) {
    case FIXED_README: render_readme(t); break;
    case FIXED_STATUS: render_status(t); break;
    case FIXED_DEVICE_INFO: render_device_info(t); break;
    case FIXED_DEVICE_STATUS: render_device_status(t); break;
    case FIXED_DEVICE_ROLLS: render_device_rolls(t); break;
    case FIXED_PLATFORM_STATUS: render_platform_status(t); break;
    case FIXED_DEVICE_LOG: render_device_log(t); break;
    case FIXED_DEVICE_CLEAR: render_device_clear(t); break;
    case FIXED_DEVICE_TAG:
    case FIXED_PLATFORM_TAG:
        /* https://bford.info/cachedir/: the signature line, then a comment */
        put(t, "Signature: 8a477f597d28d172789f06886806bc55\n"
               "# This folder shows volatile state of fapiaofs; backups may skip it.\n");
        break;
    default:
        return ENOENT;
    }
    return 0;
}

/* When these bytes of ino first appeared, remembered across remounts. */
static int64_t bytes_mtime(uint64_t ino, const char *buf, size_t len)
{
    unsigned char digest[32];
    char hex[65], name[64];
    uint64_t parent = FIXED_ROOT, unused;
    const char *leaf = fixed_name(ino, &parent);
    char period[8];

    crypto_sha256(buf, len, digest);
    crypto_hex(digest, 16, hex);
    if (ino_space(ino) == SPACE_REPORT)
        snprintf(name, sizeof name, "reports/%s.csv", clock_month_period((int)ino_id(ino), period));
    else
        snprintf(name, sizeof name, "%s/%s", parent == FIXED_ROOT ? "" : fixed_name(parent, &unused),
                 leaf ? leaf : "?");
    return store_render_mtime(engine_store(g_fs.engine), name, hex, clock_now());
}

/* The slot of ino: its own, a free one, or the one read longest ago. */
static struct slot *slot_of(uint64_t ino)
{
    struct slot *free_slot = NULL, *oldest = NULL;
    int i;

    if (ino_space(ino) == SPACE_FIXED)
        return &slots[ino];
    for (i = FIXED_COUNT; i < SLOTS; i++) {
        struct slot *sl = &slots[i];
        if (sl->snap && sl->ino == ino)
            return sl;
        if (!sl->snap && !free_slot)
            free_slot = sl;
        if (sl->snap && (!oldest || sl->snap->at.tv_sec < oldest->snap->at.tv_sec))
            oldest = sl;
    }
    if (free_slot)
        return free_slot;
    snap_unref(oldest->snap);
    oldest->snap = NULL;
    return oldest;
}

/* The current snapshot of ino, re-rendered if older than a second; lock held. */
static struct snapshot *current_snapshot(uint64_t ino, int *err)
{
    struct slot *sl = slot_of(ino);
    struct snapshot *s = sl->snap, *n;
    struct text t = { 0 };

    if (s && (is_static(ino) || elapsed_ms(&s->at) < SNAPSHOT_MS))
        return s;
    *err = render(ino, &t);
    if (*err)
        return NULL;
    if (!t.buf) {
        *err = ENOMEM;
        return NULL;
    }
    if (s && s->len == t.len && !memcmp(s->buf, t.buf, t.len)) {
        free(t.buf);   /* same bytes: same snapshot, same mtime */
        clock_gettime(CLOCK_MONOTONIC, &s->at);
        return s;
    }
    n = calloc(1, sizeof *n);
    if (!n) {
        free(t.buf);
        *err = ENOMEM;
        return NULL;
    }
    n->refs = 1;
    n->buf = t.buf;
    n->len = t.len;
    n->mtime = is_static(ino) ? g_fs.created_at : bytes_mtime(ino, t.buf, t.len);
    clock_gettime(CLOCK_MONOTONIC, &n->at);
    snap_unref(s);
    sl->ino = ino;
    sl->snap = n;
    return n;
}

/* The pin of (ino, pid), current or expired, or NULL; snap_lock held. */
static struct pin *find_pin(uint64_t ino, pid_t pid)
{
    int i;

    for (i = 0; i < PINS; i++)
        if (pins[i].snap && pins[i].ino == ino && pins[i].pid == pid)
            return &pins[i];
    return NULL;
}

/* The snapshot process pid sees of ino: its pin, or the current one (then pinned). */
static struct snapshot *reader_snapshot(uint64_t ino, pid_t pid, int *err)
{
    struct pin *oldest = &pins[0], *mine, *slot;
    int opens;
    struct snapshot *s;
    int i;

    for (i = 0; i < PINS; i++) {
        struct pin *p = &pins[i];
        if (p->snap && p->ino == ino && p->pid == pid && elapsed_ms(&p->at) < PIN_MS)
            return p->snap;
        if (!p->snap || p->at.tv_sec < oldest->at.tv_sec ||
            (p->at.tv_sec == oldest->at.tv_sec && p->at.tv_nsec < oldest->at.tv_nsec))
            oldest = p;
    }
    s = current_snapshot(ino, err);
    if (!s || is_static(ino))
        return s;
    mine = find_pin(ino, pid);   /* an expired pin of this reader: replaced in place */
    slot = mine ? mine : oldest;
    opens = mine ? mine->opens : 0;   /* its descriptors still count */
    snap_unref(slot->snap);
    s->refs++;
    *slot = (struct pin){ .ino = ino, .pid = pid, .snap = s, .opens = opens };
    clock_gettime(CLOCK_MONOTONIC, &slot->at);
    return s;
}

/* Files rendered here: the fixed ones, and reports. */
static bool renderable(uint64_t ino)
{
    return (ino_space(ino) == SPACE_FIXED && ino < FIXED_COUNT) || ino_space(ino) == SPACE_REPORT;
}

int render_snapshot(uint64_t ino, pid_t pid, char **buf, size_t *len)
{
    struct snapshot *s;
    int rc = 0;

    if (!renderable(ino))
        return ENOENT;
    pthread_mutex_lock(&snap_lock);
    s = reader_snapshot(ino, pid, &rc);
    if (s) {
        *buf = malloc(s->len + 1);
        if (*buf) {
            struct pin *p = find_pin(ino, pid);
            memcpy(*buf, s->buf, s->len);
            *len = s->len;
            if (p)
                p->opens++;
        } else {
            rc = ENOMEM;
        }
    }
    pthread_mutex_unlock(&snap_lock);
    return rc;
}

void render_closed(uint64_t ino, pid_t pid)
{
    struct pin *p;

    pthread_mutex_lock(&snap_lock);
    p = find_pin(ino, pid);
    if (p && --p->opens <= 0) {
        snap_unref(p->snap);
        *p = (struct pin){ 0 };
    }
    pthread_mutex_unlock(&snap_lock);
}

void render_unpin(uint64_t ino)
{
    int i;

    pthread_mutex_lock(&snap_lock);
    for (i = 0; i < PINS; i++)
        if (pins[i].snap && pins[i].ino == ino && pins[i].opens <= 0) {
            snap_unref(pins[i].snap);
            pins[i] = (struct pin){ 0 };
        }
    pthread_mutex_unlock(&snap_lock);
}

void render_meta(uint64_t ino, pid_t pid, uint64_t *size, int64_t *mtime)
{
    struct snapshot *s;
    int rc = 0;

    *size = 0;
    *mtime = g_fs.created_at;
    if (!renderable(ino))
        return;
    pthread_mutex_lock(&snap_lock);
    s = reader_snapshot(ino, pid, &rc);
    if (s) {
        *size = s->len;
        *mtime = s->mtime;
    }
    pthread_mutex_unlock(&snap_lock);
}

void render_invalidate(void)
{
    int i;
    pthread_mutex_lock(&snap_lock);
    for (i = 0; i < SLOTS; i++)
        if (slots[i].snap && !is_static(slots[i].ino))
            slots[i].snap->at.tv_sec -= SNAPSHOT_MS / 1000 + 1;   /* expired */
    pthread_mutex_unlock(&snap_lock);
}

void render_cleanup(void)
{
    int i;
    pthread_mutex_lock(&snap_lock);
    for (i = 0; i < PINS; i++) {
        snap_unref(pins[i].snap);
        pins[i].snap = NULL;
    }
    for (i = 0; i < SLOTS; i++) {
        snap_unref(slots[i].snap);
        slots[i].snap = NULL;
    }
    pthread_mutex_unlock(&snap_lock);
}
