/*
 * bot.h — USB Mass Storage Class Bulk-Only Transport 1.0, host side (SPEC §5.2).
 *
 * A command is three phases on two bulk pipes: a 31-byte Command Block
 * Wrapper (CBW) on bulk-out, an optional data phase in one direction, and a
 * 13-byte Command Status Wrapper (CSW) on bulk-in.  This module frames and
 * checks those wrappers and runs the exchange with the error recovery of the
 * BOT specification (§5.3 and §6.6); what moves the bytes is a
 * `struct bot_transport`: libusb (device/usb.c) or an in-process device
 * (device/loopback.c).  The transport only reports what happened on the wire
 * (ok, stall, timeout, gone, other failure); every decision about clearing
 * halts and resetting is taken here, once, so the real device and the tests
 * take the same paths.
 *
 * Trade-off: the framing is strict.  A CSW that is not exactly 13 bytes, not
 * signed 'USBS', for another tag, with a residue above the request or an
 * unknown status is never interpreted: the host resets the device and fails
 * the command, because after such a CSW the host and the device no longer
 * agree on where the conversation is.  The engine then reconciles with the
 * device journal, which is cheaper than guessing.
 */
#ifndef FAPIAO_BOT_H
#define FAPIAO_BOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "engine/err.h"

#define BOT_CBW_LEN 31
#define BOT_CSW_LEN 13
#define BOT_CBW_SIGNATURE 0x43425355u     /* "USBC" little-endian */
#define BOT_CSW_SIGNATURE 0x53425355u     /* "USBS" little-endian */
#define BOT_CBW_FLAG_IN 0x80              /* bmCBWFlags: data phase is device to host */
#define BOT_CB_MAX 16

/* ---- wrappers ------------------------------------------------------------ */

enum bot_dir { BOT_DIR_NONE, BOT_DIR_OUT, BOT_DIR_IN };

struct bot_cbw {
    uint32_t tag;
    uint32_t data_len;            /* dCBWDataTransferLength */
    uint8_t flags;                /* BOT_CBW_FLAG_IN or 0 */
    uint8_t lun;                  /* 0..15 */
    uint8_t cb_len;               /* 1..16 */
    uint8_t cb[BOT_CB_MAX];
};

enum bot_csw_status { BOT_CSW_PASSED = 0, BOT_CSW_FAILED = 1, BOT_CSW_PHASE_ERROR = 2 };

struct bot_csw {
    uint32_t tag;
    uint32_t residue;             /* dCSWDataResidue */
    uint8_t status;               /* enum bot_csw_status */
};

/* Why a wrapper was refused; BOT_WRAP_OK when it is valid and meaningful. */
enum bot_wrap_check {
    BOT_WRAP_OK = 0,
    BOT_WRAP_SIZE,                /* not 31 / 13 bytes */
    BOT_WRAP_SIGNATURE,
    BOT_WRAP_TAG,                 /* CSW for another command */
    BOT_WRAP_RESIDUE,             /* CSW residue above dCBWDataTransferLength */
    BOT_WRAP_STATUS,              /* CSW status above 2 */
    BOT_WRAP_FIELDS,              /* CBW: reserved bits set, LUN > 15, cb_len not 1..16 */
};

void bot_cbw_encode(const struct bot_cbw *c, uint8_t out[BOT_CBW_LEN]);
/* Device side: a CBW received in `len` bytes. */
enum bot_wrap_check bot_cbw_decode(const uint8_t *buf, size_t len, struct bot_cbw *out);
void bot_csw_encode(const struct bot_csw *c, uint8_t out[BOT_CSW_LEN]);
/* Host side: a CSW received in `len` bytes, answering the CBW with `tag`
 * and dCBWDataTransferLength `data_len`.  *out is filled whenever 13 bytes
 * were there, so that a caller can name what was wrong. */
enum bot_wrap_check bot_csw_decode(const uint8_t *buf, size_t len, uint32_t tag, uint32_t data_len,
                                   struct bot_csw *out);
const char *bot_wrap_check_str(enum bot_wrap_check c);

/* ---- transports ------------------------------------------------------------ */

/* What happened on the wire. */
enum bot_io {
    BOT_IO_OK = 0,
    BOT_IO_STALL,                 /* the endpoint answered STALL (halted) */
    BOT_IO_TIMEOUT,
    BOT_IO_NO_DEVICE,             /* unplugged: nothing will work on this handle again */
    BOT_IO_ERROR,                 /* any other failure (overflow, CRC, ...) */
};

enum bot_endpoint { BOT_EP_IN, BOT_EP_OUT };

struct bot_transport;
struct bot_transport_ops {
    /* Move up to len bytes; *done says how many moved, also on a stall or
     * timeout (a device may stall after part of the data). */
    enum bot_io (*bulk_out)(struct bot_transport *t, const uint8_t *buf, size_t len, size_t *done,
                            unsigned timeout_ms);
    enum bot_io (*bulk_in)(struct bot_transport *t, uint8_t *buf, size_t len, size_t *done,
                           unsigned timeout_ms);
    enum bot_io (*clear_halt)(struct bot_transport *t, enum bot_endpoint ep);
    /* Bulk-Only Mass Storage Reset, then clear-halt of both bulk endpoints. */
    enum bot_io (*reset_recovery)(struct bot_transport *t);
    void (*close)(struct bot_transport *t);
};

/* Implementations embed this as their first member. */
struct bot_transport {
    const struct bot_transport_ops *ops;
    uint32_t next_tag;            /* dCBWTag of the next command; grows by one per command */
    uint8_t lun;
    bool gone;                    /* the device was unplugged: every command is FA_DEV_ABSENT */
    unsigned resets;              /* reset recoveries performed (diagnostics, tests) */
    char why[256];                /* the last failure in words */
};

/* Fill the common part; called by transports when they open. */
void bot_transport_init(struct bot_transport *t, const struct bot_transport_ops *ops);
void bot_transport_close(struct bot_transport *t);
/* The last failure of bot_command, in words ("" when none). */
const char *bot_why(const struct bot_transport *t);

/* ---- the command exchange ------------------------------------------------ */

/*
 * One command: CBW with cdb (1..16 bytes), data phase of `len` bytes in
 * `dir` (BOT_DIR_NONE when len is 0), CSW.  *transferred is the number of
 * data bytes that counted: for data-in the bytes received (which the CSW
 * residue must confirm), for data-out the bytes the device says it took.
 * timeout_ms applies to each phase.
 *
 * FA_OK: CSW passed.  FA_DEV_IO: the device failed the command (CSW status
 * 1), or the exchange broke (then the device was reset: the next command
 * starts clean).  FA_DEV_ABSENT: unplugged, now and for every later command.
 * FA_INVAL: bad arguments.  bot_why() tells which.
 */
enum fa_err bot_command(struct bot_transport *t, const uint8_t *cdb, size_t cdb_len, enum bot_dir dir,
                        void *data, size_t len, size_t *transferred, unsigned timeout_ms);

#endif
