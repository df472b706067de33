/*
 * nosync.c — an LD_PRELOAD library that makes fsync, fdatasync and sync
 * return at once, for what-if measurements (tests/bench/ab.sh): how fast
 * the daemon issues when its syncs cost nothing, that is, what its own work
 * and the FUSE round trips leave of a target.  Never for real use: nothing
 * the daemon promises about power loss holds under it.
 */
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
