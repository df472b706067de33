/*
 * dir.h — readdir of every folder of the mount.
 *
 * Offsets are cursors, not indexes: 1 and 2 are "." and "..", and an entry
 * with key k has offset k + 3, where k is its store id (invoices, receipts),
 * 2·id or 2·id+1 (rejected/NAME and NAME.error), a month index (issued/),
 * a pending sequence id or a fixed node number.  Entries added while a
 * listing is under way do not shift the entries after the cursor, and a
 * folder of any size is listed with memory of one reply buffer.
 */
#ifndef FAPIAO_FS_DIR_H
#define FAPIAO_FS_DIR_H

#include <stdbool.h>
#include "fs/fs.h"

/* Replies to the request (fuse_reply_buf or fuse_reply_err).  With plus
 * (readdirplus), invoices come with their attributes; other entries come
 * without, and the kernel looks them up as it would after a readdir. */
void dir_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus);

#endif
