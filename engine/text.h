/*
 * text.h — the text of drafts: decoding to UTF-8 and GBK byte lengths.
 *
 * A dropped draft may be UTF-8 (with or without a byte order mark) or
 * GB18030/GBK, which older Chinese systems write (SPEC §2.1).  Everything
 * past text_to_utf8 works on UTF-8 only.  Field limits are counted in GBK
 * bytes, because that is what the tax-control device stores (SPEC §3.1, §3.4).
 */
#ifndef FAPIAO_TEXT_H
#define FAPIAO_TEXT_H

#include <stddef.h>
#include "engine/err.h"

/* Largest input text_to_utf8 takes: a draft (1 MiB) plus a UTF-8 BOM. */
#define TEXT_MAX_INPUT ((size_t)1024 * 1024 + 3)

/* Decode a draft to UTF-8.
 *
 *   - a UTF-8 BOM (EF BB BF) is stripped;
 *   - strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF)
 *     is copied unchanged, CRLF included;
 *   - anything else is converted from GB18030 (a superset of GBK and GB2312);
 *   - rejected (FA_REJECTED, why says what was tried and where it failed):
 *     a NUL byte, a UTF-16 BOM, a BOM-marked file that is not UTF-8, and a
 *     file that is neither UTF-8 nor GB18030.
 *
 * On FA_OK *out is a malloc'd NUL-terminated string the caller free()s and
 * *out_len its length without the NUL; on failure *out is NULL.  len must be
 * at most TEXT_MAX_INPUT.  why (whylen bytes, may be NULL/0) gets a sentence
 * that starts with "(document): ", the path of the error line in SPEC §3.2. */
enum fa_err text_to_utf8(const void *in, size_t len, char **out, size_t *out_len,
                         char *why, size_t whylen);

/* Bytes the UTF-8 string takes in GBK: 1 per ASCII character, 2 per CJK
 * character.  -1 when a character has no GBK form (emoji, U+20000 𠀀), when
 * utf8 is not valid UTF-8, or when the system cannot convert to GBK at all.
 * Thread-safe; each thread keeps its own converter. */
long text_gbk_len(const char *utf8);

/* The length of the longest start of s of at most max bytes that does not
 * end inside a UTF-8 character: where a message may be shortened. */
size_t text_utf8_cut(const char *s, size_t max);

#endif
