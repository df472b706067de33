/*
 * device.c — opening the configured device.
 *
 * The embedded default creates the demo device on first run.  The PIN comes
 * from [device] pin_file (which must not be readable by others) or, for the
 * simulated device without one, is the demo PIN.
 */
#include <stdio.h>
#include <string.h>
#include "device/device.h"
#include "device/sim.h"

enum fa_err device_open(const struct config *c, struct device **out, char *why, size_t whylen)
{
    char pin[64] = SIM_DEMO_PIN;
    enum fa_err err;

    if (strcmp(c->device_kind, "sim")) {
        snprintf(why, whylen, "device kind \"%s\" is not supported yet", c->device_kind);
        return FA_DEV_ABSENT;
    }
    err = sim_create_demo(c->device_state, why, whylen);
    if (err)
        return err;
    err = sim_open(c->device_state, out, why, whylen);
    if (err)
        return err;
    if (c->pin_file[0] && config_read_secret(c->pin_file, "[device] pin_file", true, pin,
                                              sizeof pin, why, whylen)) {
        device_close(*out);
        *out = NULL;
        return FA_DEV_PIN;
    }
    /* A refused PIN is not fatal: the mount works and drafts wait. */
    (void)(*out)->ops->verify_pin(*out, pin);
    return FA_OK;
}

void device_close(struct device *d)
{
    if (d)
        d->ops->close(d);
}
