/*
 * prefill.h — an invoice's bytes put in the kernel's page cache when it is
 * opened, so that reading it sends no READ.
 *
 * A backup reads every invoice once, cold.  Each costs a LOOKUP, an OPEN, a
 * READ and a RELEASE, and for tar, cp and rsync, which fstat after reading,
 * a GETATTR too: a READ marks the file's atime stale in the kernel
 * (fuse_invalidate_atime, skipped only on a read-only mount), so day-long
 * attribute timeouts do not spare it.  Each request wakes a daemon thread
 * and then the reader, dear on a VM (docs/BENCHMARKS.md).  The daemon reads
 * the invoice at OPEN anyway; handing the kernel its bytes there
 * (notify_store) before the answer leaves every page uptodate, and the
 * reader sends nothing more until RELEASE.
 *
 * A store waits for the lock of each page it fills, and a page being read
 * stays locked until its READ is answered: a store that waited for such a
 * page from inside a handler could wait for ever if the daemon were killed
 * meanwhile (notify.h).  So the bytes are stored only while no other handle
 * of that invoice is open: a READ needs an open file, and its RELEASE comes
 * after its last read.  The count and the store are under one lock, so no
 * handle appears during a store.  A second reader of an open invoice reads
 * as before.
 *
 * Each invoice is stored once per mount, until the kernel forgets its inode
 * (FORGET: its pages go with it).  Pages reclaimed while the inode stays are
 * read back with READ, as before.
 */
#ifndef FAPIAO_FS_PREFILL_H
#define FAPIAO_FS_PREFILL_H

#include <stddef.h>
#include <stdint.h>

#define PREFILL_MAX (128 * 1024)   /* larger invoices are read as usual */

/* An invoice handle is being given out for inode ino (invoice id), whose
 * bytes are buf[0..len): len is its exact size.  Counts the handle; stores
 * the bytes if no other handle of it is open and they were not stored
 * since the kernel last forgot the inode.  Call prefill_closed(id) once for
 * each call, when the handle is released. */
void prefill_opened(uint64_t ino, uint64_t id, const void *buf, size_t len);
void prefill_closed(uint64_t id);

/* The kernel forgot invoice id's inode, and its pages with it. */
void prefill_forget(uint64_t id);

/* Frees the record of stored invoices (at unmount, after the last handle). */
void prefill_free(void);

#endif
