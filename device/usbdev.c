/*
 * usbdev.c — present-or-absent wrapper around the remote USB device; see usbdev.h.
 *
 * One mutex guards the pointer to the remote device; commands run on the
 * remote (which has its own lock) after it is taken, each holding a count on
 * it.  An FA_DEV_ABSENT from the remote means it was unplugged: probing starts
 * again, and the remote (its libusb context and descriptor) is closed when
 * the last command on it has returned.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "device/remote.h"
#include "device/usb.h"
#include "device/usbdev.h"

struct remote_ref {
    struct device *dev;
    int users;                 /* commands running on it */
};

struct usbdev {
    struct device base;
    pthread_mutex_t lock;
    unsigned vid, pid;
    char pin[64];              /* sent at each login; "" none, or the device refused it */
    struct remote_ref *remote; /* NULL while absent */
    time_t last_probe;         /* monotonic seconds */
    char why[256];             /* why it is absent */
};

static time_t mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static int find_commercial(unsigned vid, unsigned pid, unsigned bus, unsigned address, void *arg)
{
    struct usbdev *u = arg;
    const char *name = device_known_commercial(vid, pid);
    (void)bus;
    (void)address;
    if (name)
        snprintf(u->why, sizeof u->why, "%s %04x:%04x attached: its proprietary command set is not "
                 "supported by fapiaofs", name, vid, pid);
    return name != NULL;
}

/* Look for the device if it is time to; lock held. */
static void probe(struct usbdev *u)
{
    struct bot_transport *t = NULL;
    struct device *r = NULL;
    char why[256] = "";

    if (u->remote || (u->last_probe && mono_seconds() - u->last_probe < USBDEV_PROBE_SECONDS))
        return;
    u->last_probe = mono_seconds();
    if (usb_transport_open(u->vid, u->pid, &t, why, sizeof why) != FA_OK) {
        snprintf(u->why, sizeof u->why, "%s", why[0] ? why : "no USB device");
        usb_list_devices(find_commercial, u, why, sizeof why);
        return;
    }
    if (remote_open(t, &r) != FA_OK) {
        bot_transport_close(t);
        snprintf(u->why, sizeof u->why, "cannot talk to USB device %04x:%04x", u->vid, u->pid);
        return;
    }
    /* A refused PIN is not fatal: drafts wait and status says why.  It is
     * not sent again, at a replug either: each refusal costs one of the
     * device's tries, and the last one locks it. */
    if (u->pin[0] && r->ops->verify_pin(r, u->pin) == FA_DEV_PIN)
        explicit_bzero(u->pin, sizeof u->pin);
    if (!(u->remote = calloc(1, sizeof *u->remote))) {
        r->ops->close(r);
        snprintf(u->why, sizeof u->why, "out of memory");
        return;
    }
    u->remote->dev = r;
    u->why[0] = 0;
}

/* The remote device, counted as used until after(), or NULL (absent). */
static struct remote_ref *present(struct usbdev *u)
{
    struct remote_ref *r;
    pthread_mutex_lock(&u->lock);
    probe(u);
    if ((r = u->remote))
        r->users++;
    pthread_mutex_unlock(&u->lock);
    return r;
}

/* After a command on r: FA_DEV_ABSENT means it was unplugged.  An unplugged
 * remote goes with the last command on it. */
static enum fa_err after(struct usbdev *u, struct remote_ref *r, enum fa_err err)
{
    bool last;

    pthread_mutex_lock(&u->lock);
    if (err == FA_DEV_ABSENT && u->remote == r) {
        snprintf(u->why, sizeof u->why, "USB device %04x:%04x was unplugged", u->vid, u->pid);
        u->remote = NULL;
        u->last_probe = 0;
    }
    last = --r->users == 0 && u->remote != r;
    pthread_mutex_unlock(&u->lock);
    if (last) {
        r->dev->ops->close(r->dev);
        free(r);
    }
    return err;
}

#define USBDEV (struct usbdev *)d
#define FORWARD(call)                                                   \
    struct usbdev *u = USBDEV;                                          \
    struct remote_ref *ref = present(u);                                \
    struct device *r = ref ? ref->dev : NULL;                           \
    return r ? after(u, ref, r->ops->call) : FA_DEV_ABSENT

static enum fa_err usbdev_get_info(struct device *d, struct device_info *out)
{
    struct usbdev *u = USBDEV;
    struct remote_ref *ref = present(u);
    if (ref)
        return after(u, ref, ref->dev->ops->get_info(ref->dev, out));
    memset(out, 0, sizeof *out);
    strcpy(out->kind, "usb");
    pthread_mutex_lock(&u->lock);
    snprintf(out->model, sizeof out->model, "absent: %.55s", u->why);
    pthread_mutex_unlock(&u->lock);
    return FA_OK;
}

static enum fa_err usbdev_get_status(struct device *d, struct device_status *out)
{ FORWARD(get_status(r, out)); }
static enum fa_err usbdev_list_rolls(struct device *d, struct device_roll *out, int max, int *n)
{ *n = 0; { FORWARD(list_rolls(r, out, max, n)); } }
/* The PIN an operator gives (`clear pin=...`) is the one a replug logs in
 * with, if the device took it. */
static enum fa_err usbdev_verify_pin(struct device *d, const char *pin)
{
    struct usbdev *u = USBDEV;
    struct remote_ref *ref = present(u);
    enum fa_err err;

    if (!ref)
        return FA_DEV_ABSENT;
    err = after(u, ref, ref->dev->ops->verify_pin(ref->dev, pin));
    pthread_mutex_lock(&u->lock);
    if (err == FA_OK)
        snprintf(u->pin, sizeof u->pin, "%s", pin);
    else if (err == FA_DEV_PIN && !strcmp(u->pin, pin))
        explicit_bzero(u->pin, sizeof u->pin);
    pthread_mutex_unlock(&u->lock);
    return err;
}
static enum fa_err usbdev_issue_begin(struct device *d, const struct device_issue_req *req,
                                      struct device_issue_fields *out)
{ FORWARD(issue_begin(r, req, out)); }
static enum fa_err usbdev_issue_sign(struct device *d, const char *code, const char *number,
                                     const void *bytes, size_t len, char sig[CRYPTO_SIG_B64_MAX])
{ FORWARD(issue_sign(r, code, number, bytes, len, sig)); }
static enum fa_err usbdev_read_journal(struct device *d, uint64_t from,
                                       struct device_journal_entry *out, int max, int *n)
{ *n = 0; { FORWARD(read_journal(r, from, out, max, n)); } }
static enum fa_err usbdev_period_summary(struct device *d, const char *period,
                                         struct device_summary *out)
{ FORWARD(period_summary(r, period, out)); }
static enum fa_err usbdev_apply_clearance(struct device *d, const char *answer, size_t len)
{ FORWARD(apply_clearance(r, answer, len)); }
static enum fa_err usbdev_set_clock(struct device *d, int64_t now)
{ FORWARD(set_clock(r, now)); }

static void usbdev_close(struct device *d)
{
    struct usbdev *u = USBDEV;
    if (u->remote) {   /* no command runs: the engine has stopped */
        assert(u->remote->users == 0);
        u->remote->dev->ops->close(u->remote->dev);
        free(u->remote);
    }
    explicit_bzero(u->pin, sizeof u->pin);
    pthread_mutex_destroy(&u->lock);
    free(u);
}

static const struct device_ops usbdev_ops = {
    .get_info = usbdev_get_info,
    .get_status = usbdev_get_status,
    .list_rolls = usbdev_list_rolls,
    .verify_pin = usbdev_verify_pin,
    .issue_begin = usbdev_issue_begin,
    .issue_sign = usbdev_issue_sign,
    .read_journal = usbdev_read_journal,
    .period_summary = usbdev_period_summary,
    .apply_clearance = usbdev_apply_clearance,
    .set_clock = usbdev_set_clock,
    .close = usbdev_close,
};

enum fa_err usbdev_open(unsigned vid, unsigned pid, const char *pin, struct device **out)
{
    struct usbdev *u = calloc(1, sizeof *u);
    if (!u)
        return FA_NOMEM;
    u->base.ops = &usbdev_ops;
    pthread_mutex_init(&u->lock, NULL);
    u->vid = vid ? vid : USB_FAPIAO_VID;
    u->pid = pid ? pid : USB_FAPIAO_PID;
    snprintf(u->pin, sizeof u->pin, "%s", pin);
    *out = &u->base;
    return FA_OK;
}
