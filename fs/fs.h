/*
 * fs.h — state shared by the FUSE modules of fapiaofs.
 *
 *   ll.c       the low-level operations table: decodes inodes, dispatches,
 *              and is the only place that turns enum fa_err into errno
 *   dir.c      readdir of every folder, with offsets that are cursors
 *   pending.c  pending/: files being written, scratch files, waiting drafts
 *   afterglow.c  a draft issued at a close, as its writer still sees it for a second
 *   render.c   the generated text files: README, status, device/, platform/
 *   main.c     command line, configuration, mount, the session loop
 */
#ifndef FAPIAO_FS_FS_H
#define FAPIAO_FS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include "engine/engine.h"
#include "fs/inode.h"

struct afterglow;
struct pending_dir;
struct readahead;

struct fs {
    struct engine *engine;
    struct pending_dir *pending;
    struct afterglow *afterglow;  /* NULL when it could not be made: no ghosts, drafts work */
    struct readahead *readahead;  /* NULL when it could not start: listings work without */
    uid_t uid;
    gid_t gid;                /* the configured group, or the daemon's */
    int64_t mounted_at;
    /* when the store was made: the time of what never changes, and the ctime
     * of folders, so that rsync -a finds nothing to do after a remount */
    int64_t created_at;
};

/* The one instance, set by main.c before the session starts. */
extern struct fs g_fs;

/* Seconds the kernel may cache what does not change (issued/). */
#define TIMEOUT_IMMUTABLE 86400.0
/* Seconds the kernel may cache a new draft's attributes (ll.c, fa_create). */
#define TIMEOUT_NEW_DRAFT 1.0

/* Fill st for a fixed node as process pid sees it; false if not a fixed node. */
bool fixed_stat(uint64_t ino, pid_t pid, struct stat *st);
/* A fixed node's child by name, 0 if none. */
uint64_t fixed_lookup(uint64_t parent, const char *name);
/* Name and parent of a fixed node; NULL if not one. */
const char *fixed_name(uint64_t ino, uint64_t *parent);
bool fixed_is_dir(uint64_t ino);

/* After the session loop: free the file handles the kernel never released
 * (their RELEASE was dropped at unmount).  Before pending_free(). */
void ll_release_all(void);

/* Common attributes: owner, nlink, blocks from size. */
void fill_attr(struct stat *st, uint64_t ino, mode_t mode, uint64_t size, int64_t mtime);

#endif
