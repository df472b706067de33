/*
 * fifolock.c — a ticket lock over a mutex and condition variables; see
 * fifolock.h for why.  A waiter sleeps on the condition variable of its
 * ticket's slot, so a hand-over wakes the next ticket's thread (and, with
 * more than FIFO_LOCK_SLOTS waiters, the few that share its slot), not
 * every waiter.
 */
#include <assert.h>
#include "engine/fifolock.h"

void fifo_lock_init(struct fifo_lock *l)
{
    int i;

    pthread_mutex_init(&l->mutex, NULL);
    l->next_ticket = l->now_serving = 0;
    for (i = 0; i < FIFO_LOCK_SLOTS; i++)
        pthread_cond_init(&l->turn[i], NULL);
}

void fifo_lock_destroy(struct fifo_lock *l)
{
    int i;

    assert(l->next_ticket == l->now_serving);   /* nobody holds or waits */
    for (i = 0; i < FIFO_LOCK_SLOTS; i++)
        pthread_cond_destroy(&l->turn[i]);
    pthread_mutex_destroy(&l->mutex);
}

void fifo_lock_acquire(struct fifo_lock *l)
{
    uint64_t ticket;

    pthread_mutex_lock(&l->mutex);
    ticket = l->next_ticket++;
    while (ticket != l->now_serving)
        pthread_cond_wait(&l->turn[ticket % FIFO_LOCK_SLOTS], &l->mutex);
    pthread_mutex_unlock(&l->mutex);
}

void fifo_lock_release(struct fifo_lock *l)
{
    pthread_mutex_lock(&l->mutex);
    assert(l->now_serving < l->next_ticket);    /* held */
    l->now_serving++;
    pthread_cond_broadcast(&l->turn[l->now_serving % FIFO_LOCK_SLOTS]);
    pthread_mutex_unlock(&l->mutex);
}
