/*
 * device.c — opening the configured device.
 *
 * The embedded default creates the demo device on first run.  The PIN comes
 * from [device] pin_file (which must not be readable by others) or, for the
 * simulated device without one, is the demo PIN.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "device/device.h"
#include "device/sim.h"

static int read_pin(const char *file, char *pin, size_t cap, char *why, size_t whylen)
{
    struct stat sb;
    FILE *f;
    size_t n;

    if (stat(file, &sb)) {
        snprintf(why, whylen, "[device] pin_file %s: %s", file, strerror(errno));
        return -1;
    }
    if (sb.st_mode & 077) {
        snprintf(why, whylen, "[device] pin_file %s must be mode 0600 (it is %03o)", file,
                 (unsigned)(sb.st_mode & 0777));
        return -1;
    }
    f = fopen(file, "r");
    if (!f) {
        snprintf(why, whylen, "[device] pin_file %s: %s", file, strerror(errno));
        return -1;
    }
    n = fread(pin, 1, cap - 1, f);
    fclose(f);
    pin[n] = 0;
    while (n && (pin[n - 1] == '\n' || pin[n - 1] == '\r'))
        pin[--n] = 0;
    return 0;
}

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
    if (c->pin_file[0] && read_pin(c->pin_file, pin, sizeof pin, why, whylen)) {
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
