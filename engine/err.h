/*
 * err.h — the internal error space.
 *
 * Engine, store and device code return `enum fa_err`; only the FUSE boundary
 * (fs/) turns it into an errno (fa_err_errno), and only there.  This keeps
 * the reason for a failure ("device locked", "roll exhausted") intact all the
 * way up to the place that has to explain it to a user.
 */
#ifndef FAPIAO_ERR_H
#define FAPIAO_ERR_H

enum fa_err {
    FA_OK = 0,
    FA_REJECTED,          /* the draft is invalid: EINVAL */
    FA_NOMEM,
    FA_IO,                /* store or file I/O failed: EIO */
    FA_NOSPC,             /* disk full: ENOSPC */
    FA_NOTFOUND,          /* ENOENT */
    FA_EXISTS,            /* EEXIST */
    FA_TOOBIG,            /* EFBIG */
    FA_PERM,              /* EPERM */
    FA_ROFS,              /* EROFS */
    FA_BUSY,              /* EBUSY */
    FA_INVAL,             /* bad argument or command: EINVAL */
    /* the device refused; a draft then waits in pending/ */
    FA_DEV_LOCKED,        /* lock date passed, period not cleared */
    FA_DEV_LIMIT,         /* per-invoice limit */
    FA_DEV_OFFLINE_LIMIT, /* offline hours or amount reached */
    FA_DEV_ROLL_EMPTY,    /* no numbers left for that type */
    FA_DEV_PIN,           /* PIN refused or device PIN-locked: EACCES */
    FA_DEV_ABSENT,        /* ENODEV */
    FA_DEV_IO,            /* device failure: EIO */
    /* the platform */
    FA_PLATFORM_DOWN,     /* unreachable: EAGAIN */
    FA_PLATFORM_REFUSED,  /* EPERM */
    /* a draft waits behind an earlier one that waits: arrival order */
    FA_WAIT_BEHIND,
    /* alone above the device's offline amount: never issuable, EINVAL */
    FA_DEV_OFFLINE_NEVER,
    FA_ERR_COUNT
};

/* errno for the FUSE boundary. */
int fa_err_errno(enum fa_err e);
/* Short English phrase, e.g. "device locked". */
const char *fa_err_str(enum fa_err e);
/* True for device refusals after which a draft waits rather than fails. */
int fa_err_is_wait(enum fa_err e);

#endif
