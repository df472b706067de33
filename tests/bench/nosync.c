/*
 * nosync.c — an LD_PRELOAD library that makes fsync, fdatasync, sync and
 * sync_file_range return at once, for what-if measurements
 * (tests/bench/ab.sh): how fast the daemon issues when its syncs cost
 * nothing, that is, what its own work and the FUSE round trips leave of a
 * target.  Never for real use: nothing the daemon promises about power
 * loss holds under it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>

int fsync(int fd)
{
    (void)fd;
    return 0;
}

int fdatasync(int fd)
{
    (void)fd;
    return 0;
}

void sync(void)
{
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags)
{
    (void)fd;
    (void)offset;
    (void)nbytes;
    (void)flags;
    return 0;
}
