/*
 * remote.h — a device (device.h) whose commands run over Bulk-Only Transport
 * in our vendor command set (device/proto.h, device/PROTOCOL.md): what
 * `[device] kind=usb` uses over libusb, and what the tests use over the
 * in-process loopback.
 *
 * The remote adds no policy of its own: the device's answers come back as
 * they are (FA_DEV_PIN, FA_DEV_LOCKED, ...), a broken exchange is FA_DEV_IO
 * (after which the engine reconciles with the journal) and an unplugged
 * device is FA_DEV_ABSENT for good.  The one retry it makes is reading a
 * request's response again (FETCH), which is repeatable by design; it never
 * sends a request twice, because issue_sign is not idempotent.
 */
#ifndef FAPIAO_REMOTE_H
#define FAPIAO_REMOTE_H

#include "device/bot.h"
#include "device/device.h"

/* On success the device owns t (closing the device closes it); on failure
 * the caller still does.  Nothing is sent until the first command. */
enum fa_err remote_open(struct bot_transport *t, struct device **out);

/* The last failure of a device from remote_open, in words ("" when none). */
const char *remote_why(struct device *d);

#endif
