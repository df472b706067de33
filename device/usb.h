/*
 * usb.h — the Bulk-Only transport over libusb (SPEC §5.2 `usb`).
 *
 * Opens the tax-control device by VID:PID, takes its USB mass-storage
 * Bulk-Only interface (class 8, subclass 6 SCSI transparent, protocol 0x50)
 * away from the kernel's usb-storage driver, and moves CBWs, data and CSWs
 * on its two bulk endpoints; device/bot.c decides everything else.  Each
 * transport has its own libusb context, so that nothing in fapiaofs shares
 * libusb state with another user of the library in the same process.
 *
 * Our own device answers on USB_FAPIAO_VID:USB_FAPIAO_PID by default: the
 * pid.codes test pair 1209:000C, reserved for private, in-house testing (not
 * universally unique; a device that is distributed needs its own PID).  The
 * pair is configurable: [device] vid, pid.
 */
#ifndef FAPIAO_USB_H
#define FAPIAO_USB_H

#include <stddef.h>
#include "device/bot.h"

#define USB_FAPIAO_VID 0x1209
#define USB_FAPIAO_PID 0x000C

/* FA_DEV_ABSENT (no USB subsystem, no such device, no Bulk-Only
 * interface), FA_PERM (no access to the device node), FA_BUSY (another
 * program holds the interface) or FA_DEV_IO, each with a sentence in why. */
enum fa_err usb_transport_open(unsigned vid, unsigned pid, struct bot_transport **out, char *why,
                               size_t whylen);

/* Called for each attached USB device; a nonzero return stops the walk. */
typedef int (*usb_list_cb)(unsigned vid, unsigned pid, unsigned bus, unsigned address, void *arg);
/* Walk the attached USB devices (to recognise known commercial devices by
 * VID:PID).  FA_DEV_ABSENT with a sentence when there is no USB subsystem. */
enum fa_err usb_list_devices(usb_list_cb cb, void *arg, char *why, size_t whylen);

#endif
