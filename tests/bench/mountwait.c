/*
 * mountwait.c — wait until a FUSE mount answers (make bench's mount time).
 *
 *   mountwait MOUNTPOINT PID [TIMEOUT_SECONDS]
 *
 * Polls every millisecond until MOUNTPOINT is a mount point (its st_dev
 * differs from its parent's, what mountpoint -q checks) and then reads
 * MOUNTPOINT/status to its end: the daemon mounts before it opens the store
 * and the device, so only an answered read shows that it is ready.  Exit 1
 * if PID (the daemon) exits first or the timeout (default 600 s) passes.
 *
 * Trade-off: a program rather than a shell loop of mountpoint -q and sleep,
 * whose fork and 10 ms steps would be most of a small mount time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int mounted(const char *mnt)
{
    char parent[PATH_MAX + 4];
    struct stat a, b;
    snprintf(parent, sizeof parent, "%s/..", mnt);
    return stat(mnt, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

int main(int argc, char **argv)
{
    const struct timespec step = { 0, 1000000 };
    char path[PATH_MAX + 16], buf[65536];
    double deadline;
    long pid;
    ssize_t n;
    int fd;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: mountwait MOUNTPOINT PID [TIMEOUT_SECONDS]\n");
        return 2;
    }
    pid = strtol(argv[2], NULL, 10);
    deadline = now_s() + (argc == 4 ? strtod(argv[3], NULL) : 600);
    while (!mounted(argv[1])) {
        if (kill((pid_t)pid, 0) && errno == ESRCH) {
            fprintf(stderr, "mountwait: the daemon (pid %ld) exited before mounting\n", pid);
            return 1;
        }
        if (now_s() > deadline) {
            fprintf(stderr, "mountwait: %s: not mounted in time\n", argv[1]);
            return 1;
        }
        nanosleep(&step, NULL);
    }
    snprintf(path, sizeof path, "%s/status", argv[1]);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "mountwait: %s: %s\n", path, strerror(errno));
        return 1;
    }
    while ((n = read(fd, buf, sizeof buf)) > 0)
        ;
    close(fd);
    if (n < 0) {
        fprintf(stderr, "mountwait: %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}
