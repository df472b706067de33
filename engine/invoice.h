/*
 * invoice.h — the canonical invoice record (SPEC §4) and the receipt (§3.6).
 *
 * The signed bytes ("canonical bytes") are the invoice object without its
 * `signature` member, serialised compactly (no spaces, keys in the order
 * below, UTF-8 unescaped).  The file under issued/ is the same object with
 * `signature` appended, pretty-printed with two-space indentation and a final
 * newline.  Anyone can check an invoice: parse the file, drop `signature`,
 * serialise compactly in file order, verify with the device's public key.
 */
#ifndef FAPIAO_INVOICE_H
#define FAPIAO_INVOICE_H

#include <jansson.h>
#include <stdint.h>
#include "device/device.h"
#include "engine/draft.h"

struct invoice_meta {
    const char *draft_name;
    int64_t issued_at;
    const struct device_info *seller;
    const struct device_issue_fields *dev;
};

/* The invoice object without signature; NULL on allocation failure. */
json_t *invoice_build(const struct draft *d, const struct invoice_meta *m);
/* Canonical bytes of an invoice object (any `signature` member skipped). */
char *invoice_canonical(json_t *inv, size_t *len);
/* Adds the signature and renders the file; malloc'd. */
char *invoice_render(json_t *inv, const char *signature_b64, size_t *len);

/* The receipt of §3.6, rendered; malloc'd. */
char *receipt_render(const char *draft_name, const char *request_id, const char *status,
                     const char *code, const char *number, const char *path,
                     int64_t issued_at, const char *total, json_t *warnings, size_t *len);

#endif
