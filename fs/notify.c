/*
 * notify.c — the invalidation thread; see notify.h.
 *
 * A ring of pending notifications protected by a mutex.  Order does not
 * matter between entries (each is idempotent), so when the ring is full a
 * new entry replaces nothing: it is turned into an inval_inode of its
 * parent, which the ring keeps in a small always-present set.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "fs/notify.h"

#define NOTIFY_RING 1024
#define NOTIFY_NAME_MAX 256

enum notify_kind { N_ENTRY, N_GONE, N_INODE };

struct notification {
    enum notify_kind kind;
    uint64_t parent, ino;
    char name[NOTIFY_NAME_MAX];
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

static void push(enum notify_kind kind, uint64_t parent, uint64_t ino, const char *name)
{
    struct notification *n;
    unsigned i;

    pthread_mutex_lock(&nq.lock);
    if (!nq.running) {
        pthread_mutex_unlock(&nq.lock);
        return;
    }
    if (nq.count == NOTIFY_RING) {
        uint64_t dir = kind == N_INODE ? ino : parent;
        for (i = 0; i < nq.noverflow && nq.overflow[i] != dir; i++)
            ;
        if (i == nq.noverflow && nq.noverflow < sizeof nq.overflow / sizeof nq.overflow[0])
            nq.overflow[nq.noverflow++] = dir;
    } else {
        n = &nq.ring[(nq.head + nq.count++) % NOTIFY_RING];
        n->kind = kind;
        n->parent = parent;
        n->ino = ino;
        strncpy(n->name, name ? name : "", sizeof n->name - 1);
        n->name[sizeof n->name - 1] = 0;
    }
    pthread_cond_signal(&nq.cond);
    pthread_mutex_unlock(&nq.lock);
}

void notify_entry(uint64_t parent, const char *name) { push(N_ENTRY, parent, 0, name); }
void notify_gone(uint64_t parent, uint64_t ino, const char *name) { push(N_GONE, parent, ino, name); }
void notify_inode(uint64_t ino) { push(N_INODE, 0, ino, NULL); }

static void send(struct fuse_session *se, const struct notification *n)
{
    /* ENOENT: the kernel had nothing cached, which is fine */
    switch (n->kind) {
    case N_ENTRY:
        fuse_lowlevel_notify_inval_entry(se, n->parent, n->name, strlen(n->name));
        break;
    case N_GONE:
        if (fuse_lowlevel_notify_delete(se, n->parent, n->ino, n->name, strlen(n->name)) ==
            -ENOSYS)
            fuse_lowlevel_notify_inval_entry(se, n->parent, n->name, strlen(n->name));
        break;
    case N_INODE:
        fuse_lowlevel_notify_inval_inode(se, n->ino, 0, 0);
        break;
    }
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
            n = (struct notification){ .kind = N_INODE, .ino = nq.overflow[--nq.noverflow] };
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
