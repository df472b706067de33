/*
 * platform_auth.c — request signatures of SPEC §6; see platform_auth.h.
 *
 * The signed string is method "\n" path "\n" timestamp "\n" nonce "\n" body.
 * It is fed to HMAC-SHA256 (OpenSSL 3 EVP_MAC) piece by piece instead of being
 * concatenated first: an invoice body may be large, and the pieces come from
 * different places, so streaming avoids a copy and an allocation that could
 * fail.  The same function computes the signature for the client and for the
 * simulator, so both sides can never disagree on the layout of the string.
 *
 * Verification recomputes the signature and compares it with CRYPTO_memcmp,
 * whose running time does not depend on where the first difference is; only
 * the length (public: always 44 characters) is compared in the ordinary way.
 */
#include "engine/platform_auth.h"

#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define HMAC_SHA256_LEN 32

/* HMAC-SHA256 of the signing string into mac[32]; 0 on success. */
static int hmac_signing_string(const char *secret, const char *method, const char *path,
                               const char *timestamp, const char *nonce,
                               const void *body, size_t body_len,
                               unsigned char mac[HMAC_SHA256_LEN])
{
    int rc = -1;
    EVP_MAC *hmac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    size_t mac_len = 0;
    char digest_name[] = "SHA256";   /* OSSL_PARAM wants a non-const pointer */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
        OSSL_PARAM_construct_end(),
    };
    const char *fields[] = { method, path, timestamp, nonce };

    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (hmac == NULL)
        goto out;
    ctx = EVP_MAC_CTX_new(hmac);
    if (ctx == NULL)
        goto out;
    /* secret is a C string, never NULL here, so an empty secret is an empty
     * key rather than "keep the previous key" (which NULL means to OpenSSL). */
    if (!EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params))
        goto out;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!EVP_MAC_update(ctx, (const unsigned char *)fields[i], strlen(fields[i])) ||
            !EVP_MAC_update(ctx, (const unsigned char *)"\n", 1))
            goto out;
    }
    if (body_len > 0 && !EVP_MAC_update(ctx, body, body_len))
        goto out;
    if (!EVP_MAC_final(ctx, mac, &mac_len, HMAC_SHA256_LEN) || mac_len != HMAC_SHA256_LEN)
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    return rc;
}

int platform_sign(const char *secret, const char *method, const char *path,
                  const char *timestamp, const char *nonce,
                  const void *body, size_t body_len, char out[PLATFORM_SIG_MAX])
{
    unsigned char mac[HMAC_SHA256_LEN];

    if (secret == NULL || method == NULL || path == NULL || timestamp == NULL ||
        nonce == NULL || out == NULL || (body == NULL && body_len > 0))
        return -1;
    out[0] = '\0';
    if (hmac_signing_string(secret, method, path, timestamp, nonce, body, body_len, mac) != 0)
        return -1;
    /* 32 bytes encode to 44 characters plus the terminating NUL: fits in 64. */
    EVP_EncodeBlock((unsigned char *)out, mac, HMAC_SHA256_LEN);
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

bool platform_verify(const char *secret, const char *method, const char *path,
                     const char *timestamp, const char *nonce,
                     const void *body, size_t body_len, const char *signature)
{
    char expected[PLATFORM_SIG_MAX];
    bool same;
    size_t len;

    if (signature == NULL)
        return false;
    if (platform_sign(secret, method, path, timestamp, nonce, body, body_len, expected) != 0)
        return false;
    len = strlen(expected);
    same = strlen(signature) == len && CRYPTO_memcmp(expected, signature, len) == 0;
    OPENSSL_cleanse(expected, sizeof expected);
    return same;
}
