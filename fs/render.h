/*
 * render.h — the generated text files of the fixed tree.
 *
 * A generated file is rendered into a snapshot that is kept for a second,
 * and each reading process keeps the snapshot it first saw for a while:
 * stat and the following open/read/fstat of one reader see the same bytes,
 * so st_size is exact and tar does not see a file change under it.
 */
#ifndef FAPIAO_FS_RENDER_H
#define FAPIAO_FS_RENDER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A copy of the snapshot of fixed node `ino` that process pid sees (malloc'd),
 * for an open: render_closed() when that handle is released.  0, or an errno. */
int render_snapshot(uint64_t ino, pid_t pid, char **buf, size_t *len);
/* A handle render_snapshot() gave is released: when it was the process's
 * last one on ino, its pin goes, and its next stat or open sees the file as
 * it is now (a monitor polling status sees each change at once). */
void render_closed(uint64_t ino, pid_t pid);
/* ino was changed by a request of its own (a command written to
 * device/clear): pins of it without an open descriptor go, so that the
 * process that wrote the command reads its result, not what it had
 * looked up before writing. */
void render_unpin(uint64_t ino);
/* Size and mtime of the snapshot that process pid sees. */
void render_meta(uint64_t ino, pid_t pid, uint64_t *size, int64_t *mtime);
/* Something changed (a draft processed): the next reader gets a fresh
 * rendering; readers in the middle of a file keep theirs. */
void render_invalidate(void);
void render_cleanup(void);

#endif
