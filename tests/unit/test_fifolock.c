/*
 * test_fifolock.c — engine/fifolock.c: waiters get the lock in the order
 * they asked for it, and it still excludes under contention.
 */
#include <pthread.h>
#include <sched.h>
#include "engine/fifolock.h"
#include "tests/unit/unit.h"

#define WAITERS 100               /* more than FIFO_LOCK_SLOTS: shared slots too */
#define ROUNDS 5000

static struct fifo_lock lock;
static int order[WAITERS], served;
static long counter;

static uint64_t tickets_taken(void)
{
    uint64_t n;
    pthread_mutex_lock(&lock.mutex);
    n = lock.next_ticket;
    pthread_mutex_unlock(&lock.mutex);
    return n;
}

static void *wait_turn(void *arg)
{
    fifo_lock_acquire(&lock);
    order[served++] = (int)(long)arg;
    fifo_lock_release(&lock);
    return NULL;
}

static void *add_many(void *arg)
{
    int i;
    (void)arg;
    for (i = 0; i < ROUNDS; i++) {
        fifo_lock_acquire(&lock);
        counter++;                /* not atomic: only the lock keeps this exact */
        fifo_lock_release(&lock);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[WAITERS];
    int i, in_order = 1;

    fifo_lock_init(&lock);
    /* Hold the lock, then let waiters queue one at a time: each must have
     * taken its ticket before the next one starts. */
    fifo_lock_acquire(&lock);
    for (i = 0; i < WAITERS; i++) {
        pthread_create(&t[i], NULL, wait_turn, (void *)(long)i);
        while (tickets_taken() < (uint64_t)i + 2)
            sched_yield();
    }
    fifo_lock_release(&lock);
    for (i = 0; i < WAITERS; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(served, WAITERS);
    for (i = 0; i < WAITERS; i++)
        if (order[i] != i)
            in_order = 0;
    CHECK(in_order, "%d waiters served in arrival order", WAITERS);

    for (i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, add_many, NULL);
    for (i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(counter, 8L * ROUNDS);
    CHECK_INT(lock.now_serving, lock.next_ticket);
    fifo_lock_destroy(&lock);
    return unit_done();
}
