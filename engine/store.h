/*
 * store.h — the SQLite store: every draft ever received, every invoice,
 * receipt and rejection, and the upload queue.
 *
 * One database file in WAL mode with synchronous=FULL: when a function that
 * writes returns FA_OK, its effect survives kill -9 and power loss.  All SQL
 * is prepared once at open; every function takes the store's lock, so the
 * store may be used from any thread.
 *
 * The browsable files (issued/, receipts/, rejected/) are served through one
 * generic interface over "collections": each row has a stable id (the FUSE
 * layer builds inode numbers from it), a name, a size, an mtime and content.
 */
#ifndef FAPIAO_STORE_H
#define FAPIAO_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "device/device.h"
#include "engine/err.h"

#define STORE_NAME_MAX 256

typedef struct store store_t;

enum fa_err store_open(const char *path, store_t **out, char *why, size_t whylen);
void store_close(store_t *s);

/* ---- drafts --------------------------------------------------------- */

/* Record a received draft (state "received"); every draft stays for audit.
 * entry: pending/'s number for the file it came in (0: none), kept so that
 * a waiting draft shows under the same inode number after a remount. */
enum fa_err store_add_draft(store_t *s, const char *name, const void *body, size_t len,
                            int64_t now, uint64_t entry, int64_t *draft_id);
/* The draft waits for the device; reason is shown in status. */
enum fa_err store_set_draft_waiting(store_t *s, int64_t draft_id, const char *reason);
/* rm of a waiting draft.  FA_BUSY if it waits no longer, or if the device
 * signed a number for it (it has an intent): that invoice exists and is
 * restored, never cancelled (SPEC §3.5: e-invoices are reversed, not voided). */
enum fa_err store_cancel_draft(store_t *s, int64_t draft_id, int64_t now);

struct store_draft {
    int64_t id;
    char name[STORE_NAME_MAX];
    int64_t received_at;
    unsigned char *body;   /* malloc'd */
    size_t len;
    uint64_t entry;        /* as given to store_add_draft; 0: none */
    char reason[256];      /* why it waited when it was last tried ("": not said) */
};
/* Waiting drafts in arrival order (at mount).  cb returns non-zero to stop;
 * the body belongs to the callee after cb returns (it must free it). */
typedef int (*store_draft_cb)(void *ctx, struct store_draft *d);
enum fa_err store_list_waiting(store_t *s, store_draft_cb cb, void *ctx);
/* n pending/ numbers no earlier call gave, in this or an earlier mount:
 * *first .. *first + n - 1. */
enum fa_err store_reserve_entries(store_t *s, uint64_t n, uint64_t *first);

/* ---- issuing -------------------------------------------------------- */

/* The invoice issued for request_id, if any (idempotency, SPEC §2.1). */
struct store_invoice_ref {
    int64_t invoice_id;
    char code[16], number[16], period[8];
    int64_t issued_at, total_fen;
    char draft_hash[65];
};
enum fa_err store_find_request(store_t *s, const char *request_id, struct store_invoice_ref *ref);
/* The invoice issued for draft draft_id (restored ones too); FA_NOTFOUND if none. */
enum fa_err store_find_draft_invoice(store_t *s, int64_t draft_id, struct store_invoice_ref *ref);

/* The invoice CODE-NUMBER (malloc'd file bytes).  FA_NOTFOUND if this store
 * never issued it. */
enum fa_err store_get_blue(store_t *s, const char *code, const char *number, char **json,
                           size_t *len);
/* Calls fn with the file bytes of every red invoice of CODE-NUMBER, in issue
 * order (under the store's lock: fn must not call the store); a non-zero
 * return stops. */
enum fa_err store_each_red(store_t *s, const char *code, const char *number,
                           int (*fn)(void *arg, const void *json, size_t len), void *arg);

/* ---- reconciliation with the device journal (SPEC §5.1) ---- */

bool store_has_number(store_t *s, const char *code, const char *number);
/* The write-ahead record for CODE-NUMBER, with its draft. */
struct store_intent {
    int64_t draft_id;
    char *canonical; size_t canonical_len;   /* malloc'd */
    char draft_name[STORE_NAME_MAX];
    char *body; size_t body_len;             /* the draft as received, malloc'd */
    char *receipt; size_t receipt_len;       /* malloc'd; NULL if written before migration 8 */
};
enum fa_err store_find_intent(store_t *s, const char *code, const char *number,
                              struct store_intent *in);
void store_intent_free(struct store_intent *in);
/* After reconciliation: intents whose number the device never signed. */
enum fa_err store_drop_intents(store_t *s);

/* ---- device/log ---- */
enum fa_err store_log(store_t *s, int64_t at, int64_t uid, const char *operation,
                      const char *result);
typedef int (*store_log_cb)(void *ctx, int64_t id, int64_t at, int64_t uid, const char *operation,
                            const char *result);
enum fa_err store_list_log(store_t *s, int64_t after_id, int max, store_log_cb cb, void *ctx);

/* Write-ahead: the canonical bytes we are about to ask the device to sign,
 * and the receipt the draft gets once they are signed; n of them in one
 * synced transaction (a batch, engine.c). */
struct store_new_intent {
    int64_t draft_id;
    const char *code, *number;
    const void *canonical, *receipt;
    size_t len, receipt_len;
};
enum fa_err store_put_intents(store_t *s, const struct store_new_intent *v, int n, int64_t now);

struct store_issued {
    int64_t draft_id;
    const char *draft_name;
    const char *code, *number, *period;  /* period "YYYY-MM" */
    int64_t issued_at;
    const char *request_id;              /* may be NULL */
    const char *draft_hash;              /* hex SHA-256 of the normalised draft */
    int64_t total_fen;
    const void *json; size_t json_len;   /* the invoice file */
    const void *receipt; size_t receipt_len;
    const char *red_code, *red_number;   /* a red invoice: the blue one it reverses */
    const struct device_summary *lines;  /* what it adds to its period's summary
                                          * (summary_add_invoice) */
};
/* One transaction for n invoices, each with its receipt (replacing an older
 * one of that name), draft state, upload queue entry, intent removed; their
 * ids into invoice_ids[i] and receipt_ids[i]. */
enum fa_err store_put_invoices(store_t *s, const struct store_issued *v, int n,
                               int64_t *invoice_ids, int64_t *receipt_ids);

/* One transaction: receipt "duplicate" for a draft whose request_id was
 * issued before (replacing an older receipt of that name), draft state. */
enum fa_err store_put_duplicate(store_t *s, int64_t draft_id, const char *name, int64_t invoice_id,
                                const void *receipt, size_t len, int64_t now, int64_t *receipt_id);

/* One transaction: rejection (replacing an older one of that name), draft state. */
enum fa_err store_put_rejection(store_t *s, int64_t draft_id, const char *name,
                                const void *body, size_t len, const char *error,
                                int64_t now, int64_t *reject_id);

/* ---- browsing: collections ------------------------------------------ */

enum store_coll {
    COLL_INVOICE,       /* issued/PERIOD/CODE-NUMBER.json; scope = period */
    COLL_RECEIPT,       /* receipts/NAME */
    COLL_REJECT_BODY,   /* rejected/NAME */
    COLL_REJECT_ERROR,  /* rejected/NAME.error (same id as the body) */
    COLL_COUNT
};
/* rejected/NAME.error: the reason beside the draft NAME. */
#define STORE_ERROR_SUFFIX ".error"
/* Which of the two rejected/ collections a name of length len belongs to. */
enum store_coll store_reject_coll(const char *name, size_t len);

struct store_entry {
    int64_t id;
    char name[STORE_NAME_MAX + 8];
    int64_t mtime;
    uint64_t size;
};

/* Entries with id > after_id in id order, at most max; cb returns non-zero
 * to stop early.  scope is the period for COLL_INVOICE, NULL otherwise.
 * Rows hidden by rm are skipped. */
typedef int (*store_entry_cb)(void *ctx, const struct store_entry *e);
enum fa_err store_list(store_t *s, enum store_coll c, const char *scope, int64_t after_id,
                       int max, store_entry_cb cb, void *ctx);
/* By name within scope (the name as listed). */
enum fa_err store_lookup(store_t *s, enum store_coll c, const char *scope, const char *name,
                         struct store_entry *e);
enum fa_err store_stat(store_t *s, enum store_coll c, int64_t id, struct store_entry *e);
/* Whole content, malloc'd. */
enum fa_err store_read(store_t *s, enum store_coll c, int64_t id, unsigned char **buf, size_t *len);
/* rm in receipts/ or rejected/: hidden from the folder, never from the store. */
enum fa_err store_hide(store_t *s, enum store_coll c, int64_t id);
/* For tests.  Rows stepped through by full table scans in the store's own
 * statements since open: 0 as long as every lookup finds its row by an
 * index.  The SQL behind store_list, to check its query plan. */
uint64_t store_scan_steps(store_t *s);
const char *store_list_sql(enum store_coll c);
/* For tests.  Each step of each prepared statement's query plan (EXPLAIN
 * QUERY PLAN's detail: "SEARCH t USING INDEX ...", "SCAN t", ...), given to
 * cb with the statement's SQL; the number of statements, or -1 if a plan
 * could not be made. */
typedef void (*store_plan_cb)(void *ctx, const char *sql, const char *step);
int store_plan_steps(store_t *s, store_plan_cb cb, void *ctx);
/* For tests.  The connection's PRAGMA synchronous now: 2 (FULL) after every
 * commit that must be durable, 1 (NORMAL) after one that may wait. */
int store_synchronous(store_t *s);

/* When each folder last changed (0: never), for directory mtimes that stay
 * the same across remounts as long as nothing changes. */
struct store_times {
    int64_t draft, invoice, receipt, reject;   /* the newest of each */
    int64_t created;                           /* the store itself */
    int64_t newest_period_first;               /* first invoice of the newest period */
};
enum fa_err store_last_times(store_t *s, struct store_times *t);
/* Its .draft, from memory, without the store's lock: pending/ is stat'ed
 * before every create, and must not wait for an issuing commit's sync. */
int64_t store_last_draft_time(store_t *s);
/* The newest issue time in a period (0 if none). */
int64_t store_period_last(store_t *s, const char *period);

/* The mtime of a generated file: the time its bytes (digest `hash`) were
 * first seen.  Remembered in the store so an unchanged file keeps its time
 * across remounts.  Returns that time (now, for new bytes). */
int64_t store_render_mtime(store_t *s, const char *file, const char *hash, int64_t now);

/* Periods that have invoices, as month indexes (year*12 + month-1) > after. */
typedef int (*store_period_cb)(void *ctx, int month_index);
enum fa_err store_list_periods(store_t *s, int after, store_period_cb cb, void *ctx);
bool store_has_period(store_t *s, int month_index);

/* ---- counts for status ------------------------------------------------ */

struct store_counts {
    int64_t invoices, drafts_waiting, rejected, upload_queued, upload_queued_fen;
    int64_t upload_oldest_issued_at;   /* 0 if the queue is empty */
    int64_t upload_queued_blue_fen;    /* blue invoices not yet uploaded: the offline amount */
    int64_t log_entries, log_last_id;  /* device/log */
};
enum fa_err store_counts(store_t *s, struct store_counts *c);
/* Only the upload_* fields: cheap enough for every draft (no count of all invoices). */
enum fa_err store_queue_counts(store_t *s, struct store_counts *c);

/* ---- period summaries and clearing (SPEC §5.4) -------------------------- */

struct store_upload;   /* below, with the upload queue */

/* The period's summary as the store's invoices make it (reports/YYYY-MM.csv),
 * lines in canonical order; no signature. */
enum fa_err store_period_summary(store_t *s, const char *period, struct device_summary *out);
/* The next invoice of period still in the upload queue with id > after_id,
 * whether due or not (a clearing uploads them now).  FA_NOTFOUND: none. */
enum fa_err store_next_queued_in_period(store_t *s, const char *period, int64_t after_id,
                                        struct store_upload *u);
/* The next invoice of period with id > after_id, queued or not.  FA_NOTFOUND: none. */
enum fa_err store_next_invoice_in_period(store_t *s, const char *period, int64_t after_id,
                                         struct store_upload *u);
/* Invoices of period in the upload queue (-1 on error). */
int64_t store_count_queued_in_period(store_t *s, const char *period);

/* Small named values that must survive a remount (the last clearing's result). */
enum fa_err store_get_meta(store_t *s, const char *key, char **value);   /* malloc'd */
enum fa_err store_put_meta(store_t *s, const char *key, const char *value);

/* ---- upload queue (issue order) --------------------------------------- */

struct store_upload {
    int64_t invoice_id;
    char code[16], number[16];
    unsigned char *json; size_t len;   /* malloc'd */
    int attempts;
    bool out_of_order;                 /* store_next_upload: a refused one ahead of the head */
};
/* How far ahead the uploader ever schedules an attempt, in seconds: a time
 * further ahead was set before the clock went back, and counts as due. */
struct store_due {
    int64_t order_ahead;      /* the longest backoff of an invoice in order */
    int64_t refused_ahead;    /* the retry interval of a refused invoice */
};
/* The oldest queued invoice with id > after_id (0: the head of the queue),
 * if its next attempt is due at `now`; refused invoices (below) do not count
 * as the head, and one that is due goes even while the head is not (then
 * out_of_order is set if the head comes before it: the caller must not take
 * its id as the new after_id).  FA_NOTFOUND if none is due. */
enum fa_err store_next_upload(store_t *s, int64_t now, const struct store_due *due, int64_t after_id,
                              struct store_upload *u);
void store_upload_free(struct store_upload *u);
enum fa_err store_upload_done(store_t *s, int64_t invoice_id, int64_t now);
/* The same for n invoices in one commit (the uploader's run of accepted ones). */
enum fa_err store_uploads_done(store_t *s, const int64_t *invoice_ids, int n, int64_t now);
/* A failed attempt: tried again at next_at.  refused: the platform refused the
 * invoice for good (409, 400, 413), and it steps out of the queue's order. */
enum fa_err store_upload_failed(store_t *s, int64_t invoice_id, int64_t next_at, bool refused,
                                const char *error);
/* Earliest next attempt of the queue, 0 if empty. */
enum fa_err store_upload_next_due(store_t *s, int64_t *when);
/* The invoices the platform refused, and the first of them (FA_NOTFOUND: none). */
struct store_refused {
    int64_t count;
    char code[16], number[16];
    char error[256];   /* its last error, cut */
};
enum fa_err store_first_refused(store_t *s, struct store_refused *r);

#endif
