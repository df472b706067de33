/*
 * notify.c — the invalidation thread; see notify.h.
 *
 * A ring of pending inode invalidations protected by a mutex.  Order does
 * not matter between them (each is idempotent), so when the ring is full a
 * new one goes into a small always-present set instead.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "fs/notify.h"

#define NOTIFY_RING 1024

struct notification {
    uint64_t ino;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool running, stopping;
    struct fuse_session *se;
    struct notification ring[NOTIFY_RING];
    unsigned head, count;
    /* overflow: directories whose whole contents must be invalidated */
    uint64_t overflow[16];
    unsigned noverflow;
} nq = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

void notify_inode(uint64_t ino)
{
    struct notification *n;
    unsigned i;

    pthread_mutex_lock(&nq.lock);
    if (!nq.running) {
        pthread_mutex_unlock(&nq.lock);
        return;
    }
    if (nq.count == NOTIFY_RING) {
        for (i = 0; i < nq.noverflow && nq.overflow[i] != ino; i++)
            ;
        if (i == nq.noverflow && nq.noverflow < sizeof nq.overflow / sizeof nq.overflow[0])
            nq.overflow[nq.noverflow++] = ino;
    } else {
        n = &nq.ring[(nq.head + nq.count++) % NOTIFY_RING];
        n->ino = ino;
    }
    pthread_cond_signal(&nq.cond);
    pthread_mutex_unlock(&nq.lock);
}

static void send(struct fuse_session *se, const struct notification *n)
{
    /* Attributes only (offset -1): no page of ours changes in place (new
     * content gets a new inode), and invalidating pages would wait for the
     * lock of a page a reader is filling — the same kill -9 hazard as names.
     * ENOENT: the kernel had nothing cached, which is fine. */
    fuse_lowlevel_notify_inval_inode(se, n->ino, -1, 0);
}

static void *notify_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&nq.lock);
    for (;;) {
        struct notification n;
        while (!nq.count && !nq.noverflow && !nq.stopping)
            pthread_cond_wait(&nq.cond, &nq.lock);
        if (nq.stopping)
            break;
        if (nq.count) {
            n = nq.ring[nq.head];
            nq.head = (nq.head + 1) % NOTIFY_RING;
            nq.count--;
        } else {
            n = (struct notification){ .ino = nq.overflow[--nq.noverflow] };
        }
        pthread_mutex_unlock(&nq.lock);
        send(nq.se, &n);
        pthread_mutex_lock(&nq.lock);
    }
    pthread_mutex_unlock(&nq.lock);
    return NULL;
}

int notify_start(struct fuse_session *se)
{
    int rc;
    nq.se = se;
    nq.running = true;
    rc = pthread_create(&nq.thread, NULL, notify_main, NULL);
    if (rc)
        nq.running = false;
    else
        pthread_setname_np(nq.thread, "fapiaofs-notify");   /* for top -H, perf */
    return rc;
}

void notify_stop(void)
{
    pthread_mutex_lock(&nq.lock);
    if (!nq.running) {
        pthread_mutex_unlock(&nq.lock);
        return;
    }
    nq.stopping = true;
    pthread_cond_signal(&nq.cond);
    pthread_mutex_unlock(&nq.lock);
    pthread_join(nq.thread, NULL);
    nq.running = false;
}
