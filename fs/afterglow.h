/*
 * afterglow.h — an issued draft as its writer still finds it for a moment.
 *
 * Tools that copy a file set its mode or times by name after closing it:
 * install -m, Python's shutil.copy and copy2 (chmod, utime).  A draft issued
 * at that close has left pending/ (SPEC §2.1), so those calls failed with
 * ENOENT: the tool reported an error for a draft that was issued, and a
 * writer that retried it without a request_id issued it twice.  So for
 * AFTERGLOW_MS after its close issued a draft, the process that closed it,
 * and only that one, still finds the name: a ghost, with an inode of its own
 * (SPACE_GHOST).  chmod, utime and setattr of it succeed and change nothing.
 * A GETATTR or an OPEN of it ends it with ESTALE: the kernel then walks the
 * path again (retry_estale, LOOKUP_REVAL), that lookup finds nothing, and the
 * call goes on as for a name that is not there — stat ENOENT, open(O_CREAT)
 * a new file.  So the draft has left for everyone, and for its writer too as
 * soon as it looks at more than the mode and times.
 *
 * What the kernel decides from the name alone stays: within that second, an
 * O_EXCL create (and mkdir, link, symlink, mknod) of the same name by that
 * process gets EEXIST, and a chown (the kernel reads the attributes first)
 * ENOENT.  docs/DROPS.md lists these.
 */
#ifndef FAPIAO_FS_AFTERGLOW_H
#define FAPIAO_FS_AFTERGLOW_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define AFTERGLOW_MS 1000

struct afterglow;

/* Every function takes NULL (afterglow_new failed): no ghosts, ENOENT. */
struct afterglow *afterglow_new(void);
void afterglow_free(struct afterglow *a);

/* The process of thread tid (0 if unknown), for afterglow_add: while tid
 * waits for the daemon's answer it is there to ask about (a pidfd of the
 * thread since Linux 6.13; /proc before). */
pid_t afterglow_process_of(pid_t tid);

/* A draft named name left pending/ at a close by thread closed_by, of
 * process `process`.  An older ghost of that name ends. */
void afterglow_add(struct afterglow *a, const char *name, pid_t closed_by, pid_t process,
                   uint64_t size, int64_t mtime);

/* A LOOKUP in pending/ that found no file, by thread `by`: 0 and the ghost's
 * attributes if it may find one of that name, ENOENT otherwise. */
int afterglow_lookup(struct afterglow *a, const char *name, pid_t by, struct stat *st);

/* A SETATTR of ghost id: its attributes, unchanged (0), or ENOENT. */
int afterglow_stat(struct afterglow *a, uint64_t id, struct stat *st);

/* A GETATTR or an OPEN of ghost id: ends it, ESTALE (see above); ENOENT if
 * it has ended already. */
int afterglow_end(struct afterglow *a, uint64_t id);

#endif
