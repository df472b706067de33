/*
 * prefill.c — invoice bytes into the page cache at OPEN; see prefill.h.
 *
 * The record of stored invoices is a bitmap indexed by invoice id (ids are
 * dense from 1): 125 KB for a million invoices, 16 MB at most (PREFILL_IDS,
 * within SPEC §7's 100 MiB).  Ids above it are stored at every open rather
 * than recorded.
 *
 * Open handles are counted per bucket of ids, not per id: a bucket at zero
 * means no handle of any of its invoices is open; a bucket shared with
 * another open invoice only costs a store.  Not one count for all: RELEASE
 * is sent after close() returns, so tar's open of the next file often comes
 * before the previous file's RELEASE, and would find a handle open.
 */
#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include "fs/notify.h"
#include "fs/prefill.h"

#define PREFILL_IDS (UINT64_C(1) << 27)
#define BUCKETS 1024

static struct {
    pthread_mutex_t lock;
    unsigned long open[BUCKETS];   /* handles given out and not released, by id % BUCKETS */
    uint64_t *stored;              /* bit id: stored since the kernel last forgot it */
    uint64_t words;
} prefill = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Lock held. */
static bool is_stored(uint64_t id)
{
    return id / 64 < prefill.words && (prefill.stored[id / 64] >> (id % 64) & 1);
}

/* Lock held.  On no memory the invoice just is not recorded. */
static void set_stored(uint64_t id)
{
    if (id >= PREFILL_IDS)
        return;
    if (id / 64 >= prefill.words) {
        uint64_t words = prefill.words ? prefill.words : 1024;
        uint64_t *grown;
        while (words <= id / 64)
            words *= 2;
        grown = realloc(prefill.stored, words * sizeof *grown);
        if (!grown)
            return;
        for (uint64_t w = prefill.words; w < words; w++)
            grown[w] = 0;
        prefill.stored = grown;
        prefill.words = words;
    }
    prefill.stored[id / 64] |= UINT64_C(1) << (id % 64);
}

void prefill_opened(uint64_t ino, uint64_t id, const void *buf, size_t len)
{
    unsigned long *open = &prefill.open[id % BUCKETS];

    pthread_mutex_lock(&prefill.lock);
    if (*open == 0 && len > 0 && len <= PREFILL_MAX && !is_stored(id) &&
        notify_store(ino, buf, len) == 0)
        set_stored(id);
    (*open)++;
    pthread_mutex_unlock(&prefill.lock);
}

void prefill_closed(uint64_t id)
{
    unsigned long *open = &prefill.open[id % BUCKETS];

    pthread_mutex_lock(&prefill.lock);
    assert(*open > 0);
    (*open)--;
    pthread_mutex_unlock(&prefill.lock);
}

void prefill_forget(uint64_t id)
{
    pthread_mutex_lock(&prefill.lock);
    if (id / 64 < prefill.words)
        prefill.stored[id / 64] &= ~(UINT64_C(1) << (id % 64));
    pthread_mutex_unlock(&prefill.lock);
}

void prefill_free(void)
{
    pthread_mutex_lock(&prefill.lock);
    free(prefill.stored);
    prefill.stored = NULL;
    prefill.words = 0;
    pthread_mutex_unlock(&prefill.lock);
}
