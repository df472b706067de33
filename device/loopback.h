/*
 * loopback.h — an in-process Bulk-Only endpoint pair: a `struct bot_transport`
 * whose bulk pipes are served by a device-side BOT state machine (CBW, data
 * phase, CSW) that decodes our vendor CDBs (device/proto.h) and runs them on
 * a `struct device` — normally the simulated device of device/sim.c.  The
 * whole command set thus runs through the framing and the recovery code of
 * the real transport, without hardware (SPEC §5.2).
 *
 * It behaves like a device firmware would, including the parts of BOT a
 * well-behaved host never sees: an invalid CBW halts both pipes until reset
 * recovery, a rejected command block ends its data phase with a stall and a
 * "failed" CSW, a host that reads when the device expects a CBW times out.
 * Faults can be injected for the tests; each fires once (or `times` times)
 * at the first matching point after `skip` matching points have passed.
 *
 * Single-threaded by design: the host side calls in, the device side answers
 * synchronously.  The device is not owned: the caller closes it after the
 * transport.
 */
#ifndef FAPIAO_LOOPBACK_H
#define FAPIAO_LOOPBACK_H

#include "device/bot.h"
#include "device/device.h"

enum loopback_fault {
    LOOPBACK_FAULT_NONE,
    /* at the next CSW */
    LOOPBACK_CSW_SIGNATURE,       /* signature corrupted */
    LOOPBACK_CSW_TAG,             /* the tag of another command */
    LOOPBACK_CSW_SIZE,            /* 12 bytes instead of 13 */
    LOOPBACK_CSW_RESIDUE,         /* residue above the transfer length */
    LOOPBACK_CSW_PHASE,           /* status 2, phase error */
    LOOPBACK_STALL_CSW,           /* bulk-in halted instead of the CSW (which stays pending) */
    /* at the next data-in phase */
    LOOPBACK_SHORT_DATA,          /* half the response, and a residue that says so */
    LOOPBACK_SHORT_DATA_LIE,      /* half the response, and a residue that claims all of it */
    LOOPBACK_STALL_DATA_END,      /* the whole response, then a stall instead of a short packet */
    LOOPBACK_STALL_DATA_START,    /* a stall before any data, and a "failed" CSW */
    /* at the next data-out phase */
    LOOPBACK_STALL_DATA_OUT,      /* the request refused with a stall, and a "failed" CSW */
    /* at the next CBW */
    LOOPBACK_CBW_INVALID,         /* the device judges it invalid: both pipes halt until reset */
    /* at the next bulk-in transfer of any kind */
    LOOPBACK_TIMEOUT,
    /* at the next transfer of any kind, and for ever after */
    LOOPBACK_UNPLUG,
};

struct loopback_stats {
    unsigned commands;            /* valid CBWs received */
    unsigned resets;              /* reset recoveries */
    unsigned clear_halts;
    unsigned faults_fired;
};

/* The transport; dev stays the caller's. */
enum fa_err loopback_open(struct device *dev, struct bot_transport **out);
/* Arm one fault (replacing any armed one); LOOPBACK_FAULT_NONE disarms. */
void loopback_inject(struct bot_transport *t, enum loopback_fault fault, unsigned skip, unsigned times);
void loopback_get_stats(struct bot_transport *t, struct loopback_stats *out);

#endif
