/*
 * notify.h — kernel-cache invalidation after a change, and the store of an
 * invoice's pages (prefill.h).
 *
 * Only inodes are invalidated, attributes only (fuse_lowlevel_notify_
 * inval_inode with offset -1), never names (inval_entry, notify_delete) or
 * pages.  Every name that can appear or vanish (pending/, receipts/,
 * rejected/) has a zero entry timeout, so the kernel asks again at every
 * lookup and a name invalidation would add nothing; and inval_entry takes
 * the directory's lock in the kernel.  A writer in open(O_CREAT) holds that
 * lock while it waits for our answer: if the daemon is killed at that
 * moment, a thread sleeping on the lock keeps /dev/fuse open, the
 * connection is never aborted and the writer never answered — a kill -9
 * that left a zombie and a hung mount (found by tests/crash).  New content
 * gets a new inode, so no page changes in place; invalidating pages would
 * wait for the lock of a page a reader is filling.
 *
 * So the notification is sent at once, by the thread that made the change,
 * even inside a request handler: an attribute invalidation takes no
 * directory, inode or page lock in the kernel (fuse_reverse_inval_inode: an
 * inode lookup, the cached attributes marked stale), only the connection's
 * read side of its unmount lock, which unmount holds for a moment.  Sent
 * before the handler replies, it has reached the kernel when close() or
 * rename() returns: the next stat of pending/ or of the month is fresh.
 * (Until 2026-12-07 a queue and a thread of their own sent them, so close()
 * could return before the kernel had heard, and each draft woke that
 * thread: docs/BENCHMARKS.md, I16.)
 */
#ifndef FAPIAO_FS_NOTIFY_H
#define FAPIAO_FS_NOTIFY_H

#include <stdint.h>
#include "fs/fs.h"

/* From notify_start to notify_stop, notify_inode sends; before and after,
 * it does nothing.  notify_stop is called once no thread can call
 * notify_inode any more (the session loop has returned, pending/'s retry
 * thread is stopped), before the session is destroyed. */
void notify_start(struct fuse_session *se);
void notify_stop(void);

/* The attributes or the listing of inode ino changed (inval_inode).  ENOENT
 * from the kernel (it holds nothing for ino) is the usual answer for a
 * folder nobody has looked at, and fine. */
void notify_inode(uint64_t ino);

/* Put the whole content of file ino, len bytes (its exact size), into the
 * kernel's page cache (notify_store), so that reading it needs no READ.
 * Unlike notify_inode this waits for page locks, and a page being filled
 * stays locked until its READ is answered: the caller must know that no
 * descriptor of ino can be reading (prefill.h: no other handle of it open).
 * 0, or an errno; on an error the reader simply sends READ. */
int notify_store(uint64_t ino, const void *data, size_t len);

#endif
