/*
 * control.c — device/clear; see control.h.
 *
 * A clearing takes seconds (it talks to the platform), and it runs in the
 * FUSE worker thread of the write() itself: that is how its result becomes
 * the write's errno.  The session is multi-threaded, so the rest of the
 * mount keeps working meanwhile; a second writer gets EBUSY from the
 * engine rather than waiting.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "engine/clearing.h"
#include "fs/control.h"
#include "fs/fs.h"
#include "fs/pending.h"
#include "fs/render.h"

struct control_buf {
    char line[CLEAR_COMMAND_MAX + 1];
    size_t len;
    bool too_long;                /* the line in progress was longer than a command can be */
};

int control_open(int64_t uid)
{
    if (!engine_clear_running(g_fs.engine))
        return 0;
    engine_log_as(g_fs.engine, uid, "clear", "refused: a clearing is already running");
    return EBUSY;
}

struct control_buf *control_new(void)
{
    return calloc(1, sizeof(struct control_buf));
}

void control_free(struct control_buf *cb)
{
    if (cb)
        explicit_bzero(cb->line, sizeof cb->line);   /* it may hold a PIN */
    free(cb);
}

static bool blank(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/* Run the collected line (if it is not blank); 0 or an errno. */
static int run_line(struct control_buf *cb, int64_t uid)
{
    struct clear_result r;
    enum fa_err err;

    if (!cb->too_long && blank(cb->line, cb->len)) {
        cb->len = 0;
        return 0;
    }
    cb->line[cb->len] = 0;
    err = engine_clear(g_fs.engine, cb->too_long ? "(a line longer than any command)" : cb->line,
                       uid, &r);
    explicit_bzero(cb->line, sizeof cb->line);
    cb->len = 0;
    cb->too_long = false;
    /* the device may issue again: waiting drafts go now, and every
     * generated file is rendered anew */
    if (err == FA_OK && !r.nothing_to_clear)
        pending_retry_now(g_fs.pending);
    render_invalidate();
    render_unpin(FIXED_DEVICE_CLEAR);
    return fa_err_errno(err);
}

ssize_t control_write(struct control_buf *cb, const char *buf, size_t size, int64_t uid)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < size && !rc; i++) {
        if (buf[i] == '\n') {
            rc = run_line(cb, uid);
        } else if (cb->len < CLEAR_COMMAND_MAX) {
            cb->line[cb->len++] = buf[i] ? buf[i] : '?';
        } else {
            cb->too_long = true;
        }
    }
    return rc ? -rc : (ssize_t)size;
}

int control_flush(struct control_buf *cb, int64_t uid)
{
    return cb->len || cb->too_long ? run_line(cb, uid) : 0;
}
