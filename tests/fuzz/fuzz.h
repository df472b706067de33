/*
 * fuzz.h — what the libFuzzer targets of tests/fuzz/ share: a broken
 * invariant traps (so that libFuzzer saves the input), and a reader that
 * takes bytes off the fuzzer's input and yields zeros once it runs out, so
 * that a target never has to check lengths before it reads.
 *
 * Each target defines FUZZ_NAME before including this file.
 */
#ifndef FAPIAO_FUZZ_H
#define FAPIAO_FUZZ_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

__attribute__((format(printf, 1, 2), noreturn, unused))
static void fuzz_broken(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: invariant broken: ", FUZZ_NAME);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    __builtin_trap();
}

#define FUZZ_CHECK(cond, ...)            \
    do {                                 \
        if (!(cond))                     \
            fuzz_broken(__VA_ARGS__);    \
    } while (0)

/* A char[] field holds a C string: a NUL within its size. */
#define FUZZ_STR_OK(field) (strnlen((field), sizeof(field)) < sizeof(field))

/* ---- the input, as a stream -------------------------------------------- */

struct fz {
    const uint8_t *p;
    size_t n, off;
};

static inline size_t fz_left(const struct fz *f)
{
    return f->n - f->off;
}

static inline unsigned fz_u8(struct fz *f)
{
    return f->off < f->n ? f->p[f->off++] : 0;
}

static inline unsigned fz_u16(struct fz *f)
{
    unsigned lo = fz_u8(f);
    return lo | fz_u8(f) << 8;
}

static inline uint32_t fz_u32(struct fz *f)
{
    uint32_t lo = fz_u16(f);
    return lo | (uint32_t)fz_u16(f) << 16;
}

static inline uint64_t fz_u64(struct fz *f)
{
    uint64_t lo = fz_u32(f);
    return lo | (uint64_t)fz_u32(f) << 32;
}

/* Up to `want` bytes (fewer when the input ends); *got says how many. */
static inline const uint8_t *fz_bytes(struct fz *f, size_t want, size_t *got)
{
    const uint8_t *p = f->p + f->off;

    *got = want < fz_left(f) ? want : fz_left(f);
    f->off += *got;
    return p;
}

/* The input as a C string in a buffer of exactly size + 1 bytes (so that
 * ASan sees a read past its NUL), or NULL; free() it. */
static inline char *fz_cstring(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s) {
        memcpy(s, data, size);
        s[size] = 0;
    }
    return s;
}

#endif
