/*
 * fifolock.h — a mutex that is handed over in arrival order.
 *
 * The engine issues one batch at a time through the device.  A plain
 * pthread mutex lets a thread that just released it take it again before
 * the threads already waiting wake up, so with eight writers some close()
 * calls waited for many more turns than eight: the 99th percentile of the
 * close latency grew with the unfairness, not with the work.  A ticket lock
 * makes the wait at most one turn per writer ahead.  The price is a wake-up
 * per hand-over, which the device's two syncs per invoice dwarf.  Since group
 * commit the writers queue in engine.c and only the leader of a batch, the
 * reconciliation and the status readers take this lock.
 */
#ifndef FAPIAO_FIFOLOCK_H
#define FAPIAO_FIFOLOCK_H

#include <pthread.h>
#include <stdint.h>

#define FIFO_LOCK_SLOTS 64        /* waiters with tickets 64 apart share a wake-up */

struct fifo_lock {
    pthread_mutex_t mutex;        /* guards the two counters */
    uint64_t next_ticket;         /* the ticket the next arrival takes */
    uint64_t now_serving;         /* the ticket that holds the lock */
    pthread_cond_t turn[FIFO_LOCK_SLOTS];
};

void fifo_lock_init(struct fifo_lock *l);
void fifo_lock_destroy(struct fifo_lock *l);
void fifo_lock_acquire(struct fifo_lock *l);
void fifo_lock_release(struct fifo_lock *l);

#endif
