/*
 * sim.h — the simulated tax-control device (SPEC §5.1, §5.2 `sim`).
 *
 * State lives in one JSON file, rewritten crash-safely (new file, fsync,
 * rename, fsync of the directory) whenever it changes; the journal of
 * signed invoices is a second, append-only file beside it (STATE.journal),
 * fsync'd before the state that consumes the number.  Its clock is
 * clock_now(), so the test clock moves it too.
 */
#ifndef FAPIAO_DEVICE_SIM_H
#define FAPIAO_DEVICE_SIM_H

#include "device/device.h"

#define SIM_DEMO_PIN "12345678"

/* Create the demo device of SPEC §5.1 at `path` if no file is there. */
enum fa_err sim_create_demo(const char *path, char *why, size_t whylen);
enum fa_err sim_open(const char *path, struct device **out, char *why, size_t whylen);

#endif
