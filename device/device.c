/*
 * device.c — opening the configured device.
 *
 * The embedded default creates the demo device on first run.  The PIN comes
 * from [device] pin_file (which must not be readable by others) or, for the
 * simulated device without one, is the demo PIN.  A USB device without one
 * is not logged in until `clear pin=...`: a guess would cost one of its five
 * tries at every mount and every replug, and five lock it for good.
 */
#include <stdio.h>
#include <string.h>
#include "device/device.h"
#include "device/sim.h"
#include "device/usbdev.h"

enum fa_err device_open(const struct config *c, bool login, struct device **out, char *why,
                        size_t whylen)
{
    char pin[64] = SIM_DEMO_PIN;
    enum fa_err err;

    if (!strcmp(c->device_kind, "usb")) {   /* usbdev logs in when it finds the device */
        pin[0] = 0;
        if (c->pin_file[0] && config_read_secret(c->pin_file, "[device] pin_file", pin,
                                                 sizeof pin, why, whylen))
            return FA_DEV_PIN;
        return usbdev_open(c->vid, c->pid, pin, out);
    }
    err = sim_create_demo(c->device_state, why, whylen);
    if (err)
        return err;
    err = sim_open(c->device_state, out, why, whylen);
    if (err)
        return err;
    if (c->pin_file[0] && config_read_secret(c->pin_file, "[device] pin_file", pin,
                                              sizeof pin, why, whylen)) {
        device_close(*out);
        *out = NULL;
        return FA_DEV_PIN;
    }
    /* A refused PIN is not fatal: the mount works and drafts wait. */
    if (login)
        (void)(*out)->ops->verify_pin(*out, pin);
    return FA_OK;
}

void device_close(struct device *d)
{
    if (d)
        d->ops->close(d);
}

char *device_summary_text(const struct device_summary *s)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    int i;

    if (!f)
        return NULL;
    fprintf(f, "%s %s\n", s->period, s->machine_number);
    for (i = 0; i < s->nlines && i < DEVICE_SUMMARY_LINES; i++)
        fprintf(f, "%s %s %d %lld %lld %lld\n", s->lines[i].type, s->lines[i].red ? "red" : "blue",
                s->lines[i].rate_pm, (long long)s->lines[i].count,
                (long long)s->lines[i].amount_fen, (long long)s->lines[i].tax_fen);
    if (fclose(f)) {
        free(out);
        return NULL;
    }
    return out;
}

/* SPEC §5.2: devices with proprietary command sets we recognise but cannot drive. */
static const struct {
    unsigned vid, pid;
    const char *name;
} commercial[] = {
    { 0x1432, 0x07dc, "NISEC 税控盘" },
    { 0x1432, 0x07e2, "NISEC 税控盘" },
    { 0x14d6, 0xa002, "税务UKey" },
    { 0x3254, 0xff10, "税务UKey" },
    { 0x1677, 0x6101, "税务UKey" },
    { 0x2012, 0x2010, "税务UKey" },
    { 0x1432, 0x07d0, "税务UKey" },
    { 0x287f, 0x00d4, "税务UKey" },
    { 0x1ea8, 0xb00b, "税务UKey" },
    { 0xd449, 0x0001, "税务UKey" },
    { 0x163c, 0x5480, "税务UKey" },
    { 0x2ec9, 0x1001, "税务UKey" },
    { 0x3a59, 0x4458, "税务UKey" },
};

const char *device_known_commercial(unsigned vid, unsigned pid)
{
    size_t i;
    for (i = 0; i < sizeof commercial / sizeof commercial[0]; i++)
        if (commercial[i].vid == vid && commercial[i].pid == pid)
            return commercial[i].name;
    return NULL;
}
