/*
 * engine.h — the engine: one draft in, one outcome out.
 *
 * engine_submit() is what happens between a writer's last write() and the
 * return of its close() or rename(): the draft is recorded, validated,
 * numbered and signed by the device, and committed with its receipt — or
 * rejected with every problem named, or left waiting for the device.
 * Issuing is serialised (one device, numbers strictly in order); uploads
 * happen later, in the background (engine/upload.h).
 */
#ifndef FAPIAO_ENGINE_H
#define FAPIAO_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include "device/device.h"
#include "engine/config.h"
#include "engine/err.h"
#include "engine/store.h"
#include "engine/upload.h"

struct engine;

enum outcome_kind {
    OUTCOME_ISSUED,       /* a new invoice */
    OUTCOME_DUPLICATE,    /* request_id issued before: receipt points at that invoice */
    OUTCOME_WAITING,      /* the device refused for now: the draft waits */
    OUTCOME_REJECTED,     /* invalid: rejected/NAME.error says why */
};

struct engine_outcome {
    enum outcome_kind kind;
    int64_t draft_id;
    int64_t invoice_id, receipt_id;   /* OUTCOME_ISSUED, OUTCOME_DUPLICATE */
    int64_t reject_id;                /* OUTCOME_REJECTED */
    char period[8];                   /* OUTCOME_ISSUED: the invoice's issued/ folder */
    char invoice_name[48];            /* OUTCOME_ISSUED: CODE-NUMBER.json */
    char reason[256];                 /* OUTCOME_WAITING: why; OUTCOME_REJECTED: first problem */
    bool waits_for_amount;            /* OUTCOME_WAITING for the offline amount: later blue
                                         drafts wait behind it (engine_submit's behind) */
};

/* ENGINE_RUN: reconcile and start the uploader.  ENGINE_CHECK: only open the
 * store and the device, to report a bad configuration before daemonising. */
enum engine_mode { ENGINE_RUN, ENGINE_CHECK };
enum fa_err engine_open(const struct config *c, enum engine_mode mode, struct engine **out,
                        char *why, size_t whylen);
void engine_close(struct engine *e);

/* Process a draft.  FA_OK for issued and waiting drafts (see out->kind; a
 * draft the device signed whose invoice the store could not take waits for
 * its restore), FA_REJECTED for rejected ones, another error if nothing
 * could be stored (then nothing is left behind and the writer must retry).  entry: the
 * caller's number for the file (0: none), kept with the draft and given back
 * by store_list_waiting if it waits (pending/'s inode).  behind: the name
 * of the earliest waiting draft when it waits for the offline amount
 * (waits_for_amount), or NULL; a valid blue draft then waits behind it
 * (SPEC §2.1: waiting drafts are issued in arrival order), however small.
 * Other causes (lock date, PIN, hours) stop every draft alike, and an empty
 * roll only its type, so they need no queue. */
enum fa_err engine_submit(struct engine *e, const char *name, const void *body, size_t len,
                          uint64_t entry, const char *behind, struct engine_outcome *out);

/* Retry a waiting draft (recorded earlier as draft_id).  One that waits
 * because its invoice was signed but not stored is issued as that invoice
 * once reconciliation has restored it. */
enum fa_err engine_retry(struct engine *e, int64_t draft_id, const char *name, const void *body,
                         size_t len, struct engine_outcome *out);

/* rm of a waiting draft. */
enum fa_err engine_cancel(struct engine *e, int64_t draft_id);

/* Reconciliation (SPEC §5.1): the device journal against the store.  An
 * invoice the device signed that the store lacks (a crash between signing
 * and commit) is restored from the journal and the write-ahead intent; one
 * that cannot be restored, or a store invoice the device never signed, is
 * an integrity alarm.  Runs at mount and after a device error. */
struct engine_reconcile {
    int64_t at;                 /* when it last ran (0: never) */
    int64_t journal, store;     /* invoices the device signed / the store has */
    int64_t restored, alarms;   /* since mount */
    char last[512];             /* the last restoration or alarm, in words */
};
enum fa_err engine_reconcile(struct engine *e);
/* An invoice the device signed that the store could not take (a full disk)
 * is restored by the next round; with no draft to issue, something must
 * still try: pending/'s retry thread calls this every few seconds. */
void engine_retry_restore(struct engine *e);
void engine_reconcile_report(struct engine *e, struct engine_reconcile *out);

/* A line in device/log, by the daemon's user or by uid (who wrote a command). */
void engine_log(struct engine *e, const char *operation, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void engine_log_as(struct engine *e, int64_t uid, const char *operation, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* One clearing at a time (engine/clearing.c): false if one is running. */
bool engine_clear_begin(struct engine *e);
void engine_clear_end(struct engine *e);
bool engine_clear_running(struct engine *e);
/* Tests: FAPIAOFS_FAULT=clear-after-N makes the daemon die like kill -9
 * after step N of a clearing (0: no fault). */
int engine_clear_fault_step(struct engine *e);

store_t *engine_store(struct engine *e);
struct device *engine_device(struct engine *e);
uploader_t *engine_uploader(struct engine *e);
const struct config *engine_config(struct engine *e);

#endif
