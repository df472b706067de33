/*
 * inode.h — fapiaofs's identifier spaces.
 *
 * Inode numbers are computed, never allocated: ino = (space << 56) | id.
 * Because every number can be decoded back into (space, id) without a
 * table, the daemon keeps no per-inode memory, lookup counts need no
 * bookkeeping (forget is a no-op), and numbers are stable across remounts
 * wherever the id is a store id:
 *
 *   space  id                               what
 *   0      FIXED_*, below                   the fixed tree: root, README, status, the
 *                                           top-level folders, device/ and platform/ files
 *   1      month index (year*12 + month-1)  issued/YYYY-MM/
 *   2      invoices.id                      issued/YYYY-MM/CODE-NUMBER.json
 *   3      receipts.id                      receipts/NAME
 *   4      rejects.id                       rejected/NAME
 *   5      rejects.id                       rejected/NAME.error
 *   6      pending/ number                  pending/NAME (lives in daemon memory;
 *                                           numbers come from the store in blocks,
 *                                           never twice, and a waiting draft keeps
 *                                           its number in drafts.entry)
 *   7      month index (year*12 + month-1)  reports/YYYY-MM.csv
 *   8      ghosts made in this mount        pending/NAME of a draft issued a moment
 *                                           ago, as its writer sees it (afterglow.h;
 *                                           it lives a second, never past its mount)
 *
 * Store ids are SQLite rowids, far below 2^56.
 */
#ifndef FAPIAO_FS_INODE_H
#define FAPIAO_FS_INODE_H

#include <stdint.h>

enum ino_space {
    SPACE_FIXED = 0,
    SPACE_MONTH = 1,
    SPACE_INVOICE = 2,
    SPACE_RECEIPT = 3,
    SPACE_REJECT_BODY = 4,
    SPACE_REJECT_ERROR = 5,
    SPACE_PENDING = 6,
    SPACE_REPORT = 7,
    SPACE_GHOST = 8,
};

#define INO_SPACE_SHIFT 56
#define INO_ID_MASK ((UINT64_C(1) << INO_SPACE_SHIFT) - 1)

static inline uint64_t ino_make(enum ino_space s, uint64_t id)
{
    return ((uint64_t)s << INO_SPACE_SHIFT) | (id & INO_ID_MASK);
}
static inline enum ino_space ino_space(uint64_t ino) { return (enum ino_space)(ino >> INO_SPACE_SHIFT); }
static inline uint64_t ino_id(uint64_t ino) { return ino & INO_ID_MASK; }

/* The fixed tree (space 0).  FUSE_ROOT_ID is 1. */
enum fixed_node {
    FIXED_ROOT = 1,
    FIXED_README,
    FIXED_STATUS,
    FIXED_PENDING,
    FIXED_RECEIPTS,
    FIXED_REJECTED,
    FIXED_ISSUED,
    FIXED_REPORTS,
    FIXED_DEVICE,
    FIXED_DEVICE_TAG,
    FIXED_DEVICE_INFO,
    FIXED_DEVICE_STATUS,
    FIXED_DEVICE_ROLLS,
    FIXED_PLATFORM,
    FIXED_PLATFORM_TAG,
    FIXED_PLATFORM_STATUS,
    FIXED_DEVICE_LOG,         /* new nodes go last: fixed numbers never move */
    FIXED_DEVICE_CLEAR,
    FIXED_COUNT
};

#endif
