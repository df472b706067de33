/*
 * notify.c — kernel-cache invalidation and page stores; see notify.h.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
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

int notify_store(uint64_t ino, const void *data, size_t len)
{
    struct fuse_session *se = atomic_load(&notify_session);
    struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(len);

    if (!se)
        return ENOTCONN;
    bufv.buf[0].mem = (void *)(uintptr_t)data;   /* only read from */
    return -fuse_lowlevel_notify_store(se, ino, 0, &bufv, 0);
}
