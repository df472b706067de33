/*
 * test_sm2_base.c — device/sm2_base.c: the comb's k·G has the x coordinate
 * OpenSSL's own EC_POINT_mul gives, for k at the edges (1..40, n-40..n-1,
 * d·16^i for every window and digit, all-F digits below n) and for 1,000
 * random k (2,103 in all); 0, n, n+1 and 2^256-1 are refused with nothing written.
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>
#include "device/sm2_base.h"
#include "tests/unit/unit.h"

static EC_GROUP *group;
static BN_CTX *ctx;
static int mismatches, compared;

/* Compare the comb with OpenSSL for k; a failure is reported once per kind. */
static void compare(const BIGNUM *k, const char *what)
{
    unsigned char kb[SM2_BASE_BYTES], got[SM2_BASE_BYTES], want[SM2_BASE_BYTES];
    EC_POINT *q = EC_POINT_new(group);
    BIGNUM *x = BN_new();
    int rc;

    if (!q || !x || BN_bn2binpad(k, kb, sizeof kb) != (int)sizeof kb ||
        !EC_POINT_mul(group, q, k, NULL, NULL, ctx) ||
        !EC_POINT_get_affine_coordinates(group, q, x, NULL, ctx) ||
        BN_bn2binpad(x, want, sizeof want) != (int)sizeof want) {
        CHECK(0, "OpenSSL computes k·G for %s", what);
        goto out;
    }
    rc = sm2_base_mul_x(kb, got);
    compared++;
    if (rc != 0 || memcmp(got, want, sizeof got)) {
        if (mismatches++ < 5) {
            char *hex = BN_bn2hex(k);
            CHECK(0, "k·G of %s k=%s (rc %d)", what, hex, rc);
            OPENSSL_free(hex);
        }
    }
out:
    EC_POINT_free(q);
    BN_free(x);
}

static void refused(const char *hex)
{
    unsigned char kb[SM2_BASE_BYTES], x[SM2_BASE_BYTES];
    BIGNUM *k = NULL;
    int rc;

    memset(x, 0xA5, sizeof x);
    BN_hex2bn(&k, hex);
    BN_bn2binpad(k, kb, sizeof kb);
    rc = sm2_base_mul_x(kb, x);
    CHECK(rc == -1 && x[0] == 0xA5 && x[31] == 0xA5, "k = %s is refused, x untouched", hex);
    BN_free(k);
}

int main(void)
{
    const BIGNUM *n;
    BIGNUM *k = BN_new(), *sixteen = BN_new(), *pow = BN_new();
    int i, w, d;

    group = EC_GROUP_new_by_curve_name(NID_sm2);
    ctx = BN_CTX_new();
    n = EC_GROUP_get0_order(group);

    for (i = 1; i <= 40; i++) {
        BN_set_word(k, (BN_ULONG)i);
        compare(k, "small");
        BN_sub(k, n, k);
        compare(k, "n - i");
    }
    BN_set_word(sixteen, 16);
    BN_one(pow);
    for (w = 0; w < 64; w++) {                   /* d·16^w, and 16^w - 1 (all-F digits) */
        for (d = 1; d <= 15; d++) {
            BN_copy(k, pow);
            BN_mul_word(k, (BN_ULONG)d);
            compare(k, "one digit");
        }
        if (w > 0) {
            BN_copy(k, pow);
            BN_sub_word(k, 1);
            compare(k, "all-F digits");
        }
        BN_mul(pow, pow, sixteen, ctx);
    }
    for (i = 0; i < 1000; i++) {
        do
            BN_rand_range(k, n);
        while (BN_is_zero(k));
        compare(k, "random");
    }
    CHECK(mismatches == 0, "%d values of k: every x is OpenSSL's", compared);

    refused("0");
    refused("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123");   /* n */
    refused("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54124");   /* n + 1 */
    refused("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");

    BN_free(k);
    BN_free(sixteen);
    BN_free(pow);
    BN_CTX_free(ctx);
    EC_GROUP_free(group);
    return unit_done();
}
