/*
 * text.c — decoding drafts to UTF-8 and counting GBK bytes; see text.h.
 *
 * Design
 *   Decoding tries strict UTF-8 first and GB18030 second.  The order matters:
 *   GB18030 gives a meaning to almost any byte sequence (a lead byte 81-FE
 *   and nearly any trail byte make a character), so it would "succeed" on
 *   UTF-8 text and turn it into nonsense, whereas UTF-8 text of any length
 *   is very unlikely to be valid by accident.  UTF-8 is validated by hand
 *   (Unicode Table 3-7) because glibc's iconv is not strict enough about
 *   what it calls UTF-8, and because the caller gets the exact offset of the
 *   first bad byte for the error message.  A file that carries a UTF-8 BOM
 *   has declared its encoding, so it is not given a second chance as GB18030.
 *
 *   GB18030 is decoded with glibc's iconv, opened per call: a draft is
 *   decoded once, and only non-UTF-8 drafts get here.
 *
 *   text_gbk_len runs for every length-limited field of every line, from
 *   several FUSE threads, so each thread keeps one UTF-8 -> GBK converter in
 *   _Thread_local storage (an iconv_t is not safe to share) and resets it
 *   before use.  A pthread key with a destructor closes it when the thread
 *   ends, because libfuse starts and ends worker threads as load changes.
 *   Pure ASCII, the common case for numbers, codes and e-mail addresses, is
 *   counted without iconv.
 */
#include <assert.h>
#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/text.h"

#define TEXT_ICONV_FAIL ((iconv_t)-1)

__attribute__((format(printf, 3, 4)))
static enum fa_err text_reject(char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return FA_REJECTED;
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (avail >= 1 bytes), or 0.
 * The second byte's range is narrowed for E0/ED/F0/F4 (Unicode Table 3-7):
 * that one rule excludes overlong forms, surrogates and code points above
 * U+10FFFF.  *cut is set when the sequence was fine so far but the input
 * ended, so the message can say "incomplete" rather than "invalid". */
static size_t utf8_seq_len(const unsigned char *p, size_t avail, bool *cut)
{
    unsigned c = p[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t need;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;          /* below is overlong */
        if (c == 0xED)
            hi = 0x9F;          /* above is a surrogate */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;          /* below is overlong */
        if (c == 0xF4)
            hi = 0x8F;          /* above is beyond U+10FFFF */
    } else {
        return 0;               /* 80-BF stray continuation, C0/C1 overlong, F5-FF */
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= avail) {
            *cut = true;
            return 0;
        }
        unsigned t = p[i];
        if (t < (i == 1 ? lo : 0x80u) || t > (i == 1 ? hi : 0xBFu))
            return 0;
    }
    return need;
}

/* Offset of the first ill-formed sequence, or len when all is UTF-8. */
static size_t utf8_bad_offset(const unsigned char *p, size_t len, bool *cut)
{
    size_t i = 0;
    *cut = false;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq_len(p + i, len - i, cut);
        if (n == 0)
            return i;
        i += n;
    }
    return len;
}

/* ---- GB18030 -------------------------------------------------------------- */

/* Convert GB18030 to UTF-8.  FA_REJECTED with *bad the offset of the
 * sequence iconv stopped at and *what a phrase for the message. */
static enum fa_err gb18030_decode(const unsigned char *in, size_t len, char **out, size_t *out_len,
                                  size_t *bad, char *what, size_t whatlen)
{
    enum fa_err rc = FA_OK;
    char *buf = NULL;
    /* Each GB18030 sequence of k bytes is at most 1.5 k bytes of UTF-8 (1 -> 1,
     * 2 -> 3, 4 -> 4); the margin and the E2BIG branch below are only a guard. */
    size_t cap = len + len / 2 + 16;
    iconv_t cd = iconv_open("UTF-8", "GB18030");

    if (cd == TEXT_ICONV_FAIL) {
        if (errno == ENOMEM)
            return FA_NOMEM;
        snprintf(what, whatlen, "GB18030 could not be tried: iconv_open: %s", strerror(errno));
        return FA_REJECTED;
    }
    buf = malloc(cap);
    if (!buf) {
        rc = FA_NOMEM;
        goto out;
    }
    char *inp = (char *)in;     /* iconv's prototype lacks const; it only reads */
    size_t inleft = len;
    char *outp = buf;
    size_t outleft = cap - 1;   /* room for the NUL */
    /* GB18030 is stateless: no shift sequence to flush at the end. */
    while (inleft > 0) {
        if (iconv(cd, &inp, &inleft, &outp, &outleft) != (size_t)-1)
            break;
        if (errno == E2BIG) {
            size_t used = (size_t)(outp - buf);
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                rc = FA_NOMEM;
                goto out;
            }
            buf = grown;
            cap *= 2;
            outp = buf + used;
            outleft = cap - 1 - used;
            continue;
        }
        *bad = (size_t)(inp - (char *)in);
        if (errno == EINVAL)
            snprintf(what, whatlen, "not GB18030 (incomplete sequence at the end, offset %zu)", *bad);
        else
            snprintf(what, whatlen, "not GB18030 (invalid sequence at offset %zu)", *bad);
        rc = FA_REJECTED;
        goto out;
    }
    *outp = '\0';
    *out_len = (size_t)(outp - buf);
    *out = buf;
    buf = NULL;
out:
    free(buf);
    iconv_close(cd);
    return rc;
}

/* ---- text_to_utf8 --------------------------------------------------------- */

enum fa_err text_to_utf8(const void *in, size_t len, char **out, size_t *out_len,
                         char *why, size_t whylen)
{
    const unsigned char *b = in;
    enum fa_err rc = FA_OK;
    size_t base = 0;
    bool cut = false;

    assert(out && out_len);
    assert(in || len == 0);
    assert(len <= TEXT_MAX_INPUT);
    *out = NULL;
    *out_len = 0;

    /* Before the NUL check: a UTF-16 file is full of NULs, and naming
     * UTF-16 tells the writer what to change. */
    if (len >= 2 && ((b[0] == 0xFF && b[1] == 0xFE) || (b[0] == 0xFE && b[1] == 0xFF)))
        return text_reject(why, whylen, "(document): starts with a UTF-16 byte order mark; UTF-16 is "
                           "not accepted, save the draft as UTF-8 or GB18030");
    /* A NUL is valid UTF-8 and GB18030 but never part of a JSON text, and
     * the rest of the engine relies on *out being a C string. */
    const unsigned char *nul = len ? memchr(b, 0, len) : NULL;
    if (nul)
        return text_reject(why, whylen, "(document): contains a NUL byte at offset %zu; a JSON text has "
                           "none (UTF-16 and UTF-32 are not accepted), save the draft as UTF-8 or GB18030",
                           (size_t)(nul - b));

    if (len >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF)
        base = 3;
    size_t bad = base + utf8_bad_offset(b + base, len - base, &cut);
    if (bad == len) {
        char *copy = malloc(len - base + 1);
        if (!copy)
            return FA_NOMEM;
        if (len > base)
            memcpy(copy, b + base, len - base);
        copy[len - base] = '\0';
        *out = copy;
        *out_len = len - base;
        return FA_OK;
    }

    char utf8_what[80];
    if (cut)
        snprintf(utf8_what, sizeof utf8_what, "incomplete sequence at the end, offset %zu", bad);
    else
        snprintf(utf8_what, sizeof utf8_what, "invalid byte 0x%02X at offset %zu", b[bad], bad);
    if (base)
        return text_reject(why, whylen, "(document): has a UTF-8 byte order mark but is not UTF-8 (%s); "
                           "save the draft as UTF-8", utf8_what);
    /* UTF-8 Chinese before the bad byte: a UTF-8 file with a stray byte, which
     * GB18030 would "decode" into nonsense that the device then signs.  Real
     * GBK text rarely forms even one valid 3-byte UTF-8 sequence by chance
     * (about 2 % per character); two before the first invalid byte is taken
     * as proof of UTF-8. */
    size_t i, wide = 0;
    for (i = base; i < bad; i++)
        wide += b[i] >= 0xE0;   /* in valid UTF-8, the lead byte of 3 or 4 bytes */
    if (wide >= 2)
        return text_reject(why, whylen, "(document): not UTF-8 (%s) after UTF-8 text; the file mixes "
                           "encodings: save the draft as UTF-8", utf8_what);

    char gb_what[96] = "";
    size_t gb_bad = 0;
    rc = gb18030_decode(b, len, out, out_len, &gb_bad, gb_what, sizeof gb_what);
    if (rc == FA_REJECTED)
        text_reject(why, whylen, "(document): not UTF-8 (%s) and %s; save the draft as UTF-8 or GB18030",
                    utf8_what, gb_what);
    return rc;
}

/* ---- text_gbk_len --------------------------------------------------------- */

static pthread_once_t gbk_once = PTHREAD_ONCE_INIT;
static pthread_key_t gbk_key;
static bool gbk_key_ok;

static _Thread_local iconv_t gbk_cd;
static _Thread_local bool gbk_open;

static void gbk_thread_end(void *cd)
{
    iconv_close((iconv_t)cd);
}

static void gbk_key_init(void)
{
    gbk_key_ok = pthread_key_create(&gbk_key, gbk_thread_end) == 0;
}

/* This thread's UTF-8 -> GBK converter, or TEXT_ICONV_FAIL.  A failed open
 * is retried at the next call, since it may have been a passing ENOMEM. */
static iconv_t gbk_converter(void)
{
    if (gbk_open)
        return gbk_cd;
    pthread_once(&gbk_once, gbk_key_init);
    iconv_t cd = iconv_open("GBK", "UTF-8");
    if (cd == TEXT_ICONV_FAIL)
        return cd;
    /* Without the key the converter still works; it is only not closed at
     * thread exit, a small leak per thread rather than a failure. */
    if (gbk_key_ok)
        pthread_setspecific(gbk_key, cd);
    gbk_cd = cd;
    gbk_open = true;
    return cd;
}

long text_gbk_len(const char *utf8)
{
    assert(utf8);
    size_t ascii = 0;
    while (utf8[ascii] && (unsigned char)utf8[ascii] < 0x80)
        ascii++;
    if (!utf8[ascii])
        return (long)ascii;     /* ASCII is the same byte in GBK */

    iconv_t cd = gbk_converter();
    if (cd == TEXT_ICONV_FAIL)
        return -1;
    /* A previous call may have stopped mid-sequence; start from a clean state. */
    iconv(cd, NULL, NULL, NULL, NULL);

    long total = (long)ascii;
    char *inp = (char *)utf8 + ascii;   /* iconv only reads it */
    size_t inleft = strlen(inp);
    char chunk[256];                    /* output is only counted, never kept */
    /* GBK is stateless: no shift sequence to flush at the end. */
    for (;;) {
        char *outp = chunk;
        size_t outleft = sizeof chunk;
        size_t r = iconv(cd, &inp, &inleft, &outp, &outleft);
        total += (long)(sizeof chunk - outleft);
        if (r != (size_t)-1)
            break;
        if (errno != E2BIG)
            return -1;          /* EILSEQ: no GBK form or bad UTF-8; EINVAL: cut UTF-8 */
    }
    return total;
}

size_t text_utf8_cut(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)   /* s[n] continues a character */
        n--;
    return n;
}
