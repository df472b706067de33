/*
 * presign.h — SM2 signatures (GB/T 32918.2, SM3, id SM2_DISTID) with the
 * costly half done ahead: a background thread keeps a pool of nonces k with
 * the x coordinate of k·G ready, so that signing is a digest and a few
 * multiplications modulo n.  k·G itself is the comb of sm2_base.c (OpenSSL's
 * ladder only if its table cannot be built).  The signatures are the ones
 * crypto_sm2_sign_b64 makes (DER, base64) and verify with crypto_sm2_verify_b64.
 *
 * The thread starts at the first signature, not in presign_new: the object
 * may be made before fork() (daemonising) or by a tool that never signs.
 * Nonces live only in this process's memory, are used once and wiped; a
 * child of fork() after the thread started holds a copy of the pool, so it
 * is refused rather than allowed to sign with a nonce its parent also uses.
 */
#ifndef FAPIAO_PRESIGN_H
#define FAPIAO_PRESIGN_H

#include <stddef.h>
#include <openssl/evp.h>

struct presign;

/* How the nonces of the signatures so far were had. */
struct presign_stats {
    unsigned long from_pool;      /* computed ahead by the thread */
    unsigned long made_inline;    /* the pool was empty: computed while signing */
    unsigned long ready;          /* nonces in the pool now (full: the thread sleeps) */
};

/* For the SM2 private key `key` (its scalar and public point are copied;
 * the key is not kept), keeping up to pool_size nonces ready.  No thread
 * yet.  NULL when key is no SM2 private key, pool_size < 1, or no memory. */
struct presign *presign_new(EVP_PKEY *key, int pool_size);

/* The signature of data as base64 of its DER into out (CRYPTO_SIG_B64_MAX
 * is enough).  Thread-safe; the first call starts the thread.  0 on
 * success, -1 on failure or in a child of fork() after the thread started
 * (sign with crypto_sm2_sign_b64 there). */
int presign_sign_b64(struct presign *p, const void *data, size_t len, char *out, size_t cap);

void presign_stats(struct presign *p, struct presign_stats *out);

/* Stops and joins the thread, wipes the nonces and the key.  NULL is fine. */
void presign_free(struct presign *p);

#endif
