/*
 * test_afterglow.c — fs/afterglow.c: a ghost is found by the thread that
 * closed its draft, by name, for AFTERGLOW_MS, and only the newest of a
 * name; a burst of 4,000 drafts in under a second (SPEC §7's rate for eight
 * writers) keeps the first one's ghost; GETATTR ends a ghost (ESTALE).
 */
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include "fs/afterglow.h"
#include "fs/fs.h"
#include "tests/unit/unit.h"

#define BURST 4000

/* ll.c's, which the test does not link: the fields afterglow.c sets */
void fill_attr(struct stat *st, uint64_t ino, mode_t mode, uint64_t size, int64_t mtime)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_mode = mode;
    st->st_size = (off_t)size;
    st->st_mtime = mtime;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    struct afterglow *a = afterglow_new();
    struct stat st, first;
    char name[64];
    int i, found = 0, found_other = 0;
    double t0;

    CHECK(a != NULL, "afterglow_new");
    if (!a)
        return unit_done();
    /* thread 101 of process 0 (unknown): only that thread finds its ghosts */
    CHECK_INT(afterglow_lookup(a, "a.json", 101, &st), ENOENT);
    afterglow_add(a, "a.json", 101, 0, 10, 1700000000);
    CHECK_INT(afterglow_lookup(a, "a.json", 101, &st), 0);
    CHECK(st.st_size == 10 && st.st_mtime == 1700000000 && (st.st_mode & 0777) == 0444,
          "its attributes: size %lld, mtime %lld, mode %o", (long long)st.st_size,
          (long long)st.st_mtime, (unsigned)st.st_mode);
    CHECK_INT(afterglow_lookup(a, "a.json", 102, &st), ENOENT);
    CHECK_INT(afterglow_lookup(a, "b.json", 101, &st), ENOENT);

    /* the same name again: the newest only, and the older one has ended */
    CHECK_INT(afterglow_lookup(a, "a.json", 101, &first), 0);
    afterglow_add(a, "a.json", 101, 0, 20, 1700000001);
    CHECK_INT(afterglow_lookup(a, "a.json", 101, &st), 0);
    CHECK(st.st_size == 20 && st.st_ino != first.st_ino, "a name issued again: its newest ghost");
    CHECK_INT(afterglow_stat(a, ino_id(first.st_ino), &st), ENOENT);

    /* GETATTR ends it: ESTALE once, then it is gone */
    CHECK_INT(afterglow_lookup(a, "a.json", 101, &st), 0);
    CHECK_INT(afterglow_stat(a, ino_id(st.st_ino), &first), 0);
    CHECK_INT(afterglow_end(a, ino_id(st.st_ino)), ESTALE);
    CHECK_INT(afterglow_end(a, ino_id(st.st_ino)), ENOENT);
    CHECK_INT(afterglow_lookup(a, "a.json", 101, &st), ENOENT);

    /* a burst: every ghost of it is found, the first one too */
    t0 = seconds_now();
    for (i = 0; i < BURST; i++) {
        snprintf(name, sizeof name, "burst-%d.json", i);
        afterglow_add(a, name, 201 + i % 8, 0, (uint64_t)i, 1700000000 + i);
    }
    for (i = 0; i < BURST; i++) {
        snprintf(name, sizeof name, "burst-%d.json", i);
        found += afterglow_lookup(a, name, 201 + i % 8, &st) == 0 && st.st_size == (off_t)i;
        found_other += afterglow_lookup(a, name, 201 + (i + 1) % 8, &st) == 0;
    }
    if (seconds_now() - t0 < AFTERGLOW_MS / 1000.0 - 0.1) {
        CHECK_INT(found, BURST);
        CHECK_INT(found_other, 0);
    } else {
        printf("# the burst took a second (a slow machine): its checks would prove nothing\n");
    }

    /* and after AFTERGLOW_MS, none */
    usleep((AFTERGLOW_MS + 50) * 1000);
    CHECK_INT(afterglow_lookup(a, "burst-0.json", 201, &st), ENOENT);
    CHECK_INT(afterglow_lookup(a, "burst-3999.json", 201 + 3999 % 8, &st), ENOENT);
    afterglow_free(a);
    return unit_done();
}
