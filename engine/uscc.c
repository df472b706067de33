/*
 * uscc.c — GB 32100-2015 check character and legacy tax id shape; see uscc.h.
 *
 * Design
 *   One pass over at most 18 bytes both checks the character set and sums
 *   the weights; the first byte outside the alphabet (a NUL included) ends
 *   it, so a short, long or odd id is never read past its end.  A failed
 *   check is only a warning for the caller (SPEC §3.1: real codes that fail
 *   exist); this module just answers the question.
 */
#include <string.h>
#include "engine/uscc.h"

#define USCC_LEN 18

static const char uscc_alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";   /* 31 characters */

/* Weight of position i is 3^i mod 31; the table is the standard's. */
static const int uscc_weight[USCC_LEN - 1] = {
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
};

/* Value of a byte in the alphabet (0-30), or -1.  Looked up in
 * uscc_alphabet itself, so values and check characters cannot disagree. */
static int uscc_value(unsigned char c)
{
    const char *hit = c ? memchr(uscc_alphabet, c, sizeof uscc_alphabet - 1) : NULL;
    return hit ? (int)(hit - uscc_alphabet) : -1;
}

bool uscc_valid(const char *id)
{
    int sum = 0;

    if (!id)
        return false;
    for (size_t i = 0; i < USCC_LEN - 1; i++) {
        int v = uscc_value((unsigned char)id[i]);   /* a NUL is -1: stops a short id here */
        if (v < 0)
            return false;
        sum += v * uscc_weight[i];
    }
    if (id[USCC_LEN - 1] == '\0' || id[USCC_LEN] != '\0')
        return false;
    int c = 31 - sum % 31;
    if (c == 31)
        c = 0;
    return id[USCC_LEN - 1] == uscc_alphabet[c];
}

bool tax_id_charset_ok(const char *id, size_t *len)
{
    size_t n = 0;
    bool chars_ok = true;

    if (len)
        *len = 0;
    if (!id)
        return false;
    for (; id[n]; n++) {
        char c = id[n];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')))
            chars_ok = false;
    }
    if (len)
        *len = n;
    return chars_ok && (n == 15 || n == 17 || n == 18 || n == 20);
}
