/*
 * readdir_cursor.c — test helper for tests/mount/test_backup.sh: are readdir
 * offsets cursors that stay valid while entries are added?
 *
 *   readdir_cursor getdents DIR HALF CMD   getdents64 with a small buffer (a few entries per
 *                                          call, so every call is a FUSE READDIR at the last
 *                                          offset), until HALF names are read; run CMD
 *                                          (system()); read to the end
 *   readdir_cursor readdir DIR HALF CMD    the same with opendir()/readdir() (glibc's buffer)
 *   readdir_cursor seek DIR K CMD          readdir K entries, telldir, read the next name A
 *                                          and 3 more, run CMD, seekdir back, read B:
 *                                          prints "A B"
 *
 * The first two print every name returned (not . and ..) one per line, in order.
 * Exit 0, or 2 on a usage or system error (with a message on stderr).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static int dot(const char *n)
{
    return !strcmp(n, ".") || !strcmp(n, "..");
}

static int run(const char *cmd)
{
    int rc;
    fflush(stdout);
    rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "readdir_cursor: command exited %d: %s\n", rc, cmd);
    return rc;
}

static int by_getdents(const char *dir, long half, const char *cmd)
{
    char buf[256];   /* three or four entries: each call is a READDIR at the cursor */
    long seen = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY), ran = 0;

    if (fd < 0) {
        perror(dir);
        return 2;
    }
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf), pos;
        if (n < 0) {
            perror("getdents64");
            return 2;
        }
        if (n == 0)
            break;
        for (pos = 0; pos < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + pos);
            if (!dot(d->d_name)) {
                printf("%s\n", d->d_name);
                seen++;
            }
            pos += d->d_reclen;
        }
        if (!ran && seen >= half) {
            ran = 1;
            if (run(cmd))
                return 2;
        }
    }
    close(fd);
    return 0;
}

static int by_readdir(const char *dir, long half, const char *cmd)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    long seen = 0;
    int ran = 0;

    if (!d) {
        perror(dir);
        return 2;
    }
    for (;;) {
        errno = 0;
        e = readdir(d);
        if (!e)
            break;
        if (dot(e->d_name))
            continue;
        printf("%s\n", e->d_name);
        if (++seen == half && !ran) {
            ran = 1;
            if (run(cmd))
                return 2;
        }
    }
    if (errno) {
        perror("readdir");
        return 2;
    }
    closedir(d);
    return 0;
}

static int by_seek(const char *dir, long k, const char *cmd)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char a[256];
    long i, pos;

    if (!d) {
        perror(dir);
        return 2;
    }
    for (i = 0; i < k;) {
        e = readdir(d);
        if (!e) {
            fprintf(stderr, "readdir_cursor: fewer than %ld entries\n", k);
            return 2;
        }
        if (!dot(e->d_name))
            i++;
    }
    pos = telldir(d);
    e = readdir(d);
    if (!e) {
        fprintf(stderr, "readdir_cursor: nothing after entry %ld\n", k);
        return 2;
    }
    snprintf(a, sizeof a, "%s", e->d_name);
    for (i = 0; i < 3 && readdir(d); i++)
        ;
    if (run(cmd))
        return 2;
    seekdir(d, pos);
    e = readdir(d);
    printf("%s %s\n", a, e ? e->d_name : "(end)");
    closedir(d);
    return 0;
}

int main(int argc, char **argv)
{
    char *end;
    long n;

    if (argc != 5) {
        fprintf(stderr, "usage: %s getdents|readdir|seek DIR N CMD\n", argv[0]);
        return 2;
    }
    errno = 0;
    n = strtol(argv[3], &end, 10);
    if (errno || *end || n < 0) {
        fprintf(stderr, "readdir_cursor: bad number %s\n", argv[3]);
        return 2;
    }
    if (!strcmp(argv[1], "getdents"))
        return by_getdents(argv[2], n, argv[4]);
    if (!strcmp(argv[1], "readdir"))
        return by_readdir(argv[2], n, argv[4]);
    if (!strcmp(argv[1], "seek"))
        return by_seek(argv[2], n, argv[4]);
    fprintf(stderr, "readdir_cursor: unknown mode %s\n", argv[1]);
    return 2;
}
