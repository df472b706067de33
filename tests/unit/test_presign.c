/*
 * test_presign.c — device/presign.c: signatures made with nonces computed
 * ahead verify with OpenSSL's own SM2 (crypto_sm2_verify_b64, same id),
 * from four threads at once, for messages of 0 to 299 bytes; a tampered
 * message does not verify; the same message signs differently twice; the
 * DER fits CRYPTO_SIG_MAX; an empty pool (pool_size 1) signs inline; a
 * forked child is refused the parent's pool; and an object freed before
 * its thread ever started leaks nothing (run under ASan).
 */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "device/crypto.h"
#include "device/presign.h"
#include "tests/unit/unit.h"

#define THREADS 4
#define SIGNS_PER_THREAD 500
#define MESSAGE_MAX 300

static EVP_PKEY *key;

/* Message i of a thread: i % MESSAGE_MAX bytes, different per thread and i. */
static size_t message(int thread, int i, unsigned char buf[MESSAGE_MAX + 1])
{
    size_t len = (size_t)(i % MESSAGE_MAX), j;
    for (j = 0; j < len; j++)
        buf[j] = (unsigned char)(thread * 131 + i * 7 + j * 13);
    return len;
}

/* Bytes of the DER under a base64 signature, or -1. */
static int der_length(const char *b64)
{
    unsigned char der[CRYPTO_SIG_B64_MAX];
    size_t len = strlen(b64);
    int n;

    if (len == 0 || len >= sizeof der || len % 4)
        return -1;
    n = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)len);
    return n < 0 ? -1 : n - (b64[len - 1] == '=') - (b64[len - 2] == '=');
}

struct signer {
    struct presign *p;
    int thread;
    int failed, unverified, tampered_ok, der_max;
};

static void *signer_main(void *arg)
{
    struct signer *w = arg;
    unsigned char msg[MESSAGE_MAX + 1];
    char sig[CRYPTO_SIG_B64_MAX];
    int i, der;

    for (i = 0; i < SIGNS_PER_THREAD; i++) {
        size_t len = message(w->thread, i, msg);
        if (presign_sign_b64(w->p, msg, len, sig, sizeof sig)) {
            w->failed++;
            continue;
        }
        der = der_length(sig);
        w->der_max = der < 0 ? CRYPTO_SIG_MAX + 1 : der > w->der_max ? der : w->der_max;
        w->unverified += crypto_sm2_verify_b64(key, msg, len, sig) != 0;
        if (len > 0)
            msg[i % len] ^= 1;   /* one bit of the message */
        else
            msg[0] = 'x';        /* the empty message gets a byte */
        w->tampered_ok += crypto_sm2_verify_b64(key, msg, len + (len == 0), sig) == 0;
    }
    return NULL;
}

static void test_concurrent(void)
{
    struct presign *p = presign_new(key, 32);
    struct signer w[THREADS] = { 0 };
    pthread_t t[THREADS];
    struct presign_stats st = { 0 };
    int i, failed = 0, unverified = 0, tampered_ok = 0, der_max = 0, started = 0;

    CHECK(p != NULL, "presign_new with pool 32");
    if (!p)
        return;
    for (i = 0; i < THREADS; i++) {
        w[i] = (struct signer){ .p = p, .thread = i };
        started += pthread_create(&t[i], NULL, signer_main, &w[i]) == 0;
    }
    CHECK_INT(started, THREADS);
    for (i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        failed += w[i].failed;
        unverified += w[i].unverified;
        tampered_ok += w[i].tampered_ok;
        der_max = w[i].der_max > der_max ? w[i].der_max : der_max;
    }
    presign_stats(p, &st);
    printf("# %d signatures from %d threads: %lu nonces from the pool, %lu made inline; "
           "longest DER %d bytes\n", THREADS * SIGNS_PER_THREAD, THREADS, st.from_pool,
           st.made_inline, der_max);
    CHECK_INT(failed, 0);
    CHECK_INT(unverified, 0);
    CHECK_INT(tampered_ok, 0);
    CHECK(der_max > 0 && der_max <= CRYPTO_SIG_MAX, "DER signatures at most CRYPTO_SIG_MAX bytes");
    CHECK_INT(st.from_pool + st.made_inline, THREADS * SIGNS_PER_THREAD);
    presign_free(p);
}

/* The same message twice: two nonces, two signatures, both valid. */
static void test_fresh_nonce(void)
{
    struct presign *p = presign_new(key, 4);
    char a[CRYPTO_SIG_B64_MAX] = "", b[CRYPTO_SIG_B64_MAX] = "";
    const char *msg = "invoice 031001900111-00000001";

    CHECK(p && !presign_sign_b64(p, msg, strlen(msg), a, sizeof a) &&
          !presign_sign_b64(p, msg, strlen(msg), b, sizeof b), "sign one message twice");
    CHECK(strcmp(a, b) != 0, "the two signatures differ (a fresh k each)");
    CHECK(!crypto_sm2_verify_b64(key, msg, strlen(msg), a) &&
          !crypto_sm2_verify_b64(key, msg, strlen(msg), b), "both verify");
    CHECK(p && presign_sign_b64(p, msg, strlen(msg), a, 8) != 0, "a too small buffer fails");
    presign_free(p);
}

/* pool_size 1 and back-to-back signatures: the signer makes its own nonce. */
static void test_empty_pool(void)
{
    struct presign *p = presign_new(key, 1);
    struct presign_stats st = { 0 };
    char sig[CRYPTO_SIG_B64_MAX], msg[32];
    int i, bad = 0;

    if (!CHECK(p != NULL, "presign_new with pool 1"))
        return;
    for (i = 0; i < 200; i++) {
        snprintf(msg, sizeof msg, "quick %d", i);
        bad += presign_sign_b64(p, msg, strlen(msg), sig, sizeof sig) ||
               crypto_sm2_verify_b64(key, msg, strlen(msg), sig);
    }
    presign_stats(p, &st);
    printf("# pool 1, 200 back-to-back: %lu from the pool, %lu inline\n", st.from_pool,
           st.made_inline);
    CHECK_INT(bad, 0);
    CHECK(st.made_inline > 0, "the empty pool was met and the nonce made inline");
    /* a pause fills the pool again */
    usleep(100000);
    presign_stats(p, &st);
    i = (int)st.from_pool;
    CHECK(!presign_sign_b64(p, "x", 1, sig, sizeof sig), "sign after a pause");
    presign_stats(p, &st);
    CHECK_INT(st.from_pool, i + 1);
    presign_free(p);
}

/* After the thread started, a child of fork() must not use the copied pool. */
static void test_fork(void)
{
    struct presign *p = presign_new(key, 4);
    char sig[CRYPTO_SIG_B64_MAX];
    int status = -1;
    pid_t pid;

    if (!CHECK(p && !presign_sign_b64(p, "a", 1, sig, sizeof sig), "sign in the parent"))
        return;
    /* Fork only once the thread sleeps on a full pool: forked while it
     * allocates, the child inherits the allocator's lock held (ASan's
     * allocator has no fork handlers) and its first malloc never returns. */
    for (int waited = 0; waited < 3000; waited++) {
        struct presign_stats st;
        presign_stats(p, &st);
        if (st.ready == 4)
            break;
        usleep(1000);
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        int refused = presign_sign_b64(p, "b", 1, sig, sizeof sig) != 0;
        presign_free(p);   /* no thread here to join */
        _exit(refused ? 0 : 1);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0, "the forked child is refused");
    CHECK(!presign_sign_b64(p, "c", 1, sig, sizeof sig), "the parent still signs");
    presign_free(p);
}

static void test_new_and_free(void)
{
    char *pem = crypto_sm2_generate_pem();
    EVP_PKEY *other = pem ? crypto_key_from_pem(pem, 1) : NULL;
    char pub[CRYPTO_PUBLIC_B64_MAX];
    EVP_PKEY *public_only = NULL;
    struct presign *p;

    if (other && !crypto_public_b64(other, pub, sizeof pub))
        public_only = crypto_public_from_b64(pub);
    p = presign_new(other, 8);
    CHECK(p != NULL, "presign_new, then presign_free without a signature (no thread)");
    presign_free(p);
    CHECK(public_only && presign_new(public_only, 8) == NULL, "a public key alone is refused");
    CHECK(presign_new(other, 0) == NULL, "pool_size 0 is refused");
    presign_free(NULL);
    EVP_PKEY_free(public_only);
    EVP_PKEY_free(other);
    free(pem);
}

int main(void)
{
    char *pem = crypto_sm2_generate_pem();

    key = pem ? crypto_key_from_pem(pem, 1) : NULL;
    if (!CHECK(key != NULL, "generate an SM2 key")) {
        free(pem);
        return unit_done();
    }
    test_new_and_free();
    test_fresh_nonce();
    test_empty_pool();
    test_fork();
    test_concurrent();
    EVP_PKEY_free(key);
    free(pem);
    return unit_done();
}
