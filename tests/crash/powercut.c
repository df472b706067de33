/*
 * powercut.c — an LD_PRELOAD library that lets tests/crash cut the power.
 *
 * A kill -9 keeps everything the daemon wrote: the kernel's page cache
 * survives it.  A power loss keeps only what was synced.  This library
 * records, before every write into the files of one directory
 * (POWERCUT_DIR, the daemon's state directory), the bytes that write is
 * about to overwrite, in an undo log per file (POWERCUT_LOG/NAME.undo); a
 * sync of the file empties its log.  After the daemon is killed,
 * tests/crash/powercut.py can undo each file's writes since its last sync,
 * which is the state a power loss may leave.
 *
 * Undo log: a header "S" + u64 size of the file at its last sync
 * (UINT64_MAX: the file did not exist), then records "W" + u64 offset +
 * u64 length + the old bytes.  Undoing applies the records last first, then
 * cuts the file to the synced size (or removes it).  A record cut short by
 * the kill belongs to a write that never happened, and is ignored.
 *
 * Directory operations (rename, unlink) count as durable at once: the
 * daemon syncs the directory after each one that matters, and this library
 * does not model directory entries.  SQLite's -shm file is mapped, not
 * written, and is left out: it is rebuilt from the WAL after a crash.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define LOG_PATH_MAX (2 * PATH_MAX)   /* POWERCUT_LOG/NAME.undo */

/* Held from the undo record to the end of the write it is for, and across
 * a sync and the log's reset: never for descriptors outside the directory
 * (a FUSE reply must not wait for a sync). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char dir[PATH_MAX], logdir[PATH_MAX];
static int enabled = -1;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_rename)(const char *, const char *);
static int (*real_unlink)(const char *);

static void init(void)
{
    const char *d, *l;
    if (enabled >= 0)
        return;
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat64 = dlsym(RTLD_NEXT, "openat64");
    real_rename = dlsym(RTLD_NEXT, "rename");
    real_unlink = dlsym(RTLD_NEXT, "unlink");
    d = getenv("POWERCUT_DIR");
    l = getenv("POWERCUT_LOG");
    if (!d || !l || !realpath(d, dir) || !realpath(l, logdir)) {
        enabled = 0;
        return;
    }
    enabled = 1;
}

__attribute__((constructor)) static void powercut_init(void) { init(); }

/* The name inside POWERCUT_DIR of an absolute path, or NULL. */
static const char *name_in_dir(const char *path)
{
    size_t n = strlen(dir);
    const char *name;
    if (strncmp(path, dir, n) || path[n] != '/')
        return NULL;
    name = path + n + 1;
    if (!*name || strchr(name, '/'))
        return NULL;
    n = strlen(name);
    if (n > 4 && !strcmp(name + n - 4, "-shm"))
        return NULL;
    return name;
}

static const char *resolve_name(const char *path, char buf[PATH_MAX])
{
    char parent[PATH_MAX], *slash;
    if (realpath(path, buf))
        return name_in_dir(buf);
    /* not there yet: its directory must be */
    snprintf(parent, sizeof parent, "%s", path);
    slash = strrchr(parent, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    if (!realpath(*parent ? parent : "/", buf))
        return NULL;
    if (strlen(buf) + strlen(slash + 1) + 2 > PATH_MAX)
        return NULL;
    strcat(buf, "/");
    strcat(buf, slash + 1);
    return name_in_dir(buf);
}

/* The tracked name of fd (into buf), or NULL.  No cache: stdio closes
 * descriptors behind our back, and numbers are reused. */
static const char *fd_tracked(int fd, char buf[PATH_MAX])
{
    char link[64];
    ssize_t n;

    if (enabled <= 0 || fd < 0)
        return NULL;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, buf, PATH_MAX - 1);
    if (n <= 0)
        return NULL;
    buf[n] = 0;
    return name_in_dir(buf);
}

static void log_path(const char *name, char out[LOG_PATH_MAX])
{
    snprintf(out, LOG_PATH_MAX, "%s/%s.undo", logdir, name);
}

static void put_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = real_write(fd, c, n);
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

/* A fresh log saying the file has `size` bytes durable (UINT64_MAX: none). */
static void log_reset(const char *name, uint64_t size)
{
    char path[LOG_PATH_MAX], head[9] = "S";
    int fd;
    log_path(name, path);
    fd = real_open64(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    memcpy(head + 1, &size, sizeof size);
    put_all(fd, head, sizeof head);   /* a header cut short reads as "nothing to undo" */
    close(fd);
}

/* Open the log for appending, starting it with the current size when there
 * is none (the file is as durable as it is: nothing was written since). */
static int log_open(const char *name, int file_fd)
{
    char path[LOG_PATH_MAX];
    struct stat st;
    int fd;
    log_path(name, path);
    if (access(path, F_OK) != 0)
        log_reset(name, fstat(file_fd, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX);
    fd = real_open64(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    return fd;
}

/* Save the bytes [off, off + len) of file_fd that exist now.  They are read
 * whole before the record is written (through a descriptor of our own: the
 * writer's may be write-only), so that a record is never promised bytes it
 * does not carry; one that cannot be read is not written at all, and the
 * write goes ahead unlogged, as the daemon's would. */
static void log_range(const char *name, int file_fd, uint64_t off, uint64_t len)
{
    char link[64], *rec = NULL;
    struct stat st;
    uint64_t have, done = 0;
    int fd, rd = -1;

    have = fstat(file_fd, &st) == 0 && (uint64_t)st.st_size > off
         ? (uint64_t)st.st_size - off : 0;
    if (have > len)
        have = len;
    rec = malloc(17 + have);
    if (!rec)
        return;
    rec[0] = 'W';
    memcpy(rec + 1, &off, 8);
    memcpy(rec + 9, &have, 8);
    if (have > 0) {
        snprintf(link, sizeof link, "/proc/self/fd/%d", file_fd);
        rd = real_open64(link, O_RDONLY | O_CLOEXEC);
    }
    while (done < have && rd >= 0) {
        ssize_t r = pread(rd, rec + 17 + done, (size_t)(have - done), (off_t)(off + done));
        if (r <= 0)
            break;
        done += (uint64_t)r;
    }
    if (rd >= 0)
        close(rd);
    fd = done == have ? log_open(name, file_fd) : -1;
    if (fd >= 0) {
        put_all(fd, rec, 17 + have);   /* one write: a kill rarely cuts a record */
        close(fd);
    }
    free(rec);
}

static uint64_t current_end(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Where a write() or writev() on fd goes. */
static uint64_t write_position(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    off_t pos;
    if (fl >= 0 && (fl & O_APPEND))
        return current_end(fd);
    pos = lseek(fd, 0, SEEK_CUR);
    return pos < 0 ? 0 : (uint64_t)pos;
}

/* The body of each write call: outside the directory straight through;
 * inside, the undo record of [off, off + len) first, under the lock. */
#define LOGGED(fd, off, len, call)                                           \
    do {                                                                     \
        char path_[PATH_MAX];                                                \
        const char *name_;                                                   \
        init();                                                              \
        name_ = fd_tracked((fd), path_);                                     \
        if (!name_)                                                          \
            return call;                                                     \
        pthread_mutex_lock(&lock);                                           \
        log_range(name_, (fd), (off), (len));                                \
        rc = call;                                                           \
        pthread_mutex_unlock(&lock);                                         \
        return rc;                                                           \
    } while (0)

ssize_t write(int fd, const void *buf, size_t n)
{
    ssize_t rc;
    LOGGED(fd, write_position(fd), n, real_write(fd, buf, n));
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    ssize_t rc;
    size_t n = 0;
    int i;
    for (i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    LOGGED(fd, write_position(fd), n, real_writev(fd, iov, cnt));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t rc;
    LOGGED(fd, (uint64_t)off, n, real_pwrite64(fd, buf, n, off));
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite64(fd, buf, n, off);
}

/* What a shrink to len cuts off; a growth only needs the log to know the
 * old size (an empty record at the end). */
static uint64_t cut_from(int fd, off_t len)
{
    uint64_t end = current_end(fd);
    return (uint64_t)len < end ? (uint64_t)len : end;
}

static uint64_t cut_length(int fd, off_t len)
{
    uint64_t end = current_end(fd);
    return (uint64_t)len < end ? end - (uint64_t)len : 0;
}

int ftruncate64(int fd, off_t len)
{
    int rc;
    LOGGED(fd, cut_from(fd, len), cut_length(fd, len), real_ftruncate64(fd, len));
}

int ftruncate(int fd, off_t len)
{
    return ftruncate64(fd, len);
}

static int synced(int fd, int (*real)(int))
{
    char path[PATH_MAX];
    const char *name;
    int rc;
    name = fd_tracked(fd, path);
    if (!name)
        return real(fd);
    pthread_mutex_lock(&lock);
    rc = real(fd);
    if (rc == 0)
        log_reset(name, current_end(fd));
    pthread_mutex_unlock(&lock);
    return rc;
}

/* init() first: the real functions are looked up there */
int fsync(int fd) { init(); return synced(fd, real_fsync); }
int fdatasync(int fd) { init(); return synced(fd, real_fdatasync); }

/* Before an open that creates or truncates a tracked file: the log must
 * know what was there. */
static void before_open(const char *path, int flags)
{
    char buf[PATH_MAX], lp[LOG_PATH_MAX];
    const char *name;
    struct stat st;
    int fd;

    if (enabled <= 0 || !(flags & (O_CREAT | O_TRUNC)))
        return;
    name = resolve_name(path, buf);
    if (!name)
        return;
    log_path(name, lp);
    if (stat(buf, &st) != 0) {
        if (access(lp, F_OK) != 0)
            log_reset(name, UINT64_MAX);
        return;
    }
    if ((flags & O_TRUNC) && st.st_size > 0) {
        fd = real_open64(buf, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            log_range(name, fd, 0, (uint64_t)st.st_size);
            close(fd);
        }
    }
}

/* The mode argument of an open that creates. */
#define MODE_ARG(flags, mode)                                                \
    do {                                                                     \
        va_list ap_;                                                         \
        if ((flags) & (O_CREAT | O_TMPFILE)) {                               \
            va_start(ap_, flags);                                            \
            (mode) = (mode_t)va_arg(ap_, int);                               \
            va_end(ap_);                                                     \
        }                                                                    \
    } while (0)

/* Every open goes through openat64; a path relative to another directory
 * than the working one is never the state directory's here. */
static int open_logged(int dfd, const char *path, int flags, mode_t mode)
{
    int fd;
    init();
    pthread_mutex_lock(&lock);
    if (dfd == AT_FDCWD || path[0] == '/')
        before_open(path, flags);
    fd = real_openat64(dfd, path, flags, mode);
    pthread_mutex_unlock(&lock);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return open_logged(AT_FDCWD, path, flags, mode);
}

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return open_logged(AT_FDCWD, path, flags, mode);
}

int openat64(int dfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return open_logged(dfd, path, flags, mode);
}

int openat(int dfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return open_logged(dfd, path, flags, mode);
}

int rename(const char *from, const char *to)
{
    char a[PATH_MAX], b[PATH_MAX], la[LOG_PATH_MAX], lb[LOG_PATH_MAX];
    const char *na, *nb;
    int rc;
    init();
    pthread_mutex_lock(&lock);
    na = enabled > 0 ? resolve_name(from, a) : NULL;
    nb = enabled > 0 ? resolve_name(to, b) : NULL;
    rc = real_rename(from, to);
    if (rc == 0 && nb) {
        log_path(nb, lb);
        real_unlink(lb);
        if (na) {
            log_path(na, la);
            real_rename(la, lb);   /* its unsynced writes go with it */
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

int unlink(const char *path)
{
    char p[PATH_MAX], lp[LOG_PATH_MAX];
    const char *name;
    int rc;
    init();
    pthread_mutex_lock(&lock);
    name = enabled > 0 ? resolve_name(path, p) : NULL;
    rc = real_unlink(path);
    if (rc == 0 && name) {
        log_path(name, lp);
        real_unlink(lp);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}
