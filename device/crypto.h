/*
 * crypto.h — the cryptography of the tax system, over OpenSSL 3:
 * SM2 signatures with SM3 (GB/T 32918, with the default distinguishing
 * identifier "1234567812345678" of GB/T 35276 set explicitly, because
 * OpenSSL 3.0 otherwise uses an empty one), SM3 and SHA-256 digests, base64.
 */
#ifndef FAPIAO_CRYPTO_H
#define FAPIAO_CRYPTO_H

#include <stddef.h>
#include <openssl/evp.h>

#define SM2_DISTID "1234567812345678"
#define CRYPTO_SIG_MAX 80       /* DER SM2 signature: at most 72 bytes */
#define CRYPTO_SIG_B64_MAX 112
#define CRYPTO_PUBLIC_B64_MAX 256  /* base64 DER SPKI of an SM2 key (124 characters), with NUL */

/* New SM2 key pair; the private key as PEM (malloc'd) or NULL. */
char *crypto_sm2_generate_pem(void);
EVP_PKEY *crypto_key_from_pem(const char *pem, int is_private);
/* Base64 of the DER SubjectPublicKeyInfo, one line. 0 on success. */
int crypto_public_b64(EVP_PKEY *key, char *out, size_t cap);
/* The reverse: the key of a base64 DER SubjectPublicKeyInfo (shorter than
 * CRYPTO_PUBLIC_B64_MAX); NULL unless that is exactly one SM2 public key. */
EVP_PKEY *crypto_public_from_b64(const char *b64);

/* Signature as base64 into out (CRYPTO_SIG_B64_MAX). 0 on success. */
int crypto_sm2_sign_b64(EVP_PKEY *key, const void *data, size_t len, char *out, size_t cap);
/* 0 when sig_b64 is a valid signature of data by key. */
int crypto_sm2_verify_b64(EVP_PKEY *key, const void *data, size_t len, const char *sig_b64);

void crypto_sm3(const void *data, size_t len, unsigned char out[32]);
void crypto_sha256(const void *data, size_t len, unsigned char out[32]);
/* Lower-case hex of n bytes into out (2n+1). */
void crypto_hex(const unsigned char *in, size_t n, char *out);
/* Standard base64 with padding, NUL-terminated; returns length or -1. */
int crypto_b64(const void *in, size_t len, char *out, size_t cap);

#endif
