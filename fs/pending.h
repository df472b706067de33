/*
 * pending.h — the pending/ folder (SPEC §2.1).
 *
 * Its files live in daemon memory while they are written: a draft is only
 * handed to the engine when its last write is closed (flush of a handle that
 * wrote) or when a closed scratch file is renamed to a draft name.  Drafts
 * that wait for the device stay here, read-only, and are also in the store,
 * so they come back after a remount.  Scratch files are not persisted: a
 * restart forgets them (nothing was promised for them).
 */
#ifndef FAPIAO_FS_PENDING_H
#define FAPIAO_FS_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "engine/engine.h"

struct afterglow;
struct pending_dir;
struct pending_handle;

/* Once per process, before threads: large draft buffers are returned to the
 * kernel when freed (see pending.c), so the daemon's memory stays flat. */
void pending_setup_malloc(void);

/* glow: where a draft issued at a close glows for its writer (afterglow.h). */
struct pending_dir *pending_new(struct engine *e, struct afterglow *glow);
void pending_free(struct pending_dir *d);
/* Waiting drafts of an earlier mount; then the retry thread starts. */
int  pending_start(struct pending_dir *d);
/* The cause of waiting may be gone (a clearing): retry now, not in 2 s. */
void pending_retry_now(struct pending_dir *d);

/* A draft name: ends in .json (any case), does not start with '.'. */
bool pending_is_draft_name(const char *name);

/* 0 or an errno, as the FUSE reply needs it. */
int pending_lookup(struct pending_dir *d, const char *name, struct stat *st);
int pending_stat(struct pending_dir *d, uint64_t id, struct stat *st);
int pending_create(struct pending_dir *d, const char *name, struct pending_handle **h,
                   struct stat *st);
int pending_open(struct pending_dir *d, uint64_t id, int flags, struct pending_handle **h);
/* Copies up to size bytes at off into buf; returns bytes copied. */
size_t pending_read(struct pending_handle *h, char *buf, size_t size, off_t off);
/* Bytes written, or -errno (EFBIG above 1 MiB). */
ssize_t pending_write(struct pending_handle *h, const char *buf, size_t size, off_t off);
/* At close() by thread closed_by: processes the draft if this handle wrote
 * to a draft name. */
int pending_flush(struct pending_handle *h, pid_t closed_by);
void pending_release(struct pending_handle *h);
int pending_truncate(struct pending_dir *d, uint64_t id, off_t size, struct stat *st);
/* The same through an open handle: works after the name was unlinked. */
void pending_handle_stat(struct pending_handle *h, struct stat *st);
int pending_handle_truncate(struct pending_handle *h, off_t size, struct stat *st);
int pending_touch(struct pending_dir *d, uint64_t id, int64_t mtime, struct stat *st);
int pending_unlink(struct pending_dir *d, const char *name);
int pending_rename(struct pending_dir *d, const char *from, const char *to, unsigned flags);

/* Entries with sequence id > after, in order; cb returns non-zero to stop. */
typedef int (*pending_entry_cb)(void *ctx, uint64_t id, const char *name);
void pending_list(struct pending_dir *d, uint64_t after, pending_entry_cb cb, void *ctx);

/* The folder's mtime: when the last draft arrived (0: never). */
int64_t pending_mtime(struct pending_dir *d);

/* "waiting_draft: NAME since TIME: REASON" lines for status, in arrival
 * order, at most max of them and then "waiting_more: N" (malloc'd, may be NULL). */
char *pending_waiting_text(struct pending_dir *d, int max);

#endif
