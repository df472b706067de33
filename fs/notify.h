/*
 * notify.h — kernel-cache invalidation after a change.
 *
 * The fuse_lowlevel_notify_* calls must not run inside a request handler:
 * the kernel may hold the directory lock that the invalidation needs (a
 * rename holds both parents'), and the call would wait for itself.  So the
 * handlers only queue what changed, and one thread sends the notifications.
 * The queue is bounded: a ring of 1,024, then a set of 16 distinct inodes.
 * Past both (a burst the thread cannot follow) an invalidation is dropped,
 * and the kernel keeps that inode's attributes until their timeout: at most
 * 1 s for the directories (ll.c stat_ino), none for the names that come
 * and go, which have timeouts of 0.
 *
 * Only inodes are invalidated, never names (inval_entry, notify_delete).
 * Every name that can appear or vanish (pending/, receipts/, rejected/) is
 * given a zero entry timeout, so the kernel asks again at every lookup and a
 * name invalidation would add nothing; and inval_entry takes the directory's
 * lock in the kernel.  A writer in open(O_CREAT) holds that lock while it
 * waits for our answer: if the daemon is killed at that moment, the notify
 * thread sleeps uninterruptibly on the lock, keeps /dev/fuse open, the
 * connection is never aborted and the writer never answered — a kill -9
 * that leaves a zombie and a hung mount (found by tests/crash).
 * inval_inode takes no directory lock.
 */
#ifndef FAPIAO_FS_NOTIFY_H
#define FAPIAO_FS_NOTIFY_H

#include <stdint.h>
#include "fs/fs.h"

int  notify_start(struct fuse_session *se);
void notify_stop(void);

/* The attributes or the listing of inode ino changed (inval_inode). */
void notify_inode(uint64_t ino);

#endif
