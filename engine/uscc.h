/*
 * uscc.h — buyer tax ids: the unified social credit code and legacy ids.
 *
 * Since 2015 a taxpayer's id is its 18-character unified social credit code
 * (统一社会信用代码, GB 32100-2015), whose last character is a check character.
 * Older ids of 15, 17 or 20 characters are still met and have no check, so
 * they are accepted by length and character set only (SPEC §3.1, §3.4).
 */
#ifndef FAPIAO_USCC_H
#define FAPIAO_USCC_H

#include <stdbool.h>
#include <stddef.h>

/* True when id is 18 characters of 0123456789ABCDEFGHJKLMNPQRTUWXY (no I, O,
 * S, V, Z, no lower case) whose 18th is the GB 32100-2015 check character of
 * the first 17.  NULL is false. */
bool uscc_valid(const char *id);

/* True when id is 15, 17, 18 or 20 characters, each a digit or an upper-case
 * ASCII letter.  *len (if not NULL) gets strlen(id) either way, so a caller
 * can tell a wrong length from a wrong character.  NULL is false, *len 0. */
bool tax_id_charset_ok(const char *id, size_t *len);

#endif
