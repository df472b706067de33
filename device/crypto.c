/* crypto.c — SM2/SM3/SHA-256/base64 over OpenSSL 3; see crypto.h. */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include "device/crypto.h"

char *crypto_sm2_generate_pem(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    BIO *bio = NULL;
    char *pem = NULL, *data;
    long n;

    if (!key)
        return NULL;
    bio = BIO_new(BIO_s_mem());
    if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
        n = BIO_get_mem_data(bio, &data);
        pem = malloc((size_t)n + 1);
        if (pem) {
            memcpy(pem, data, (size_t)n);
            pem[n] = 0;
        }
    }
    BIO_free(bio);
    EVP_PKEY_free(key);
    return pem;
}

EVP_PKEY *crypto_key_from_pem(const char *pem, int is_private)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key;
    if (!bio)
        return NULL;
    key = is_private ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                     : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return key;
}

int crypto_public_b64(EVP_PKEY *key, char *out, size_t cap)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der), rc;
    if (n <= 0)
        return -1;
    rc = crypto_b64(der, (size_t)n, out, cap) < 0 ? -1 : 0;
    OPENSSL_free(der);
    return rc;
}

EVP_PKEY *crypto_public_from_b64(const char *b64)
{
    unsigned char der[CRYPTO_PUBLIC_B64_MAX / 4 * 3 + 3];
    const unsigned char *p = der;
    size_t len = strlen(b64);
    EVP_PKEY *key;
    int n;

    if (len < 4 || len >= CRYPTO_PUBLIC_B64_MAX || len % 4 != 0)
        return NULL;
    n = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return NULL;
    n -= (b64[len - 1] == '=') + (b64[len - 2] == '=');
    key = d2i_PUBKEY(NULL, &p, n);
    if (key && (!EVP_PKEY_is_a(key, "SM2") || p != der + n)) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    ERR_clear_error();   /* a refused key leaves OpenSSL's error queue of this thread behind */
    return key;
}

/* A digest context for SM2 with SM3 and the standard distinguishing id. */
static EVP_MD_CTX *sm2_ctx(EVP_PKEY *key, int sign)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(key, NULL);
    int ok = md && pctx && EVP_PKEY_CTX_set1_id(pctx, SM2_DISTID, strlen(SM2_DISTID)) > 0;

    if (ok) {
        EVP_MD_CTX_set_pkey_ctx(md, pctx);
        ok = sign ? EVP_DigestSignInit(md, NULL, EVP_sm3(), NULL, key) == 1
                  : EVP_DigestVerifyInit(md, NULL, EVP_sm3(), NULL, key) == 1;
    }
    if (!ok) {
        EVP_MD_CTX_free(md);
        EVP_PKEY_CTX_free(pctx);
        return NULL;
    }
    return md;   /* md does not own pctx: freed by the caller through sm2_ctx_free */
}

static void sm2_ctx_free(EVP_MD_CTX *md)
{
    EVP_PKEY_CTX *pctx = EVP_MD_CTX_get_pkey_ctx(md);
    EVP_MD_CTX_free(md);
    EVP_PKEY_CTX_free(pctx);
}

int crypto_sm2_sign_b64(EVP_PKEY *key, const void *data, size_t len, char *out, size_t cap)
{
    unsigned char sig[CRYPTO_SIG_MAX];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = sm2_ctx(key, 1);
    int rc = -1;

    if (md && EVP_DigestSign(md, sig, &siglen, data, len) == 1)
        rc = crypto_b64(sig, siglen, out, cap) < 0 ? -1 : 0;
    if (md)
        sm2_ctx_free(md);
    return rc;
}

int crypto_sm2_verify_b64(EVP_PKEY *key, const void *data, size_t len, const char *sig_b64)
{
    unsigned char sig[CRYPTO_SIG_MAX + 4];
    size_t b64len = strlen(sig_b64);
    int n, pad = 0, rc = -1;
    EVP_MD_CTX *md;

    if (b64len == 0 || b64len > CRYPTO_SIG_B64_MAX || b64len % 4)
        return -1;
    n = EVP_DecodeBlock(sig, (const unsigned char *)sig_b64, (int)b64len);
    if (n < 0)
        return -1;
    pad = (sig_b64[b64len - 1] == '=') + (sig_b64[b64len - 2] == '=');
    md = sm2_ctx(key, 0);
    if (md && EVP_DigestVerify(md, sig, (size_t)(n - pad), data, len) == 1)
        rc = 0;
    if (md)
        sm2_ctx_free(md);
    return rc;
}

void crypto_sm3(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sm3(), NULL);
}

void crypto_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void crypto_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

int crypto_b64(const void *in, size_t len, char *out, size_t cap)
{
    if (len > 0x3fffffff || cap < 4 * ((len + 2) / 3) + 1)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}
