/*
 * render.h — the generated text files of the fixed tree.
 *
 * A generated file is rendered into a snapshot that is kept for a second:
 * stat and the following open/read of one reader see the same bytes, so
 * st_size is exact and tar does not see a file change under it.
 */
#ifndef FAPIAO_FS_RENDER_H
#define FAPIAO_FS_RENDER_H

#include <stddef.h>
#include <stdint.h>

/* A copy of the current snapshot of fixed node `ino` (malloc'd).  0, or an errno. */
int render_snapshot(uint64_t ino, char **buf, size_t *len);
/* Size and time of the current snapshot (0, 0 for non-generated nodes). */
void render_meta(uint64_t ino, uint64_t *size, int64_t *mtime);
void render_cleanup(void);

#endif
