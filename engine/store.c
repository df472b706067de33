/*
 * store.c — SQLite store; see store.h for the contract.
 *
 * Design notes
 * - One connection, one mutex.  Every statement is prepared at open and
 *   kept; a call locks, binds, steps, resets.  Simple and fast enough for
 *   thousands of invoices a second, and it makes every call atomic.
 * - Schema changes are numbered migrations applied in order inside one
 *   transaction each, tracked by PRAGMA user_version.
 * - Ids are INTEGER PRIMARY KEYs that are never reused (AUTOINCREMENT is
 *   not needed: rows are never deleted), so the FUSE layer can turn them
 *   into stable inode numbers.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "engine/store.h"
#include "engine/summary.h"

static const char *const store_migrations[] = {
    /* 1: the first schema */
    "CREATE TABLE drafts("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL, received_at INTEGER NOT NULL,"
    "  body BLOB NOT NULL, state TEXT NOT NULL DEFAULT 'received', reason TEXT,"
    "  invoice_id INTEGER);"
    "CREATE INDEX drafts_waiting ON drafts(id) WHERE state = 'waiting';"
    "CREATE TABLE invoices("
    "  id INTEGER PRIMARY KEY, code TEXT NOT NULL, number TEXT NOT NULL,"
    "  name TEXT NOT NULL, period TEXT NOT NULL, issued_at INTEGER NOT NULL,"
    "  draft_id INTEGER NOT NULL, request_id TEXT, draft_hash TEXT NOT NULL,"
    "  total_fen INTEGER NOT NULL, json BLOB NOT NULL, UNIQUE(code, number));"
    "CREATE INDEX invoices_period ON invoices(period, id);"
    "CREATE INDEX invoices_name ON invoices(period, name);"
    "CREATE UNIQUE INDEX invoices_request ON invoices(request_id) WHERE request_id IS NOT NULL;"
    "CREATE TABLE periods(month INTEGER PRIMARY KEY);"
    "CREATE TABLE intents(draft_id INTEGER PRIMARY KEY, code TEXT NOT NULL,"
    "  number TEXT NOT NULL, canonical BLOB NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE receipts(id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    "  draft_id INTEGER NOT NULL, json BLOB NOT NULL, mtime INTEGER NOT NULL,"
    "  hidden INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX receipts_name ON receipts(name);"
    "CREATE TABLE rejects(id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    "  draft_id INTEGER NOT NULL, body BLOB NOT NULL, error BLOB NOT NULL,"
    "  mtime INTEGER NOT NULL, hidden INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX rejects_name ON rejects(name);"
    "CREATE TABLE upload_queue(invoice_id INTEGER PRIMARY KEY,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT);"
    "CREATE TABLE uploads(invoice_id INTEGER PRIMARY KEY, uploaded_at INTEGER NOT NULL);",
    /* 2: red invoices know the blue invoice they reverse */
    "ALTER TABLE invoices ADD COLUMN red_code TEXT;"
    "ALTER TABLE invoices ADD COLUMN red_number TEXT;"
    "CREATE INDEX invoices_red ON invoices(red_code, red_number) WHERE red_code IS NOT NULL;",
    /* 3: when the store was made: the time of folders whose contents never change */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
    "INSERT INTO meta VALUES('created_at', CAST(strftime('%s', 'now') AS INTEGER));",
    /* 4: device/log, the history of device operations */
    "CREATE TABLE device_log(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, uid INTEGER NOT NULL,"
    "  operation TEXT NOT NULL, result TEXT NOT NULL);",
    /* 5: the period summary (reports/, clearing) kept up to date with every invoice;
     * the lines of invoices issued before are added by build_period_lines() */
    "CREATE TABLE period_lines(period TEXT NOT NULL, type TEXT NOT NULL, red INTEGER NOT NULL,"
    "  rate_pm INTEGER NOT NULL, count INTEGER NOT NULL, amount_fen INTEGER NOT NULL,"
    "  tax_fen INTEGER NOT NULL, PRIMARY KEY(period, type, red, rate_pm)) WITHOUT ROWID;"
    "INSERT INTO meta VALUES('period_lines', 'rebuild');",
    /* 6: running tallies, so that status and the offline check per draft do
     * not scan a million invoices or a long upload queue */
    "CREATE TABLE tallies(id INTEGER PRIMARY KEY CHECK (id = 1), invoices INTEGER NOT NULL,"
    "  queued INTEGER NOT NULL, queued_fen INTEGER NOT NULL, queued_blue_fen INTEGER NOT NULL);"
    "INSERT INTO tallies SELECT 1, (SELECT count(*) FROM invoices), (SELECT count(*) FROM upload_queue),"
    "  (SELECT coalesce(sum(i.total_fen), 0) FROM upload_queue q JOIN invoices i ON i.id = q.invoice_id),"
    "  (SELECT coalesce(sum(max(i.total_fen, 0)), 0) FROM upload_queue q"
    "   JOIN invoices i ON i.id = q.invoice_id);"
    "CREATE TRIGGER tally_invoice AFTER INSERT ON invoices BEGIN"
    "  UPDATE tallies SET invoices = invoices + 1 WHERE id = 1; END;"
    "CREATE TRIGGER tally_queued AFTER INSERT ON upload_queue BEGIN"
    "  UPDATE tallies SET queued = queued + 1,"
    "    queued_fen = queued_fen + (SELECT total_fen FROM invoices WHERE id = NEW.invoice_id),"
    "    queued_blue_fen = queued_blue_fen + (SELECT max(total_fen, 0) FROM invoices"
    "      WHERE id = NEW.invoice_id) WHERE id = 1; END;"
    "CREATE TRIGGER tally_unqueued AFTER DELETE ON upload_queue BEGIN"
    "  UPDATE tallies SET queued = queued - 1,"
    "    queued_fen = queued_fen - (SELECT total_fen FROM invoices WHERE id = OLD.invoice_id),"
    "    queued_blue_fen = queued_blue_fen - (SELECT max(total_fen, 0) FROM invoices"
    "      WHERE id = OLD.invoice_id) WHERE id = 1; END;",
    /* 7: a month is listed from an index alone (name, time, size), without
     * touching the invoices' pages: ls of a million reads megabytes, not gigabytes */
    "ALTER TABLE invoices ADD COLUMN size INTEGER;"
    "UPDATE invoices SET size = length(json);"
    "CREATE INDEX invoices_list ON invoices(period, id, name, issued_at, size);"
    "CREATE INDEX invoices_lookup ON invoices(period, name, issued_at, size);"
    "CREATE TRIGGER invoice_size AFTER INSERT ON invoices WHEN NEW.size IS NULL BEGIN"   /* tools */
    "  UPDATE invoices SET size = length(json) WHERE id = NEW.id; END;"
    "DROP INDEX invoices_period;"
    "DROP INDEX invoices_name;",
    /* 8: the write-ahead intent keeps the receipt too (it does not depend on
     * the signature), so an invoice restored by reconciliation gets the very
     * receipt its writer may already have read, warnings included */
    "ALTER TABLE intents ADD COLUMN receipt BLOB;",
    /* 9: receipts/ is listed from an index alone too: one receipt per draft
     * makes it as long as a year of invoices, and its rows carry the JSON.
     * hidden is a column as well as the condition: SQLite 3.40 counts a
     * partial index as covering only if it holds every column the WHERE
     * names, and without it each entry costs a table row read again */
    "ALTER TABLE receipts ADD COLUMN size INTEGER;"
    "UPDATE receipts SET size = length(json);"
    "CREATE INDEX receipts_list ON receipts(id, name, mtime, size, hidden) WHERE hidden = 0;"
    "CREATE TRIGGER receipt_size AFTER INSERT ON receipts WHEN NEW.size IS NULL BEGIN"   /* tools */
    "  UPDATE receipts SET size = length(json) WHERE id = NEW.id; END;",
    /* 10: an invoice the platform refused for good (409, 400, 413) steps out of
     * the queue's order, so that it does not hold back the ones after it; it
     * stays queued (offline) and is tried again at the backoff's pace */
    "ALTER TABLE upload_queue ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX upload_refused ON upload_queue(invoice_id, next_at) WHERE refused = 1;",
    /* 11: a waiting draft keeps its pending/ inode number across remounts
     * (SPEC §2.2): the number of the file it came in (entry) is kept with
     * it, and numbers are handed out in blocks from next_entry, so no mount
     * gives out one an earlier mount gave; the drafts already waiting keep
     * their row id, and the first block starts above every row id */
    "ALTER TABLE drafts ADD COLUMN entry INTEGER;"
    "UPDATE drafts SET entry = id WHERE state = 'waiting';"
    "INSERT OR REPLACE INTO meta VALUES('next_entry', (SELECT coalesce(max(id), 0) + 1 FROM drafts));",
    /* 12: rejected/NAME and NAME.error are hidden each by its own rm (bit 1
     * and bit 2 of hidden): the glob of `rm rejected/...` names both, and the
     * second rm failed with ENOENT when the first hid both */
    "UPDATE rejects SET hidden = 3 WHERE hidden != 0;",
};
#define STORE_MIGRATIONS (int)(sizeof store_migrations / sizeof store_migrations[0])

enum stmt_id {
    S_BEGIN, S_COMMIT, S_ROLLBACK,
    S_ADD_DRAFT, S_DRAFT_WAITING, S_DRAFT_CANCEL, S_LIST_WAITING, S_RESERVE_ENTRIES,
    S_FIND_REQUEST, S_FIND_DRAFT_INVOICE, S_GET_BLUE, S_EACH_RED, S_PUT_INTENT, S_DEL_INTENT,
    S_DEL_INTENT_NUMBER, S_HAS_NUMBER,
    S_FIND_INTENT,
    S_DEL_STALE_INTENTS, S_PUT_LOG, S_LIST_LOG,
    S_PUT_INVOICE, S_PUT_PERIOD, S_DRAFT_ISSUED, S_HIDE_RECEIPT_NAME, S_HIDE_REJECT_NAME,
    S_PUT_RECEIPT, S_QUEUE_UPLOAD,
    S_PUT_REJECT, S_DRAFT_REJECTED, S_DRAFT_DUPLICATE,
    S_LIST_PERIODS, S_HAS_PERIOD, S_LAST_TIMES, S_PERIOD_LAST, S_GET_META, S_PUT_META,
    S_COUNT_INVOICES, S_COUNT_WAITING, S_COUNT_REJECTED, S_COUNT_QUEUE, S_COUNT_LOG, S_FIRST_REFUSED,
    S_NEXT_UPLOAD, S_NEXT_REFUSED, S_UPLOAD_DEL, S_UPLOAD_DONE, S_UPLOAD_FAILED, S_UPLOAD_DUE,
    S_PUT_LINE, S_PERIOD_LINES, S_NEXT_QUEUED_IN, S_COUNT_QUEUED_IN, S_ALL_INVOICES,
    S_PERIOD_INVOICES,
    /* per collection: list, lookup, stat, read, hide (COLL_COUNT of each) */
    S_COLL_BASE,
    S_COUNT = S_COLL_BASE + 5 * COLL_COUNT
};

static const char *const stmt_sql[S_COLL_BASE] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_ADD_DRAFT] = "INSERT INTO drafts(name, received_at, body, entry) VALUES(?1, ?2, ?3, nullif(?4, 0))",
    [S_DRAFT_WAITING] = "UPDATE drafts SET state = 'waiting', reason = ?2 WHERE id = ?1",
    [S_DRAFT_CANCEL] = "UPDATE drafts SET state = 'cancelled', reason = 'removed from pending/ at ' || ?2"
                       " WHERE id = ?1 AND state = 'waiting'"
                       " AND NOT EXISTS (SELECT 1 FROM intents WHERE draft_id = ?1)",
    [S_LIST_WAITING] = "SELECT id, name, received_at, body, entry, reason FROM drafts WHERE state = 'waiting'"
                       " ORDER BY id",
    [S_RESERVE_ENTRIES] = "UPDATE meta SET value = value + ?1 WHERE key = 'next_entry' RETURNING value - ?1",
    [S_FIND_REQUEST] = "SELECT id, code, number, period, issued_at, total_fen, draft_hash FROM invoices"
                        " WHERE request_id = ?1",
    [S_FIND_DRAFT_INVOICE] = "SELECT id, code, number, period, issued_at, total_fen, draft_hash"
                             " FROM invoices WHERE id = (SELECT invoice_id FROM drafts"
                             " WHERE id = ?1 AND state = 'issued')",
    [S_GET_BLUE] = "SELECT json FROM invoices WHERE code = ?1 AND number = ?2",
    [S_EACH_RED] = "SELECT json FROM invoices WHERE red_code = ?1 AND red_number = ?2 ORDER BY id",
    [S_HAS_NUMBER] = "SELECT 1 FROM invoices WHERE code = ?1 AND number = ?2",
    [S_FIND_INTENT] = "SELECT i.draft_id, i.canonical, d.name, d.body, i.receipt FROM intents i"
                      " JOIN drafts d ON d.id = i.draft_id WHERE i.code = ?1 AND i.number = ?2",
    [S_DEL_STALE_INTENTS] = "DELETE FROM intents",
    [S_PUT_LOG] = "INSERT INTO device_log(at, uid, operation, result) VALUES(?1, ?2, ?3, ?4)",
    [S_LIST_LOG] = "SELECT id, at, uid, operation, result FROM device_log WHERE id > ?1 ORDER BY id"
                   " LIMIT ?2",
    [S_PUT_INTENT] = "INSERT OR REPLACE INTO intents(draft_id, code, number, canonical, created_at,"
                     " receipt) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [S_DEL_INTENT] = "DELETE FROM intents WHERE draft_id = ?1",
    [S_DEL_INTENT_NUMBER] = "DELETE FROM intents WHERE code = ?1 AND number = ?2",
    [S_PUT_INVOICE] = "INSERT INTO invoices(code, number, name, period, issued_at, draft_id, request_id,"
                      " draft_hash, total_fen, json, red_code, red_number, size)"
                      " VALUES(?1, ?2, ?1 || '-' || ?2 || '.json', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
                      " length(?9))",
    [S_PUT_PERIOD] = "INSERT OR IGNORE INTO periods(month) VALUES(?1)",
    [S_DRAFT_ISSUED] = "UPDATE drafts SET state = 'issued', invoice_id = ?2, reason = NULL WHERE id = ?1",
    [S_HIDE_RECEIPT_NAME] = "UPDATE receipts SET hidden = 1 WHERE name = ?1 AND hidden = 0",
    [S_HIDE_REJECT_NAME] = "UPDATE rejects SET hidden = 3 WHERE name = ?1 AND hidden != 3",
    [S_PUT_RECEIPT] = "INSERT INTO receipts(name, draft_id, json, mtime, size)"
                      " VALUES(?1, ?2, ?3, ?4, length(?3))",
    [S_QUEUE_UPLOAD] = "INSERT INTO upload_queue(invoice_id) VALUES(?1)",
    [S_PUT_REJECT] = "INSERT INTO rejects(name, draft_id, body, error, mtime) VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_DRAFT_DUPLICATE] = "UPDATE drafts SET state = 'duplicate', invoice_id = ?2 WHERE id = ?1",
    [S_DRAFT_REJECTED] = "UPDATE drafts SET state = 'rejected', reason = ?2 WHERE id = ?1",
    [S_LIST_PERIODS] = "SELECT month FROM periods WHERE month > ?1 ORDER BY month",
    [S_HAS_PERIOD] = "SELECT 1 FROM periods WHERE month = ?1",
    [S_LAST_TIMES] = "SELECT (SELECT received_at FROM drafts ORDER BY id DESC LIMIT 1),"
                     " (SELECT issued_at FROM invoices ORDER BY id DESC LIMIT 1),"
                     " (SELECT mtime FROM receipts ORDER BY id DESC LIMIT 1),"
                     " (SELECT mtime FROM rejects ORDER BY id DESC LIMIT 1),"
                     " (SELECT value FROM meta WHERE key = 'created_at'),"
                     " (SELECT issued_at FROM invoices WHERE period = (SELECT period FROM invoices"
                     "   ORDER BY id DESC LIMIT 1) ORDER BY id LIMIT 1)",
    [S_GET_META] = "SELECT value FROM meta WHERE key = ?1",
    [S_PUT_META] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
    [S_PERIOD_LAST] = "SELECT issued_at FROM invoices WHERE period = ?1 ORDER BY id DESC LIMIT 1",
    [S_COUNT_INVOICES] = "SELECT invoices FROM tallies",
    [S_COUNT_WAITING] = "SELECT count(*) FROM drafts WHERE state = 'waiting'",
    [S_COUNT_REJECTED] = "SELECT count(*) FROM rejects",
    /* the head of the queue is the oldest: invoices are queued in issue order */
    [S_COUNT_QUEUE] = "SELECT queued, queued_fen, coalesce((SELECT i.issued_at FROM upload_queue q"
                      " JOIN invoices i ON i.id = q.invoice_id ORDER BY q.invoice_id LIMIT 1), 0),"
                      " queued_blue_fen FROM tallies",
    [S_COUNT_LOG] = "SELECT count(*), coalesce(max(id), 0) FROM device_log",
    [S_FIRST_REFUSED] = "SELECT (SELECT count(*) FROM upload_queue WHERE refused = 1), i.code, i.number,"
                        " coalesce(q.last_error, '') FROM upload_queue q"
                        " JOIN invoices i ON i.id = q.invoice_id"
                        " WHERE q.refused = 1 ORDER BY q.invoice_id LIMIT 1",
    /* the head of those in order, and the first refused one that is due */
    [S_NEXT_UPLOAD] = "SELECT q.invoice_id, i.code, i.number, i.json, q.attempts, q.next_at"
                      " FROM upload_queue q JOIN invoices i ON i.id = q.invoice_id"
                      " WHERE q.invoice_id > ?1 AND q.refused = 0 ORDER BY q.invoice_id LIMIT 1",
    [S_NEXT_REFUSED] = "SELECT q.invoice_id, i.code, i.number, i.json, q.attempts, q.next_at"
                       " FROM upload_queue q JOIN invoices i ON i.id = q.invoice_id"
                       " WHERE q.refused = 1 AND q.invoice_id > ?1 AND (q.next_at <= ?2 OR q.next_at > ?3)"
                       " ORDER BY q.invoice_id LIMIT 1",
    [S_UPLOAD_DEL] = "DELETE FROM upload_queue WHERE invoice_id = ?1",
    [S_UPLOAD_DONE] = "INSERT OR REPLACE INTO uploads(invoice_id, uploaded_at) VALUES(?1, ?2)",
    [S_UPLOAD_FAILED] = "UPDATE upload_queue SET attempts = attempts + 1, next_at = ?2,"
                        " last_error = ?3, refused = ?4 WHERE invoice_id = ?1",
    [S_UPLOAD_DUE] = "SELECT min(n) FROM (SELECT * FROM (SELECT next_at AS n FROM upload_queue"
                     " WHERE refused = 0 ORDER BY invoice_id LIMIT 1)"
                     " UNION ALL SELECT min(next_at) FROM upload_queue WHERE refused = 1)",
    [S_PUT_LINE] = "INSERT INTO period_lines(period, type, red, rate_pm, count, amount_fen, tax_fen)"
                   " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(period, type, red, rate_pm)"
                   " DO UPDATE SET count = count + excluded.count,"
                   " amount_fen = amount_fen + excluded.amount_fen, tax_fen = tax_fen + excluded.tax_fen",
    [S_PERIOD_LINES] = "SELECT type, red, rate_pm, count, amount_fen, tax_fen FROM period_lines"
                       " WHERE period = ?1 ORDER BY type, red, rate_pm",
    [S_NEXT_QUEUED_IN] = "SELECT q.invoice_id, i.code, i.number, i.json, q.attempts"
                         " FROM upload_queue q JOIN invoices i ON i.id = q.invoice_id"
                         " WHERE i.period = ?1 AND q.invoice_id > ?2 ORDER BY q.invoice_id LIMIT 1",
    [S_COUNT_QUEUED_IN] = "SELECT count(*) FROM upload_queue q JOIN invoices i ON i.id = q.invoice_id"
                          " WHERE i.period = ?1",
    [S_ALL_INVOICES] = "SELECT id, period, json FROM invoices WHERE id > ?1 ORDER BY id LIMIT 256",
    [S_PERIOD_INVOICES] = "SELECT id, code, number, json FROM invoices WHERE period = ?1 AND id > ?2"
                          " ORDER BY id LIMIT 1",
};

/* The collections behind issued/, receipts/ and rejected/.  ?1 is the scope
 * (period) where there is one; the others ignore it. */
static const struct coll_sql {
    const char *list, *lookup, *stat, *read, *hide;
} coll_sql[COLL_COUNT] = {
    [COLL_INVOICE] = {
        "SELECT id, name, issued_at, size FROM invoices WHERE period = ?1 AND id > ?2"
        " ORDER BY id LIMIT ?3",
        "SELECT id, name, issued_at, size FROM invoices WHERE period = ?1 AND name = ?2",
        "SELECT id, name, issued_at, size FROM invoices WHERE id = ?1",
        "SELECT json FROM invoices WHERE id = ?1",
        NULL,
    },
    [COLL_RECEIPT] = {
        "SELECT id, name, mtime, size FROM receipts WHERE ?1 IS ?1 AND hidden = 0 AND id > ?2"
        " ORDER BY id LIMIT ?3",
        "SELECT id, name, mtime, size FROM receipts WHERE ?1 IS ?1 AND name = ?2 AND hidden = 0"
        " ORDER BY id DESC LIMIT 1",
        "SELECT id, name, mtime, size FROM receipts WHERE id = ?1 AND hidden = 0",
        "SELECT json FROM receipts WHERE id = ?1",
        "UPDATE receipts SET hidden = 1 WHERE id = ?1",
    },
    [COLL_REJECT_BODY] = {
        /* hidden: bit 1 the draft, bit 2 its .error (store migration 12) */
        "SELECT id, name, mtime, length(body) FROM rejects WHERE ?1 IS ?1 AND hidden & 1 = 0"
        " AND id > ?2 ORDER BY id LIMIT ?3",
        "SELECT id, name, mtime, length(body) FROM rejects WHERE ?1 IS ?1 AND name = ?2"
        " AND hidden & 1 = 0 ORDER BY id DESC LIMIT 1",
        "SELECT id, name, mtime, length(body) FROM rejects WHERE id = ?1 AND hidden & 1 = 0",
        "SELECT body FROM rejects WHERE id = ?1",
        "UPDATE rejects SET hidden = hidden | 1 WHERE id = ?1",
    },
    [COLL_REJECT_ERROR] = {
        "SELECT id, name || '" STORE_ERROR_SUFFIX "', mtime, length(error) FROM rejects"
        " WHERE ?1 IS ?1 AND hidden & 2 = 0 AND id > ?2 ORDER BY id LIMIT ?3",
        /* ?2 is NAME without the suffix (store_lookup strips it), so rejects_name serves it */
        "SELECT id, name || '" STORE_ERROR_SUFFIX "', mtime, length(error) FROM rejects"
        " WHERE ?1 IS ?1 AND name = ?2 AND hidden & 2 = 0 ORDER BY id DESC LIMIT 1",
        "SELECT id, name || '" STORE_ERROR_SUFFIX "', mtime, length(error) FROM rejects"
        " WHERE id = ?1 AND hidden & 2 = 0",
        "SELECT error FROM rejects WHERE id = ?1",
        "UPDATE rejects SET hidden = hidden | 2 WHERE id = ?1",
    },
};

struct store {
    sqlite3 *db;
    pthread_mutex_t lock;
    sqlite3_stmt *stmt[S_COUNT];
    bool sync_normal;             /* not known to be at synchronous=FULL: see durable_ready */
    _Atomic int64_t last_draft_at;   /* received_at of the newest draft, read without the lock */
    int wal_fd;                   /* the WAL, read only, to start its writeback; -1 none */
};

static enum fa_err sqlite_to_fa(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return FA_OK;
    case SQLITE_FULL: return FA_NOSPC;
    case SQLITE_NOMEM: return FA_NOMEM;
    case SQLITE_CONSTRAINT: return FA_EXISTS;
    default: return FA_IO;
    }
}

/* Take a prepared statement, reset and with bindings cleared. */
static sqlite3_stmt *st(store_t *s, int id)
{
    sqlite3_stmt *q = s->stmt[id];
    assert(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return q;
}

/* Step a statement that returns no rows. */
static int run(sqlite3_stmt *q)
{
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Bind arguments described by `types` — 'i' int64_t, 't' const char * (NULL
 * binds NULL), 'b' const void * then size_t — and step a statement that
 * returns no rows.  The caller holds the lock. */
static int bind_run(store_t *s, int id, const char *types, ...)
{
    sqlite3_stmt *q = st(s, id);
    va_list ap;
    int i;

    assert(sqlite3_bind_parameter_count(q) == (int)strlen(types));
    va_start(ap, types);
    for (i = 0; types[i]; i++) {
        if (types[i] == 'i') {
            sqlite3_bind_int64(q, i + 1, va_arg(ap, int64_t));
        } else if (types[i] == 't') {
            const char *t = va_arg(ap, const char *);
            if (t)
                sqlite3_bind_text(q, i + 1, t, -1, SQLITE_STATIC);
        } else {
            const void *b = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            assert(types[i] == 'b');
            sqlite3_bind_blob64(q, i + 1, b ? b : "", n, SQLITE_STATIC);
        }
    }
    va_end(ap);
    return run(q);
}

/* One statement under the lock; *rowid (if not NULL) gets the inserted row. */
#define EXEC_ONE(s, rowid, ...)                                              \
    do {                                                                     \
        pthread_mutex_lock(&(s)->lock);                                      \
        rc = durable_ready(s);                                               \
        if (rc == SQLITE_OK)                                                 \
            rc = bind_run((s), __VA_ARGS__);                                 \
        if (rc == SQLITE_OK && (rowid) != NULL)                              \
            *(int64_t *)(rowid) = sqlite3_last_insert_rowid((s)->db);        \
        pthread_mutex_unlock(&(s)->lock);                                    \
    } while (0)

/* PRAGMA synchronous takes effect when SQLite compiles the statement, not
 * when it runs: kept prepared, it would do nothing at its first run (SQLite
 * compiles it again, with the effect, only for the later ones), so the
 * first commit meant to wait after an open was synced, and durability hung
 * on the two statements' first runs coming in pairs.  Compiled at each use
 * instead (sqlite3_exec): what it says is what it does. */
static int set_synchronous(store_t *s, bool full)
{
    return sqlite3_exec(s->db, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                        NULL, NULL, NULL);
}

/* Back to synchronous=FULL, the setting of every commit but the few that
 * are allowed to wait for the next one (unsynced_begin); lock held.  It can
 * fail only without memory or inside a transaction a failed ROLLBACK left
 * open; the failure is remembered and the next commit that must be durable
 * tries again, and refuses without it (durable_ready). */
static int sync_full(store_t *s)
{
    int rc = set_synchronous(s, true);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db)) {
        run(st(s, S_ROLLBACK));
        rc = set_synchronous(s, true);
    }
    s->sync_normal = rc != SQLITE_OK;
    return rc;
}

/* Before every commit that must be durable (tx_begin, EXEC_ONE).  FULL is
 * restored here, lazily, rather than after each unsynced commit: the
 * PRAGMA is compiled at every use (set_synchronous), and the unsynced
 * commits come in runs (drafts received, uploads done) between two durable
 * ones. */
static int durable_ready(store_t *s) { return s->sync_normal ? sync_full(s) : SQLITE_OK; }

static int migrate(sqlite3 *db, char *why, size_t whylen)
{
    sqlite3_stmt *q = NULL;
    int version = 0, rc;
    char *msg = NULL;

    rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL);
    if (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        version = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (version > STORE_MIGRATIONS) {
        snprintf(why, whylen, "store schema version %d is newer than this fapiaofs (%d)", version,
                 STORE_MIGRATIONS);
        return SQLITE_ERROR;
    }
    for (; version < STORE_MIGRATIONS; version++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d;", version + 1);
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, store_migrations[version], NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, pragma, NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            snprintf(why, whylen, "store migration %d failed: %s", version + 1,
                     msg ? msg : sqlite3_errmsg(db));
            sqlite3_free(msg);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
    }
    return SQLITE_OK;
}

static int tx_begin(store_t *s);
static int tx_begin_unsynced(store_t *s);
static int tx_end(store_t *s, int rc);
static enum fa_err invoice_row(sqlite3_stmt *q, struct store_upload *u);

/* Add an invoice's summary lines to period_lines; lock held. */
static int put_lines(store_t *s, const char *period, const struct device_summary *lines)
{
    int rc = SQLITE_OK, i;

    for (i = 0; lines && i < lines->nlines && rc == SQLITE_OK; i++) {
        const struct device_summary_line *l = &lines->lines[i];
        rc = bind_run(s, S_PUT_LINE, "ttiiiii", period, l->type, (int64_t)l->red, (int64_t)l->rate_pm,
                      l->count, l->amount_fen, l->tax_fen);
    }
    return rc;
}

/* Migration 5 made period_lines empty: sum the invoices issued before it,
 * once, in one transaction with the mark that it is done. */
static int build_period_lines(store_t *s, char *why, size_t whylen)
{
    sqlite3_stmt *q = st(s, S_GET_META);
    int64_t after = 0;
    bool needed;
    int rc;

    sqlite3_bind_text(q, 1, "period_lines", -1, SQLITE_STATIC);
    needed = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0) &&
             !strcmp((const char *)sqlite3_column_text(q, 0), "rebuild");
    sqlite3_reset(q);
    if (!needed)
        return SQLITE_OK;
    rc = tx_begin(s);
    while (rc == SQLITE_OK) {
        int rows = 0;
        q = st(s, S_ALL_INVOICES);
        sqlite3_bind_int64(q, 1, after);
        while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            struct device_summary one = { 0 };
            char period[8], problem[160];
            json_t *inv = json_loadb(sqlite3_column_blob(q, 2), (size_t)sqlite3_column_bytes(q, 2),
                                     0, NULL);
            rows++;
            after = sqlite3_column_int64(q, 0);
            snprintf(period, sizeof period, "%s", (const char *)sqlite3_column_text(q, 1));
            rc = inv && !summary_add_invoice(&one, inv, problem, sizeof problem) ? SQLITE_OK : SQLITE_CORRUPT;
            json_decref(inv);
            if (rc == SQLITE_OK)
                rc = put_lines(s, period, &one);
            else
                snprintf(why, whylen, "store: invoice %lld cannot be summed for reports/",
                         (long long)after);
        }
        sqlite3_reset(q);
        if (rc == SQLITE_DONE)
            rc = rows ? SQLITE_OK : SQLITE_DONE;
    }
    if (rc == SQLITE_DONE)
        rc = bind_run(s, S_PUT_META, "tt", "period_lines", "ok");
    return tx_end(s, rc);
}

/* Why the store could not be opened.  A full disk is "disk I/O error" to
 * SQLite (the -shm file of the WAL cannot be made), which would send the
 * admin looking for a broken disk: the system's errno says what it was. */
static void open_failed(store_t *s, int rc, const char *what, const char *path, char *why,
                        size_t whylen)
{
    int os = s->db ? sqlite3_system_errno(s->db) : 0;
    /* SQLite falls back to opening a file it may not write read-only */
    bool readonly = s->db && sqlite3_db_readonly(s->db, "main") == 1;
    snprintf(why, whylen, "%s %s: %s%s", what, path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc),
             os == ENOSPC ? " (no space left on its disk: free some, then mount again)"
             : os == EACCES || os == EROFS || readonly
                 ? " (it cannot be written here: a read-only volume, or its permissions)" : "");
}

/* An invoice commit is not synced (see "commits that are not synced"): its
 * ~16 WAL frames wait in the page cache for the next synced commit, the
 * next round's intents, whose fdatasync then carries them along with its
 * own frame or two while the device waits for it.  Starting their writeback
 * at once lets the disk take them while the next draft comes through FUSE,
 * and the fdatasync has less to write.  It promises nothing: only fdatasync
 * does.  (sync_file_range submits the pages itself, ~0.1 ms; a thread of
 * its own to call it measured the same as calling it here.)  The WAL is
 * opened once: SQLite keeps that file while our connection is open (no
 * journal_size_limit: it is never truncated or replaced). */
static void wal_open(store_t *s)
{
    const char *path = sqlite3_filename_wal(sqlite3_db_filename(s->db, "main"));
    if (path && *path)
        s->wal_fd = open(path, O_RDONLY | O_CLOEXEC);
}

static void wal_writeback_start(store_t *s)
{
    if (s->wal_fd >= 0)
        sync_file_range(s->wal_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

enum fa_err store_open(const char *path, store_t **out, char *why, size_t whylen)
{
    store_t *s = calloc(1, sizeof *s);
    struct store_times t;
    int rc, i;

    if (!s)
        return FA_NOMEM;
    s->wal_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                         SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        open_failed(s, rc, "cannot open store", path, why, whylen);
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    rc = sqlite3_exec(s->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                             " PRAGMA foreign_keys = ON;", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        open_failed(s, rc, "store", path, why, whylen);
        goto fail;
    }
    rc = migrate(s->db, why, whylen);
    if (rc != SQLITE_OK)
        goto fail;
    for (i = 0; i < S_COUNT; i++) {
        const char *sql;
        if (i < S_COLL_BASE) {
            sql = stmt_sql[i];
        } else {
            const struct coll_sql *c = &coll_sql[(i - S_COLL_BASE) / 5];
            const char *const v[5] = { c->list, c->lookup, c->stat, c->read, c->hide };
            sql = v[(i - S_COLL_BASE) % 5];
        }
        if (!sql)
            continue;
        rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            snprintf(why, whylen, "store: preparing \"%s\": %s", sql, sqlite3_errmsg(s->db));
            goto fail;
        }
    }
    /* synchronous = FULL since the PRAGMAs above, as sync_normal (false) says */
    rc = build_period_lines(s, why, whylen);
    if (rc != SQLITE_OK)
        goto fail;
    if (store_last_times(s, &t) == FA_OK)
        atomic_store(&s->last_draft_at, t.draft);
    wal_open(s);   /* the read above made SQLite create it */
    *out = s;
    return FA_OK;
fail:
    store_close(s);
    return sqlite_to_fa(rc) == FA_OK ? FA_IO : sqlite_to_fa(rc);
}

void store_close(store_t *s)
{
    int i;
    if (!s)
        return;
    for (i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- commits that are not synced --------------------------------------- */

/* Three records may wait for the next synced commit instead of paying an
 * fsync of their own.  In WAL mode the next synchronous=FULL commit syncs
 * the log up to and including them, and a kill -9 loses nothing (the log
 * is in the page cache); only a power loss can, and what it can lose is
 * either harmless or rebuilt from what is synced:
 *   - a received draft (store_add_draft): its close() has not returned;
 *   - an issued invoice (store_put_invoices): its write-ahead intent was
 *     synced before the device signed and the device journal was synced
 *     when it signed, so reconciliation at the next mount restores the
 *     invoice, its receipt and its upload from the two (engine.c);
 *   - an upload's outcome (store_upload_done): the invoice is then sent
 *     again, and the platform answers the same bytes as a duplicate.
 * Called with s->lock held. */
static void unsynced_begin(store_t *s)
{
    /* if this fails the commit is synced: slower, never less safe */
    if (!s->sync_normal && set_synchronous(s, false) == SQLITE_OK)
        s->sync_normal = true;
}

/* ---- drafts ---------------------------------------------------------- */

enum fa_err store_add_draft(store_t *s, const char *name, const void *body, size_t len,
                            int64_t now, uint64_t entry, int64_t *draft_id)
{
    int rc;

    assert(entry <= INT64_MAX);
    pthread_mutex_lock(&s->lock);
    unsynced_begin(s);
    rc = bind_run(s, S_ADD_DRAFT, "tibi", name, now, body, len, (int64_t)entry);
    if (rc == SQLITE_OK) {
        *draft_id = sqlite3_last_insert_rowid(s->db);
        atomic_store(&s->last_draft_at, now);   /* under the lock: in the order of the ids */
    }
    pthread_mutex_unlock(&s->lock);
    return sqlite_to_fa(rc);
}

enum fa_err store_set_draft_waiting(store_t *s, int64_t draft_id, const char *reason)
{
    int rc;
    EXEC_ONE(s, NULL, S_DRAFT_WAITING, "it", draft_id, reason);
    return sqlite_to_fa(rc);
}

enum fa_err store_cancel_draft(store_t *s, int64_t draft_id, int64_t now)
{
    int rc, changed = 0;

    pthread_mutex_lock(&s->lock);
    rc = durable_ready(s);
    if (rc == SQLITE_OK)
        rc = bind_run(s, S_DRAFT_CANCEL, "ii", draft_id, now);
    if (rc == SQLITE_OK)
        changed = sqlite3_changes(s->db);
    pthread_mutex_unlock(&s->lock);
    return rc != SQLITE_OK ? sqlite_to_fa(rc) : changed ? FA_OK : FA_BUSY;
}

enum fa_err store_list_waiting(store_t *s, store_draft_cb cb, void *ctx)
{
    sqlite3_stmt *q;
    int rc;

    pthread_mutex_lock(&s->lock);
    q = st(s, S_LIST_WAITING);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_draft d = { .id = sqlite3_column_int64(q, 0),
                                 .received_at = sqlite3_column_int64(q, 2),
                                 .entry = (uint64_t)sqlite3_column_int64(q, 4) };
        const void *b = sqlite3_column_blob(q, 3);
        snprintf(d.name, sizeof d.name, "%s", (const char *)sqlite3_column_text(q, 1));
        if (sqlite3_column_text(q, 5))
            snprintf(d.reason, sizeof d.reason, "%s", (const char *)sqlite3_column_text(q, 5));
        d.len = (size_t)sqlite3_column_bytes(q, 3);
        d.body = malloc(d.len + 1);
        if (!d.body) {
            rc = SQLITE_NOMEM;
            break;
        }
        if (d.len)
            memcpy(d.body, b, d.len);
        d.body[d.len] = 0;
        if (cb(ctx, &d)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return sqlite_to_fa(rc);
}

enum fa_err store_reserve_entries(store_t *s, uint64_t n, uint64_t *first)
{
    sqlite3_stmt *q;
    int rc;

    assert(n > 0 && n <= INT32_MAX);
    pthread_mutex_lock(&s->lock);
    rc = durable_ready(s);
    if (rc == SQLITE_OK) {
        q = st(s, S_RESERVE_ENTRIES);
        sqlite3_bind_int64(q, 1, (int64_t)n);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            *first = (uint64_t)sqlite3_column_int64(q, 0);
            rc = *first > 0 && *first < (UINT64_C(1) << 55) ? sqlite3_step(q) : SQLITE_CORRUPT;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_CORRUPT;   /* no next_entry: a store not made by store_open */
        }
        sqlite3_reset(q);
    }
    pthread_mutex_unlock(&s->lock);
    return rc == SQLITE_DONE ? FA_OK : sqlite_to_fa(rc);
}

/* ---- issuing --------------------------------------------------------- */

enum fa_err store_put_intents(store_t *s, const struct store_new_intent *v, int n, int64_t now)
{
    int rc, i;

    assert(n > 0);
    pthread_mutex_lock(&s->lock);
    rc = tx_begin(s);
    for (i = 0; i < n && rc == SQLITE_OK; i++) {
        /* a number reserved again after a failed round: only the newest
         * intent can be the one the device signs (reconciliation finds the
         * intent by number) */
        rc = bind_run(s, S_DEL_INTENT_NUMBER, "tt", v[i].code, v[i].number);
        if (rc == SQLITE_OK)
            rc = bind_run(s, S_PUT_INTENT, "ittbib", v[i].draft_id, v[i].code, v[i].number,
                          v[i].canonical, v[i].len, now, v[i].receipt, v[i].receipt_len);
    }
    rc = tx_end(s, rc);
    pthread_mutex_unlock(&s->lock);
    return sqlite_to_fa(rc);
}

/* One invoice's reference from statement q, bound and not yet stepped
 * (S_FIND_REQUEST, S_FIND_DRAFT_INVOICE); lock held. */
static enum fa_err step_invoice_ref(sqlite3_stmt *q, struct store_invoice_ref *ref)
{
    enum fa_err err;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        memset(ref, 0, sizeof *ref);
        ref->invoice_id = sqlite3_column_int64(q, 0);
        snprintf(ref->code, sizeof ref->code, "%s", (const char *)sqlite3_column_text(q, 1));
        snprintf(ref->number, sizeof ref->number, "%s", (const char *)sqlite3_column_text(q, 2));
        snprintf(ref->period, sizeof ref->period, "%s", (const char *)sqlite3_column_text(q, 3));
        ref->issued_at = sqlite3_column_int64(q, 4);
        ref->total_fen = sqlite3_column_int64(q, 5);
        snprintf(ref->draft_hash, sizeof ref->draft_hash, "%s",
                 (const char *)sqlite3_column_text(q, 6));
    }
    err = rc == SQLITE_ROW ? FA_OK : rc == SQLITE_DONE ? FA_NOTFOUND : sqlite_to_fa(rc);
    sqlite3_reset(q);
    return err;
}

enum fa_err store_find_request(store_t *s, const char *request_id, struct store_invoice_ref *ref)
{
    sqlite3_stmt *q;
    enum fa_err err;

    pthread_mutex_lock(&s->lock);
    q = st(s, S_FIND_REQUEST);
    sqlite3_bind_text(q, 1, request_id, -1, SQLITE_STATIC);
    err = step_invoice_ref(q, ref);
    pthread_mutex_unlock(&s->lock);
    return err;
}

enum fa_err store_find_draft_invoice(store_t *s, int64_t draft_id, struct store_invoice_ref *ref)
{
    sqlite3_stmt *q;
    enum fa_err err;

    pthread_mutex_lock(&s->lock);
    q = st(s, S_FIND_DRAFT_INVOICE);
    sqlite3_bind_int64(q, 1, draft_id);
    err = step_invoice_ref(q, ref);
    pthread_mutex_unlock(&s->lock);
    return err;
}

/* Statement id with an invoice's code and number bound as ?1 and ?2; lock held. */
static sqlite3_stmt *st_invoice(store_t *s, int id, const char *code, const char *number)
{
    sqlite3_stmt *q = st(s, id);

    sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, number, -1, SQLITE_STATIC);
    return q;
}

enum fa_err store_each_red(store_t *s, const char *code, const char *number,
                           int (*fn)(void *arg, const void *json, size_t len), void *arg)
{
    sqlite3_stmt *q;
    int rc;

    pthread_mutex_lock(&s->lock);
    q = st_invoice(s, S_EACH_RED, code, number);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW &&
           !fn(arg, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0)))
        ;
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? FA_OK : sqlite_to_fa(rc);
}

enum fa_err store_get_blue(store_t *s, const char *code, const char *number, char **json,
                           size_t *len)
{
    sqlite3_stmt *q;
    enum fa_err err = FA_OK;
    int rc;

    pthread_mutex_lock(&s->lock);
    q = st_invoice(s, S_GET_BLUE, code, number);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *len = (size_t)sqlite3_column_bytes(q, 0);
        *json = malloc(*len + 1);
        if (*json) {
            memcpy(*json, sqlite3_column_blob(q, 0), *len);
            (*json)[*len] = 0;
        } else {
            err = FA_NOMEM;
        }
    } else {
        err = rc == SQLITE_DONE ? FA_NOTFOUND : sqlite_to_fa(rc);
    }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return err;
}

bool store_has_number(store_t *s, const char *code, const char *number)
{
    sqlite3_stmt *q;
    bool found;

    pthread_mutex_lock(&s->lock);
    q = st_invoice(s, S_HAS_NUMBER, code, number);
    found = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return found;
}

static char *column_copy(sqlite3_stmt *q, int col, size_t *len)
{
    size_t n = (size_t)sqlite3_column_bytes(q, col);
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, sqlite3_column_blob(q, col), n);
        p[n] = 0;
    }
    if (len)
        *len = n;
    return p;
}

enum fa_err store_find_intent(store_t *s, const char *code, const char *number,
                              struct store_intent *in)
{
    sqlite3_stmt *q;
    enum fa_err err;
    int rc;

    memset(in, 0, sizeof *in);
    pthread_mutex_lock(&s->lock);
    q = st(s, S_FIND_INTENT);
    sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, number, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        in->draft_id = sqlite3_column_int64(q, 0);
        in->canonical = column_copy(q, 1, &in->canonical_len);
        snprintf(in->draft_name, sizeof in->draft_name, "%s",
                 (const char *)sqlite3_column_text(q, 2));
        in->body = column_copy(q, 3, &in->body_len);
        if (sqlite3_column_bytes(q, 4) > 0)   /* none in an intent from before migration 8 */
            in->receipt = column_copy(q, 4, &in->receipt_len);
        err = in->canonical && in->body && (in->receipt || sqlite3_column_bytes(q, 4) == 0)
            ? FA_OK : FA_NOMEM;
        if (err)
            store_intent_free(in);
    } else {
        err = rc == SQLITE_DONE ? FA_NOTFOUND : sqlite_to_fa(rc);
    }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return err;
}

void store_intent_free(struct store_intent *in)
{
    free(in->canonical);
    free(in->body);
    free(in->receipt);
    in->canonical = in->body = in->receipt = NULL;
}

enum fa_err store_drop_intents(store_t *s)
{
    int rc;
    EXEC_ONE(s, NULL, S_DEL_STALE_INTENTS, "");
    return sqlite_to_fa(rc);
}

enum fa_err store_log(store_t *s, int64_t at, int64_t uid, const char *operation,
                      const char *result)
{
    int rc;
    EXEC_ONE(s, NULL, S_PUT_LOG, "iitt", at, uid, operation, result);
    return sqlite_to_fa(rc);
}

enum fa_err store_list_log(store_t *s, int64_t after_id, int max, store_log_cb cb, void *ctx)
{
    sqlite3_stmt *q;
    int rc;

    pthread_mutex_lock(&s->lock);
    q = st(s, S_LIST_LOG);
    sqlite3_bind_int64(q, 1, after_id);
    sqlite3_bind_int(q, 2, max);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (cb(ctx, sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
               sqlite3_column_int64(q, 2), (const char *)sqlite3_column_text(q, 3),
               (const char *)sqlite3_column_text(q, 4))) {
            rc = SQLITE_DONE;
            break;
        }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return sqlite_to_fa(rc);
}

/* Transaction helpers; the caller holds the lock. */
static int tx_begin(store_t *s)
{
    int rc = durable_ready(s);
    return rc == SQLITE_OK ? run(st(s, S_BEGIN)) : rc;
}
/* A transaction whose commit may wait for the next synced one (unsynced_begin). */
static int tx_begin_unsynced(store_t *s)
{
    unsynced_begin(s);
    return run(st(s, S_BEGIN));
}
static int tx_end(store_t *s, int rc)
{
    if (rc == SQLITE_OK)
        rc = run(st(s, S_COMMIT));
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
        run(st(s, S_ROLLBACK));
    return rc;
}

static int hide_name_everywhere(store_t *s, const char *name)
{
    int rc = bind_run(s, S_HIDE_RECEIPT_NAME, "t", name);
    if (rc == SQLITE_OK)
        rc = bind_run(s, S_HIDE_REJECT_NAME, "t", name);
    return rc;
}

/* The newest outcome of a name is the only one shown; lock held. */
static int put_receipt(store_t *s, int64_t draft_id, const char *name, const void *receipt,
                       size_t len, int64_t mtime, int64_t *receipt_id)
{
    int rc = hide_name_everywhere(s, name);
    if (rc == SQLITE_OK)
        rc = bind_run(s, S_PUT_RECEIPT, "tibi", name, draft_id, receipt, len, mtime);
    *receipt_id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

enum fa_err store_put_duplicate(store_t *s, int64_t draft_id, const char *name, int64_t invoice_id,
                                const void *receipt, size_t len, int64_t now, int64_t *receipt_id)
{
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = tx_begin(s);
    if (rc == SQLITE_OK)
        rc = put_receipt(s, draft_id, name, receipt, len, now, receipt_id);
    if (rc == SQLITE_OK)
        rc = bind_run(s, S_DRAFT_DUPLICATE, "ii", draft_id, invoice_id);
    rc = tx_end(s, rc);
    pthread_mutex_unlock(&s->lock);
    return sqlite_to_fa(rc);
}

static int64_t month_of_period(const char *period)
{
    int y = 0, m = 0;
    if (sscanf(period, "%4d-%2d", &y, &m) != 2)
        return -1;
    return (int64_t)y * 12 + m - 1;
}

/* One invoice's rows; in a transaction, lock held. */
static int put_invoice_rows(store_t *s, const struct store_issued *inv, int64_t *invoice_id,
                            int64_t *receipt_id)
{
    int rc = bind_run(s, S_PUT_INVOICE, "tttiittibtt", inv->code, inv->number, inv->period,
                      inv->issued_at, inv->draft_id, inv->request_id, inv->draft_hash,
                      inv->total_fen, inv->json, inv->json_len, inv->red_code, inv->red_number);
    int64_t iid = sqlite3_last_insert_rowid(s->db);

    if (rc == SQLITE_OK)
        rc = bind_run(s, S_PUT_PERIOD, "i", month_of_period(inv->period));
    if (rc == SQLITE_OK)
        rc = put_lines(s, inv->period, inv->lines);
    if (rc == SQLITE_OK)
        rc = bind_run(s, S_DRAFT_ISSUED, "ii", inv->draft_id, iid);
    if (rc == SQLITE_OK)
        rc = put_receipt(s, inv->draft_id, inv->draft_name, inv->receipt, inv->receipt_len,
                         inv->issued_at, receipt_id);
    if (rc == SQLITE_OK)
        rc = bind_run(s, S_QUEUE_UPLOAD, "i", iid);
    if (rc == SQLITE_OK)
        rc = bind_run(s, S_DEL_INTENT, "i", inv->draft_id);
    if (rc == SQLITE_OK)
        *invoice_id = iid;
    return rc;
}

enum fa_err store_put_invoices(store_t *s, const struct store_issued *v, int n,
                               int64_t *invoice_ids, int64_t *receipt_ids)
{
    int rc, i;

    assert(n > 0);
    pthread_mutex_lock(&s->lock);
    rc = tx_begin_unsynced(s);
    for (i = 0; i < n && rc == SQLITE_OK; i++)
        rc = put_invoice_rows(s, &v[i], &invoice_ids[i], &receipt_ids[i]);
    rc = tx_end(s, rc);
    pthread_mutex_unlock(&s->lock);
    if (rc == SQLITE_OK)
        wal_writeback_start(s);
    return sqlite_to_fa(rc);
}

enum fa_err store_put_rejection(store_t *s, int64_t draft_id, const char *name,
                                const void *body, size_t len, const char *error,
                                int64_t now, int64_t *reject_id)
{
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = tx_begin(s);
    if (rc == SQLITE_OK)
        rc = hide_name_everywhere(s, name);
    if (rc == SQLITE_OK) {
        rc = bind_run(s, S_PUT_REJECT, "tibbi", name, draft_id, body, len, error, strlen(error),
                      now);
        *reject_id = sqlite3_last_insert_rowid(s->db);
    }
    if (rc == SQLITE_OK)
        rc = bind_run(s, S_DRAFT_REJECTED, "it", draft_id, error);
    rc = tx_end(s, rc);
    pthread_mutex_unlock(&s->lock);
    return sqlite_to_fa(rc);
}

/* ---- collections ----------------------------------------------------- */

static sqlite3_stmt *coll_st(store_t *s, enum store_coll c, int which)
{
    assert(c >= 0 && c < COLL_COUNT && which >= 0 && which < 5);
    return s->stmt[S_COLL_BASE + 5 * c + which] ? st(s, S_COLL_BASE + 5 * c + which) : NULL;
}

static void row_to_entry(sqlite3_stmt *q, struct store_entry *e)
{
    e->id = sqlite3_column_int64(q, 0);
    snprintf(e->name, sizeof e->name, "%s", (const char *)sqlite3_column_text(q, 1));
    e->mtime = sqlite3_column_int64(q, 2);
    e->size = (uint64_t)sqlite3_column_int64(q, 3);
}

enum fa_err store_list(store_t *s, enum store_coll c, const char *scope, int64_t after_id,
                       int max, store_entry_cb cb, void *ctx)
{
    sqlite3_stmt *q;
    int rc;

    pthread_mutex_lock(&s->lock);
    q = coll_st(s, c, 0);
    sqlite3_bind_text(q, 1, scope ? scope : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, after_id);
    sqlite3_bind_int(q, 3, max);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_entry e;
        row_to_entry(q, &e);
        if (cb(ctx, &e)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return sqlite_to_fa(rc);
}

/* One-row query by (scope, name) or by id. */
static enum fa_err coll_one(store_t *s, enum store_coll c, int which, const char *scope,
                            const char *name, int name_len, int64_t id, struct store_entry *e)
{
    sqlite3_stmt *q;
    enum fa_err err;
    int rc;

    pthread_mutex_lock(&s->lock);
    q = coll_st(s, c, which);
    if (name) {
        sqlite3_bind_text(q, 1, scope ? scope : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, name, name_len, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(q, 1, id);
    }
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_to_entry(q, e);
    err = rc == SQLITE_ROW ? FA_OK : rc == SQLITE_DONE ? FA_NOTFOUND : sqlite_to_fa(rc);
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return err;
}

enum fa_err store_lookup(store_t *s, enum store_coll c, const char *scope, const char *name,
                         struct store_entry *e)
{
    size_t len = strnlen(name, sizeof e->name);   /* NAME.error of a 255-byte NAME fits */

    if (len == sizeof e->name)
        return FA_NOTFOUND;
    /* rejected/NAME.error is the row named NAME: looked up by NAME, since
     * a condition on name || '.error' would scan the whole table */
    if (c == COLL_REJECT_ERROR) {
        if (store_reject_coll(name, len) != COLL_REJECT_ERROR)
            return FA_NOTFOUND;
        len -= sizeof STORE_ERROR_SUFFIX - 1;
    }
    return coll_one(s, c, 1, scope, name, (int)len, 0, e);
}

enum store_coll store_reject_coll(const char *name, size_t len)
{
    const size_t n = sizeof STORE_ERROR_SUFFIX - 1;

    return len > n && !memcmp(name + len - n, STORE_ERROR_SUFFIX, n) ? COLL_REJECT_ERROR
                                                                      : COLL_REJECT_BODY;
}

enum fa_err store_stat(store_t *s, enum store_coll c, int64_t id, struct store_entry *e)
{
    return coll_one(s, c, 2, NULL, NULL, 0, id, e);
}

uint64_t store_scan_steps(store_t *s)
{
    uint64_t steps = 0;
    int i;

    pthread_mutex_lock(&s->lock);
    for (i = 0; i < S_COUNT; i++)
        if (s->stmt[i])
            steps += (uint64_t)sqlite3_stmt_status(s->stmt[i], SQLITE_STMTSTATUS_FULLSCAN_STEP, 0);
    pthread_mutex_unlock(&s->lock);
    return steps;
}

int store_plan_steps(store_t *s, store_plan_cb cb, void *ctx)
{
    int planned = 0, i;

    pthread_mutex_lock(&s->lock);
    for (i = 0; i < S_COUNT && planned >= 0; i++) {
        sqlite3_stmt *plan = NULL;
        char *sql;

        if (!s->stmt[i])
            continue;
        sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sqlite3_sql(s->stmt[i]));
        if (!sql || sqlite3_prepare_v2(s->db, sql, -1, &plan, NULL) != SQLITE_OK)
            planned = -1;
        else
            planned++;
        while (plan && sqlite3_step(plan) == SQLITE_ROW) {
            const char *step = (const char *)sqlite3_column_text(plan, 3);
            if (step)
                cb(ctx, sqlite3_sql(s->stmt[i]), step);
        }
        sqlite3_finalize(plan);
        sqlite3_free(sql);
    }
    pthread_mutex_unlock(&s->lock);
    return planned;
}

int store_synchronous(store_t *s)
{
    sqlite3_stmt *q = NULL;
    int level = -1;

    pthread_mutex_lock(&s->lock);
    if (sqlite3_prepare_v2(s->db, "PRAGMA synchronous", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        level = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->lock);
    return level;
}

const char *store_list_sql(enum store_coll c)
{
    assert(c >= 0 && c < COLL_COUNT);
    return coll_sql[c].list;
}

enum fa_err store_read(store_t *s, enum store_coll c, int64_t id, unsigned char **buf, size_t *len)
{
    sqlite3_stmt *q;
    enum fa_err err = FA_OK;
    int rc;

    pthread_mutex_lock(&s->lock);
    q = coll_st(s, c, 3);
    sqlite3_bind_int64(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(q, 0);
        const void *b = sqlite3_column_blob(q, 0);
        *buf = malloc(n ? n : 1);
        if (!*buf)
            err = FA_NOMEM;
        else if (n)
            memcpy(*buf, b, n);
        *len = n;
    } else {
        err = rc == SQLITE_DONE ? FA_NOTFOUND : sqlite_to_fa(rc);
    }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return err;
}

enum fa_err store_hide(store_t *s, enum store_coll c, int64_t id)
{
    sqlite3_stmt *q;
    int rc;

    pthread_mutex_lock(&s->lock);
    q = coll_st(s, c, 4);
    if (!q) {
        pthread_mutex_unlock(&s->lock);
        return FA_ROFS;
    }
    rc = durable_ready(s);   /* an rm that returned 0 survives a power loss */
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, id);
        rc = run(q);
    }
    pthread_mutex_unlock(&s->lock);
    return sqlite_to_fa(rc);
}

enum fa_err store_list_periods(store_t *s, int after, store_period_cb cb, void *ctx)
{
    sqlite3_stmt *q;
    int rc;

    pthread_mutex_lock(&s->lock);
    q = st(s, S_LIST_PERIODS);
    sqlite3_bind_int(q, 1, after);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (cb(ctx, sqlite3_column_int(q, 0))) {
            rc = SQLITE_DONE;
            break;
        }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return sqlite_to_fa(rc);
}

bool store_has_period(store_t *s, int month_index)
{
    sqlite3_stmt *q;
    bool found;

    pthread_mutex_lock(&s->lock);
    q = st(s, S_HAS_PERIOD);
    sqlite3_bind_int(q, 1, month_index);
    found = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return found;
}

enum fa_err store_last_times(store_t *s, struct store_times *t)
{
    sqlite3_stmt *q;
    int rc;

    memset(t, 0, sizeof *t);
    pthread_mutex_lock(&s->lock);
    q = st(s, S_LAST_TIMES);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        t->draft = sqlite3_column_int64(q, 0);
        t->invoice = sqlite3_column_int64(q, 1);
        t->receipt = sqlite3_column_int64(q, 2);
        t->reject = sqlite3_column_int64(q, 3);
        t->created = sqlite3_column_int64(q, 4);
        t->newest_period_first = sqlite3_column_int64(q, 5);
    }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return rc == SQLITE_ROW ? FA_OK : sqlite_to_fa(rc);
}

int64_t store_last_draft_time(store_t *s)
{
    return atomic_load(&s->last_draft_at);
}

int64_t store_render_mtime(store_t *s, const char *file, const char *hash, int64_t now)
{
    char key[160], value[128];
    sqlite3_stmt *q;
    int64_t t = now;
    long long seen;
    int n;

    snprintf(key, sizeof key, "render:%s", file);
    pthread_mutex_lock(&s->lock);
    q = st(s, S_GET_META);
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0) &&
        sscanf((const char *)sqlite3_column_text(q, 0), "%lld %n", &seen, &n) == 1 &&
        !strcmp((const char *)sqlite3_column_text(q, 0) + n, hash))
        t = seen;
    sqlite3_reset(q);
    if (t == now) {   /* new bytes: remember when they appeared (best effort) */
        snprintf(value, sizeof value, "%lld %s", (long long)now, hash);
        bind_run(s, S_PUT_META, "tt", key, value);
    }
    pthread_mutex_unlock(&s->lock);
    return t;
}

int64_t store_period_last(store_t *s, const char *period)
{
    sqlite3_stmt *q;
    int64_t t = 0;

    pthread_mutex_lock(&s->lock);
    q = st(s, S_PERIOD_LAST);
    sqlite3_bind_text(q, 1, period, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW)
        t = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return t;
}

/* ---- counts ------------------------------------------------------------ */

static int64_t count_one(store_t *s, int id)
{
    sqlite3_stmt *q = st(s, id);
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_reset(q);
    return n;
}

/* The upload queue's part of store_counts; lock held. */
static void queue_counts(store_t *s, struct store_counts *c)
{
    sqlite3_stmt *q = st(s, S_COUNT_QUEUE);
    if (sqlite3_step(q) == SQLITE_ROW) {
        c->upload_queued = sqlite3_column_int64(q, 0);
        c->upload_queued_fen = sqlite3_column_int64(q, 1);
        c->upload_oldest_issued_at = sqlite3_column_int64(q, 2);
        c->upload_queued_blue_fen = sqlite3_column_int64(q, 3);
    }
    sqlite3_reset(q);
}

enum fa_err store_queue_counts(store_t *s, struct store_counts *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_lock(&s->lock);
    queue_counts(s, c);
    pthread_mutex_unlock(&s->lock);
    return FA_OK;
}

enum fa_err store_counts(store_t *s, struct store_counts *c)
{
    sqlite3_stmt *q;

    memset(c, 0, sizeof *c);
    pthread_mutex_lock(&s->lock);
    c->invoices = count_one(s, S_COUNT_INVOICES);
    c->drafts_waiting = count_one(s, S_COUNT_WAITING);
    c->rejected = count_one(s, S_COUNT_REJECTED);
    queue_counts(s, c);
    q = st(s, S_COUNT_LOG);
    if (sqlite3_step(q) == SQLITE_ROW) {
        c->log_entries = sqlite3_column_int64(q, 0);
        c->log_last_id = sqlite3_column_int64(q, 1);
    }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return FA_OK;
}

/* ---- upload queue ------------------------------------------------------ */

enum fa_err store_next_upload(store_t *s, int64_t now, const struct store_due *due, int64_t after_id,
                              struct store_upload *u)
{
    sqlite3_stmt *head, *refused, *take = NULL;
    bool head_found = false;
    int64_t head_id, head_at;
    int rc;

    memset(u, 0, sizeof *u);
    pthread_mutex_lock(&s->lock);
    head = st(s, S_NEXT_UPLOAD);
    refused = st(s, S_NEXT_REFUSED);
    rc = sqlite3_bind_int64(head, 1, after_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(refused, 1, after_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(refused, 2, now);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(refused, 3, now + due->refused_ahead);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(head);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        head_found = rc == SQLITE_ROW;
        rc = sqlite3_step(refused);
    }
    /* either lookup failing: nothing, or an invoice could go past a head not read */
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        goto out;
    /* Strict issue order: only the head of the queue may go, when it is due.
     * A time further ahead than any backoff gives was set before the clock
     * went back: due now, or the queue would stall for as long as the step.
     * A refused invoice has stepped out of the order and goes when it is
     * due, even while the head waits out its backoff. */
    head_id = head_found ? sqlite3_column_int64(head, 0) : INT64_MAX;
    head_at = head_found ? sqlite3_column_int64(head, 5) : 0;
    if (head_found && (head_at <= now || head_at > now + due->order_ahead))
        take = head;
    if (rc == SQLITE_ROW && (!take || sqlite3_column_int64(refused, 0) < head_id)) {
        take = refused;
        u->out_of_order = head_id < sqlite3_column_int64(refused, 0);
    }
    rc = SQLITE_DONE;
    if (take) {
        rc = invoice_row(take, u) == FA_OK ? SQLITE_ROW : SQLITE_NOMEM;
        u->attempts = sqlite3_column_int(take, 4);
    }
out:
    sqlite3_reset(head);
    sqlite3_reset(refused);
    pthread_mutex_unlock(&s->lock);
    return rc == SQLITE_ROW ? FA_OK : rc == SQLITE_DONE ? FA_NOTFOUND : sqlite_to_fa(rc);
}

void store_upload_free(struct store_upload *u)
{
    free(u->json);
    u->json = NULL;
}

enum fa_err store_uploads_done(store_t *s, const int64_t *invoice_ids, int n, int64_t now)
{
    int rc, i;

    pthread_mutex_lock(&s->lock);
    rc = tx_begin_unsynced(s);   /* lost only by a power loss: then sent again, a duplicate */
    if (rc == SQLITE_OK) {
        for (i = 0; i < n && rc == SQLITE_OK; i++) {
            rc = bind_run(s, S_UPLOAD_DEL, "i", invoice_ids[i]);
            if (rc == SQLITE_OK)
                rc = bind_run(s, S_UPLOAD_DONE, "ii", invoice_ids[i], now);
        }
        rc = tx_end(s, rc);
    }
    pthread_mutex_unlock(&s->lock);
    return sqlite_to_fa(rc);
}

enum fa_err store_upload_done(store_t *s, int64_t invoice_id, int64_t now)
{
    return store_uploads_done(s, &invoice_id, 1, now);
}

enum fa_err store_upload_failed(store_t *s, int64_t invoice_id, int64_t next_at, bool refused,
                                const char *error)
{
    int rc;
    EXEC_ONE(s, NULL, S_UPLOAD_FAILED, "iiti", invoice_id, next_at, error, (int64_t)refused);
    return sqlite_to_fa(rc);
}

enum fa_err store_first_refused(store_t *s, struct store_refused *r)
{
    sqlite3_stmt *q;
    enum fa_err err;
    int rc;

    memset(r, 0, sizeof *r);
    pthread_mutex_lock(&s->lock);
    q = st(s, S_FIRST_REFUSED);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        r->count = sqlite3_column_int64(q, 0);
        snprintf(r->code, sizeof r->code, "%s", (const char *)sqlite3_column_text(q, 1));
        snprintf(r->number, sizeof r->number, "%s", (const char *)sqlite3_column_text(q, 2));
        snprintf(r->error, sizeof r->error, "%s", (const char *)sqlite3_column_text(q, 3));
    }
    err = rc == SQLITE_ROW ? FA_OK : rc == SQLITE_DONE ? FA_NOTFOUND : sqlite_to_fa(rc);
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return err;
}

enum fa_err store_upload_next_due(store_t *s, int64_t *when)
{
    sqlite3_stmt *q;
    int rc;

    pthread_mutex_lock(&s->lock);
    q = st(s, S_UPLOAD_DUE);
    rc = sqlite3_step(q);
    *when = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;   /* NULL (empty): 0 */
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? FA_OK : sqlite_to_fa(rc);
}

/* ---- period summaries and clearing -------------------------------------- */

enum fa_err store_period_summary(store_t *s, const char *period, struct device_summary *out)
{
    sqlite3_stmt *q;
    int rc;

    memset(out, 0, sizeof *out);
    snprintf(out->period, sizeof out->period, "%s", period);
    pthread_mutex_lock(&s->lock);
    q = st(s, S_PERIOD_LINES);
    sqlite3_bind_text(q, 1, period, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && out->nlines < DEVICE_SUMMARY_LINES) {
        struct device_summary_line *l = &out->lines[out->nlines++];
        snprintf(l->type, sizeof l->type, "%s", (const char *)sqlite3_column_text(q, 0));
        l->red = sqlite3_column_int(q, 1) != 0;
        l->rate_pm = sqlite3_column_int(q, 2);
        l->count = sqlite3_column_int64(q, 3);
        l->amount_fen = sqlite3_column_int64(q, 4);
        l->tax_fen = sqlite3_column_int64(q, 5);
    }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? FA_OK : sqlite_to_fa(rc);
}

/* The first columns of q (id, code, number, json) into u; lock held. */
static enum fa_err invoice_row(sqlite3_stmt *q, struct store_upload *u)
{
    size_t n = (size_t)sqlite3_column_bytes(q, 3);

    u->invoice_id = sqlite3_column_int64(q, 0);
    snprintf(u->code, sizeof u->code, "%s", (const char *)sqlite3_column_text(q, 1));
    snprintf(u->number, sizeof u->number, "%s", (const char *)sqlite3_column_text(q, 2));
    u->json = malloc(n + 1);
    if (!u->json)
        return FA_NOMEM;
    memcpy(u->json, sqlite3_column_blob(q, 3), n);
    u->json[n] = 0;
    u->len = n;
    return FA_OK;
}

static enum fa_err next_in_period(store_t *s, int id, const char *period, int64_t after_id,
                                  struct store_upload *u)
{
    enum fa_err err = FA_NOTFOUND;
    sqlite3_stmt *q;
    int rc;

    memset(u, 0, sizeof *u);
    pthread_mutex_lock(&s->lock);
    q = st(s, id);
    sqlite3_bind_text(q, 1, period, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, after_id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        err = invoice_row(q, u);
    else if (rc != SQLITE_DONE)
        err = sqlite_to_fa(rc);
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return err;
}

enum fa_err store_next_queued_in_period(store_t *s, const char *period, int64_t after_id,
                                        struct store_upload *u)
{
    return next_in_period(s, S_NEXT_QUEUED_IN, period, after_id, u);
}

enum fa_err store_next_invoice_in_period(store_t *s, const char *period, int64_t after_id,
                                         struct store_upload *u)
{
    return next_in_period(s, S_PERIOD_INVOICES, period, after_id, u);
}

int64_t store_count_queued_in_period(store_t *s, const char *period)
{
    sqlite3_stmt *q;
    int64_t n;

    pthread_mutex_lock(&s->lock);
    q = st(s, S_COUNT_QUEUED_IN);
    sqlite3_bind_text(q, 1, period, -1, SQLITE_STATIC);
    n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return n;
}

enum fa_err store_get_meta(store_t *s, const char *key, char **value)
{
    enum fa_err err = FA_NOTFOUND;
    sqlite3_stmt *q;
    int rc;

    *value = NULL;
    pthread_mutex_lock(&s->lock);
    q = st(s, S_GET_META);
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_text(q, 0)) {
        *value = strdup((const char *)sqlite3_column_text(q, 0));
        err = *value ? FA_OK : FA_NOMEM;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        err = sqlite_to_fa(rc);
    }
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->lock);
    return err;
}

enum fa_err store_put_meta(store_t *s, const char *key, const char *value)
{
    int rc;
    EXEC_ONE(s, NULL, S_PUT_META, "tt", key, value);
    return sqlite_to_fa(rc);
}
