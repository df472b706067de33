/*
 * bot.c — Bulk-Only Transport framing and the host's command exchange; see bot.h.
 *
 * Recovery follows the BOT specification rather than retrying commands: a
 * command is never sent twice by this layer, because a tax-control command
 * (issue_sign) is not idempotent.  What it does instead:
 *   - stall in the data phase: the device ended the phase early; clear that
 *     endpoint's halt and read the CSW, which says how the command went;
 *   - stall on the CSW: clear the bulk-in halt and read the CSW once more;
 *   - anything that leaves host and device out of step (an invalid CSW, a
 *     phase error, a timeout, a second CSW stall, a stalled CBW, a transfer
 *     error): reset recovery, so that the next command starts clean, and
 *     fail this one with FA_DEV_IO;
 *   - no device: FA_DEV_ABSENT, sticky, because a replugged device is a new
 *     handle that must be opened again.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "device/bot.h"

/* ---- wrappers ------------------------------------------------------------ */

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void bot_cbw_encode(const struct bot_cbw *c, uint8_t out[BOT_CBW_LEN])
{
    memset(out, 0, BOT_CBW_LEN);
    put_le32(out, BOT_CBW_SIGNATURE);
    put_le32(out + 4, c->tag);
    put_le32(out + 8, c->data_len);
    out[12] = c->flags;
    out[13] = c->lun;
    out[14] = c->cb_len;
    memcpy(out + 15, c->cb, BOT_CB_MAX);
}

enum bot_wrap_check bot_cbw_decode(const uint8_t *buf, size_t len, struct bot_cbw *out)
{
    memset(out, 0, sizeof *out);
    if (len != BOT_CBW_LEN)
        return BOT_WRAP_SIZE;
    if (get_le32(buf) != BOT_CBW_SIGNATURE)
        return BOT_WRAP_SIGNATURE;
    out->tag = get_le32(buf + 4);
    out->data_len = get_le32(buf + 8);
    out->flags = buf[12];
    out->lun = buf[13];
    out->cb_len = buf[14];
    memcpy(out->cb, buf + 15, BOT_CB_MAX);
    /* §5.1: the reserved bits are zero and the command block is 1..16 bytes. */
    if ((out->flags & ~BOT_CBW_FLAG_IN) || (out->lun & 0xF0) || out->cb_len < 1 ||
        out->cb_len > BOT_CB_MAX)
        return BOT_WRAP_FIELDS;
    return BOT_WRAP_OK;
}

void bot_csw_encode(const struct bot_csw *c, uint8_t out[BOT_CSW_LEN])
{
    put_le32(out, BOT_CSW_SIGNATURE);
    put_le32(out + 4, c->tag);
    put_le32(out + 8, c->residue);
    out[12] = c->status;
}

enum bot_wrap_check bot_csw_decode(const uint8_t *buf, size_t len, uint32_t tag, uint32_t data_len,
                                   struct bot_csw *out)
{
    memset(out, 0, sizeof *out);
    if (len != BOT_CSW_LEN)
        return BOT_WRAP_SIZE;
    out->tag = get_le32(buf + 4);
    out->residue = get_le32(buf + 8);
    out->status = buf[12];
    /* §6.3: valid = size and signature; meaningful = tag, status and residue. */
    if (get_le32(buf) != BOT_CSW_SIGNATURE)
        return BOT_WRAP_SIGNATURE;
    if (out->tag != tag)
        return BOT_WRAP_TAG;
    if (out->status > BOT_CSW_PHASE_ERROR)
        return BOT_WRAP_STATUS;
    if (out->residue > data_len)
        return BOT_WRAP_RESIDUE;
    return BOT_WRAP_OK;
}

const char *bot_wrap_check_str(enum bot_wrap_check c)
{
    switch (c) {
    case BOT_WRAP_OK:        return "valid";
    case BOT_WRAP_SIZE:      return "wrong size";
    case BOT_WRAP_SIGNATURE: return "bad signature";
    case BOT_WRAP_TAG:       return "tag of another command";
    case BOT_WRAP_RESIDUE:   return "residue larger than the transfer";
    case BOT_WRAP_STATUS:    return "unknown status";
    case BOT_WRAP_FIELDS:    return "reserved or out-of-range fields";
    }
    return "invalid";
}

/* ---- transports ------------------------------------------------------------ */

void bot_transport_init(struct bot_transport *t, const struct bot_transport_ops *ops)
{
    memset(t, 0, sizeof *t);
    t->ops = ops;
    t->next_tag = 1;
}

void bot_transport_close(struct bot_transport *t)
{
    if (t)
        t->ops->close(t);
}

const char *bot_why(const struct bot_transport *t)
{
    return t->why;
}

static const char *io_str(enum bot_io io)
{
    switch (io) {
    case BOT_IO_OK:        return "ok";
    case BOT_IO_STALL:     return "stall";
    case BOT_IO_TIMEOUT:   return "timeout";
    case BOT_IO_NO_DEVICE: return "device unplugged";
    case BOT_IO_ERROR:     return "transfer error";
    }
    return "transfer error";
}

/* The exchange broke: say why, and reset the device so that the next
 * command starts from a CBW — unless the device is gone. */
__attribute__((format(printf, 3, 4)))
static enum fa_err bot_fail(struct bot_transport *t, enum bot_io io, const char *fmt, ...)
{
    enum fa_err err = FA_DEV_IO;
    enum bot_io reset;
    size_t used;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(t->why, sizeof t->why, fmt, ap);
    va_end(ap);
    used = strlen(t->why);
    if (io == BOT_IO_NO_DEVICE) {
        t->gone = true;
        err = FA_DEV_ABSENT;
        goto out;
    }
    reset = t->ops->reset_recovery(t);
    t->resets++;
    if (reset == BOT_IO_NO_DEVICE) {
        t->gone = true;
        err = FA_DEV_ABSENT;
        snprintf(t->why + used, sizeof t->why - used, "; the device was unplugged during reset recovery");
    } else if (reset != BOT_IO_OK) {
        snprintf(t->why + used, sizeof t->why - used, "; reset recovery failed too (%s)", io_str(reset));
    } else {
        snprintf(t->why + used, sizeof t->why - used, "; the device was reset");
    }
out:
    return err;
}

enum fa_err bot_command(struct bot_transport *t, const uint8_t *cdb, size_t cdb_len, enum bot_dir dir,
                        void *data, size_t len, size_t *transferred, unsigned timeout_ms)
{
    uint8_t cbw_buf[BOT_CBW_LEN], csw_buf[BOT_CSW_LEN];
    struct bot_cbw cbw = { 0 };
    struct bot_csw csw = { 0 };
    enum bot_wrap_check check;
    enum bot_endpoint ep = dir == BOT_DIR_IN ? BOT_EP_IN : BOT_EP_OUT;
    enum bot_io io;
    size_t n = 0, done = 0;
    enum fa_err err = FA_DEV_IO;
    int attempt;

    *transferred = 0;
    t->why[0] = 0;
    if (t->gone) {
        snprintf(t->why, sizeof t->why, "the device was unplugged; it must be opened again");
        err = FA_DEV_ABSENT;
        goto out;
    }
    if (!cdb || cdb_len < 1 || cdb_len > BOT_CB_MAX || len > UINT32_MAX || (len && !data) ||
        (len == 0) != (dir == BOT_DIR_NONE)) {
        snprintf(t->why, sizeof t->why, "bot_command: bad arguments");
        err = FA_INVAL;
        goto out;
    }
    cbw.tag = t->next_tag++;
    cbw.data_len = (uint32_t)len;
    cbw.flags = dir == BOT_DIR_IN ? BOT_CBW_FLAG_IN : 0;
    cbw.lun = t->lun;
    cbw.cb_len = (uint8_t)cdb_len;
    memcpy(cbw.cb, cdb, cdb_len);
    bot_cbw_encode(&cbw, cbw_buf);

    io = t->ops->bulk_out(t, cbw_buf, BOT_CBW_LEN, &n, timeout_ms);
    if (io == BOT_IO_OK && n != BOT_CBW_LEN)
        io = BOT_IO_ERROR;
    if (io != BOT_IO_OK) {
        /* §5.3.1: a device stalls a CBW it cannot accept; only a reset clears that. */
        err = bot_fail(t, io, "command block (tag %u): %s", cbw.tag, io_str(io));
        goto out;
    }

    if (len) {
        io = dir == BOT_DIR_IN ? t->ops->bulk_in(t, data, len, &done, timeout_ms)
                               : t->ops->bulk_out(t, data, len, &done, timeout_ms);
        if (done > len)
            done = len;   /* a transport cannot move more than asked; never trust it to */
        if (io == BOT_IO_STALL) {
            /* §6.7.2, §6.7.3: the device ended the data phase early by halting
             * the pipe; clear it, and the CSW says how the command went. */
            io = t->ops->clear_halt(t, ep);
            if (io != BOT_IO_OK) {
                err = bot_fail(t, io, "clearing the halted bulk-%s endpoint (tag %u): %s",
                               ep == BOT_EP_IN ? "in" : "out", cbw.tag, io_str(io));
                goto out;
            }
        } else if (io != BOT_IO_OK) {
            err = bot_fail(t, io, "data %s phase (tag %u, %zu of %zu bytes): %s",
                           dir == BOT_DIR_IN ? "in" : "out", cbw.tag, done, len, io_str(io));
            goto out;
        }
    }

    for (attempt = 0;; attempt++) {
        n = 0;
        io = t->ops->bulk_in(t, csw_buf, BOT_CSW_LEN, &n, timeout_ms);
        if (io != BOT_IO_STALL || attempt > 0)
            break;
        /* §5.3.3: a stalled CSW is read once more after clearing the halt. */
        io = t->ops->clear_halt(t, BOT_EP_IN);
        if (io != BOT_IO_OK) {
            err = bot_fail(t, io, "clearing the halted bulk-in endpoint before the status (tag %u): %s",
                           cbw.tag, io_str(io));
            goto out;
        }
    }
    if (io != BOT_IO_OK) {
        err = bot_fail(t, io, "status (tag %u): %s%s", cbw.tag, io_str(io),
                       io == BOT_IO_STALL ? " twice" : "");
        goto out;
    }
    check = bot_csw_decode(csw_buf, n, cbw.tag, cbw.data_len, &csw);
    if (check != BOT_WRAP_OK) {
        err = bot_fail(t, BOT_IO_ERROR, "invalid status wrapper (tag %u, %zu bytes, got tag %u, "
                       "residue %u): %s", cbw.tag, n, csw.tag, csw.residue, bot_wrap_check_str(check));
        goto out;
    }
    if (csw.status == BOT_CSW_PHASE_ERROR) {
        err = bot_fail(t, BOT_IO_ERROR, "phase error (tag %u)", cbw.tag);
        goto out;
    }
    if (csw.status == BOT_CSW_FAILED) {
        snprintf(t->why, sizeof t->why, "the device failed the command block (tag %u, opcode 0x%02x)",
                 cbw.tag, cdb[0]);
        err = FA_DEV_IO;
        goto out;
    }
    /* The residue must account for what actually moved: a device that says
     * it sent more than arrived (or took more than was sent) lost data. */
    if ((dir == BOT_DIR_IN && done != len - csw.residue) ||
        (dir == BOT_DIR_OUT && len - csw.residue > done)) {
        snprintf(t->why, sizeof t->why, "residue mismatch (tag %u): the device counts %zu bytes, "
                 "%zu moved", cbw.tag, len - csw.residue, done);
        err = FA_DEV_IO;
        goto out;
    }
    *transferred = len - csw.residue;
    err = FA_OK;
out:
    return err;
}
