/*
 * sim.c — fapiaofs-platform-sim: the tax platform of SPEC §6 on loopback, for
 * `make run` and the tests.
 *
 * Two ports.  The outage mode `down` has to look like a dead platform to the
 * uploader, which is "connection refused" at the TCP level, and the only
 * honest way to get that is to have no listening socket at all.  So `down`
 * stops the API daemon (closing its listening socket and every kept-alive
 * connection) and `up` starts a fresh one on the same port.  The admin calls
 * cannot live on a port that disappears, so they get a daemon of their own:
 *
 *   API    http://127.0.0.1:PORT        (--port, default 8470)
 *            GET  /v1/health             200 {"status":"ok"}; not signed, so
 *                                        scripts can poll it with plain curl
 *            POST /v1/invoices           signed; 201 / 200 / 409 / 400 / 413
 *            GET  /v1/invoices/C/N       signed; 200 stored bytes / 404
 *            GET  /v1/platform-key       signed; {"public_key":"<base64 DER SPKI>"}
 *            POST /v1/periods/P/summary  signed; 上报汇总, the device-signed summary
 *            POST /v1/periods/P/clearance signed; 监控回传, the platform-signed answer
 *   admin  http://127.0.0.1:ADMIN_PORT  (--admin-port, default PORT+1, or a
 *                                        free port when --port is 0); never signed
 *            POST /admin/mode            body: up | down | 503 | slow MS | flaky SHARE | portal |
 *                                        bare
 *            GET  /admin/mode            the current mode, as text
 *            GET  /admin/count           number of invoices stored, as text
 *            POST /admin/filed           body YYYY-MM: the period's tax return is filed
 *            GET  /admin/summary/P       the summary stored for period P, as received
 *            GET  /admin/clearances      "PERIOD MACHINE LOCK_DATE" lines
 *
 * The price is a second port to pass around; --port-file and --admin-port-file
 * receive the ports actually bound (written atomically once both listen), which
 * is what tests use with --port 0.
 *
 * Clearing (SPEC §5.4 steps 4 and 5).  The simulator has its own SM2 key,
 * made at first start and kept in the SQLite file (table meta), so answers
 * signed before a restart still verify after it.  A summary's signature is
 * checked over device_summary_text() itself (device/device.c), so the two
 * sides cannot drift apart.  The clearance answer is signed over one line,
 * without a final newline:
 *
 *   CLEARANCE PERIOD MACHINE LOCK_DATE PER_INVOICE OFFLINE_HOURS OFFLINE_AMOUNT
 *   CLEARANCE 2026-11 499099000001 2027-01-15T23:59:59+08:00 10000000.00 72 10000000.00
 *
 * (the JSON answer's period, machine_number, lock_date and limits fields, in
 * that order, single spaces), which is what the device verifies in 反写 with
 * the key of GET /v1/platform-key, SM2 with SM3 and the distinguishing id
 * 1234567812345678.  The first answer for a period and machine is stored and
 * every later call returns its exact bytes, so a clearing that is run again
 * after a failure gets the answer it may already have written.
 *
 * Threads: both daemons run a thread per connection, so a `slow` answer
 * delays only its own connection.  Request threads share one SQLite connection
 * behind a mutex and the outage mode behind another; nothing else is shared.
 * The main thread only waits for SIGTERM/SIGINT and then stops everything.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sqlite3.h>

#include "device/crypto.h"
#include "device/device.h"
#include "engine/decimal.h"
#include "engine/platform_auth.h"
#include "engine/summary.h"

#define PROG "fapiaofs-platform-sim"
#define DEFAULT_PORT        8470
#define DEFAULT_APP_KEY     "demo-app"
#define DEFAULT_APP_SECRET  "demo-secret"
#define API_BODY_LIMIT      (2u * 1024 * 1024)   /* 413 above */
#define ADMIN_BODY_LIMIT    4096u
#define ID_MAX              32                   /* code and number length */
#define SLOW_MS_MAX         600000u              /* 10 minutes */
#define IDLE_TIMEOUT_S      60u                  /* idle keep-alive connections */
#define PUBLIC_KEY_B64_MAX  1024                 /* a device's base64 DER SPKI */
#define RATE_PM_MAX         1000
/* The limits every clearance answer grants (SPEC §5.3). */
#define LIMIT_PER_INVOICE    "10000000.00"
#define LIMIT_OFFLINE_HOURS  72
#define LIMIT_OFFLINE_AMOUNT "10000000.00"
#define PLATFORM_KEY_META    "platform_sm2_private_key_pem"

/* ---- outage modes --------------------------------------------------- */

enum outage_mode { MODE_UP, MODE_DOWN, MODE_503, MODE_SLOW, MODE_FLAKY, MODE_PORTAL, MODE_BARE };

struct outage_setting {
    enum outage_mode mode;
    unsigned slow_ms;          /* MODE_SLOW: delay before each /v1 answer */
    unsigned flaky_permille;   /* MODE_FLAKY: share of /v1 calls answered 503 */
};

struct outage {
    pthread_mutex_t lock;
    pthread_cond_t changed;    /* CLOCK_MONOTONIC; wakes `slow` sleepers */
    struct outage_setting now;
    uint64_t generation;       /* bumped at every change */
    uint64_t flaky_calls;      /* /v1 calls since `flaky` was set */
    bool stopping;
};

/* ---- the simulator -------------------------------------------------- */

/* Every SQL statement of the simulator, prepared once when the file opens.
 * The invoices of a period are found by the "period" and "machine_number"
 * members of the bytes received rather than by columns of their own, so
 * files written before clearing existed need no migration; the CASE keeps
 * json_extract() away from a body SQLite's JSON parser would refuse, which
 * would otherwise abort the whole query. */
#define INVOICE_TEXT "CAST(body AS TEXT)"
#define INVOICE_MEMBER(m) "CASE WHEN json_valid(" INVOICE_TEXT ") " \
                          "THEN json_extract(" INVOICE_TEXT ", '$." m "') END"
#define SIM_STATEMENTS(X) \
    X(find_invoice, "SELECT body FROM invoices WHERE code = ?1 AND number = ?2") \
    X(insert_invoice, "INSERT INTO invoices (code, number, body, received_at) VALUES (?1, ?2, ?3, ?4)") \
    X(count_invoices, "SELECT count(*) FROM invoices") \
    X(period_invoices, "SELECT code, number, body FROM invoices WHERE " \
      INVOICE_MEMBER("period") " = ?1 AND " INVOICE_MEMBER("machine_number") " = ?2 " \
      "ORDER BY code, number") \
    X(get_meta, "SELECT value FROM meta WHERE key = ?1") \
    X(put_meta, "INSERT INTO meta (key, value) VALUES (?1, ?2)") \
    X(find_summary, "SELECT signed_text, seller_tax_id, device_public_key, body FROM summaries " \
      "WHERE period = ?1 AND machine_number = ?2") \
    X(put_summary, "INSERT OR REPLACE INTO summaries (period, machine_number, signed_text, " \
      "seller_tax_id, device_public_key, body, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)") \
    X(latest_summary, "SELECT body FROM summaries WHERE period = ?1 " \
      "ORDER BY received_at DESC, rowid DESC LIMIT 1") \
    X(find_filed, "SELECT 1 FROM filed WHERE period = ?1") \
    X(put_filed, "INSERT OR IGNORE INTO filed (period, filed_at) VALUES (?1, ?2)") \
    X(find_clearance, "SELECT answer FROM clearances WHERE period = ?1 AND machine_number = ?2") \
    X(put_clearance, "INSERT INTO clearances (period, machine_number, lock_date, answer, cleared_at) " \
      "VALUES (?1, ?2, ?3, ?4, ?5)") \
    X(list_clearances, "SELECT period, machine_number, lock_date FROM clearances " \
      "ORDER BY period, machine_number")

struct sim_db {
    pthread_mutex_t lock;      /* one connection, one request at a time */
    sqlite3 *db;
#define DECLARE_STATEMENT(name, sql) sqlite3_stmt *name;
    SIM_STATEMENTS(DECLARE_STATEMENT)
#undef DECLARE_STATEMENT
};

struct sim {
    const char *app_key, *app_secret;
    uint16_t api_port;           /* the port bound, reused when `up` restarts */
    struct sim_db db;
    EVP_PKEY *key;               /* the platform's SM2 key, from table meta */
    char public_b64[256];        /* its base64 DER SubjectPublicKeyInfo */
    struct outage outage;
    pthread_mutex_t daemon_lock; /* serialises mode changes and shutdown */
    struct MHD_Daemon *api;      /* NULL while `down` */
    struct MHD_Daemon *admin;
};

/* One HTTP request: its body, gathered across MHD's calls. */
struct request {
    unsigned char *body;
    size_t len, cap;
    bool too_large;     /* the rest is discarded and the answer is 413 */
    bool answered;      /* a response was queued before the body was read */
};

/* ---- HTTP answers --------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status,
                               const char *content_type, const void *body, size_t len)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    if (content_type != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    return respond(conn, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Answers with doc as compact JSON; takes the reference to doc. */
static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status, json_t *doc)
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    enum MHD_Result ret;

    json_decref(doc);
    if (text == NULL)
        return MHD_NO;
    ret = respond(conn, status, "application/json", text, strlen(text));
    free(text);
    return ret;
}

/* {"error":ERROR} or {"error":ERROR,KEY:VALUE}. */
static enum MHD_Result respond_error(struct MHD_Connection *conn, unsigned status,
                                     const char *error, const char *key, const char *value)
{
    json_t *doc = json_pack("{s:s}", "error", error);

    if (doc != NULL && key != NULL && value != NULL)
        json_object_set_new(doc, key, json_string(value));
    return respond_json(conn, status, doc);
}

static enum MHD_Result respond_method_not_allowed(struct MHD_Connection *conn, const char *allow)
{
    static const char body[] = "{\"error\":\"method_not_allowed\"}";
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- the database --------------------------------------------------- */

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS invoices ("
    "  code        TEXT    NOT NULL,"
    "  number      TEXT    NOT NULL,"
    "  body        BLOB    NOT NULL,"   /* the exact bytes received */
    "  received_at INTEGER NOT NULL,"   /* unix seconds, the simulator's clock */
    "  PRIMARY KEY (code, number)"
    ");"
    "CREATE TABLE IF NOT EXISTS meta ("   /* the platform's own settings: its key */
    "  key   TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS summaries ("   /* 上报汇总, the latest per period and machine */
    "  period            TEXT    NOT NULL,"
    "  machine_number    TEXT    NOT NULL,"
    "  signed_text       TEXT    NOT NULL,"   /* device_summary_text(): what was signed */
    "  seller_tax_id     TEXT    NOT NULL,"
    "  device_public_key TEXT    NOT NULL,"
    "  body              BLOB    NOT NULL,"   /* the request as received */
    "  received_at       INTEGER NOT NULL,"
    "  PRIMARY KEY (period, machine_number)"
    ");"
    "CREATE TABLE IF NOT EXISTS filed ("   /* periods whose tax return is filed (admin) */
    "  period   TEXT PRIMARY KEY,"
    "  filed_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS clearances ("   /* 监控回传 answers given, returned again as is */
    "  period         TEXT    NOT NULL,"
    "  machine_number TEXT    NOT NULL,"
    "  lock_date      TEXT    NOT NULL,"
    "  answer         TEXT    NOT NULL,"
    "  cleared_at     INTEGER NOT NULL,"
    "  PRIMARY KEY (period, machine_number)"
    ");";

static int db_open(struct sim_db *d, const char *path)
{
    int rc;

    rc = sqlite3_open_v2(path, &d->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        goto out;
    sqlite3_busy_timeout(d->db, 5000);
    /* WAL + NORMAL: a kill -9 of the simulator loses nothing it answered
     * 201 to; only a power cut could, and tests do not cut power. */
    rc = sqlite3_exec(d->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto out;
    rc = sqlite3_exec(d->db, SCHEMA, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto out;
#define PREPARE_STATEMENT(name, sql) \
    rc = sqlite3_prepare_v2(d->db, sql, -1, &d->name, NULL); \
    if (rc != SQLITE_OK) \
        goto out;
    SIM_STATEMENTS(PREPARE_STATEMENT)
#undef PREPARE_STATEMENT
out:
    if (rc != SQLITE_OK)
        fprintf(stderr, PROG ": %s: %s\n", path, d->db != NULL ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
    return rc == SQLITE_OK ? 0 : -1;
}

static void db_close(struct sim_db *d)
{
#define FINALIZE_STATEMENT(name, sql) sqlite3_finalize(d->name);
    SIM_STATEMENTS(FINALIZE_STATEMENT)
#undef FINALIZE_STATEMENT
    sqlite3_close(d->db);
    d->db = NULL;
}

/* Ready a statement for its next use; after every use, on every path. */
static void stmt_done(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

enum put_outcome { PUT_CREATED, PUT_SAME_BYTES, PUT_OTHER_BYTES };

/* Store an invoice unless code+number is known; says which case it was.
 * The lookup and the insert run under the lock, so two uploads of the same
 * invoice racing each other give one 201 and one 200, never two 201s. */
static int db_put_invoice(struct sim_db *d, const char *code, const char *number,
                          const void *body, size_t len, enum put_outcome *outcome)
{
    int rc;

    pthread_mutex_lock(&d->lock);
    sqlite3_bind_text(d->find_invoice, 1, code, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->find_invoice, 2, number, -1, SQLITE_STATIC);
    rc = sqlite3_step(d->find_invoice);
    if (rc == SQLITE_ROW) {
        const void *stored = sqlite3_column_blob(d->find_invoice, 0);
        size_t stored_len = (size_t)sqlite3_column_bytes(d->find_invoice, 0);

        *outcome = stored_len == len && (len == 0 || memcmp(stored, body, len) == 0)
                 ? PUT_SAME_BYTES : PUT_OTHER_BYTES;
        rc = SQLITE_OK;
        goto out;
    }
    if (rc != SQLITE_DONE)
        goto out;
    sqlite3_bind_text(d->insert_invoice, 1, code, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->insert_invoice, 2, number, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(d->insert_invoice, 3, body, len, SQLITE_STATIC);
    sqlite3_bind_int64(d->insert_invoice, 4, (sqlite3_int64)time(NULL));
    rc = sqlite3_step(d->insert_invoice);
    if (rc != SQLITE_DONE)
        goto out;
    *outcome = PUT_CREATED;
    rc = SQLITE_OK;
out:
    if (rc != SQLITE_OK)
        fprintf(stderr, PROG ": storing %s-%s: %s\n", code, number, sqlite3_errmsg(d->db));
    sqlite3_reset(d->find_invoice);
    sqlite3_clear_bindings(d->find_invoice);
    sqlite3_reset(d->insert_invoice);
    sqlite3_clear_bindings(d->insert_invoice);
    pthread_mutex_unlock(&d->lock);
    return rc == SQLITE_OK ? 0 : -1;
}

/* The stored bytes, malloc'd, or *body NULL if unknown; -1 on error. */
static int db_get_invoice(struct sim_db *d, const char *code, const char *number,
                          unsigned char **body, size_t *len)
{
    int rc;

    *body = NULL;
    *len = 0;
    pthread_mutex_lock(&d->lock);
    sqlite3_bind_text(d->find_invoice, 1, code, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->find_invoice, 2, number, -1, SQLITE_STATIC);
    rc = sqlite3_step(d->find_invoice);
    if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
        goto out;
    }
    if (rc != SQLITE_ROW)
        goto out;
    *len = (size_t)sqlite3_column_bytes(d->find_invoice, 0);
    *body = malloc(*len > 0 ? *len : 1);
    if (*body == NULL) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    if (*len > 0)
        memcpy(*body, sqlite3_column_blob(d->find_invoice, 0), *len);
    rc = SQLITE_OK;
out:
    if (rc != SQLITE_OK)
        fprintf(stderr, PROG ": reading %s-%s: %s\n", code, number, sqlite3_errstr(rc));
    sqlite3_reset(d->find_invoice);
    sqlite3_clear_bindings(d->find_invoice);
    pthread_mutex_unlock(&d->lock);
    return rc == SQLITE_OK ? 0 : -1;
}

static int db_count_invoices(struct sim_db *d, int64_t *count)
{
    int rc;

    pthread_mutex_lock(&d->lock);
    rc = sqlite3_step(d->count_invoices);
    if (rc != SQLITE_ROW)
        goto out;
    *count = sqlite3_column_int64(d->count_invoices, 0);
    rc = SQLITE_OK;
out:
    if (rc != SQLITE_OK)
        fprintf(stderr, PROG ": counting invoices: %s\n", sqlite3_errmsg(d->db));
    sqlite3_reset(d->count_invoices);
    pthread_mutex_unlock(&d->lock);
    return rc == SQLITE_OK ? 0 : -1;
}

/* ---- the platform's key --------------------------------------------- */

/* The platform's SM2 key: the one in table meta, or a new one stored there
 * at first start.  It is kept in the clear because this is a simulator; it
 * is kept at all because a device given the public key must go on trusting
 * answers after the simulator restarts.  Called before any thread starts. */
static EVP_PKEY *db_platform_key(struct sim_db *d)
{
    EVP_PKEY *key = NULL;
    char *pem = NULL;
    int rc;

    sqlite3_bind_text(d->get_meta, 1, PLATFORM_KEY_META, -1, SQLITE_STATIC);
    rc = sqlite3_step(d->get_meta);
    if (rc == SQLITE_ROW) {
        const char *stored = (const char *)sqlite3_column_text(d->get_meta, 0);

        key = stored != NULL ? crypto_key_from_pem(stored, 1) : NULL;
        stmt_done(d->get_meta);
        if (key == NULL || !EVP_PKEY_is_a(key, "SM2")) {
            fprintf(stderr, PROG ": table meta holds no usable SM2 private key (%s)\n",
                    PLATFORM_KEY_META);
            EVP_PKEY_free(key);
            return NULL;
        }
        return key;
    }
    stmt_done(d->get_meta);
    if (rc != SQLITE_DONE)
        goto out;
    pem = crypto_sm2_generate_pem();
    if (pem == NULL) {
        fprintf(stderr, PROG ": cannot generate an SM2 key\n");
        return NULL;
    }
    sqlite3_bind_text(d->put_meta, 1, PLATFORM_KEY_META, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->put_meta, 2, pem, -1, SQLITE_STATIC);
    rc = sqlite3_step(d->put_meta);
    stmt_done(d->put_meta);
    if (rc != SQLITE_DONE)
        goto out;
    key = crypto_key_from_pem(pem, 1);
    fprintf(stderr, PROG ": made a new platform SM2 key\n");
out:
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        fprintf(stderr, PROG ": the platform key: %s\n", sqlite3_errmsg(d->db));
    free(pem);
    return key;
}

/* ---- clearing: checks and sums -------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* "YYYY-MM" with a month from 01 to 12. */
static bool valid_period(const char *s)
{
    int month;

    if (s == NULL || strlen(s) != 7 || s[4] != '-')
        return false;
    for (int i = 0; i < 7; i++)
        if (i != 4 && !is_digit(s[i]))
            return false;
    month = (s[5] - '0') * 10 + (s[6] - '0');
    return month >= 1 && month <= 12;
}

/* Machine numbers are 12 digits (SPEC §5).  Any 1 to 15 digits fit the
 * device's field; nothing else may reach a space-separated signed text. */
static bool valid_machine(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++)
        if (n >= 15 || !is_digit(s[n]))
            return false;
    return n > 0;
}

/* Invoice types are 3 digits (026, 028). */
static bool valid_type(const char *s)
{
    return s != NULL && strlen(s) == 3 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]);
}

/* The lock date a clearance of period grants: the 15th of the month after
 * next, its last second in China (as lock_date_after() in device/sim.c). */
static void lock_date_of(const char *period, char out[48])
{
    int year = 0, month;

    for (int i = 0; i < 4; i++)
        year = year * 10 + (period[i] - '0');
    month = year * 12 + (period[5] - '0') * 10 + (period[6] - '0') - 1 + 2;

    snprintf(out, 48, "%04d-%02d-15T23:59:59+08:00", month / 12, month % 12 + 1);
}


/* A summary request: what the device signed, and what travels beside it. */
struct summary {
    struct device_summary s;        /* period, machine, lines; signature unused */
    char seller_tax_id[24];
    const char *device_signature;   /* base64, inside the JSON document */
    const char *device_public_key;  /* base64 DER SPKI, inside the JSON document */
};

#define SUMMARY_COUNT_MAX 1000000000   /* keeps the sum of the counts in range */

/* Checks the shape of a summary for period (the one of the URL); false with
 * why otherwise.  The checks are those the text the device signed needs to
 * be rebuilt exactly: every number an integer, every amount whole fen. */
static bool parse_summary(json_t *doc, const char *period, struct summary *out, char *why, size_t whylen)
{
    const char *p, *machine, *seller;
    json_t *lines, *line;
    bool shaped = false;
    size_t i;

    memset(out, 0, sizeof *out);
    if (!json_is_object(doc)) {
        snprintf(why, whylen, "not a JSON object");
        return false;
    }
    p = json_string_value(json_object_get(doc, "period"));
    machine = json_string_value(json_object_get(doc, "machine_number"));
    seller = json_string_value(json_object_get(doc, "seller_tax_id"));
    lines = json_object_get(doc, "lines");
    out->device_signature = json_string_value(json_object_get(doc, "device_signature"));
    out->device_public_key = json_string_value(json_object_get(doc, "device_public_key"));
    if (p == NULL || strcmp(p, period) != 0)
        snprintf(why, whylen, "period: must be \"%s\", the period of the URL", period);
    else if (!valid_machine(machine))
        snprintf(why, whylen, "machine_number: 1 to 15 digits");
    else if (seller == NULL || seller[0] == '\0' || strlen(seller) >= sizeof out->seller_tax_id)
        snprintf(why, whylen, "seller_tax_id: a tax id of 1 to %zu characters",
                 sizeof out->seller_tax_id - 1);
    else if (!json_is_array(lines) || json_array_size(lines) > DEVICE_SUMMARY_LINES)
        snprintf(why, whylen, "lines: an array of at most %d lines", DEVICE_SUMMARY_LINES);
    else if (out->device_signature == NULL || out->device_signature[0] == '\0' ||
             strlen(out->device_signature) >= CRYPTO_SIG_B64_MAX)
        snprintf(why, whylen, "device_signature: the base64 of an SM2 signature");
    else if (out->device_public_key == NULL || out->device_public_key[0] == '\0' ||
             strlen(out->device_public_key) > PUBLIC_KEY_B64_MAX)
        snprintf(why, whylen, "device_public_key: the base64 DER of an SM2 public key");
    else
        shaped = true;
    if (!shaped)
        return false;
    memcpy(out->s.period, p, 8);
    snprintf(out->s.machine_number, sizeof out->s.machine_number, "%s", machine);
    snprintf(out->seller_tax_id, sizeof out->seller_tax_id, "%s", seller);
    json_array_foreach(lines, i, line) {
        struct device_summary_line *l = &out->s.lines[i];
        const char *type = json_string_value(json_object_get(line, "type"));
        json_t *red = json_object_get(line, "red"), *rate = json_object_get(line, "rate_pm"),
               *count = json_object_get(line, "count");

        if (!valid_type(type) || !json_is_boolean(red) || !json_is_integer(rate) ||
            json_integer_value(rate) < 0 || json_integer_value(rate) > RATE_PM_MAX ||
            !json_is_integer(count) || json_integer_value(count) < 0 ||
            json_integer_value(count) > SUMMARY_COUNT_MAX ||
            !summary_amount_fen(json_object_get(line, "amount"), &l->amount_fen) ||
            !summary_amount_fen(json_object_get(line, "tax"), &l->tax_fen)) {
            snprintf(why, whylen, "lines[%zu]: needs type (3 digits), red (true or false), "
                     "rate_pm (0 to %d), count (0 to %d), amount and tax (decimal text, "
                     "at most 2 decimals)", i, RATE_PM_MAX, SUMMARY_COUNT_MAX);
            return false;
        }
        memcpy(l->type, type, 4);
        l->red = json_is_true(red);
        l->rate_pm = (int)json_integer_value(rate);
        l->count = json_integer_value(count);
        /* One line per type, colour and rate, as the device makes them: a
         * second one would make "the summary's amount at this rate" ambiguous. */
        if (summary_find_line(&out->s, l->type, l->red, l->rate_pm) >= 0) {
            snprintf(why, whylen, "lines[%zu]: a second line for %s %s rate_pm %d", i, l->type,
                     l->red ? "red" : "blue", l->rate_pm);
            return false;
        }
        out->s.nlines++;
    }
    return true;
}

/* ---- clearing: storage ---------------------------------------------- */

static bool column_equals(sqlite3_stmt *stmt, int col, const char *text)
{
    const unsigned char *v = sqlite3_column_text(stmt, col);

    return v != NULL && strcmp((const char *)v, text) == 0;
}

/* Whether a statement with parameters ?1 [?2] has a row; -1 on error. */
static int db_exists(sqlite3_stmt *stmt, const char *a, const char *b)
{
    int rc;

    sqlite3_bind_text(stmt, 1, a, -1, SQLITE_STATIC);
    if (b != NULL)
        sqlite3_bind_text(stmt, 2, b, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    stmt_done(stmt);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The first column of the row of a statement with parameters ?1 [?2],
 * malloc'd and NUL-terminated, or *out NULL when there is none; -1 on error. */
static int db_fetch(sqlite3_stmt *stmt, const char *a, const char *b, char **out, size_t *len)
{
    int rc;

    *out = NULL;
    *len = 0;
    sqlite3_bind_text(stmt, 1, a, -1, SQLITE_STATIC);
    if (b != NULL)
        sqlite3_bind_text(stmt, 2, b, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *len = (size_t)sqlite3_column_bytes(stmt, 0);
        *out = malloc(*len + 1);
        if (*out == NULL) {
            rc = SQLITE_NOMEM;
        } else {
            if (*len > 0)
                memcpy(*out, sqlite3_column_blob(stmt, 0), *len);
            (*out)[*len] = '\0';
            rc = SQLITE_DONE;
        }
    }
    stmt_done(stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

enum summary_outcome { SUMMARY_CREATED, SUMMARY_SAME, SUMMARY_REPLACED, SUMMARY_PERIOD_CLEARED };

struct summary_record {
    const char *period, *machine_number, *signed_text, *seller_tax_id, *device_public_key;
    const void *body;   /* the request as received */
    size_t len;
};

/* Stores a verified summary.  The device signs its summary anew at every
 * request and SM2 signatures are randomised, so "the same summary" is the
 * same signed text, seller and key, not the same bytes; it leaves the stored
 * one alone.  Another summary replaces the stored one, unless the period is
 * cleared: the answer given was computed from the stored one and is final. */
static int db_put_summary(struct sim_db *d, const struct summary_record *r, enum summary_outcome *outcome)
{
    bool known = false, same = false;
    int rc, cleared;

    pthread_mutex_lock(&d->lock);
    sqlite3_bind_text(d->find_summary, 1, r->period, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->find_summary, 2, r->machine_number, -1, SQLITE_STATIC);
    rc = sqlite3_step(d->find_summary);
    if (rc == SQLITE_ROW) {
        known = true;
        same = column_equals(d->find_summary, 0, r->signed_text) &&
               column_equals(d->find_summary, 1, r->seller_tax_id) &&
               column_equals(d->find_summary, 2, r->device_public_key);
        rc = SQLITE_DONE;
    }
    stmt_done(d->find_summary);
    if (rc != SQLITE_DONE)
        goto out;
    if (same) {
        *outcome = SUMMARY_SAME;
        goto out;
    }
    cleared = known ? db_exists(d->find_clearance, r->period, r->machine_number) : 0;
    if (cleared != 0) {
        rc = cleared > 0 ? SQLITE_DONE : SQLITE_ERROR;
        *outcome = SUMMARY_PERIOD_CLEARED;
        goto out;
    }
    sqlite3_bind_text(d->put_summary, 1, r->period, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->put_summary, 2, r->machine_number, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->put_summary, 3, r->signed_text, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->put_summary, 4, r->seller_tax_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->put_summary, 5, r->device_public_key, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(d->put_summary, 6, r->body, r->len, SQLITE_STATIC);
    sqlite3_bind_int64(d->put_summary, 7, (sqlite3_int64)time(NULL));
    rc = sqlite3_step(d->put_summary);
    stmt_done(d->put_summary);
    *outcome = known ? SUMMARY_REPLACED : SUMMARY_CREATED;
out:
    if (rc != SQLITE_DONE)
        fprintf(stderr, PROG ": storing the summary of %s: %s\n", r->period, sqlite3_errmsg(d->db));
    pthread_mutex_unlock(&d->lock);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The latest summary stored for period, as received, or *body NULL. */
static int db_latest_summary(struct sim_db *d, const char *period, char **body, size_t *len)
{
    int rc;

    pthread_mutex_lock(&d->lock);
    rc = db_fetch(d->latest_summary, period, NULL, body, len);
    if (rc != 0)
        fprintf(stderr, PROG ": reading the summary of %s: %s\n", period, sqlite3_errmsg(d->db));
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int db_put_filed(struct sim_db *d, const char *period)
{
    int rc;

    pthread_mutex_lock(&d->lock);
    sqlite3_bind_text(d->put_filed, 1, period, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d->put_filed, 2, (sqlite3_int64)time(NULL));
    rc = sqlite3_step(d->put_filed);
    stmt_done(d->put_filed);
    if (rc != SQLITE_DONE)
        fprintf(stderr, PROG ": marking %s filed: %s\n", period, sqlite3_errmsg(d->db));
    pthread_mutex_unlock(&d->lock);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* "PERIOD MACHINE LOCK_DATE\n" per clearance given, malloc'd. */
static int db_list_clearances(struct sim_db *d, char **text)
{
    size_t len = 0;
    FILE *f = open_memstream(text, &len);
    int rc;

    if (f == NULL)
        return -1;
    pthread_mutex_lock(&d->lock);
    while ((rc = sqlite3_step(d->list_clearances)) == SQLITE_ROW)
        fprintf(f, "%s %s %s\n", (const char *)sqlite3_column_text(d->list_clearances, 0),
                (const char *)sqlite3_column_text(d->list_clearances, 1),
                (const char *)sqlite3_column_text(d->list_clearances, 2));
    stmt_done(d->list_clearances);
    if (rc != SQLITE_DONE)
        fprintf(stderr, PROG ": listing clearances: %s\n", sqlite3_errmsg(d->db));
    pthread_mutex_unlock(&d->lock);
    if (fclose(f) != 0 || rc != SQLITE_DONE) {
        free(*text);
        *text = NULL;
        return -1;
    }
    return 0;
}

/* The signed clearance answer, compact JSON, malloc'd.  The signed text is
 * documented at the top of this file and in --help: the device verifies it. */
static char *clearance_answer(EVP_PKEY *key, const char *period, const char *machine, const char *lock_date)
{
    char text[160], sig[CRYPTO_SIG_B64_MAX];
    char *answer;
    json_t *doc;

    snprintf(text, sizeof text, "CLEARANCE %s %s %s %s %d %s", period, machine, lock_date,
             LIMIT_PER_INVOICE, LIMIT_OFFLINE_HOURS, LIMIT_OFFLINE_AMOUNT);
    if (crypto_sm2_sign_b64(key, text, strlen(text), sig, sizeof sig) != 0)
        return NULL;
    doc = json_pack("{s:s,s:s,s:b,s:s,s:{s:s,s:i,s:s},s:s}", "period", period,
                    "machine_number", machine, "cleared", 1, "lock_date", lock_date,
                    "limits", "per_invoice", LIMIT_PER_INVOICE, "offline_hours", LIMIT_OFFLINE_HOURS,
                    "offline_amount", LIMIT_OFFLINE_AMOUNT, "signature", sig);
    answer = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return answer;
}

/* What a clearance call gets: the answer (200) or a refusal. */
struct clearance_result {
    unsigned status;
    json_t *refusal;   /* {"error": ...}, or NULL */
    char *answer;      /* the signed answer, malloc'd, or NULL */
};

static void refuse(struct clearance_result *res, unsigned status, json_t *doc)
{
    res->status = status;
    res->refusal = doc;
}

/* The invoices received for period and machine, tallied as the device
 * would; *count of them.  why names the first one that cannot be tallied
 * (the rest are still counted), or stays empty.  Lock held. */
static int tally_received(struct sim_db *d, const char *period, const char *machine,
                          struct device_summary *found, int64_t *count, char *why, size_t whylen)
{
    int rc;

    memset(found, 0, sizeof *found);
    *count = 0;
    why[0] = '\0';
    sqlite3_bind_text(d->period_invoices, 1, period, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->period_invoices, 2, machine, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(d->period_invoices)) == SQLITE_ROW) {
        json_t *inv = json_loadb(sqlite3_column_blob(d->period_invoices, 2),
                                 (size_t)sqlite3_column_bytes(d->period_invoices, 2), 0, NULL);
        char invalid[160];

        (*count)++;
        if (why[0] == '\0' && summary_add_invoice(found, inv, invalid, sizeof invalid) != 0)
            snprintf(why, whylen, "invoice %s-%s: %s",
                     (const char *)sqlite3_column_text(d->period_invoices, 0),
                     (const char *)sqlite3_column_text(d->period_invoices, 1), invalid);
        json_decref(inv);
    }
    stmt_done(d->period_invoices);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* 监控回传 for one period and machine.  Everything runs under the database
 * lock, so two calls racing each other store one answer and both get it. */
static void clear_period(struct sim *sim, const char *period, const char *machine,
                         struct clearance_result *res)
{
    struct sim_db *d = &sim->db;
    struct device_summary found;
    struct summary claimed;
    char why[512], lock_date[48];
    json_t *doc = NULL;
    int64_t received, total;
    size_t len;
    int filed, rc;

    memset(res, 0, sizeof *res);
    pthread_mutex_lock(&d->lock);
    if (db_fetch(d->find_clearance, period, machine, &res->answer, &len) != 0)
        goto storage;
    if (res->answer != NULL) {
        res->status = MHD_HTTP_OK;
        goto out;
    }
    filed = db_exists(d->find_filed, period, NULL);
    if (filed < 0)
        goto storage;
    if (filed == 0) {
        refuse(res, MHD_HTTP_FORBIDDEN, json_pack("{s:s}", "error", "return_not_filed"));
        goto out;
    }
    /* find_summary's fourth column is the body; db_fetch reads the first. */
    sqlite3_bind_text(d->find_summary, 1, period, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->find_summary, 2, machine, -1, SQLITE_STATIC);
    rc = sqlite3_step(d->find_summary);
    if (rc == SQLITE_ROW)
        doc = json_loadb(sqlite3_column_blob(d->find_summary, 3),
                         (size_t)sqlite3_column_bytes(d->find_summary, 3), 0, NULL);
    stmt_done(d->find_summary);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        goto storage;
    if (doc == NULL) {
        refuse(res, MHD_HTTP_FORBIDDEN, json_pack("{s:s}", "error", "summary_missing"));
        goto out;
    }
    if (!parse_summary(doc, period, &claimed, why, sizeof why)) {
        fprintf(stderr, PROG ": the stored summary of %s no longer parses: %s\n", period, why);
        goto storage;
    }
    total = summary_count(&claimed.s);
    if (tally_received(d, period, machine, &found, &received, why, sizeof why) != 0)
        goto storage;
    if (received < total) {
        refuse(res, MHD_HTTP_FORBIDDEN, json_pack("{s:s,s:I}", "error", "invoices_missing",
                                                  "missing", (json_int_t)(total - received)));
        goto out;
    }
    if (why[0] == '\0' && received > total)
        snprintf(why, sizeof why, "the summary counts %" PRId64 " invoices of %s, the platform "
                 "received %" PRId64, total, period, received);
    /* Line by line, counts included: the platform sums as the device does
     * (engine/summary.c), so an invoice of several rates counts under its
     * first item's rate on both sides. */
    if (why[0] != '\0' ||
        !summary_equal(&claimed.s, "the summary", &found, "the platform", why, sizeof why)) {
        refuse(res, MHD_HTTP_FORBIDDEN, json_pack("{s:s,s:s}", "error", "summary_mismatch",
                                                  "detail", why));
        goto out;
    }
    lock_date_of(period, lock_date);
    res->answer = clearance_answer(sim->key, period, machine, lock_date);
    if (res->answer == NULL)
        goto storage;
    sqlite3_bind_text(d->put_clearance, 1, period, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->put_clearance, 2, machine, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->put_clearance, 3, lock_date, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->put_clearance, 4, res->answer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d->put_clearance, 5, (sqlite3_int64)time(NULL));
    if (sqlite3_step(d->put_clearance) != SQLITE_DONE) {
        stmt_done(d->put_clearance);
        fprintf(stderr, PROG ": storing the clearance of %s: %s\n", period, sqlite3_errmsg(d->db));
        goto storage;
    }
    stmt_done(d->put_clearance);
    res->status = MHD_HTTP_OK;
    fprintf(stderr, PROG ": cleared %s for machine %s, lock date %s\n", period, machine, lock_date);
    goto out;
storage:
    free(res->answer);
    res->answer = NULL;
    refuse(res, MHD_HTTP_INTERNAL_SERVER_ERROR, json_pack("{s:s}", "error", "storage"));
out:
    pthread_mutex_unlock(&d->lock);
    json_decref(doc);
}

/* ---- outage modes --------------------------------------------------- */

static int outage_init(struct outage *o)
{
    pthread_condattr_t attr;
    int rc;

    memset(o, 0, sizeof *o);
    o->now.mode = MODE_UP;
    if (pthread_mutex_init(&o->lock, NULL) != 0)
        return -1;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&o->changed, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_destroy(&o->lock);
        return -1;
    }
    return 0;
}

static void outage_destroy(struct outage *o)
{
    pthread_cond_destroy(&o->changed);
    pthread_mutex_destroy(&o->lock);
}

/* Unsigned decimal integer, the whole of s, at most max. */
static bool parse_uint(const char *s, unsigned max, unsigned *out)
{
    unsigned long v = 0;

    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return false;
    }
    *out = (unsigned)v;
    return true;
}

/* A share of calls in per mille, without floating point: "0.3", ".25",
 * "1", "0", "1.0" (at most three decimals), or a percentage "30%". */
static bool parse_share(const char *s, unsigned *permille)
{
    size_t len = strlen(s);
    unsigned whole = 0, fraction = 0, scale = 100;
    char digits[8];

    if (len > 0 && len < sizeof digits && s[len - 1] == '%') {
        memcpy(digits, s, len - 1);
        digits[len - 1] = '\0';
        if (!parse_uint(digits, 100, &whole))
            return false;
        *permille = whole * 10;
        return true;
    }
    if (*s != '.') {
        if (*s < '0' || *s > '1')
            return false;
        whole = (unsigned)(*s++ - '0');
    }
    if (*s == '.') {
        s++;
        if (*s == '\0')
            return false;
        for (; *s >= '0' && *s <= '9' && scale > 0; s++, scale /= 10)
            fraction += (unsigned)(*s - '0') * scale;
    }
    if (*s != '\0' || whole * 1000 + fraction > 1000)
        return false;
    *permille = whole * 1000 + fraction;
    return true;
}

/* Parses an admin mode line ("slow 200\n"); why explains a refusal. */
static bool parse_mode(char *text, struct outage_setting *set, const char **why)
{
    char *arg;
    size_t len = strlen(text);

    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
                       text[len - 1] == ' ' || text[len - 1] == '\t'))
        text[--len] = '\0';
    arg = strchr(text, ' ');
    if (arg != NULL) {
        *arg++ = '\0';
        while (*arg == ' ')
            arg++;
    }
    memset(set, 0, sizeof *set);
    *why = "modes: up, down, 503, slow MS, flaky SHARE, portal, bare\n";
    if (strcmp(text, "up") == 0 || strcmp(text, "down") == 0 || strcmp(text, "503") == 0 ||
        strcmp(text, "portal") == 0 || strcmp(text, "bare") == 0) {
        set->mode = text[0] == 'u' ? MODE_UP : text[0] == 'd' ? MODE_DOWN
                  : text[0] == 'p' ? MODE_PORTAL : text[0] == 'b' ? MODE_BARE : MODE_503;
        return arg == NULL;
    }
    if (strcmp(text, "slow") == 0) {
        set->mode = MODE_SLOW;
        *why = "slow MS: a delay in milliseconds, 0 to 600000\n";
        return arg != NULL && parse_uint(arg, SLOW_MS_MAX, &set->slow_ms);
    }
    if (strcmp(text, "flaky") == 0) {
        set->mode = MODE_FLAKY;
        *why = "flaky SHARE: a share of calls from 0 to 1 (0.3) or a percentage (30%)\n";
        return arg != NULL && parse_share(arg, &set->flaky_permille);
    }
    return false;
}

static void format_mode(const struct outage_setting *set, char *buf, size_t size)
{
    switch (set->mode) {
    case MODE_UP:    snprintf(buf, size, "up\n"); break;
    case MODE_DOWN:  snprintf(buf, size, "down\n"); break;
    case MODE_503:   snprintf(buf, size, "503\n"); break;
    case MODE_PORTAL: snprintf(buf, size, "portal\n"); break;
    case MODE_BARE:  snprintf(buf, size, "bare\n"); break;
    case MODE_SLOW:  snprintf(buf, size, "slow %u\n", set->slow_ms); break;
    case MODE_FLAKY: snprintf(buf, size, "flaky %u.%03u\n",
                              set->flaky_permille / 1000, set->flaky_permille % 1000); break;
    }
}

/* The flaky call number n fails when the running count of failures,
 * floor(n * share), goes up: exactly SHARE of the calls fail, spread
 * evenly and reproducibly, so a test knows what it will get. */
static bool flaky_call_fails(uint64_t n, unsigned permille)
{
    return (n + 1) * permille / 1000 > n * permille / 1000;
}

static void deadline_after_ms(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Applies the outage mode to one /v1 call: 0 to answer it normally, or the
 * HTTP status to answer instead (200: the portal's page).  A `slow` call sleeps here, and wakes early
 * when the mode changes (then the new mode decides) or the simulator stops. */
static unsigned outage_gate(struct outage *o)
{
    unsigned status = 0;
    bool slept = false;

    pthread_mutex_lock(&o->lock);
    for (;;) {
        struct timespec deadline;
        uint64_t generation = o->generation;
        int rc = 0;

        if (o->stopping || o->now.mode == MODE_UP || o->now.mode == MODE_BARE)
            break;
        if (o->now.mode == MODE_503 || o->now.mode == MODE_DOWN) {
            /* DOWN here: a call that arrived just before the socket closed. */
            status = MHD_HTTP_SERVICE_UNAVAILABLE;
            break;
        }
        if (o->now.mode == MODE_PORTAL) {
            status = MHD_HTTP_OK;
            break;
        }
        if (o->now.mode == MODE_FLAKY) {
            if (flaky_call_fails(o->flaky_calls++, o->now.flaky_permille))
                status = MHD_HTTP_SERVICE_UNAVAILABLE;
            break;
        }
        if (slept)   /* MODE_SLOW, and the delay is over */
            break;
        deadline_after_ms(&deadline, o->now.slow_ms);
        while (rc != ETIMEDOUT && generation == o->generation && !o->stopping)
            rc = pthread_cond_timedwait(&o->changed, &o->lock, &deadline);
        slept = generation == o->generation;
    }
    pthread_mutex_unlock(&o->lock);
    return status;
}

static void outage_set(struct outage *o, const struct outage_setting *set)
{
    pthread_mutex_lock(&o->lock);
    o->now = *set;
    o->generation++;
    o->flaky_calls = 0;
    pthread_cond_broadcast(&o->changed);
    pthread_mutex_unlock(&o->lock);
}

static struct outage_setting outage_get(struct outage *o)
{
    struct outage_setting set;

    pthread_mutex_lock(&o->lock);
    set = o->now;
    pthread_mutex_unlock(&o->lock);
    return set;
}

/* ---- request bodies ------------------------------------------------- */

static void request_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                              enum MHD_RequestTerminationCode why)
{
    struct request *req = *req_cls;

    (void)cls;
    (void)conn;
    (void)why;
    if (req != NULL) {
        free(req->body);
        free(req);
        *req_cls = NULL;
    }
}

/* Appends a chunk of the body, or marks the request too large (the rest
 * is read and dropped: answering mid-body would break the connection). */
static int request_append(struct request *req, const char *data, size_t size, size_t limit)
{
    if (req->too_large || size > limit - req->len) {
        req->too_large = true;
        return 0;
    }
    if (req->len + size > req->cap) {
        size_t cap = req->cap > 0 ? req->cap : 4096;
        unsigned char *grown;

        while (cap < req->len + size)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        grown = realloc(req->body, cap);
        if (grown == NULL)
            return -1;
        req->body = grown;
        req->cap = cap;
    }
    memcpy(req->body + req->len, data, size);
    req->len += size;
    return 0;
}

/* The part of MHD's access handler that is the same for every request:
 * gathers the body.  Returns true when the request is complete and ready to
 * be answered; otherwise *ret is what the handler must return now. */
static bool gather_request(struct MHD_Connection *conn, const char *upload_data,
                           size_t *upload_data_size, void **req_cls, size_t limit,
                           enum MHD_Result *ret)
{
    struct request *req = *req_cls;

    *ret = MHD_YES;
    if (req == NULL) {
        const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
        req = calloc(1, sizeof *req);
        if (req == NULL) {
            *ret = MHD_NO;
            return false;
        }
        *req_cls = req;
        /* A declared length over the limit is refused before reading it. */
        if (length != NULL && strtoull(length, NULL, 10) > limit) {
            req->too_large = req->answered = true;
            *ret = respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", NULL, NULL);
        }
        return false;
    }
    if (*upload_data_size > 0) {
        if (!req->answered && request_append(req, upload_data, *upload_data_size, limit) != 0)
            *ret = MHD_NO;
        *upload_data_size = 0;
        return false;
    }
    if (req->answered)
        return false;
    if (req->too_large) {
        *ret = respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", NULL, NULL);
        return false;
    }
    return true;
}

/* ---- the API -------------------------------------------------------- */

/* Invoice codes and numbers are digits (SPEC §4); letters are allowed
 * too, but nothing that could mean something in a URL path. */
static bool valid_id(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n >= ID_MAX || !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return false;
    }
    return n > 0;
}

/* X-Timestamp: decimal seconds of the real time, within TIMESTAMP_SKEW of
 * ours, as a real platform checks it: a client that stamped its test clock,
 * or milliseconds, would be refused there, and so it is here. */
#define TIMESTAMP_SKEW 300
static bool timestamp_fresh(const char *text)
{
    long long t = 0, now = (long long)time(NULL);
    const char *p = text;

    for (; *p >= '0' && *p <= '9' && t < 100000000000LL; p++)
        t = t * 10 + (*p - '0');
    return p != text && !*p && t >= now - TIMESTAMP_SKEW && t <= now + TIMESTAMP_SKEW;
}

/* SPEC §6 signature check; answers 401 itself and returns false on failure.
 * The path signed is the one MHD hands us (without the query string); our
 * paths contain no %-escapes, so the client's and ours are the same text. */
static bool authenticate(struct sim *sim, struct MHD_Connection *conn, const char *method,
                         const char *path, const struct request *req, enum MHD_Result *ret)
{
    static const char *const names[] = { "X-App-Key", "X-Timestamp", "X-Nonce", "X-Signature" };
    const char *values[4];

    for (size_t i = 0; i < 4; i++) {
        values[i] = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, names[i]);
        if (values[i] == NULL || values[i][0] == '\0') {
            *ret = respond_error(conn, MHD_HTTP_UNAUTHORIZED, "missing_auth_header", "header", names[i]);
            return false;
        }
    }
    if (strcmp(values[0], sim->app_key) != 0) {
        *ret = respond_error(conn, MHD_HTTP_UNAUTHORIZED, "unknown_app_key", NULL, NULL);
        return false;
    }
    if (!timestamp_fresh(values[1])) {
        *ret = respond_error(conn, MHD_HTTP_UNAUTHORIZED, "stale_timestamp", "header", names[1]);
        return false;
    }
    if (!platform_verify(sim->app_secret, method, path, values[1], values[2],
                         req->body, req->len, values[3])) {
        *ret = respond_error(conn, MHD_HTTP_UNAUTHORIZED, "bad_signature", NULL, NULL);
        return false;
    }
    return true;
}

static enum MHD_Result post_invoice(struct sim *sim, struct MHD_Connection *conn,
                                    const struct request *req)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)req->body, req->len, 0, &jerr);
    const char *code, *number;
    char id[2 * ID_MAX + 2];
    enum put_outcome outcome = PUT_OTHER_BYTES;
    enum MHD_Result ret;

    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        return respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid_json", "detail",
                             doc == NULL ? jerr.text : "not a JSON object");
    }
    code = json_string_value(json_object_get(doc, "code"));
    number = json_string_value(json_object_get(doc, "number"));
    if (!valid_id(code) || !valid_id(number)) {
        ret = respond_error(conn, MHD_HTTP_BAD_REQUEST, "missing_field", "field",
                            valid_id(code) ? "number" : "code");
        goto out;
    }
    if (db_put_invoice(&sim->db, code, number, req->body, req->len, &outcome) != 0) {
        ret = respond_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage", NULL, NULL);
        goto out;
    }
    snprintf(id, sizeof id, "%s-%s", code, number);
    if (outcome != PUT_OTHER_BYTES && outage_get(&sim->outage).mode == MODE_BARE) {
        ret = respond(conn, outcome == PUT_CREATED ? MHD_HTTP_CREATED : MHD_HTTP_OK, "text/plain", "", 0);
        goto out;
    }
    switch (outcome) {
    case PUT_CREATED:
        ret = respond_json(conn, MHD_HTTP_CREATED,
                           json_pack("{s:s,s:s,s:s}", "status", "created", "code", code, "number", number));
        break;
    case PUT_SAME_BYTES:
        ret = respond_json(conn, MHD_HTTP_OK,
                           json_pack("{s:s,s:s,s:s}", "status", "already_have", "code", code,
                                     "number", number));
        break;
    default:
        ret = respond_error(conn, MHD_HTTP_CONFLICT, "conflict", "invoice", id);
        break;
    }
out:
    json_decref(doc);
    return ret;
}

/* path is what follows "/v1/invoices/": "CODE/NUMBER". */
static enum MHD_Result get_invoice(struct sim *sim, struct MHD_Connection *conn, const char *path)
{
    char code[ID_MAX + 1], number[ID_MAX + 1];
    const char *slash = strchr(path, '/');
    unsigned char *body;
    size_t len;
    enum MHD_Result ret;

    if (slash == NULL || (size_t)(slash - path) > ID_MAX || strlen(slash + 1) > ID_MAX)
        return respond_error(conn, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL);
    memcpy(code, path, (size_t)(slash - path));
    code[slash - path] = '\0';
    strcpy(number, slash + 1);
    if (!valid_id(code) || !valid_id(number))
        return respond_error(conn, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL);
    if (db_get_invoice(&sim->db, code, number, &body, &len) != 0)
        return respond_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage", NULL, NULL);
    if (body == NULL)
        return respond_error(conn, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL);
    ret = respond(conn, MHD_HTTP_OK, "application/json", body, len);
    free(body);
    return ret;
}

/* 上报汇总: checks the device's signature over the text it signed, rebuilt
 * with device_summary_text() itself, then stores the summary. */
static enum MHD_Result post_summary(struct sim *sim, struct MHD_Connection *conn, const char *period,
                                    const struct request *req)
{
    static const char *const statuses[] = {
        [SUMMARY_CREATED] = "created", [SUMMARY_SAME] = "already_have", [SUMMARY_REPLACED] = "replaced",
    };
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)req->body, req->len, 0, &jerr);
    struct summary sum;
    struct summary_record rec;
    enum summary_outcome outcome = SUMMARY_SAME;
    EVP_PKEY *device_key = NULL;
    char why[256], *text = NULL;
    enum MHD_Result ret;

    if (doc == NULL) {
        return respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid_json", "detail", jerr.text);
    }
    if (!parse_summary(doc, period, &sum, why, sizeof why)) {
        ret = respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid_summary", "detail", why);
        goto out;
    }
    device_key = crypto_public_from_b64(sum.device_public_key);
    if (device_key == NULL) {
        ret = respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid_summary", "detail",
                            "device_public_key: not the base64 DER of an SM2 public key");
        goto out;
    }
    text = device_summary_text(&sum.s);
    if (text == NULL) {
        ret = respond_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out_of_memory", NULL, NULL);
        goto out;
    }
    if (crypto_sm2_verify_b64(device_key, text, strlen(text), sum.device_signature) != 0) {
        ERR_clear_error();
        ret = respond_error(conn, MHD_HTTP_FORBIDDEN, "bad_device_signature", NULL, NULL);
        goto out;
    }
    rec = (struct summary_record){
        .period = period, .machine_number = sum.s.machine_number, .signed_text = text,
        .seller_tax_id = sum.seller_tax_id, .device_public_key = sum.device_public_key,
        .body = req->body, .len = req->len,
    };
    if (db_put_summary(&sim->db, &rec, &outcome) != 0) {
        ret = respond_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage", NULL, NULL);
        goto out;
    }
    if (outcome == SUMMARY_PERIOD_CLEARED) {
        ret = respond_error(conn, MHD_HTTP_CONFLICT, "period_cleared", "detail",
                            "the period is cleared; its summary can no longer change");
        goto out;
    }
    if (outcome != SUMMARY_SAME)
        fprintf(stderr, PROG ": summary of %s for machine %s %s\n", period, sum.s.machine_number,
                statuses[outcome]);
    ret = respond_json(conn, outcome == SUMMARY_CREATED ? MHD_HTTP_CREATED : MHD_HTTP_OK,
                       json_pack("{s:s,s:s,s:s}", "status", statuses[outcome], "period", period,
                                 "machine_number", sum.s.machine_number));
out:
    free(text);
    EVP_PKEY_free(device_key);
    json_decref(doc);
    return ret;
}

/* 监控回传: body {"machine_number": "..."}. */
static enum MHD_Result post_clearance(struct sim *sim, struct MHD_Connection *conn, const char *period,
                                      const struct request *req)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)req->body, req->len, 0, &jerr);
    const char *machine = json_string_value(json_object_get(doc, "machine_number"));
    struct clearance_result res;
    enum MHD_Result ret;

    if (doc == NULL)
        return respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid_json", "detail", jerr.text);
    if (!valid_machine(machine)) {
        json_decref(doc);
        return respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid_request", "detail",
                             "machine_number: 1 to 15 digits");
    }
    clear_period(sim, period, machine, &res);
    json_decref(doc);
    if (res.answer != NULL) {
        ret = respond(conn, res.status, "application/json", res.answer, strlen(res.answer));
        free(res.answer);
        return ret;
    }
    return respond_json(conn, res.status, res.refusal);
}

/* path is what follows "/v1/periods/": "YYYY-MM/summary" or "YYYY-MM/clearance". */
static enum MHD_Result period_request(struct sim *sim, struct MHD_Connection *conn, const char *method,
                                      const char *path, const struct request *req)
{
    char period[8];
    const char *call = strchr(path, '/');

    if (call == NULL || (strcmp(call, "/summary") != 0 && strcmp(call, "/clearance") != 0))
        return respond_error(conn, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL);
    if (call - path != 7)
        return respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid_period", "detail", "YYYY-MM");
    memcpy(period, path, 7);
    period[7] = '\0';
    if (!valid_period(period))
        return respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid_period", "detail", "YYYY-MM");
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return respond_method_not_allowed(conn, MHD_HTTP_METHOD_POST);
    if (strcmp(call, "/summary") == 0)
        return post_summary(sim, conn, period, req);
    return post_clearance(sim, conn, period, req);
}

static enum MHD_Result api_request(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version,
                                   const char *upload_data, size_t *upload_data_size,
                                   void **req_cls)
{
    static const char invoices[] = "/v1/invoices", periods[] = "/v1/periods/";
    struct sim *sim = cls;
    enum MHD_Result ret;
    unsigned refusal;

    (void)version;
    if (!gather_request(conn, upload_data, upload_data_size, req_cls, API_BODY_LIMIT, &ret))
        return ret;
    if (strncmp(url, "/v1/", 4) != 0)
        return respond_error(conn, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL);
    refusal = outage_gate(&sim->outage);
    if (refusal == MHD_HTTP_OK) {   /* what a captive portal or a misrouted proxy answers */
        static const char page[] = "<html><body>Please log in to continue.</body></html>\n";
        return respond(conn, MHD_HTTP_OK, "text/html", page, sizeof page - 1);
    }
    if (refusal != 0)
        return respond_error(conn, refusal, "unavailable", NULL, NULL);
    if (strcmp(url, "/v1/health") == 0) {
        static const char healthy[] = "{\"status\":\"ok\"}";

        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
            return respond_method_not_allowed(conn, MHD_HTTP_METHOD_GET);
        return respond(conn, MHD_HTTP_OK, "application/json", healthy, sizeof healthy - 1);
    }
    if (!authenticate(sim, conn, method, url, *req_cls, &ret))
        return ret;
    if (strcmp(url, invoices) == 0) {
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            return respond_method_not_allowed(conn, MHD_HTTP_METHOD_POST);
        return post_invoice(sim, conn, *req_cls);
    }
    if (strncmp(url, invoices, sizeof invoices - 1) == 0 && url[sizeof invoices - 1] == '/') {
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
            return respond_method_not_allowed(conn, MHD_HTTP_METHOD_GET);
        return get_invoice(sim, conn, url + sizeof invoices);
    }
    if (strcmp(url, "/v1/platform-key") == 0) {
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
            return respond_method_not_allowed(conn, MHD_HTTP_METHOD_GET);
        return respond_json(conn, MHD_HTTP_OK, json_pack("{s:s}", "public_key", sim->public_b64));
    }
    if (strncmp(url, periods, sizeof periods - 1) == 0)
        return period_request(sim, conn, method, url + sizeof periods - 1, *req_cls);
    return respond_error(conn, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL);
}

/* ---- daemons -------------------------------------------------------- */

static struct MHD_Daemon *start_daemon(uint16_t port, MHD_AccessHandlerCallback handler, void *cls)
{
    struct sockaddr_in addr;

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* MHD sets SO_REUSEADDR by default, so `up` can rebind the port of a
     * daemon that `down` just stopped despite connections in TIME_WAIT. */
    return MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                            MHD_USE_POLL | MHD_USE_ERROR_LOG,
                            port, NULL, NULL, handler, cls,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
                            MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
                            MHD_OPTION_END);
}

static uint16_t daemon_port(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);

    return info != NULL ? info->port : 0;
}

/* Switches the outage mode; starts or stops the API daemon for `down`.
 * Returns 0, or -1 when the API port could not be bound again. */
static int apply_mode(struct sim *sim, const struct outage_setting *set)
{
    int rc = 0;

    pthread_mutex_lock(&sim->daemon_lock);
    /* The mode first: calls in flight while the socket closes get 503. */
    outage_set(&sim->outage, set);
    if (set->mode == MODE_DOWN && sim->api != NULL) {
        MHD_stop_daemon(sim->api);   /* closes the socket and kept-alive connections */
        sim->api = NULL;
    } else if (set->mode != MODE_DOWN && sim->api == NULL) {
        sim->api = start_daemon(sim->api_port, api_request, sim);
        if (sim->api == NULL) {
            struct outage_setting down = { .mode = MODE_DOWN };
            outage_set(&sim->outage, &down);
            rc = -1;
        }
    }
    pthread_mutex_unlock(&sim->daemon_lock);
    return rc;
}

/* Admin calls come from this machine only.  The daemon listens on
 * 127.0.0.1 already; this is the second lock on the same door. */
static bool from_loopback(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info != NULL ? info->client_addr : NULL;

    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
    return false;
}

static enum MHD_Result admin_request(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **req_cls)
{
    struct sim *sim = cls;
    struct request *req;
    enum MHD_Result ret;
    char text[64];

    (void)version;
    if (!gather_request(conn, upload_data, upload_data_size, req_cls, ADMIN_BODY_LIMIT, &ret))
        return ret;
    req = *req_cls;
    if (!from_loopback(conn))
        return respond_text(conn, MHD_HTTP_FORBIDDEN, "admin calls from loopback only\n");
    if (strcmp(url, "/admin/mode") == 0) {
        struct outage_setting set;
        const char *why = "the mode is one line of text\n";
        char line[ADMIN_BODY_LIMIT + 1];

        if (strcmp(method, MHD_HTTP_METHOD_GET) == 0) {
            set = outage_get(&sim->outage);
            format_mode(&set, text, sizeof text);
            return respond_text(conn, MHD_HTTP_OK, text);
        }
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            return respond_method_not_allowed(conn, "GET, POST");
        memcpy(line, req->body != NULL ? (const char *)req->body : "", req->len);
        line[req->len] = '\0';
        if (strlen(line) != req->len || !parse_mode(line, &set, &why))
            return respond_text(conn, MHD_HTTP_BAD_REQUEST, why);
        if (apply_mode(sim, &set) != 0)
            return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                "cannot bind the API port again; the platform stays down\n");
        format_mode(&set, text, sizeof text);
        fprintf(stderr, PROG ": mode %s", text);
        return respond_text(conn, MHD_HTTP_OK, text);
    }
    if (strcmp(url, "/admin/count") == 0) {
        int64_t count = 0;

        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
            return respond_method_not_allowed(conn, MHD_HTTP_METHOD_GET);
        if (db_count_invoices(&sim->db, &count) != 0)
            return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage error\n");
        snprintf(text, sizeof text, "%" PRId64 "\n", count);
        return respond_text(conn, MHD_HTTP_OK, text);
    }
    if (strcmp(url, "/admin/filed") == 0) {
        char period[ADMIN_BODY_LIMIT + 1];
        size_t len = req->len;

        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            return respond_method_not_allowed(conn, MHD_HTTP_METHOD_POST);
        memcpy(period, req->body != NULL ? (const char *)req->body : "", len);
        while (len > 0 && (period[len - 1] == '\n' || period[len - 1] == '\r' || period[len - 1] == ' '))
            len--;
        period[len] = '\0';
        if (strlen(period) != len || !valid_period(period))
            return respond_text(conn, MHD_HTTP_BAD_REQUEST, "the body is a period, YYYY-MM\n");
        if (db_put_filed(&sim->db, period) != 0)
            return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage error\n");
        fprintf(stderr, PROG ": the tax return of %s is filed\n", period);
        snprintf(text, sizeof text, "filed %.7s\n", period);   /* valid_period(): 7 characters */
        return respond_text(conn, MHD_HTTP_OK, text);
    }
    if (strncmp(url, "/admin/summary/", 15) == 0) {
        const char *period = url + 15;
        char *body;
        size_t len;

        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
            return respond_method_not_allowed(conn, MHD_HTTP_METHOD_GET);
        if (!valid_period(period))
            return respond_text(conn, MHD_HTTP_BAD_REQUEST, "/admin/summary/YYYY-MM\n");
        if (db_latest_summary(&sim->db, period, &body, &len) != 0)
            return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage error\n");
        if (body == NULL) {
            snprintf(text, sizeof text, "no summary for %.7s\n", period);
            return respond_text(conn, MHD_HTTP_NOT_FOUND, text);
        }
        ret = respond(conn, MHD_HTTP_OK, "application/json", body, len);
        free(body);
        return ret;
    }
    if (strcmp(url, "/admin/clearances") == 0) {
        char *list;

        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
            return respond_method_not_allowed(conn, MHD_HTTP_METHOD_GET);
        if (db_list_clearances(&sim->db, &list) != 0)
            return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage error\n");
        ret = respond_text(conn, MHD_HTTP_OK, list);
        free(list);
        return ret;
    }
    return respond_text(conn, MHD_HTTP_NOT_FOUND, "admin calls: /admin/mode, /admin/count, /admin/filed, "
                        "/admin/summary/YYYY-MM, /admin/clearances\n");
}

/* ---- main ----------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to,
        "usage: " PROG " --db FILE [--port N] [--admin-port N]\n"
        "       [--app-key KEY --app-secret SECRET]\n"
        "       [--port-file FILE] [--admin-port-file FILE] [--pid-file FILE]\n"
        "\n"
        "The tax platform of fapiaofs (SPEC §6), simulated on 127.0.0.1 for make run\n"
        "and the tests.  What it receives, the periods filed, the answers given and\n"
        "its own SM2 key are kept in the SQLite file --db.  Runs in the foreground\n"
        "until SIGTERM or SIGINT.\n"
        "\n"
        "  --port N             API port (default %d; 0: any free port)\n"
        "  --admin-port N       admin port (default: the API port + 1; 0 with --port 0)\n"
        "  --app-key KEY        the app key clients must send (default " DEFAULT_APP_KEY ")\n"
        "  --app-secret SECRET  the HMAC secret (default " DEFAULT_APP_SECRET ")\n"
        "  --port-file FILE     write the API port bound, once listening\n"
        "  --admin-port-file FILE  write the admin port bound, once listening\n"
        "  --pid-file FILE      write the process id\n"
        "\n"
        "API (signed with X-App-Key, X-Timestamp, X-Nonce, X-Signature, except health;\n"
        "X-Timestamp in seconds, within 300 s of this machine's clock, or 401 stale_timestamp):\n"
        "  GET  /v1/health                   200 {\"status\":\"ok\"}\n"
        "  POST /v1/invoices                 201 created, 200 same bytes known,\n"
        "                                    409 other bytes known, 400 invalid, 413 > 2 MiB\n"
        "  GET  /v1/invoices/CODE/NUMBER     200 the bytes received, 404 unknown\n"
        "  GET  /v1/platform-key             200 {\"public_key\":\"<base64 DER SPKI>\"}: the\n"
        "                                    platform's SM2 key, made at first start, kept in --db\n"
        "  POST /v1/periods/YYYY-MM/summary  上报汇总: {\"period\", \"machine_number\",\n"
        "       \"seller_tax_id\", \"lines\": [{\"type\":\"026\", \"red\":false, \"rate_pm\":60,\n"
        "       \"count\":1, \"amount\":\"9500.00\", \"tax\":\"570.00\"}, ...],\n"
        "       \"device_signature\", \"device_public_key\" (base64 DER SPKI)}; the device's\n"
        "       SM2 signature covers the text of device_summary_text(), amounts in fen:\n"
        "         PERIOD MACHINE\\n\n"
        "         TYPE blue|red RATE_PM COUNT AMOUNT_FEN TAX_FEN\\n   (one per line)\n"
        "       201 created, 200 already_have (same text, seller and key), 200 replaced,\n"
        "       400 malformed, 403 bad_device_signature, 409 period_cleared (another\n"
        "       summary after the period's clearance)\n"
        "  POST /v1/periods/YYYY-MM/clearance  监控回传: {\"machine_number\"}; 403 with\n"
        "       return_not_filed, summary_missing, invoices_missing (\"missing\": N: the\n"
        "       invoices received, by their period and machine_number, are fewer than\n"
        "       the summary counts) or summary_mismatch (\"detail\"); otherwise 200\n"
        "       {\"period\", \"machine_number\", \"cleared\": true, \"lock_date\": the 15th of\n"
        "       the month after next, 23:59:59+08:00, \"limits\": {\"per_invoice\":\n"
        "       \"" LIMIT_PER_INVOICE "\", \"offline_hours\": %d, \"offline_amount\": \""
        LIMIT_OFFLINE_AMOUNT "\"}, \"signature\"},\n"
        "       the same bytes at every later call.  The signature is SM2 with SM3 and\n"
        "       the distinguishing id 1234567812345678 over this one line, no newline:\n"
        "         CLEARANCE PERIOD MACHINE LOCK_DATE PER_INVOICE OFFLINE_HOURS OFFLINE_AMOUNT\n"
        "         CLEARANCE 2026-11 499099000001 2027-01-15T23:59:59+08:00 "
        LIMIT_PER_INVOICE " %d " LIMIT_OFFLINE_AMOUNT "\n"
        "\n"
        "Admin (own port, loopback only, not signed; the API port vanishes when down):\n"
        "  POST /admin/mode   body one of:\n"
        "       up            answer normally\n"
        "       down          close the API port: connection refused (the admin port stays)\n"
        "       503           answer every /v1 call 503\n"
        "       slow MS       answer every /v1 call after MS milliseconds\n"
        "       flaky SHARE   answer that share of /v1 calls 503, evenly spread and\n"
        "                     reproducible; SHARE as 0.3 (up to 3 decimals) or 30%%\n"
        "       portal        answer every /v1 call 200 with an HTML page, as a captive\n"
        "                     portal or a proxy in front of the platform would\n"
        "       bare          answer POST /v1/invoices 201/200 with an empty body, as a\n"
        "                     platform that says no more than SPEC section 6 asks would\n"
        "  GET  /admin/mode   the current mode\n"
        "  GET  /admin/count  the number of invoices stored\n"
        "  POST /admin/filed  body YYYY-MM: the period's tax return is filed\n"
        "  GET  /admin/summary/YYYY-MM  the latest summary stored for the period, 404 none\n"
        "  GET  /admin/clearances       one line per clearance: PERIOD MACHINE LOCK_DATE\n"
        "\n"
        "  curl -d down http://127.0.0.1:8471/admin/mode\n"
        "  curl -d 2026-11 http://127.0.0.1:8471/admin/filed\n",
        DEFAULT_PORT, LIMIT_OFFLINE_HOURS, LIMIT_OFFLINE_HOURS);
}

/* Writes "VALUE\n" to path atomically, so a test polling for the file
 * never reads half a number. */
static int write_number_file(const char *path, long value)
{
    char tmp[4096];
    FILE *f;
    int rc = -1;

    if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof tmp)
        goto out;
    f = fopen(tmp, "w");
    if (f == NULL)
        goto out;
    fprintf(f, "%ld\n", value);
    if (fclose(f) != 0) {
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
    return rc;
}

static bool parse_port(const char *s, unsigned *port)
{
    return parse_uint(s, 65535, port);
}

struct options {
    unsigned port, admin_port;
    bool admin_port_given;
    const char *db, *app_key, *app_secret, *port_file, *admin_port_file, *pid_file;
};

/* 0 to run, 1 to exit 0 (--help), 2 on a usage error. */
static int parse_options(int argc, char **argv, struct options *o)
{
    enum { OPT_PORT = 256, OPT_ADMIN_PORT, OPT_DB, OPT_APP_KEY, OPT_APP_SECRET,
           OPT_PORT_FILE, OPT_ADMIN_PORT_FILE, OPT_PID_FILE, OPT_HELP };
    static const struct option longopts[] = {
        { "port",            required_argument, NULL, OPT_PORT },
        { "admin-port",      required_argument, NULL, OPT_ADMIN_PORT },
        { "db",              required_argument, NULL, OPT_DB },
        { "app-key",         required_argument, NULL, OPT_APP_KEY },
        { "app-secret",      required_argument, NULL, OPT_APP_SECRET },
        { "port-file",       required_argument, NULL, OPT_PORT_FILE },
        { "admin-port-file", required_argument, NULL, OPT_ADMIN_PORT_FILE },
        { "pid-file",        required_argument, NULL, OPT_PID_FILE },
        { "help",            no_argument,       NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    int c;

    memset(o, 0, sizeof *o);
    o->port = DEFAULT_PORT;
    o->app_key = DEFAULT_APP_KEY;
    o->app_secret = DEFAULT_APP_SECRET;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_PORT:
            if (!parse_port(optarg, &o->port)) {
                fprintf(stderr, PROG ": --port: not a port number: %s\n", optarg);
                return 2;
            }
            break;
        case OPT_ADMIN_PORT:
            if (!parse_port(optarg, &o->admin_port)) {
                fprintf(stderr, PROG ": --admin-port: not a port number: %s\n", optarg);
                return 2;
            }
            o->admin_port_given = true;
            break;
        case OPT_DB:              o->db = optarg; break;
        case OPT_APP_KEY:         o->app_key = optarg; break;
        case OPT_APP_SECRET:      o->app_secret = optarg; break;
        case OPT_PORT_FILE:       o->port_file = optarg; break;
        case OPT_ADMIN_PORT_FILE: o->admin_port_file = optarg; break;
        case OPT_PID_FILE:        o->pid_file = optarg; break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument: %s\n", argv[optind]);
        return 2;
    }
    if (o->db == NULL) {
        fprintf(stderr, PROG ": --db FILE is required (try --help)\n");
        return 2;
    }
    if (!o->admin_port_given) {
        if (o->port == 65535) {
            fprintf(stderr, PROG ": --port 65535 needs an explicit --admin-port\n");
            return 2;
        }
        o->admin_port = o->port == 0 ? 0 : o->port + 1;
    }
    return 0;
}

static void on_stop_signal(int signo)
{
    (void)signo;
}

int main(int argc, char **argv)
{
    struct options opt;
    struct sim sim;
    sigset_t stop_signals;
    int signo, status = 1, parsed;

    parsed = parse_options(argc, argv, &opt);
    if (parsed != 0)
        return parsed == 1 ? 0 : 2;

    /* Block the stop signals before any thread exists, so every MHD thread
     * inherits the mask and only sigwait() below ever receives them.  The
     * handler is never run; it is there because a shell starts background
     * jobs with SIGINT ignored, and an ignored signal is discarded even
     * while blocked, so `kill -INT` would not reach sigwait(). */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGINT, on_stop_signal);
    signal(SIGTERM, on_stop_signal);
    signal(SIGPIPE, SIG_IGN);

    memset(&sim, 0, sizeof sim);
    sim.app_key = opt.app_key;
    sim.app_secret = opt.app_secret;
    if (pthread_mutex_init(&sim.daemon_lock, NULL) != 0 ||
        pthread_mutex_init(&sim.db.lock, NULL) != 0 || outage_init(&sim.outage) != 0) {
        fprintf(stderr, PROG ": cannot initialise locks\n");
        return 1;
    }
    if (db_open(&sim.db, opt.db) != 0)
        goto out;
    sim.key = db_platform_key(&sim.db);
    if (sim.key == NULL || crypto_public_b64(sim.key, sim.public_b64, sizeof sim.public_b64) != 0) {
        fprintf(stderr, PROG ": %s: no platform key\n", opt.db);
        goto out;
    }

    sim.api = start_daemon((uint16_t)opt.port, api_request, &sim);
    if (sim.api == NULL) {
        fprintf(stderr, PROG ": cannot listen on 127.0.0.1:%u\n", opt.port);
        goto out;
    }
    sim.api_port = daemon_port(sim.api);
    sim.admin = start_daemon((uint16_t)opt.admin_port, admin_request, &sim);
    if (sim.admin == NULL) {
        fprintf(stderr, PROG ": cannot listen on 127.0.0.1:%u (admin)\n", opt.admin_port);
        goto out;
    }
    if ((opt.pid_file != NULL && write_number_file(opt.pid_file, (long)getpid()) != 0) ||
        (opt.admin_port_file != NULL &&
         write_number_file(opt.admin_port_file, daemon_port(sim.admin)) != 0) ||
        (opt.port_file != NULL && write_number_file(opt.port_file, sim.api_port) != 0))
        goto out;
    fprintf(stderr, PROG ": API on http://127.0.0.1:%u, admin on http://127.0.0.1:%u, db %s\n",
            sim.api_port, daemon_port(sim.admin), opt.db);
    fprintf(stderr, PROG ": platform public key %s\n", sim.public_b64);

    while (sigwait(&stop_signals, &signo) != 0)
        ;
    fprintf(stderr, PROG ": %s, stopping\n", signo == SIGTERM ? "SIGTERM" : "SIGINT");
    status = 0;
out:
    /* Wake `slow` sleepers first: MHD_stop_daemon joins their threads. */
    pthread_mutex_lock(&sim.outage.lock);
    sim.outage.stopping = true;
    pthread_cond_broadcast(&sim.outage.changed);
    pthread_mutex_unlock(&sim.outage.lock);
    if (sim.admin != NULL)
        MHD_stop_daemon(sim.admin);   /* after this, no mode change can start the API */
    pthread_mutex_lock(&sim.daemon_lock);
    if (sim.api != NULL)
        MHD_stop_daemon(sim.api);
    sim.api = NULL;
    pthread_mutex_unlock(&sim.daemon_lock);
    db_close(&sim.db);   /* also after a failed open: it frees the handle */
    EVP_PKEY_free(sim.key);
    if (status == 0) {
        /* Files that describe a running simulator go with it. */
        if (opt.port_file != NULL)
            unlink(opt.port_file);
        if (opt.admin_port_file != NULL)
            unlink(opt.admin_port_file);
        if (opt.pid_file != NULL)
            unlink(opt.pid_file);
    }
    outage_destroy(&sim.outage);
    pthread_mutex_destroy(&sim.db.lock);
    pthread_mutex_destroy(&sim.daemon_lock);
    return status;
}
