/*
 * drop.c — the writer of the issuing benchmark (make bench, docs/BENCHMARKS.md).
 *
 *   drop [--fsync] [--writers W] [--count N] [--prefix P] [--template FILE] DIR
 *
 * Drops N drafts into DIR from W threads, each draft the template (by
 * default examples/basic.json) with its own request_id "P-000000001" and
 * name "P-000000001.json": open(O_CREAT|O_TRUNC), one write(), close().
 * With --fsync (the baseline, a plain directory) fsync() comes before
 * close(), so that both sides return only once the draft is durable.
 *
 * Prints one line of key=value pairs: throughput, and the latency of the
 * "commit" step — close() on the mount (that is where the draft is issued),
 * fsync()+close() on a plain directory — and of the whole open-write-close,
 * as p50/p99/max in milliseconds, and the close p50 of the first and of the
 * last tenth of the drafts.  Exit status 1 if any step failed.
 *
 * Trade-off: threads of one process rather than W processes: the FUSE daemon
 * sees the same requests either way, and threads make the start barrier and
 * the latency collection trivial.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "tests/bench/template.h"

struct shared {
    const char *dir, *prefix;
    struct draft_template tpl;
    bool fsync;
    unsigned count, writers;
    pthread_barrier_t start;
    double *commit_ms, *file_ms; /* per draft */
    unsigned errors;
    int first_errno;
    char first_error[4400];
    pthread_mutex_t lock;
};

struct worker {
    struct shared *sh;
    unsigned index;
    pthread_t thread;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void failed(struct shared *sh, const char *what, const char *path, int err)
{
    pthread_mutex_lock(&sh->lock);
    if (!sh->errors++) {
        sh->first_errno = err;
        snprintf(sh->first_error, sizeof sh->first_error, "%s %s: %s", what, path, strerror(err));
    }
    pthread_mutex_unlock(&sh->lock);
}

/* One draft: open, write, [fsync], close; latencies into the shared arrays. */
static void drop_one(struct shared *sh, unsigned k, char *buf, size_t cap)
{
    char path[4096], id[64];
    size_t len;
    double t0, t1;
    ssize_t n;
    int fd;

    snprintf(id, sizeof id, "%s-%09u", sh->prefix, k + 1);
    snprintf(path, sizeof path, "%s/%s.json", sh->dir, id);
    len = template_fill(&sh->tpl, id, buf, cap);
    if (!len) {
        failed(sh, "template too big for", path, EFBIG);
        return;
    }

    t0 = now_ms();
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        failed(sh, "open", path, errno);
        return;
    }
    n = write(fd, buf, len);
    if (n != (ssize_t)len) {
        failed(sh, "write", path, n < 0 ? errno : EIO);
        close(fd);
        return;
    }
    t1 = now_ms();
    if (sh->fsync && fsync(fd)) {
        failed(sh, "fsync", path, errno);
        close(fd);
        return;
    }
    if (close(fd)) {
        failed(sh, "close", path, errno);
        return;
    }
    sh->commit_ms[k] = now_ms() - t1;
    sh->file_ms[k] = now_ms() - t0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    size_t cap = sh->tpl.head_len + sh->tpl.tail_len + 64;
    char *buf = malloc(cap);
    unsigned k;

    pthread_barrier_wait(&sh->start);
    for (k = w->index; buf && k < sh->count; k += sh->writers)
        drop_one(sh, k, buf, cap);
    if (!buf)
        failed(sh, "malloc", "", ENOMEM);
    free(buf);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, size_t n, double p)
{
    size_t rank;
    if (!n)
        return 0;
    rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    return v[(rank > n ? n : rank) - 1];
}

static unsigned parse_count(const char *text, const char *what)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || *end || v < 1 || v > 100000000) {
        fprintf(stderr, "drop: %s: want a number from 1 to 100000000, not \"%s\"\n", what, text);
        exit(2);
    }
    return (unsigned)v;
}

static void usage(void)
{
    fprintf(stderr, "usage: drop [--fsync] [--writers W] [--count N] [--prefix P] [--template FILE] "
                    "DIR\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct shared sh = { .prefix = "bench", .count = 1000, .writers = 1 };
    const char *template_path = "examples/basic.json";
    struct worker *w;
    double t0, wall, *sorted;
    char why[512];
    unsigned i, done;
    int a;

    for (a = 1; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "--fsync"))
            sh.fsync = true;
        else if (!strcmp(argv[a], "--writers") && a + 1 < argc)
            sh.writers = parse_count(argv[++a], "--writers");
        else if (!strcmp(argv[a], "--count") && a + 1 < argc)
            sh.count = parse_count(argv[++a], "--count");
        else if (!strcmp(argv[a], "--prefix") && a + 1 < argc)
            sh.prefix = argv[++a];
        else if (!strcmp(argv[a], "--template") && a + 1 < argc)
            template_path = argv[++a];
        else
            usage();
    }
    if (a + 1 != argc)
        usage();
    sh.dir = argv[a];
    if (template_load(template_path, &sh.tpl, why, sizeof why)) {
        fprintf(stderr, "drop: %s\n", why);
        return 2;
    }
    sh.commit_ms = calloc(sh.count, sizeof *sh.commit_ms);
    sh.file_ms = calloc(sh.count, sizeof *sh.file_ms);
    sorted = calloc(sh.count, sizeof *sorted);
    w = calloc(sh.writers, sizeof *w);
    if (!sh.commit_ms || !sh.file_ms || !sorted || !w) {
        fprintf(stderr, "drop: out of memory\n");
        return 1;
    }
    for (i = 0; i < sh.count; i++)
        sh.commit_ms[i] = sh.file_ms[i] = -1;
    pthread_mutex_init(&sh.lock, NULL);
    pthread_barrier_init(&sh.start, NULL, sh.writers + 1);
    for (i = 0; i < sh.writers; i++) {
        w[i] = (struct worker){ .sh = &sh, .index = i };
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i])) {
            fprintf(stderr, "drop: cannot start writer %u\n", i);
            return 1;
        }
    }
    pthread_barrier_wait(&sh.start);
    t0 = now_ms();
    for (i = 0; i < sh.writers; i++)
        pthread_join(w[i].thread, NULL);
    wall = (now_ms() - t0) / 1e3;

    printf("drafts=%u writers=%u fsync=%d seconds=%.3f", sh.count, sh.writers, sh.fsync, wall);
    printf(" rate=%.1f", (double)(sh.count - sh.errors) / (wall > 0 ? wall : 1e-9));
    for (a = 0; a < 2; a++) {
        const double *v = a ? sh.file_ms : sh.commit_ms;
        for (i = 0, done = 0; i < sh.count; i++)
            if (v[i] >= 0)
                sorted[done++] = v[i];
        qsort(sorted, done, sizeof *sorted, cmp_double);
        printf(" %s_p50_ms=%.3f %s_p99_ms=%.3f %s_max_ms=%.3f", a ? "file" : "close",
               percentile(sorted, done, 50), a ? "file" : "close", percentile(sorted, done, 99),
               a ? "file" : "close", done ? sorted[done - 1] : 0.0);
    }
    /* the first and the last tenth: does a draft cost more as the store grows? */
    for (a = 0; a < 2; a++) {
        unsigned tenth = sh.count / 10 ? sh.count / 10 : 1, from = a ? sh.count - tenth : 0;
        for (i = from, done = 0; i < from + tenth; i++)
            if (sh.commit_ms[i] >= 0)
                sorted[done++] = sh.commit_ms[i];
        qsort(sorted, done, sizeof *sorted, cmp_double);
        printf(" close_%s_p50_ms=%.3f", a ? "last10" : "first10", percentile(sorted, done, 50));
    }
    printf(" errors=%u\n", sh.errors);
    if (sh.errors)
        fprintf(stderr, "drop: %u failed; the first: %s\n", sh.errors, sh.first_error);
    template_free(&sh.tpl);
    free(sh.commit_ms);
    free(sh.file_ms);
    free(sorted);
    free(w);
    return sh.errors ? 1 : 0;
}
