/*
 * proto.h — fapiaofs' own tax-control command set, carried in vendor SCSI
 * command blocks over Bulk-Only Transport (device/PROTOCOL.md, SPEC §5.2).
 *
 * Every command of device.h has a code, a 16-byte CDB (opcode 0xFA), and
 * little-endian, bounded binary payloads.  Two shapes, because a BOT command
 * moves data in one direction only:
 *   - query commands (get info, status, rolls, read journal, period summary,
 *     set clock) fit their arguments in the CDB: one data-in command whose
 *     data is the response;
 *   - request commands (verify PIN, issue begin, issue sign, apply
 *     clearance) send their request as data-out; the device executes it and
 *     keeps the response, which a FETCH command (data-in) then reads.  FETCH
 *     names the request by a host-chosen exchange id and may be repeated
 *     until the next request, so a response lost in transit can be read
 *     again without executing the request twice.
 * A data-in transfer's length must be in the CBW before the device answers,
 * so each command has a fixed maximum response size (PROTO_*_RESP_MAX); the
 * device sends the actual response, shorter, and the CSW residue says by
 * how much.  One round trip per query, no length negotiation.
 *
 * Every response starts with an 8-byte header whose first byte is the
 * device's answer (enum proto_status, 1:1 with the enum fa_err device
 * refusals).  This module has no I/O: encoders and decoders for both sides,
 * host (requests out, responses in) and device (the reverse).  Decoders take
 * arbitrary bytes: every length, count and string is checked against its
 * bound, strings must be valid UTF-8 without NUL, and trailing bytes are an
 * error.  Host-side decoders of responses answer FA_DEV_IO for malformed
 * input (the device misbehaved); device-side decoders of requests answer
 * FA_INVAL (the command was bad).
 */
#ifndef FAPIAO_PROTO_H
#define FAPIAO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "device/device.h"
#include "engine/err.h"

#define PROTO_OPCODE 0xFA          /* SCSI vendor-specific opcode group */
#define PROTO_VERSION 1
#define PROTO_CDB_LEN 16
#define PROTO_RESP_HDR 8

enum proto_cmd {
    PROTO_GET_INFO        = 0x01,
    PROTO_GET_STATUS      = 0x02,
    PROTO_LIST_ROLLS      = 0x03,
    PROTO_VERIFY_PIN      = 0x04,  /* request */
    PROTO_ISSUE_BEGIN     = 0x05,  /* request */
    PROTO_ISSUE_SIGN      = 0x06,  /* request */
    PROTO_READ_JOURNAL    = 0x07,
    PROTO_PERIOD_SUMMARY  = 0x08,
    PROTO_APPLY_CLEARANCE = 0x09,  /* request */
    PROTO_SET_CLOCK       = 0x0A,
    PROTO_FETCH           = 0x7F,  /* the response of the last request */
};

/* The device's answer, first byte of every response. */
enum proto_status {
    PROTO_ST_OK            = 0x00,
    PROTO_ST_INVAL         = 0x01, /* malformed request or unsupported command */
    PROTO_ST_LOCKED        = 0x02,
    PROTO_ST_LIMIT         = 0x03,
    PROTO_ST_OFFLINE_LIMIT = 0x04,
    PROTO_ST_ROLL_EMPTY    = 0x05,
    PROTO_ST_PIN           = 0x06,
    PROTO_ST_IO            = 0x07, /* the device failed internally */
    PROTO_ST_NOTFOUND      = 0x08,
    PROTO_ST_PERM          = 0x09,
    PROTO_ST_BUSY          = 0x0A,
    PROTO_ST_REFUSED       = 0x0B, /* platform answer refused (bad signature) */
};

/* ---- limits -------------------------------------------------------------- */

#define PROTO_PIN_MAX 63                        /* bytes */
#define PROTO_SIGN_DATA_MAX (2u * 1024 * 1024)  /* canonical invoice bytes per signature */
#define PROTO_CLEARANCE_MAX (64u * 1024)        /* platform clearance answer */
#define PROTO_JOURNAL_BATCH 16                  /* journal entries per READ_JOURNAL */
#define PROTO_PERIOD_MAX 7                      /* "YYYY-MM" */

/* Largest request of each request command (data-out bytes). */
#define PROTO_PIN_REQ_MAX (2 + PROTO_PIN_MAX)
#define PROTO_BEGIN_REQ_MAX 512
#define PROTO_SIGN_REQ_OVERHEAD 64               /* code, number, blob length */
#define PROTO_SIGN_REQ_MAX (PROTO_SIGN_REQ_OVERHEAD + PROTO_SIGN_DATA_MAX)
#define PROTO_CLEARANCE_REQ_MAX (4 + PROTO_CLEARANCE_MAX)

/* Largest response of each command (header included): the data-in length
 * the host puts in the CBW. */
#define PROTO_EMPTY_RESP_MAX PROTO_RESP_HDR
#define PROTO_INFO_RESP_MAX 1024
#define PROTO_STATUS_RESP_MAX 128
#define PROTO_ROLLS_RESP_MAX 512
#define PROTO_BEGIN_RESP_MAX 256
#define PROTO_SIGN_RESP_MAX 128
#define PROTO_JOURNAL_RESP_MAX 4096
#define PROTO_SUMMARY_RESP_MAX 4096
#define PROTO_RESP_MAX 4096                      /* the largest of them */

/* ---- commands and CDBs --------------------------------------------------- */

/* A decoded CDB: the fields that apply to its command. */
struct proto_cdb {
    uint8_t cmd;                  /* enum proto_cmd */
    uint32_t length;              /* data transfer length; equals dCBWDataTransferLength */
    uint32_t exchange;            /* request commands and FETCH */
    uint8_t fetch_cmd;            /* FETCH: the request command whose response is wanted */
    uint64_t from;                /* READ_JOURNAL: first seq */
    unsigned count;               /* READ_JOURNAL: 1..PROTO_JOURNAL_BATCH */
    char period[PROTO_PERIOD_MAX + 1];  /* PERIOD_SUMMARY */
    int64_t now;                  /* SET_CLOCK */
};

/* True for commands whose request is data-out and whose response is fetched. */
bool proto_cmd_is_request(uint8_t cmd);
/* Largest response / request of a command; 0 for an unknown command (or,
 * for the request size, one that takes no data-out). */
size_t proto_resp_max(uint8_t cmd);
size_t proto_req_max(uint8_t cmd);
const char *proto_cmd_name(uint8_t cmd);

/* Host side: the CDB of each command.  FA_INVAL for an argument out of range. */
void proto_cdb_query(uint8_t cmd, uint8_t cdb[PROTO_CDB_LEN]);   /* GET_INFO, GET_STATUS, LIST_ROLLS */
enum fa_err proto_cdb_read_journal(uint64_t from, unsigned count, uint8_t cdb[PROTO_CDB_LEN]);
enum fa_err proto_cdb_period_summary(const char *period, uint8_t cdb[PROTO_CDB_LEN]);
void proto_cdb_set_clock(int64_t now, uint8_t cdb[PROTO_CDB_LEN]);
enum fa_err proto_cdb_request(uint8_t cmd, uint32_t exchange, size_t req_len, uint8_t cdb[PROTO_CDB_LEN]);
enum fa_err proto_cdb_fetch(uint8_t cmd, uint32_t exchange, uint8_t cdb[PROTO_CDB_LEN]);
/* Device side: any bytes; FA_INVAL unless a well-formed CDB of a known command. */
enum fa_err proto_cdb_decode(const uint8_t *cdb, size_t len, struct proto_cdb *out);

/* ---- status -------------------------------------------------------------- */

/* enum fa_err to the wire; errors without a code of their own are PROTO_ST_IO. */
uint8_t proto_status_from_err(enum fa_err err);
/* The wire to enum fa_err; an unknown code is FA_DEV_IO. */
enum fa_err proto_err_from_status(uint8_t st);

/* ---- requests: host encodes, device decodes ------------------------------ */
/* Encoders write at most cap bytes into buf and set *len; FA_INVAL when a
 * field is out of its bound or the request does not fit. */

enum fa_err proto_enc_verify_pin(const char *pin, uint8_t *buf, size_t cap, size_t *len);
enum fa_err proto_dec_verify_pin(const uint8_t *buf, size_t len, char pin[PROTO_PIN_MAX + 1]);

enum fa_err proto_enc_issue_begin(const struct device_issue_req *req, uint8_t *buf, size_t cap,
                                  size_t *len);
/* req->type points to `type` afterwards. */
enum fa_err proto_dec_issue_begin(const uint8_t *buf, size_t len, struct device_issue_req *req,
                                  char type[4]);

enum fa_err proto_enc_issue_sign(const char *code, const char *number, const void *bytes, size_t n,
                                 uint8_t *buf, size_t cap, size_t *len);
/* *bytes points into buf. */
enum fa_err proto_dec_issue_sign(const uint8_t *buf, size_t len, char code[16], char number[16],
                                 const uint8_t **bytes, size_t *n);

enum fa_err proto_enc_clearance(const char *answer, size_t n, uint8_t *buf, size_t cap, size_t *len);
/* *answer points into buf (not NUL-terminated). */
enum fa_err proto_dec_clearance(const uint8_t *buf, size_t len, const uint8_t **answer, size_t *n);

/* ---- responses: device encodes, host decodes ----------------------------- */

/* A header-only response: the answer `err` to `cmd` (any error, or FA_OK
 * for commands without a response body). */
enum fa_err proto_enc_resp_empty(uint8_t cmd, enum fa_err err, uint8_t *buf, size_t cap, size_t *len);
enum fa_err proto_enc_resp_info(const struct device_info *in, uint8_t *buf, size_t cap, size_t *len);
enum fa_err proto_enc_resp_devstatus(const struct device_status *in, uint8_t *buf, size_t cap,
                                     size_t *len);
enum fa_err proto_enc_resp_rolls(const struct device_roll *in, int n, uint8_t *buf, size_t cap,
                                 size_t *len);
enum fa_err proto_enc_resp_issue_fields(const struct device_issue_fields *in, uint8_t *buf, size_t cap,
                                        size_t *len);
enum fa_err proto_enc_resp_signature(const char *sig_b64, uint8_t *buf, size_t cap, size_t *len);
enum fa_err proto_enc_resp_journal(const struct device_journal_entry *in, int n, uint8_t *buf,
                                   size_t cap, size_t *len);
enum fa_err proto_enc_resp_summary(const struct device_summary *in, uint8_t *buf, size_t cap,
                                   size_t *len);

/* Splits a response to `cmd`: FA_DEV_IO when the header is malformed, for
 * another command, or its body length disagrees with the bytes received;
 * otherwise FA_OK with *answer the device's answer and the body (empty
 * unless the answer is FA_OK). */
enum fa_err proto_dec_resp(uint8_t cmd, const uint8_t *buf, size_t len, enum fa_err *answer,
                           const uint8_t **body, size_t *body_len);
/* Body decoders: FA_DEV_IO when malformed. */
enum fa_err proto_dec_info(const uint8_t *body, size_t len, struct device_info *out);
enum fa_err proto_dec_devstatus(const uint8_t *body, size_t len, struct device_status *out);
enum fa_err proto_dec_rolls(const uint8_t *body, size_t len, struct device_roll out[DEVICE_MAX_ROLLS],
                            int *n);
enum fa_err proto_dec_issue_fields(const uint8_t *body, size_t len, struct device_issue_fields *out);
enum fa_err proto_dec_signature(const uint8_t *body, size_t len, char sig_b64[CRYPTO_SIG_B64_MAX]);
enum fa_err proto_dec_journal(const uint8_t *body, size_t len,
                              struct device_journal_entry out[PROTO_JOURNAL_BATCH], int *n);
enum fa_err proto_dec_summary(const uint8_t *body, size_t len, struct device_summary *out);

#endif
