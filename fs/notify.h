/*
 * notify.h — kernel-cache invalidation after a change.
 *
 * The fuse_lowlevel_notify_* calls must not run inside a request handler:
 * the kernel may hold the directory lock that the invalidation needs (a
 * rename holds both parents'), and the call would wait for itself.  So the
 * handlers only queue what changed, and one thread sends the notifications.
 * The queue is bounded; when it is full the oldest work is merged into a
 * full invalidation of the affected directories, never dropped silently.
 */
#ifndef FAPIAO_FS_NOTIFY_H
#define FAPIAO_FS_NOTIFY_H

#include <stdint.h>
#include "fs/fs.h"

int  notify_start(struct fuse_session *se);
void notify_stop(void);

/* The entry `name` in `parent` changed or appeared (inval_entry). */
void notify_entry(uint64_t parent, const char *name);
/* The entry `name` (inode ino) in `parent` is gone (notify_delete). */
void notify_gone(uint64_t parent, uint64_t ino, const char *name);
/* The attributes or the listing of inode ino changed (inval_inode). */
void notify_inode(uint64_t ino);

#endif
