/*
 * upload.h — the background uploader: issued invoices reach the platform
 * (SPEC §6) from the store's persistent queue, in issue order, without ever
 * blocking a FUSE request.
 *
 * One thread.  uploader_kick() wakes it after an invoice is committed; when
 * the platform fails it retries later.  Issuing never waits for it.
 */
#ifndef FAPIAO_UPLOAD_H
#define FAPIAO_UPLOAD_H

#include <stdbool.h>
#include <stdint.h>
#include "engine/config.h"
#include "engine/store.h"

typedef struct uploader uploader_t;

struct platform_status {
    char url[512];
    bool reachable;             /* last call got an HTTP answer */
    int64_t last_contact;       /* 0: never */
    char last_error[256];       /* "" if the last call succeeded */
    int64_t next_retry;         /* 0: nothing scheduled */
    int64_t uploaded;           /* invoices accepted since mount */
};

/* Starts the thread; with an empty platform url it uploads nothing. */
int  uploader_start(store_t *s, const struct config *c, uploader_t **out);
void uploader_kick(uploader_t *u);
void uploader_stop(uploader_t *u);   /* joins the thread and frees u */
void uploader_status(uploader_t *u, struct platform_status *st);

#endif
