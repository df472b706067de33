/*
 * clearing.h — 清卡: clearing the device card for a finished period (SPEC
 * §5.4), which is what `echo clear > device/clear` runs.
 *
 * Seven steps, each safe to repeat, so that a clearing interrupted anywhere
 * (platform down, daemon killed, device unplugged) is finished by running
 * `clear` again:
 *   1 find        the oldest finished period the device has not cleared
 *   2 upload      its invoices still in the upload queue, now
 *   3 summary     the device's signed summary (抄税) = the store's
 *   4 report      the summary to the platform (上报汇总)
 *   5 clearance   the platform's signed answer (监控回传)
 *   6 write_back  the answer into the device (反写): new lock date, limits
 *   7 record      device/log and the result shown by `cat device/clear`
 * Nothing changes the device before step 6, and the platform keeps and
 * returns the same answer for a period, so running a step twice does no
 * harm.  One clearing at a time; issuing goes on meanwhile.
 */
#ifndef FAPIAO_CLEARING_H
#define FAPIAO_CLEARING_H

#include <stdbool.h>
#include <stdint.h>
#include "engine/engine.h"

#define CLEAR_STEPS 7
#define CLEAR_COMMAND_MAX 256     /* a longer command is refused */

enum clear_step_state { STEP_NOT_RUN, STEP_OK, STEP_FAILED };

struct clear_result {
    enum fa_err err;              /* FA_OK: cleared, or nothing to clear */
    bool nothing_to_clear;
    char period[8];               /* "" when none was found */
    int64_t started, finished;
    int64_t uid;
    char command[48];             /* as written, the PIN masked */
    struct {
        enum clear_step_state state;
        char text[400];
    } steps[CLEAR_STEPS];
    char reason[600];             /* what happened, in words */
};

/* Run one command line ("clear" or "clear pin=PIN", without the newline)
 * for user uid.  Returns out->err: FA_INVAL unknown command, FA_BUSY a
 * clearing is running, FA_DEV_PIN the PIN was refused, FA_DEV_ABSENT no
 * device, FA_PLATFORM_DOWN platform unreachable or invoices not uploaded,
 * FA_PLATFORM_REFUSED return not filed or summary refused, FA_DEV_IO device
 * failure or a summary mismatch that reconciliation did not explain.
 * Except for FA_BUSY, the result becomes the text of device/clear. */
enum fa_err engine_clear(struct engine *e, const char *command, int64_t uid,
                         struct clear_result *out);

/* A command line: "clear" or "clear pin=DIGITS", spaces and tabs around
 * allowed.  0 with pin ("" when not given, at most cap-1 digits) and shown
 * (the command with the PIN masked), or -1. */
int clear_parse_command(const char *line, char *pin, size_t cap, char *shown, size_t shown_len);

/* The text of device/clear: the last attempt, kept across remounts
 * (malloc'd; "result: none" before the first). */
char *clear_last_text(struct engine *e);

#endif
