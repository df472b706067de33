/*
 * tests/crash/writer.c — the writers of the crash harness (tests/crash/README.md).
 *
 * N threads drop drafts into MOUNT/pending/ without end, each by open, two
 * write()s and close(), and record the outcome of every draft in one line of
 * the log: close() returned 0, EINVAL, or the daemon went away (ENOTCONN,
 * ECONNABORTED, ...) before answering.  The harness kills the daemon at random
 * moments meanwhile; crash.py later holds the store to what close() said.
 *
 * The trade-off: one line per outcome, flushed at once (stdio under a lock),
 * so a draft whose close() returned is always on record; the cost, a write to
 * the log per draft, is small next to the daemon's fsync.
 *
 * Kinds of draft (column 1 of the log), all from the example draft (--template):
 *   new       a fresh request_id;
 *   retry     the same request_id and body as a draft whose close did not
 *             return (the writer retries it under a new name, as the spec asks);
 *   dup       the same request_id and body as an issued draft (its receipt
 *             exists): must return 0 with a "duplicate" receipt;
 *   conflict  the request_id of an issued draft with another remark: EINVAL;
 *   bad       invalid (a wrong rate, cut JSON, an unknown field): EINVAL.
 *
 * Log line: KIND NAME REQUEST_ID RESULT ERRNO STAGE MS (tab separated), RESULT
 * one of ok, einval, gone (the daemon went away: unknown outcome), other;
 * STAGE the call that failed (open, write, close); MS the wall clock in ms.
 *
 * While the mount is away (between a kill and the remount) open() fails with
 * ENOTCONN, or ENOENT on the bare mount point: the writer waits 10 ms and tries
 * again; that draft was never written and is not on record.  A descriptor that
 * is not on a FUSE file system (the mount point without its mount) is closed
 * and its file removed at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define FUSE_MAGIC 0x65735546
#define TEMPLATE_RID "SO-2024-000123"
#define WRITERS_MAX 64
#define BODY_MAX 65536

enum kind { K_NEW, K_RETRY, K_DUP, K_CONFLICT, K_BAD };
static const char *const kind_names[] = { "new", "retry", "dup", "conflict", "bad" };

enum result { OUT_OK, OUT_EINVAL, OUT_GONE, OUT_OTHER, OUT_SKIPPED };
static const char *const result_names[] = { "ok", "einval", "gone", "other", "skipped" };

struct options {
    const char *mount, *template_path, *log_path, *stop_path;
    int writers;
    long pause_us;
    uint64_t seed;
};

static struct options opt = { .writers = 8, .pause_us = 10000, .seed = 1 };
static char *template_body;
static size_t template_len;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static long counts[5][5];   /* [kind][result] */

/* A request_id this writer has used and may use again. */
struct rid {
    char rid[48];
    char name[64];          /* the draft that was issued with it (dup, conflict) */
};

struct rid_list {
    struct rid *v;
    size_t n, cap, head;    /* head: FIFO use for the retry list */
};

struct writer {
    int index;
    uint64_t rng;
    long seq, drops;
    struct rid_list issued;   /* close returned 0 and the receipt exists */
    struct rid_list unknown;  /* close did not return: to retry */
};

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;   /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

static bool stopping(void)
{
    return access(opt.stop_path, F_OK) == 0;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "crash-writer: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void list_push(struct rid_list *l, const char *rid, const char *name)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v)
            die("out of memory");
    }
    snprintf(l->v[l->n].rid, sizeof l->v[l->n].rid, "%s", rid);
    snprintf(l->v[l->n].name, sizeof l->v[l->n].name, "%s", name);
    l->n++;
}

/* Copy of `in` with the first `from` replaced by `to`; false when absent. */
static bool replace_first(const char *in, size_t len, const char *from, const char *to, char *out,
                          size_t cap, size_t *out_len)
{
    const char *at = memmem(in, len, from, strlen(from));
    size_t before, flen = strlen(from), tlen = strlen(to);

    if (!at)
        return false;
    before = (size_t)(at - in);
    if (len - flen + tlen > cap)
        return false;
    memcpy(out, in, before);
    memcpy(out + before, to, tlen);
    memcpy(out + before + tlen, at + flen, len - before - flen);
    *out_len = len - flen + tlen;
    return true;
}

/* The body of a draft of kind k with request_id rid; variant picks the
 * kind of invalidity of a bad draft. */
static size_t make_body(enum kind k, const char *rid, unsigned variant, char *out)
{
    char tmp[BODY_MAX];
    size_t len = 0, len2 = 0;

    if (!replace_first(template_body, template_len, TEMPLATE_RID, rid, tmp, sizeof tmp, &len))
        die("the template has no request_id %s", TEMPLATE_RID);
    if (k == K_CONFLICT) {
        if (!replace_first(tmp, len, "HT-001", "HT-999-other", out, BODY_MAX, &len2))
            die("the template has no remark HT-001");
        return len2;
    }
    if (k == K_BAD) {
        switch (variant % 3) {
        case 0:   /* a rate that does not exist */
            if (replace_first(tmp, len, "\"0.06\"", "\"0.07\"", out, BODY_MAX, &len2))
                return len2;
            break;
        case 1:   /* cut JSON */
            memcpy(out, tmp, len / 2);
            return len / 2;
        default:  /* an unknown field */
            if (replace_first(tmp, len, "\"remark\"", "\"remarkz\"", out, BODY_MAX, &len2))
                return len2;
            break;
        }
        die("the template lacks what a bad draft changes");
    }
    memcpy(out, tmp, len);
    return len;
}

static bool daemon_gone(int e)
{
    return e == ENOTCONN || e == ECONNABORTED || e == EIO || e == ENODEV || e == ENXIO;
}

static void record(struct writer *w, enum kind k, const char *name, const char *rid, enum result r,
                   int err, const char *stage)
{
    pthread_mutex_lock(&log_lock);
    counts[k][r]++;
    if (r != OUT_SKIPPED) {
        fprintf(log_file, "%s\t%s\t%s\t%s\t%d\t%s\t%ld\n", kind_names[k], name, rid,
                result_names[r], err, stage, now_ms());
        fflush(log_file);
    }
    pthread_mutex_unlock(&log_lock);
    (void)w;
}

/* One draft: open, two writes, close.  Returns its result. */
static enum result drop(struct writer *w, enum kind k, const char *name, const char *rid,
                        const char *body, size_t len)
{
    char path[4096];
    struct statfs sfs;
    size_t cut, off = 0;
    int fd, e;

    snprintf(path, sizeof path, "%s/pending/%s", opt.mount, name);
    for (;;) {
        if (stopping()) {
            record(w, k, name, rid, OUT_SKIPPED, 0, "open");
            return OUT_SKIPPED;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0 && fstatfs(fd, &sfs) == 0 && sfs.f_type == FUSE_MAGIC)
            break;
        if (fd >= 0) {   /* the bare mount point: never leave a file there */
            close(fd);
            unlink(path);
        } else if (errno != ENOENT && !daemon_gone(errno)) {
            e = errno;
            record(w, k, name, rid, OUT_OTHER, e, "open");
            return OUT_OTHER;
        }
        sleep_us(10000);
    }
    /* two writes, cut at a random place: a kill may fall between them */
    cut = len > 1 ? 1 + next_rand(&w->rng) % (len - 1) : len;
    while (off < len) {
        size_t want = off < cut ? cut - off : len - off;
        ssize_t n = write(fd, body + off, want);
        if (n < 0) {
            e = errno;
            close(fd);
            record(w, k, name, rid, daemon_gone(e) ? OUT_GONE : OUT_OTHER, e, "write");
            return daemon_gone(e) ? OUT_GONE : OUT_OTHER;
        }
        off += (size_t)n;
    }
    if (close(fd) == 0) {
        record(w, k, name, rid, OUT_OK, 0, "close");
        return OUT_OK;
    }
    e = errno;
    if (e == EINVAL) {
        record(w, k, name, rid, OUT_EINVAL, e, "close");
        return OUT_EINVAL;
    }
    record(w, k, name, rid, daemon_gone(e) ? OUT_GONE : OUT_OTHER, e, "close");
    return daemon_gone(e) ? OUT_GONE : OUT_OTHER;
}

/* An issued request_id whose receipt is visible now, or NULL. */
static const struct rid *pick_issued(struct writer *w)
{
    char path[4096];
    const struct rid *r;

    if (!w->issued.n)
        return NULL;
    r = &w->issued.v[next_rand(&w->rng) % w->issued.n];
    snprintf(path, sizeof path, "%s/receipts/%s", opt.mount, r->name);
    return access(path, F_OK) == 0 ? r : NULL;
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    static char bodies[WRITERS_MAX][BODY_MAX];
    char *body = bodies[w->index], rid[48], name[64];
    size_t len;

    while (!stopping()) {
        unsigned dice = (unsigned)(next_rand(&w->rng) % 100);
        const struct rid *orig = NULL;
        enum kind k = K_NEW;
        enum result r;

        if (w->unknown.head < w->unknown.n && next_rand(&w->rng) % 2) {
            k = K_RETRY;
            orig = &w->unknown.v[w->unknown.head];
        } else if (dice < 8) {
            k = K_BAD;
        } else if (dice < 16) {
            orig = pick_issued(w);
            k = orig ? K_DUP : K_NEW;
        } else if (dice < 19) {
            orig = pick_issued(w);
            k = orig ? K_CONFLICT : K_NEW;
        }
        if (orig)
            snprintf(rid, sizeof rid, "%s", orig->rid);
        else
            snprintf(rid, sizeof rid, "%s-w%d-%06ld", k == K_BAD ? "BAD" : "CR", w->index, ++w->seq);
        snprintf(name, sizeof name, "w%d-%06ld.json", w->index, ++w->drops);
        len = make_body(k, rid, dice, body);
        r = drop(w, k, name, rid, body, len);
        if (r == OUT_SKIPPED)
            break;
        if (k == K_RETRY && r != OUT_GONE)
            w->unknown.head++;   /* done with it, whatever the outcome */
        if ((k == K_NEW || k == K_RETRY) && r == OUT_OK)
            list_push(&w->issued, rid, name);
        if (k == K_NEW && r == OUT_GONE)
            list_push(&w->unknown, rid, name);
        if (opt.pause_us > 0)
            sleep_us((long)(next_rand(&w->rng) % (uint64_t)(2 * opt.pause_us + 1)));
    }
    free(w->issued.v);
    free(w->unknown.v);
    return NULL;
}

static void usage(FILE *to)
{
    fprintf(to,
        "usage: crash-writer --mount DIR --template FILE --log FILE --stop FILE\n"
        "                    [--writers N] [--pause-us N] [--seed N]\n"
        "Drops drafts into DIR/pending/ from N threads (8) until FILE --stop exists,\n"
        "pausing 0..2*pause-us between drafts, and logs every outcome (see the source).\n");
}

static long number_arg(const char *s, long lo, long hi, const char *what)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        die("%s: %s is not a number from %ld to %ld", what, s, lo, hi);
    return v;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "mount", required_argument, NULL, 'm' }, { "template", required_argument, NULL, 't' },
        { "log", required_argument, NULL, 'l' }, { "stop", required_argument, NULL, 's' },
        { "writers", required_argument, NULL, 'w' }, { "pause-us", required_argument, NULL, 'p' },
        { "seed", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 } };
    struct writer *w;
    pthread_t th[WRITERS_MAX];
    FILE *f;
    long total = 0;
    int c, i, k;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': opt.mount = optarg; break;
        case 't': opt.template_path = optarg; break;
        case 'l': opt.log_path = optarg; break;
        case 's': opt.stop_path = optarg; break;
        case 'w': opt.writers = (int)number_arg(optarg, 1, WRITERS_MAX, "--writers"); break;
        case 'p': opt.pause_us = number_arg(optarg, 0, 10000000, "--pause-us"); break;
        case 'r': opt.seed = (uint64_t)number_arg(optarg, 0, 0x7fffffffL, "--seed"); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!opt.mount || !opt.template_path || !opt.log_path || !opt.stop_path) {
        usage(stderr);
        return 2;
    }
    f = fopen(opt.template_path, "rb");
    if (!f)
        die("%s: %s", opt.template_path, strerror(errno));
    template_body = malloc(BODY_MAX);
    if (!template_body)
        die("out of memory");
    template_len = fread(template_body, 1, BODY_MAX - 64, f);
    fclose(f);
    log_file = fopen(opt.log_path, "a");
    if (!log_file)
        die("%s: %s", opt.log_path, strerror(errno));
    w = calloc((size_t)opt.writers, sizeof *w);
    if (!w)
        die("out of memory");
    for (i = 0; i < opt.writers; i++) {
        w[i].index = i;
        w[i].rng = (opt.seed + 1) * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 0xBF58476D1CE4E5B9ULL + 1;
        if (pthread_create(&th[i], NULL, writer_main, &w[i]))
            die("cannot start writer %d", i);
    }
    for (i = 0; i < opt.writers; i++)
        pthread_join(th[i], NULL);
    fclose(log_file);
    printf("# writers %d:", opt.writers);
    for (k = 0; k < 5; k++) {
        long n = 0;
        for (c = 0; c < OUT_SKIPPED; c++)
            n += counts[k][c];
        total += n;
        printf(" %s %ld (ok %ld, einval %ld, gone %ld, other %ld);", kind_names[k], n,
               counts[k][OUT_OK], counts[k][OUT_EINVAL], counts[k][OUT_GONE], counts[k][OUT_OTHER]);
    }
    printf(" total %ld\n", total);
    free(w);
    free(template_body);
    return 0;
}
