/*
 * afterglow.c — see afterglow.h.
 *
 * Ghosts sit in a ring in the order they were made, each alive for
 * AFTERGLOW_MS.  The ring holds GHOSTS of them, a full second up to 4,096
 * drafts/s (SPEC §7's target for eight writers is 4,000/s); past that a
 * ghost is pushed out early, by a draft made that much later.
 *
 * A search by name follows a chain: each of BUCKETS buckets (by a hash of
 * the name) holds the id of its newest ghost, and each ghost the id of the
 * next older one in its bucket.  A link is good while the slot still holds
 * that id, and the walk stops at the first that does not, or at the first
 * ghost past its time: ids, slots and times all go in the order of making,
 * so every ghost older than one overwritten or past its time is too.  So a
 * LOOKUP in pending/, which every new draft's name gets, costs a step or two
 * however many drafts the last second issued; the plain walk back through
 * the ring this replaced cost ~1,000 steps at 1,000 drafts/s, every draft.
 *
 * A ghost's id is its sequence number in its own inode space (SPACE_GHOST):
 * it lives a second and never outlives its mount, so it needs no number from
 * the store, and its slot is found from its id without a search.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "fs/afterglow.h"
#include "fs/fs.h"

#define GHOSTS 4096             /* a second at 4,096 drafts/s: 1.3 MB */
#define BUCKETS 4096            /* a power of two */

/* Linux 6.9's thread pidfds and 6.13's PIDFD_GET_INFO (linux/pidfd.h), which
 * Debian 12's headers predate; the ioctl takes any size from its first. */
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
struct pidfd_info_v0 {
    uint64_t mask, cgroupid;
    uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid, spare0;
};
_Static_assert(sizeof(struct pidfd_info_v0) == 64, "PIDFD_INFO_SIZE_VER0");
#define PIDFD_GET_INFO_V0 _IOWR(0xFF, 11, struct pidfd_info_v0)
#define PIDFD_INFO_PID_V0 1u

struct ghost {
    char name[256];
    uint32_t hash;
    uint64_t id;          /* SPACE_GHOST id: 0 for a slot never used */
    uint64_t older;       /* the id of the next older ghost in its bucket, 0: none */
    pid_t closed_by;      /* the thread whose close issued the draft; 0: ended */
    pid_t process;        /* its process, 0 if unknown */
    int64_t until_ms;     /* CLOCK_MONOTONIC */
    uint64_t size;
    int64_t mtime;
};

struct afterglow {
    pthread_mutex_t lock;
    uint64_t made;        /* ghosts made; the newest has id `made` */
    uint64_t newest[BUCKETS];   /* by name hash: the id of the bucket's newest ghost */
    struct ghost ring[GHOSTS];
};

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

struct afterglow *afterglow_new(void)
{
    struct afterglow *a = calloc(1, sizeof *a);
    if (a)
        pthread_mutex_init(&a->lock, NULL);
    return a;
}

void afterglow_free(struct afterglow *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* Whether /proc shows our pid namespace, as the pids FUSE sends are: a
 * /proc of another one would describe some other task under that number. */
static bool proc_is_ours;

static void check_proc(void)
{
    char link[32], *end;
    ssize_t n = readlink("/proc/self", link, sizeof link - 1);
    if (n > 0) {
        long v;
        link[n] = 0;
        v = strtol(link, &end, 10);
        proc_is_ours = end != link && !*end && v == (long)getpid();
    }
}

/* Whether this kernel has thread pidfds and PIDFD_GET_INFO (Linux 6.9 and
 * 6.13), asked once of a thread of ours: a writer's thread can fail the same
 * calls because it is exiting, which says nothing of the kernel. */
static bool pidfd_info_works;

/* The thread's process, or -errno. */
static pid_t tgid_from_thread_pidfd(pid_t tid)
{
    struct pidfd_info_v0 info = { .mask = PIDFD_INFO_PID_V0 };
    pid_t process;
    int fd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);

    if (fd < 0)
        return -errno;
    if (ioctl(fd, PIDFD_GET_INFO_V0, &info) == 0)
        process = info.tgid > 0 && info.tgid <= INT32_MAX ? (pid_t)info.tgid : 0;
    else
        process = -errno;
    close(fd);
    return process;
}

static void check_pidfd_info(void)
{
    pidfd_info_works = tgid_from_thread_pidfd((pid_t)syscall(SYS_gettid)) == getpid();
}

/* tid's process from a pidfd of the thread: three system calls where /proc
 * costs five and a ~60-line file made and parsed (a tenth of an issuing
 * close's CPU for a multithreaded writer).  0 when the thread is gone, -1
 * when the kernel cannot tell (then /proc). */
static pid_t process_by_pidfd(pid_t tid)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pid_t process;

    pthread_once(&once, check_pidfd_info);
    if (!pidfd_info_works)
        return -1;
    process = tgid_from_thread_pidfd(tid);
    return process == -ESRCH ? 0 : process < 0 ? -1 : process;
}

pid_t afterglow_process_of(pid_t tid)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    char path[48], line[128], *end;
    pid_t process = 0;
    FILE *f;
    int fd;

    if (tid <= 0)
        return 0;   /* the kernel sends 0 for a process outside our pid namespace */
    /* only a process's first thread has a pidfd of its own without
     * PIDFD_THREAD: two system calls for the usual single-threaded writer */
    fd = (int)syscall(SYS_pidfd_open, tid, 0);
    if (fd >= 0) {
        close(fd);
        return tid;
    }
    process = process_by_pidfd(tid);
    if (process >= 0)
        return process;
    process = 0;
    pthread_once(&once, check_proc);
    if (!proc_is_ours)
        return 0;   /* then only the thread that closed finds its ghost */
    snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Tgid:", 5)) {
            long v = strtol(line + 5, &end, 10);
            if (end != line + 5 && v > 0 && v <= INT32_MAX)
                process = (pid_t)v;
            break;
        }
    fclose(f);
    return process;
}

/* The ghost with this id if it is alive; lock held. */
static struct ghost *alive_by_id(struct afterglow *a, uint64_t id)
{
    struct ghost *g = &a->ring[(id - 1) % GHOSTS];
    return id && g->id == id && g->closed_by && g->until_ms > monotonic_ms() ? g : NULL;
}

/* Calls fn for each live ghost named name, newest first, until it returns
 * non-zero; lock held.  Returns that ghost or NULL. */
static struct ghost *each_alive_named(struct afterglow *a, const char *name,
                                      bool (*fn)(struct ghost *g, void *ctx), void *ctx)
{
    uint32_t hash = name_hash(name);
    int64_t now = monotonic_ms();
    uint64_t id;
    struct ghost *g;

    for (id = a->newest[hash % BUCKETS]; id; id = g->older) {
        g = &a->ring[(id - 1) % GHOSTS];
        if (g->id != id || g->until_ms <= now)
            break;   /* overwritten or past its time: so is every older one */
        if (g->closed_by && g->hash == hash && !strcmp(g->name, name) && fn(g, ctx))
            return g;
    }
    return NULL;
}

static bool end_ghost(struct ghost *g, void *ctx)
{
    (void)ctx;
    g->closed_by = 0;
    return false;   /* all of them */
}

void afterglow_add(struct afterglow *a, const char *name, pid_t closed_by, pid_t process,
                   uint64_t size, int64_t mtime)
{
    struct ghost *g;

    if (!a || closed_by <= 0)
        return;
    pthread_mutex_lock(&a->lock);
    each_alive_named(a, name, end_ghost, NULL);   /* one ghost per name: the newest draft's */
    g = &a->ring[a->made++ % GHOSTS];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->hash = name_hash(name);
    g->id = a->made;
    g->older = a->newest[g->hash % BUCKETS];
    a->newest[g->hash % BUCKETS] = g->id;
    g->closed_by = closed_by;
    g->process = process;
    g->until_ms = monotonic_ms() + AFTERGLOW_MS;
    g->size = size;
    g->mtime = mtime;
    pthread_mutex_unlock(&a->lock);
}

struct seer {
    pid_t by, process;    /* the thread asking; its process once read (-1: not yet) */
};

/* Whether the thread asking is of the process that closed g. */
static bool seen_by(struct ghost *g, void *ctx)
{
    struct seer *s = ctx;
    if (s->by == g->closed_by)
        return true;
    if (!g->process)
        return false;
    if (s->process < 0)
        s->process = afterglow_process_of(s->by);   /* another thread: a Go program's, say */
    return s->process == g->process;
}

static void ghost_stat(const struct ghost *g, struct stat *st)
{
    fill_attr(st, ino_make(SPACE_GHOST, g->id), S_IFREG | 0444, g->size, g->mtime);
}

int afterglow_lookup(struct afterglow *a, const char *name, pid_t by, struct stat *st)
{
    struct seer s = { by, -1 };
    struct ghost *g;

    if (!a || by <= 0)
        return ENOENT;
    pthread_mutex_lock(&a->lock);
    g = each_alive_named(a, name, seen_by, &s);
    if (g)
        ghost_stat(g, st);
    pthread_mutex_unlock(&a->lock);
    return g ? 0 : ENOENT;
}

int afterglow_stat(struct afterglow *a, uint64_t id, struct stat *st)
{
    struct ghost *g;

    if (!a)
        return ENOENT;
    pthread_mutex_lock(&a->lock);
    g = alive_by_id(a, id);
    if (g)
        ghost_stat(g, st);
    pthread_mutex_unlock(&a->lock);
    return g ? 0 : ENOENT;
}

int afterglow_end(struct afterglow *a, uint64_t id)
{
    struct ghost *g;

    if (!a)
        return ENOENT;
    pthread_mutex_lock(&a->lock);
    g = alive_by_id(a, id);
    if (g)
        g->closed_by = 0;
    pthread_mutex_unlock(&a->lock);
    return g ? ESTALE : ENOENT;
}
