/* err.c — internal errors to errno and to words; see err.h. */
#include <errno.h>
#include "engine/err.h"

static const struct { int err; const char *text; } fa_err_table[FA_ERR_COUNT] = {
    [FA_OK]                = { 0,       "ok" },
    [FA_REJECTED]          = { EINVAL,  "draft rejected" },
    [FA_NOMEM]             = { ENOMEM,  "out of memory" },
    [FA_IO]                = { EIO,     "input/output error" },
    [FA_NOSPC]             = { ENOSPC,  "no space left on disk (the store's or the device state's volume)" },
    [FA_NOTFOUND]          = { ENOENT,  "not found" },
    [FA_EXISTS]            = { EEXIST,  "already exists" },
    [FA_TOOBIG]            = { EFBIG,   "draft larger than 1 MiB" },
    [FA_PERM]              = { EPERM,   "operation not permitted" },
    [FA_ROFS]              = { EROFS,   "issued invoices are immutable" },
    [FA_BUSY]              = { EBUSY,   "busy" },
    [FA_INVAL]             = { EINVAL,  "invalid argument" },
    [FA_DEV_LOCKED]        = { EAGAIN,  "device locked" },
    [FA_DEV_LIMIT]         = { EINVAL,  "above the device's per-invoice limit" },
    [FA_DEV_OFFLINE_LIMIT] = { EAGAIN,  "offline limit reached" },
    [FA_DEV_OFFLINE_NEVER] = { EINVAL,  "above the device's offline amount on its own" },
    [FA_DEV_ROLL_EMPTY]    = { EAGAIN,  "invoice roll exhausted" },
    [FA_DEV_PIN]           = { EACCES,  "device refused the PIN" },
    [FA_DEV_ABSENT]        = { ENODEV,  "device absent" },
    [FA_DEV_IO]            = { EIO,     "device failure" },
    [FA_PLATFORM_DOWN]     = { EAGAIN,  "platform unreachable" },
    [FA_PLATFORM_REFUSED]  = { EPERM,   "platform refused" },
    [FA_WAIT_BEHIND]       = { EAGAIN,  "behind an earlier waiting draft" },
};

int fa_err_errno(enum fa_err e)
{
    if (e < 0 || e >= FA_ERR_COUNT)
        return EIO;
    return fa_err_table[e].err;
}

const char *fa_err_str(enum fa_err e)
{
    if (e < 0 || e >= FA_ERR_COUNT)
        return "unknown error";
    return fa_err_table[e].text;
}

int fa_err_is_wait(enum fa_err e)
{
    return e == FA_DEV_LOCKED || e == FA_DEV_OFFLINE_LIMIT || e == FA_DEV_ROLL_EMPTY ||
           e == FA_DEV_PIN || e == FA_DEV_ABSENT || e == FA_WAIT_BEHIND;
}
