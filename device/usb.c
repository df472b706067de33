/*
 * usb.c — the libusb Bulk-Only transport; see usb.h.
 *
 * Synchronous libusb_bulk_transfer() calls: one command is in flight at a
 * time anyway (Bulk-Only allows no more), and the remote device serialises
 * callers, so the asynchronous API would buy nothing but an event loop.
 * libusb's errors are mapped to what the BOT layer acts on: PIPE is a stall,
 * TIMEOUT a timeout, NO_DEVICE an unplugged device, anything else a
 * transfer error (which bot.c answers with reset recovery).
 *
 * The kernel's usb-storage driver binds to every Bulk-Only interface: the
 * transport asks libusb to detach it on claim and reattach it on release
 * (auto-detach), and detaches by hand where auto-detach is not supported.
 *
 * Compiled and linked everywhere, runnable only where there is a USB
 * subsystem; without one, opening fails cleanly with FA_DEV_ABSENT.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <libusb.h>
#include "device/usb.h"

#define USB_CONTROL_TIMEOUT_MS 5000
#define USB_CLASS_SCSI_TRANSPARENT 0x06
#define USB_PROTOCOL_BULK_ONLY 0x50
#define USB_REQ_BULK_ONLY_RESET 0xFF      /* class request, BOT §3.1 */

struct usb_transport {
    struct bot_transport base;
    libusb_context *ctx;
    libusb_device_handle *h;
    int iface, alt;
    uint8_t ep_in, ep_out;
    bool claimed;
    bool detached;                /* detached by hand: reattach on close */
};

static enum bot_io usb_io(int rc)
{
    switch (rc) {
    case LIBUSB_SUCCESS:         return BOT_IO_OK;
    case LIBUSB_ERROR_PIPE:      return BOT_IO_STALL;
    case LIBUSB_ERROR_TIMEOUT:   return BOT_IO_TIMEOUT;
    case LIBUSB_ERROR_NO_DEVICE: return BOT_IO_NO_DEVICE;
    default:                     return BOT_IO_ERROR;
    }
}

static enum bot_io usb_bulk(struct usb_transport *u, uint8_t ep, uint8_t *buf, size_t len, size_t *done,
                            unsigned timeout_ms)
{
    int n = 0, rc;

    *done = 0;
    if (len > INT_MAX)
        return BOT_IO_ERROR;
    rc = libusb_bulk_transfer(u->h, ep, buf, (int)len, &n, timeout_ms);
    /* also after a stall or timeout: part of the data may have moved */
    *done = n > 0 ? (size_t)n : 0;
    return usb_io(rc);
}

static enum bot_io usb_bulk_out(struct bot_transport *t, const uint8_t *buf, size_t len, size_t *done,
                                unsigned timeout_ms)
{
    struct usb_transport *u = (struct usb_transport *)t;
    /* libusb takes one buffer type for both directions; it only reads an OUT buffer */
    return usb_bulk(u, u->ep_out, (uint8_t *)buf, len, done, timeout_ms);
}

static enum bot_io usb_bulk_in(struct bot_transport *t, uint8_t *buf, size_t len, size_t *done,
                               unsigned timeout_ms)
{
    struct usb_transport *u = (struct usb_transport *)t;
    return usb_bulk(u, u->ep_in, buf, len, done, timeout_ms);
}

static enum bot_io usb_clear_halt(struct bot_transport *t, enum bot_endpoint ep)
{
    struct usb_transport *u = (struct usb_transport *)t;
    return usb_io(libusb_clear_halt(u->h, ep == BOT_EP_IN ? u->ep_in : u->ep_out));
}

/* BOT §5.3.4: Bulk-Only Mass Storage Reset, then clear both halts. */
static enum bot_io usb_reset_recovery(struct bot_transport *t)
{
    struct usb_transport *u = (struct usb_transport *)t;
    enum bot_io io;
    int rc;

    rc = libusb_control_transfer(u->h, LIBUSB_ENDPOINT_OUT | LIBUSB_REQUEST_TYPE_CLASS |
                                 LIBUSB_RECIPIENT_INTERFACE, USB_REQ_BULK_ONLY_RESET, 0,
                                 (uint16_t)u->iface, NULL, 0, USB_CONTROL_TIMEOUT_MS);
    if (rc < 0)
        return usb_io(rc);
    io = usb_io(libusb_clear_halt(u->h, u->ep_in));
    if (io == BOT_IO_OK)
        io = usb_io(libusb_clear_halt(u->h, u->ep_out));
    return io;
}

static void usb_close(struct bot_transport *t)
{
    struct usb_transport *u = (struct usb_transport *)t;

    if (!u)
        return;
    if (u->claimed)
        libusb_release_interface(u->h, u->iface);   /* auto-detach reattaches usb-storage here */
    if (u->detached)
        libusb_attach_kernel_driver(u->h, u->iface);
    if (u->h)
        libusb_close(u->h);
    if (u->ctx)
        libusb_exit(u->ctx);
    free(u);
}

static const struct bot_transport_ops usb_ops = {
    .bulk_out = usb_bulk_out,
    .bulk_in = usb_bulk_in,
    .clear_halt = usb_clear_halt,
    .reset_recovery = usb_reset_recovery,
    .close = usb_close,
};

/* The Bulk-Only mass-storage interface of dev and its two bulk endpoints. */
static enum fa_err usb_find_interface(libusb_device *dev, struct usb_transport *u, unsigned vid,
                                      unsigned pid, char *why, size_t whylen)
{
    struct libusb_config_descriptor *cfg = NULL;
    enum fa_err err = FA_DEV_ABSENT;
    int i, a, e, rc;

    rc = libusb_get_active_config_descriptor(dev, &cfg);
    if (rc == LIBUSB_ERROR_NOT_FOUND)   /* unconfigured: look at the first configuration */
        rc = libusb_get_config_descriptor(dev, 0, &cfg);
    if (rc) {
        snprintf(why, whylen, "USB device %04x:%04x: cannot read its configuration: %s", vid, pid,
                 libusb_strerror(rc));
        err = rc == LIBUSB_ERROR_NO_DEVICE ? FA_DEV_ABSENT : FA_DEV_IO;
        goto out;
    }
    for (i = 0; i < cfg->bNumInterfaces; i++) {
        for (a = 0; a < cfg->interface[i].num_altsetting; a++) {
            const struct libusb_interface_descriptor *d = &cfg->interface[i].altsetting[a];
            uint8_t in = 0, out = 0;
            if (d->bInterfaceClass != LIBUSB_CLASS_MASS_STORAGE ||
                d->bInterfaceSubClass != USB_CLASS_SCSI_TRANSPARENT ||
                d->bInterfaceProtocol != USB_PROTOCOL_BULK_ONLY)
                continue;
            for (e = 0; e < d->bNumEndpoints; e++) {
                const struct libusb_endpoint_descriptor *ep = &d->endpoint[e];
                if ((ep->bmAttributes & LIBUSB_TRANSFER_TYPE_MASK) != LIBUSB_TRANSFER_TYPE_BULK)
                    continue;
                if ((ep->bEndpointAddress & LIBUSB_ENDPOINT_DIR_MASK) == LIBUSB_ENDPOINT_IN) {
                    if (!in)
                        in = ep->bEndpointAddress;
                } else if (!out) {
                    out = ep->bEndpointAddress;
                }
            }
            if (in && out) {
                u->iface = d->bInterfaceNumber;
                u->alt = d->bAlternateSetting;
                u->ep_in = in;
                u->ep_out = out;
                err = FA_OK;
                goto out;
            }
        }
    }
    snprintf(why, whylen, "USB device %04x:%04x has no Bulk-Only mass-storage interface (class 8, "
             "subclass 6, protocol 0x50, two bulk endpoints): it is not a device fapiaofs can speak to",
             vid, pid);
out:
    if (cfg)
        libusb_free_config_descriptor(cfg);
    return err;
}

/* Take the interface from the kernel (usb-storage) and claim it. */
static enum fa_err usb_claim(struct usb_transport *u, unsigned vid, unsigned pid, char *why, size_t whylen)
{
    int rc;

    rc = libusb_set_auto_detach_kernel_driver(u->h, 1);
    if (rc == LIBUSB_ERROR_NOT_SUPPORTED) {
        rc = libusb_kernel_driver_active(u->h, u->iface);
        if (rc == 1) {
            rc = libusb_detach_kernel_driver(u->h, u->iface);
            u->detached = rc == 0;
        } else if (rc == 0 || rc == LIBUSB_ERROR_NOT_SUPPORTED) {
            rc = 0;   /* no kernel driver (or none on this platform): nothing to detach */
        }
        if (rc) {
            snprintf(why, whylen, "USB device %04x:%04x: cannot detach the kernel's driver from "
                     "interface %d: %s", vid, pid, u->iface, libusb_strerror(rc));
            return rc == LIBUSB_ERROR_NO_DEVICE ? FA_DEV_ABSENT : FA_BUSY;
        }
    }
    rc = libusb_claim_interface(u->h, u->iface);
    if (rc) {
        snprintf(why, whylen, "USB device %04x:%04x: cannot claim interface %d: %s%s", vid, pid, u->iface,
                 libusb_strerror(rc), rc == LIBUSB_ERROR_BUSY ? " (another program is using it)" : "");
        return rc == LIBUSB_ERROR_BUSY ? FA_BUSY : rc == LIBUSB_ERROR_NO_DEVICE ? FA_DEV_ABSENT : FA_DEV_IO;
    }
    u->claimed = true;
    if (u->alt) {
        rc = libusb_set_interface_alt_setting(u->h, u->iface, u->alt);
        if (rc) {
            snprintf(why, whylen, "USB device %04x:%04x: cannot select alternate setting %d: %s", vid, pid,
                     u->alt, libusb_strerror(rc));
            return rc == LIBUSB_ERROR_NO_DEVICE ? FA_DEV_ABSENT : FA_DEV_IO;
        }
    }
    return FA_OK;
}

enum fa_err usb_transport_open(unsigned vid, unsigned pid, struct bot_transport **out, char *why,
                               size_t whylen)
{
    struct usb_transport *u = NULL;
    libusb_device **list = NULL, *dev = NULL;
    struct libusb_device_descriptor dd;
    enum fa_err err = FA_DEV_ABSENT;
    ssize_t count, i;
    int rc;

    *out = NULL;
    if (vid > 0xFFFF || pid > 0xFFFF) {
        snprintf(why, whylen, "USB VID:PID %x:%x is out of range (16 bits each)", vid, pid);
        return FA_INVAL;
    }
    u = calloc(1, sizeof *u);
    if (!u)
        return FA_NOMEM;
    bot_transport_init(&u->base, &usb_ops);
    rc = libusb_init(&u->ctx);
    if (rc) {
        u->ctx = NULL;
        snprintf(why, whylen, "no USB subsystem on this machine (libusb_init: %s), so no USB device "
                 "%04x:%04x", libusb_strerror(rc), vid, pid);
        goto fail;
    }
    count = libusb_get_device_list(u->ctx, &list);
    if (count < 0) {
        list = NULL;
        snprintf(why, whylen, "cannot list USB devices (%s), so no USB device %04x:%04x",
                 libusb_strerror((int)count), vid, pid);
        goto fail;
    }
    for (i = 0; i < count && !dev; i++)
        if (libusb_get_device_descriptor(list[i], &dd) == 0 && dd.idVendor == vid && dd.idProduct == pid)
            dev = list[i];
    if (!dev) {
        snprintf(why, whylen, "no USB device %04x:%04x is attached (%zd other USB devices)", vid, pid,
                 count);
        goto fail;
    }
    err = usb_find_interface(dev, u, vid, pid, why, whylen);
    if (err)
        goto fail;
    rc = libusb_open(dev, &u->h);
    if (rc) {
        u->h = NULL;
        snprintf(why, whylen, "cannot open USB device %04x:%04x (bus %u, address %u): %s%s", vid, pid,
                 libusb_get_bus_number(dev), libusb_get_device_address(dev), libusb_strerror(rc),
                 rc == LIBUSB_ERROR_ACCESS ? " (no permission on its device node: a udev rule is needed)"
                                           : "");
        err = rc == LIBUSB_ERROR_ACCESS ? FA_PERM : rc == LIBUSB_ERROR_NO_DEVICE ? FA_DEV_ABSENT : FA_DEV_IO;
        goto fail;
    }
    err = usb_claim(u, vid, pid, why, whylen);
    if (err)
        goto fail;
    libusb_free_device_list(list, 1);
    *out = &u->base;
    return FA_OK;
fail:
    if (list)
        libusb_free_device_list(list, 1);
    usb_close(&u->base);
    return err;
}

enum fa_err usb_list_devices(usb_list_cb cb, void *arg, char *why, size_t whylen)
{
    libusb_context *ctx = NULL;
    libusb_device **list = NULL;
    struct libusb_device_descriptor dd;
    enum fa_err err = FA_OK;
    ssize_t count, i;
    int rc;

    rc = libusb_init(&ctx);
    if (rc) {
        snprintf(why, whylen, "no USB subsystem on this machine (libusb_init: %s)", libusb_strerror(rc));
        return FA_DEV_ABSENT;
    }
    count = libusb_get_device_list(ctx, &list);
    if (count < 0) {
        list = NULL;
        snprintf(why, whylen, "cannot list USB devices: %s", libusb_strerror((int)count));
        err = FA_DEV_ABSENT;
        goto out;
    }
    for (i = 0; i < count; i++) {
        if (libusb_get_device_descriptor(list[i], &dd))
            continue;
        if (cb(dd.idVendor, dd.idProduct, libusb_get_bus_number(list[i]), libusb_get_device_address(list[i]),
               arg))
            break;
    }
out:
    if (list)
        libusb_free_device_list(list, 1);
    libusb_exit(ctx);
    return err;
}
