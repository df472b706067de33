/*
 * sm2_base.c — constant-time k·G for SM2; see sm2_base.h.
 *
 * The method is a comb of 4-bit windows: k = Σ k_i·16^i (i = 0..63), and
 * table[i][d-1] = d·16^i·G for d = 1..15, in affine coordinates, so that
 * k·G = Σ table[i][k_i]: 64 mixed Jacobian-affine additions, no doubling.
 * Every entry of a window is read for every window (the one wanted is kept
 * with a mask), and the two special cases of the addition formulas are
 * resolved with masks too:
 *   - a zero digit adds the point at infinity: the sum is discarded;
 *   - an accumulator still at infinity (k's low digits all zero) takes the
 *     entry itself.
 * The other special cases (adding P to P or to -P) cannot happen for k in
 * [1, n-1]: after window m the accumulator is j·G with 0 < j < 16^m, and
 * the entry is d·16^m·G with 16^m <= d·16^m <= 15·2^252 < n, so j = d·16^m
 * is impossible and j = n - d·16^m would need k = n.
 *
 * Field elements are four 64-bit limbs, least significant first, in
 * Montgomery form (R = 2^256).  The SM2 prime p = 2^256 - 2^224 - 2^96 +
 * 2^64 - 1 is -1 modulo 2^64, so Montgomery's -p^-1 mod 2^64 is 1.
 *
 * The table (60 KiB) is built once with OpenSSL's own point arithmetic,
 * and checked against OpenSSL's k·G for a few k before it is used.
 */
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "device/sm2_base.h"

typedef uint64_t fe[4];
typedef unsigned __int128 u128;

#define WINDOWS 64
#define DIGITS 15                 /* entries per window: digits 1..15 */

struct affine {
    fe x, y;
};

static const fe P = { 0xFFFFFFFFFFFFFFFFu, 0xFFFFFFFF00000000u, 0xFFFFFFFFFFFFFFFFu,
                      0xFFFFFFFEFFFFFFFFu };
static const fe N = { 0x53BBF40939D54123u, 0x7203DF6B21C6052Bu, 0xFFFFFFFFFFFFFFFFu,
                      0xFFFFFFFEFFFFFFFFu };

static struct affine table[WINDOWS][DIGITS];
static fe r2;                     /* R^2 mod p: into Montgomery form */
static fe one;                    /* R mod p: 1 in Montgomery form */
static bool table_ok;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

/* ---- the field ----------------------------------------------------------- */

/* r = t + hi·2^256 reduced once: t + hi·2^256 < 2p. */
static void fe_reduce_once(fe r, const fe t, uint64_t hi)
{
    fe s;
    uint64_t borrow = 0, keep;
    int i;

    for (i = 0; i < 4; i++) {
        u128 d = (u128)t[i] - P[i] - borrow;
        s[i] = (uint64_t)d;
        borrow = (uint64_t)(d >> 64) & 1;
    }
    keep = (hi | (borrow ^ 1)) - 1;   /* all ones: t < p, keep t */
    for (i = 0; i < 4; i++)
        r[i] = (t[i] & keep) | (s[i] & ~keep);
}

static void fe_add(fe r, const fe a, const fe b)
{
    fe t;
    u128 c = 0;
    int i;

    for (i = 0; i < 4; i++) {
        c += (u128)a[i] + b[i];
        t[i] = (uint64_t)c;
        c >>= 64;
    }
    fe_reduce_once(r, t, (uint64_t)c);
}

static void fe_sub(fe r, const fe a, const fe b)
{
    uint64_t borrow = 0, mask;
    u128 c = 0;
    fe t;
    int i;

    for (i = 0; i < 4; i++) {
        u128 d = (u128)a[i] - b[i] - borrow;
        t[i] = (uint64_t)d;
        borrow = (uint64_t)(d >> 64) & 1;
    }
    mask = 0 - borrow;                /* a < b: add p back */
    for (i = 0; i < 4; i++) {
        c += (u128)t[i] + (P[i] & mask);
        r[i] = (uint64_t)c;
        c >>= 64;
    }
}

/* Montgomery product a·b·R^-1 mod p (CIOS). */
static void fe_mul(fe r, const fe a, const fe b)
{
    uint64_t t[5] = { 0 }, top, m;
    u128 c;
    int i, j;

    for (i = 0; i < 4; i++) {
        c = 0;
        for (j = 0; j < 4; j++) {
            c += (u128)a[j] * b[i] + t[j];
            t[j] = (uint64_t)c;
            c >>= 64;
        }
        c += t[4];
        t[4] = (uint64_t)c;
        top = (uint64_t)(c >> 64);
        m = t[0];                     /* t[0]·(-p^-1 mod 2^64), which is 1 */
        c = ((u128)m * P[0] + t[0]) >> 64;
        for (j = 1; j < 4; j++) {
            c += (u128)m * P[j] + t[j];
            t[j - 1] = (uint64_t)c;
            c >>= 64;
        }
        c += t[4];
        t[3] = (uint64_t)c;
        t[4] = top + (uint64_t)(c >> 64);
    }
    fe_reduce_once(r, t, t[4]);
}

static void fe_sqr(fe r, const fe a) { fe_mul(r, a, a); }

/* r = a^(2^n), n squarings. */
static void fe_sqr_n(fe r, const fe a, int n)
{
    memcpy(r, a, sizeof(fe));
    while (n-- > 0)
        fe_sqr(r, r);
}

/* a^(p-2) = a^-1 (Fermat).  p-2 is, from the top, 31 ones, a zero, 128
 * ones, 32 zeros, 62 ones, a zero and a one: an addition chain of runs of
 * ones (x_n = a^(2^n - 1)) takes 256 squarings and 16 products, where
 * square-and-multiply took 222 products more. */
static void fe_inv(fe r, const fe a)
{
    fe x2, x3, x6, x12, x24, x31, x32, t;
    int i;

    fe_sqr(x2, a);
    fe_mul(x2, x2, a);
    fe_sqr(x3, x2);
    fe_mul(x3, x3, a);
    fe_sqr_n(x6, x3, 3);
    fe_mul(x6, x6, x3);
    fe_sqr_n(x12, x6, 6);
    fe_mul(x12, x12, x6);
    fe_sqr_n(x24, x12, 12);
    fe_mul(x24, x24, x12);
    fe_sqr_n(x31, x24, 6);
    fe_mul(x31, x31, x6);             /* x30 */
    fe_sqr(x31, x31);
    fe_mul(x31, x31, a);
    fe_sqr(x32, x31);
    fe_mul(x32, x32, a);

    fe_sqr(t, x31);                   /* 31 ones, a zero */
    for (i = 0; i < 4; i++) {         /* 128 ones */
        fe_sqr_n(t, t, 32);
        fe_mul(t, t, x32);
    }
    fe_sqr_n(t, t, 32);               /* 32 zeros */
    for (i = 0; i < 2; i++) {         /* 62 ones */
        fe_sqr_n(t, t, 31);
        fe_mul(t, t, x31);
    }
    fe_sqr_n(t, t, 2);                /* a zero, */
    fe_mul(r, t, a);                  /* a one */
}

/* x, opaque to the optimiser: a mask derived from k stays a mask, and is
 * not turned back into a comparison and a branch. */
static inline uint64_t value_barrier(uint64_t x)
{
    __asm__("" : "+r"(x));
    return x;
}

/* r = mask ? a : r, for mask all ones or zero. */
static void fe_cmov(fe r, const fe a, uint64_t mask)
{
    int i;
    mask = value_barrier(mask);
    for (i = 0; i < 4; i++)
        r[i] = (r[i] & ~mask) | (a[i] & mask);
}

/* Big-endian bytes to limbs and back. */
static void fe_from_be(fe r, const unsigned char b[SM2_BASE_BYTES])
{
    int i, j;
    for (i = 0; i < 4; i++) {
        r[i] = 0;
        for (j = 0; j < 8; j++)
            r[i] |= (uint64_t)b[31 - 8 * i - j] << (8 * j);
    }
}

static void fe_to_be(unsigned char b[SM2_BASE_BYTES], const fe a)
{
    int i, j;
    for (i = 0; i < 4; i++)
        for (j = 0; j < 8; j++)
            b[31 - 8 * i - j] = (unsigned char)(a[i] >> (8 * j));
}

/* ---- the points ------------------------------------------------------------ */

struct jacobian {
    fe x, y, z;
};

/* r = a + b, a Jacobian, b affine; a != ±b, neither at infinity (the
 * callers mask those cases).  madd-2007-bl, scaled: 7M + 4S. */
static void point_add_affine(struct jacobian *r, const struct jacobian *a, const struct affine *b)
{
    fe z1z1, u2, s2, h, hh, i4, j, rr, v, t;

    fe_sqr(z1z1, a->z);
    fe_mul(u2, b->x, z1z1);
    fe_mul(s2, b->y, a->z);
    fe_mul(s2, s2, z1z1);
    fe_sub(h, u2, a->x);
    fe_sqr(hh, h);
    fe_add(i4, hh, hh);
    fe_add(i4, i4, i4);               /* I = 4·HH */
    fe_mul(j, h, i4);                 /* J = H·I */
    fe_sub(rr, s2, a->y);
    fe_add(rr, rr, rr);               /* r = 2·(S2 - Y1) */
    fe_mul(v, a->x, i4);              /* V = X1·I */
    fe_mul(t, a->y, j);
    fe_add(t, t, t);                  /* 2·Y1·J, before r->y may alias a->y */
    fe_mul(r->z, a->z, h);
    fe_add(r->z, r->z, r->z);         /* Z3 = 2·Z1·H */
    fe_sqr(r->x, rr);
    fe_sub(r->x, r->x, j);
    fe_sub(r->x, r->x, v);
    fe_sub(r->x, r->x, v);            /* X3 = r^2 - J - 2·V */
    fe_sub(v, v, r->x);
    fe_mul(r->y, rr, v);
    fe_sub(r->y, r->y, t);            /* Y3 = r·(V - X3) - 2·Y1·J */
}

/* All ones when a == b, else zero, without a branch. */
static uint64_t ct_eq(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ b;
    return value_barrier(((x | (0 - x)) >> 63) - 1);
}

/* The entry of digit d (0..15) of window w into out; all ones when d is 0
 * (the point at infinity: out is then zeros).  Reads every entry. */
static uint64_t table_select(int w, uint64_t d, struct affine *out)
{
    int e;

    memset(out, 0, sizeof *out);
    for (e = 0; e < DIGITS; e++) {
        uint64_t mask = ct_eq(d, (uint64_t)e + 1);
        fe_cmov(out->x, table[w][e].x, mask);
        fe_cmov(out->y, table[w][e].y, mask);
    }
    return ct_eq(d, 0);
}

/* k·G's affine x (in normal form) for k in [1, n-1], as limbs. */
static void base_mul_x(fe x, const fe k)
{
    struct jacobian acc, sum;
    struct affine entry;
    uint64_t acc_inf = ~(uint64_t)0;  /* all ones while acc is the point at infinity */
    fe zinv, plain1 = { 1, 0, 0, 0 };
    int w;

    memset(&acc, 0, sizeof acc);
    for (w = 0; w < WINDOWS; w++) {
        uint64_t d = (k[w / 16] >> (4 * (w % 16))) & 0xf;
        uint64_t entry_inf = table_select(w, d, &entry);
        uint64_t take_sum = ~acc_inf & ~entry_inf, take_entry = acc_inf & ~entry_inf;

        point_add_affine(&sum, &acc, &entry);
        /* both finite: the sum; acc at infinity: the entry, with z = 1; the
         * entry at infinity: acc as it is.  The two masks never both hold. */
        fe_cmov(acc.x, sum.x, take_sum);
        fe_cmov(acc.y, sum.y, take_sum);
        fe_cmov(acc.z, sum.z, take_sum);
        fe_cmov(acc.x, entry.x, take_entry);
        fe_cmov(acc.y, entry.y, take_entry);
        fe_cmov(acc.z, one, take_entry);
        acc_inf &= entry_inf;
    }
    fe_inv(zinv, acc.z);
    fe_sqr(zinv, zinv);
    fe_mul(x, acc.x, zinv);
    fe_mul(x, x, plain1);             /* out of Montgomery form */
    /* the accumulator is (k mod 16^w)·G, the entries k's digits */
    OPENSSL_cleanse(&acc, sizeof acc);
    OPENSSL_cleanse(&sum, sizeof sum);
    OPENSSL_cleanse(&entry, sizeof entry);
    OPENSSL_cleanse(zinv, sizeof zinv);
}

/* ---- the table --------------------------------------------------------------- */

static int bn_to_fe(fe r, const BIGNUM *b)
{
    unsigned char be[SM2_BASE_BYTES];
    if (BN_bn2binpad(b, be, sizeof be) != (int)sizeof be)
        return -1;
    fe_from_be(r, be);
    return 0;
}

/* Does base_mul_x agree with OpenSSL for k? */
static bool agrees_with_openssl(const EC_GROUP *g, const BIGNUM *k, BN_CTX *ctx)
{
    EC_POINT *q = EC_POINT_new(g);
    BIGNUM *x = BN_new();
    fe kf, want, got;
    bool same = false;

    if (q && x && bn_to_fe(kf, k) == 0 && EC_POINT_mul(g, q, k, NULL, NULL, ctx) &&
        EC_POINT_get_affine_coordinates(g, q, x, NULL, ctx) && bn_to_fe(want, x) == 0) {
        base_mul_x(got, kf);
        same = memcmp(got, want, sizeof got) == 0;
    }
    EC_POINT_free(q);
    BN_free(x);
    return same;
}

static void table_build(void)
{
    /* k for the check: small, a digit of every value, n - 1, a high window alone */
    static const char *const checks[] = {
        "1", "F", "10", "123456789ABCDEF0FEDCBA9876543210",
        "F000000000000000000000000000000000000000000000000000000000000000",   /* 15·16^63 */
        "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122",
    };
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    BN_CTX *ctx = BN_CTX_new();
    EC_POINT *base = g ? EC_POINT_new(g) : NULL, *pt = g ? EC_POINT_new(g) : NULL;
    BIGNUM *x = BN_new(), *y = BN_new(), *bp = BN_new(), *k = NULL;
    fe order;
    size_t c;
    int w, d;

    if (!ctx || !base || !pt || !x || !y || !bp ||
        !EC_GROUP_get_curve(g, bp, NULL, NULL, ctx) || bn_to_fe(order, EC_GROUP_get0_order(g)) ||
        memcmp(order, N, sizeof order) || !EC_POINT_copy(base, EC_GROUP_get0_generator(g)))
        goto out;
    /* R^2 mod p; one = R mod p = 1·R^2·R^-1 */
    if (!BN_set_word(x, 0) || !BN_set_bit(x, 512) || !BN_mod(x, x, bp, ctx) || bn_to_fe(r2, x) ||
        bn_to_fe(one, BN_value_one()))
        goto out;
    fe_mul(one, one, r2);
    for (w = 0; w < WINDOWS; w++) {              /* base = 16^w·G */
        if (!EC_POINT_copy(pt, base))
            goto out;
        for (d = 1; d <= DIGITS; d++) {          /* pt = d·base */
            if (!EC_POINT_get_affine_coordinates(g, pt, x, y, ctx) ||
                bn_to_fe(table[w][d - 1].x, x) || bn_to_fe(table[w][d - 1].y, y) ||
                !EC_POINT_add(g, pt, pt, base, ctx))
                goto out;
            fe_mul(table[w][d - 1].x, table[w][d - 1].x, r2);
            fe_mul(table[w][d - 1].y, table[w][d - 1].y, r2);
        }
        if (!EC_POINT_copy(base, pt))            /* 16·base */
            goto out;
    }
    for (c = 0; c < sizeof checks / sizeof checks[0]; c++)
        if (!BN_hex2bn(&k, checks[c]) || !agrees_with_openssl(g, k, ctx))
            goto out;
    table_ok = true;
out:
    if (!table_ok)   /* once: signing still works, 5x slower (presign falls back) */
        fprintf(stderr, "fapiaofs: SM2 fixed-base table not built: k·G by OpenSSL's ladder\n");
    EC_POINT_free(base);
    EC_POINT_free(pt);
    BN_free(x);
    BN_free(y);
    BN_free(bp);
    BN_free(k);
    BN_CTX_free(ctx);
    EC_GROUP_free(g);
}

int sm2_base_mul_x(const unsigned char k[SM2_BASE_BYTES], unsigned char x[SM2_BASE_BYTES])
{
    fe kf, xf;
    uint64_t borrow = 0, nonzero = 0;
    int i;

    pthread_once(&table_once, table_build);
    if (!table_ok)
        return -1;
    fe_from_be(kf, k);
    for (i = 0; i < 4; i++) {                    /* k < n and k != 0, without a branch on k */
        u128 d = (u128)kf[i] - N[i] - borrow;
        borrow = (uint64_t)(d >> 64) & 1;
        nonzero |= kf[i];
    }
    if (!borrow || !nonzero)
        return -1;
    base_mul_x(xf, kf);
    fe_to_be(x, xf);
    OPENSSL_cleanse(kf, sizeof kf);
    OPENSSL_cleanse(xf, sizeof xf);
    return 0;
}
