/*
 * usbdev.h — the `usb` device as the engine sees it: present or not.
 *
 * With a device attached, every command goes to it over libusb and
 * Bulk-Only Transport (device/remote.h, device/usb.h).  Without one, the
 * mount still works for browsing and every command answers FA_DEV_ABSENT,
 * so drafts wait in pending/ with "device absent".  It looks for the device
 * again at most every USBDEV_PROBE_SECONDS, so plugging it in is noticed,
 * and it names a known commercial device (SPEC §5.2) whose proprietary
 * command set fapiaofs cannot speak.
 */
#ifndef FAPIAO_USBDEV_H
#define FAPIAO_USBDEV_H

#include "device/device.h"

#define USBDEV_PROBE_SECONDS 2

/* Always succeeds (absent is a state, not an error) unless memory runs out. */
enum fa_err usbdev_open(unsigned vid, unsigned pid, const char *pin, struct device **out);

#endif
