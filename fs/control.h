/*
 * control.h — device/clear, the control file (SPEC §2.3).
 *
 * What is written is collected per open file; each complete line is a
 * command, run when its newline arrives (the write() that brought it gets
 * the command's result), and what is left without a newline runs at
 * close().  So `echo clear > device/clear` and a command split over several
 * write() calls work alike.
 */
#ifndef FAPIAO_FS_CONTROL_H
#define FAPIAO_FS_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct control_buf;

/* open() for writing: EBUSY while a clearing runs.  The kernel holds the
 * file's inode lock for the whole write() that runs a clearing, so a second
 * writer would otherwise sit in its open(O_TRUNC) until the first is done;
 * open() is the one call of that writer that reaches us at once. */
int control_open(int64_t uid);
struct control_buf *control_new(void);
void control_free(struct control_buf *cb);
/* Bytes accepted (all of them), or -errno of the first command that failed. */
ssize_t control_write(struct control_buf *cb, const char *buf, size_t size, int64_t uid);
/* At close(): runs an unfinished command; 0 or an errno. */
int control_flush(struct control_buf *cb, int64_t uid);

#endif
