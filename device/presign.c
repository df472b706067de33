/*
 * presign.c — SM2 signing with k·G computed ahead; see presign.h.
 *
 * The trade-off: one thread and pool_size nonces of memory for taking the
 * constant-time scalar multiplication (nearly all of a signature's cost)
 * off the signer's path.  A nonce never leaves this process: were one
 * written anywhere and used twice, s = (1 + d)^-1 (k - r d) for two
 * messages would give away d.  So the pool is memory only, each nonce is
 * removed under the lock before use and wiped after, and a forked child
 * (which inherits a copy of the pool) is refused.
 */
#include <assert.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "device/crypto.h"
#include "device/presign.h"
#include "device/sm2_base.h"

#define SM2_BYTES 32              /* field elements and the order: 256 bits */
#define SM2_ID_LEN (sizeof SM2_DISTID - 1)

/* k in [1, n-1] and x1 mod n, x1 the x coordinate of k·G. */
struct nonce {
    BIGNUM *k;
    BIGNUM *x1;
};

struct presign {
    EC_GROUP *group;
    EVP_MD *sm3;                  /* fetched once, not at every signature */
    BIGNUM *d;                    /* the private scalar */
    BIGNUM *inv_1_plus_d;         /* (1 + d)^-1 mod n */
    unsigned char z[SM2_BYTES];   /* SM3(ENTL || ID || a || b || xG || yG || xA || yA) */

    pthread_mutex_t lock;
    pthread_cond_t room;          /* the thread waits here while the pool is full */
    pthread_t thread;
    bool started, stopping;
    _Atomic pid_t owner;          /* the process whose thread fills the pool; 0 none yet */
    struct presign_stats stats;
    int count, pool_size;
    struct nonce pool[];          /* pool[0 .. count-1] ready */
};

static void nonce_wipe(struct nonce *n)
{
    BN_clear_free(n->k);
    BN_clear_free(n->x1);
    n->k = n->x1 = NULL;
}

/* A fresh nonce into n (empty): the scalar multiplication.  0 or -1. */
static int nonce_make(const struct presign *p, BN_CTX *ctx, struct nonce *n)
{
    const BIGNUM *order = EC_GROUP_get0_order(p->group);
    EC_POINT *point = NULL;
    unsigned char kb[SM2_BYTES], xb[SM2_BYTES];
    int rc = -1;

    assert(!n->k && !n->x1);
    n->k = BN_new();
    n->x1 = BN_new();
    if (!n->k || !n->x1)
        goto out;
    BN_set_flags(n->k, BN_FLG_CONSTTIME);
    do {
        if (!BN_priv_rand_range(n->k, order))
            goto out;
    } while (BN_is_zero(n->k));
    /* the comb of sm2_base.c; OpenSSL's ladder only if its table is missing */
    if (BN_bn2binpad(n->k, kb, sizeof kb) == (int)sizeof kb && sm2_base_mul_x(kb, xb) == 0) {
        if (!BN_bin2bn(xb, sizeof xb, n->x1))
            goto out;
    } else if (!(point = EC_POINT_new(p->group)) ||
               !EC_POINT_mul(p->group, point, n->k, NULL, NULL, ctx) ||
               !EC_POINT_get_affine_coordinates(p->group, point, n->x1, NULL, ctx)) {
        goto out;
    }
    if (!BN_nnmod(n->x1, n->x1, order, ctx))
        goto out;
    rc = 0;
out:
    if (rc)
        nonce_wipe(n);
    OPENSSL_cleanse(kb, sizeof kb);
    EC_POINT_free(point);
    return rc;
}

/* The thread: fill the pool, sleep while it is full, until presign_free. */
static void *refill_main(void *arg)
{
    struct presign *p = arg;
    BN_CTX *ctx = BN_CTX_new();
    struct nonce n = { 0 };
    int rc = ctx ? 0 : -1;

    pthread_mutex_lock(&p->lock);
    while (!p->stopping && rc == 0) {
        if (p->count == p->pool_size) {
            pthread_cond_wait(&p->room, &p->lock);
            continue;
        }
        pthread_mutex_unlock(&p->lock);
        rc = nonce_make(p, ctx, &n);
        pthread_mutex_lock(&p->lock);
        if (rc == 0) {
            assert(p->count < p->pool_size);   /* signers only take */
            p->pool[p->count++] = n;
            n = (struct nonce){ 0 };
        }
    }
    pthread_mutex_unlock(&p->lock);   /* on a failure the signers make their own */
    BN_CTX_free(ctx);
    return NULL;
}

/* Under the lock.  Signals go to the application's threads, not to this one. */
static void refill_start(struct presign *p)
{
    sigset_t all, old;

    atomic_store(&p->owner, getpid());   /* before: a fork meanwhile must see the pool as taken */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    p->started = pthread_create(&p->thread, NULL, refill_main, p) == 0;
    if (p->started)
        pthread_setname_np(p->thread, "fapiaofs-nonce");   /* for top -H, perf */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!p->started)
        atomic_store(&p->owner, 0);
}

/* A nonce from the pool into n: 0, or -1 when it is empty. */
static int nonce_take(struct presign *p, struct nonce *n)
{
    int rc = -1;

    pthread_mutex_lock(&p->lock);
    if (!p->started)
        refill_start(p);
    if (p->count > 0) {
        *n = p->pool[--p->count];
        p->pool[p->count] = (struct nonce){ 0 };
        p->stats.from_pool++;
        /* woken at half, it refills to full in one go: one wake-up per
         * pool_size/2 signatures, not one per signature */
        if (p->count <= p->pool_size / 2)
            pthread_cond_signal(&p->room);
        rc = 0;
    } else {
        p->stats.made_inline++;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* Z of GB/T 32918.2 §5.5 for the public point pub. */
static int compute_z(struct presign *p, const EC_POINT *pub, BN_CTX *ctx)
{
    unsigned char buf[2 + SM2_ID_LEN + 6 * SM2_BYTES], *at = buf + 2 + SM2_ID_LEN;
    BIGNUM *v[6];
    unsigned int zlen = sizeof p->z;
    int i, rc = -1;

    BN_CTX_start(ctx);
    for (i = 0; i < 6; i++)
        v[i] = BN_CTX_get(ctx);
    if (!v[5] || !EC_GROUP_get_curve(p->group, NULL, v[0], v[1], ctx) ||
        !EC_POINT_get_affine_coordinates(p->group, EC_GROUP_get0_generator(p->group), v[2], v[3],
                                         ctx) ||
        !EC_POINT_get_affine_coordinates(p->group, pub, v[4], v[5], ctx))
        goto out;
    buf[0] = (SM2_ID_LEN * 8) >> 8;   /* ENTL: the id's length in bits, big-endian */
    buf[1] = (SM2_ID_LEN * 8) & 0xff;
    memcpy(buf + 2, SM2_DISTID, SM2_ID_LEN);
    for (i = 0; i < 6; i++, at += SM2_BYTES)
        if (BN_bn2binpad(v[i], at, SM2_BYTES) != SM2_BYTES)
            goto out;
    if (EVP_Digest(buf, sizeof buf, p->z, &zlen, p->sm3, NULL) != 1)
        goto out;
    rc = 0;
out:
    BN_CTX_end(ctx);
    return rc;
}

struct presign *presign_new(EVP_PKEY *key, int pool_size)
{
    struct presign *p = NULL;
    BN_CTX *ctx = BN_CTX_new();
    EC_POINT *pub = NULL;
    BIGNUM *one_plus_d = BN_new();
    unsigned char oct[1 + 2 * SM2_BYTES];
    size_t octlen = 0;
    int rc = -1;

    if (!ctx || !one_plus_d || pool_size < 1 || !EVP_PKEY_is_a(key, "SM2"))
        goto out;
    p = calloc(1, sizeof *p + (size_t)pool_size * sizeof p->pool[0]);
    if (!p)
        goto out;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->room, NULL);
    p->pool_size = pool_size;
    p->group = EC_GROUP_new_by_curve_name(NID_sm2);
    p->sm3 = EVP_MD_fetch(NULL, "SM3", NULL);
    pub = p->group ? EC_POINT_new(p->group) : NULL;
    if (!pub || !p->sm3 || EC_GROUP_get_degree(p->group) != SM2_BYTES * 8 ||
        !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &p->d) ||
        !EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, oct, sizeof oct, &octlen) ||
        !EC_POINT_oct2point(p->group, pub, oct, octlen, ctx) || compute_z(p, pub, ctx))
        goto out;
    BN_set_flags(p->d, BN_FLG_CONSTTIME);
    BN_set_flags(one_plus_d, BN_FLG_CONSTTIME);
    if (!BN_add(one_plus_d, p->d, BN_value_one()) ||
        !(p->inv_1_plus_d = BN_mod_inverse(NULL, one_plus_d, EC_GROUP_get0_order(p->group), ctx)))
        goto out;   /* d = n - 1 has no inverse: not a valid SM2 key */
    BN_set_flags(p->inv_1_plus_d, BN_FLG_CONSTTIME);
    rc = 0;
out:
    if (rc) {
        presign_free(p);
        p = NULL;
    }
    EC_POINT_free(pub);
    BN_clear_free(one_plus_d);
    BN_CTX_free(ctx);
    return p;
}

int presign_sign_b64(struct presign *p, const void *data, size_t len, char *out, size_t cap)
{
    const BIGNUM *order = EC_GROUP_get0_order(p->group);
    unsigned char e_bytes[SM2_BYTES], der[CRYPTO_SIG_MAX], *der_end = der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *e = BN_new(), *t = BN_new(), *r = BN_new(), *s = BN_new();
    ECDSA_SIG *sig = ECDSA_SIG_new();
    struct nonce n = { 0 };
    pid_t owner = atomic_load(&p->owner);
    int derlen, rc = -1;

    if (!md || !ctx || !e || !t || !r || !s || !sig || (owner && owner != getpid()))
        goto out;   /* (the pool is a copy of the parent's, in a child of fork()) */
    if (EVP_DigestInit_ex(md, p->sm3, NULL) != 1 ||
        EVP_DigestUpdate(md, p->z, sizeof p->z) != 1 || EVP_DigestUpdate(md, data, len) != 1 ||
        EVP_DigestFinal_ex(md, e_bytes, NULL) != 1 || !BN_bin2bn(e_bytes, sizeof e_bytes, e))
        goto out;
    for (;;) {
        nonce_wipe(&n);
        if (nonce_take(p, &n) && nonce_make(p, ctx, &n))
            goto out;
        if (!BN_mod_add(r, e, n.x1, order, ctx) || !BN_add(t, r, n.k))
            goto out;
        if (BN_is_zero(r) || BN_cmp(t, order) == 0)
            continue;   /* about 2^-255: another nonce */
        if (!BN_mod_mul(t, r, p->d, order, ctx) || !BN_mod_sub(t, n.k, t, order, ctx) ||
            !BN_mod_mul(s, p->inv_1_plus_d, t, order, ctx))
            goto out;
        if (!BN_is_zero(s))
            break;
    }
    if (!ECDSA_SIG_set0(sig, r, s))
        goto out;
    r = s = NULL;   /* sig's now */
    derlen = i2d_ECDSA_SIG(sig, NULL);
    if (derlen <= 0 || derlen > (int)sizeof der || i2d_ECDSA_SIG(sig, &der_end) != derlen ||
        crypto_b64(der, (size_t)derlen, out, cap) < 0)
        goto out;
    rc = 0;
out:
    nonce_wipe(&n);
    BN_CTX_free(ctx);
    BN_free(e);
    BN_clear_free(t);   /* k - r d */
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md);
    return rc;
}

void presign_stats(struct presign *p, struct presign_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->stats;
    out->ready = (unsigned long)p->count;
    pthread_mutex_unlock(&p->lock);
}

void presign_free(struct presign *p)
{
    pid_t owner;
    bool forked;
    int i;

    if (!p)
        return;
    owner = atomic_load(&p->owner);
    forked = owner && owner != getpid();   /* a child of fork(): the thread is the parent's */
    if (p->started && !forked) {
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_signal(&p->room);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    for (i = 0; i < p->count; i++)
        nonce_wipe(&p->pool[i]);
    BN_clear_free(p->d);
    BN_clear_free(p->inv_1_plus_d);
    EC_GROUP_free(p->group);
    EVP_MD_free(p->sm3);
    if (!forked) {   /* the child's copy may still count the parent's thread as a waiter:
                      * glibc's destroy would wait for it forever */
        pthread_cond_destroy(&p->room);
        pthread_mutex_destroy(&p->lock);
    }
    free(p);
}
