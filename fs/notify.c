/*
 * notify.c — kernel-cache invalidation; see notify.h.
 */
#include <stdatomic.h>
#include "fs/notify.h"

static struct fuse_session *_Atomic notify_session;

void notify_start(struct fuse_session *se)
{
    atomic_store(&notify_session, se);
}

void notify_stop(void)
{
    atomic_store(&notify_session, NULL);
}

void notify_inode(uint64_t ino)
{
    struct fuse_session *se = atomic_load(&notify_session);

    if (se)
        fuse_lowlevel_notify_inval_inode(se, ino, -1, 0);
}
