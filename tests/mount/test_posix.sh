# POSIX system-call checks on the mounted tree, in the spirit of libfuse's test/test_syscalls.c
# (written anew, not copied), restricted to what applies to fapiaofs (SPEC §2):
#   - the writable side: scratch files in pending/ (names like t.json.tmp that are never processed):
#     create/O_EXCL, write, pread/pwrite, lseek, ftruncate/truncate, O_TRUNC, O_APPEND, holes,
#     fsync, rename (plain, over a file, RENAME_NOREPLACE), unlink of an open file, utimensat,
#     chmod, chown, long names;
#   - the error side: ENOENT, ENOTDIR, EISDIR, rmdir of pending/, chown to another uid;
#   - the read-only side: issued invoices (pread, mmap, no writing), README and status;
#   - the folders (readdir, ".", "..", st_nlink) and statvfs.
# The calls are made from Python's os module; each errno is printed by name.
source "$(dirname "$0")/lib.sh"
t_setup posix

# Three invoices to read: the example with distinct request_ids.
for i in 1 2 3; do
  sed "s/SO-2024-000123/SO-POSIX-00000$i/" "$ROOT/examples/basic.json" > "$T/inv-$i.json"
  check "issue invoice $i (cp into pending/)" cp "$T/inv-$i.json" "$MNT/pending/inv-$i.json"
done

MNT=$MNT T=$T python3 - <<'PY' || T_FAILED=1
import ctypes, errno, json, mmap, os, subprocess, sys, time

MNT = os.environ["MNT"]
P = os.path.join(MNT, "pending")
failed = False


def en(e):
    return errno.errorcode.get(e, str(e))


def ok(cond, desc):
    global failed
    print(("ok - " if cond else "not ok - ") + desc)
    if not cond:
        failed = True
    return cond


def call(desc, fn, *args, **kw):
    """fn must succeed; returns its result (None on failure)."""
    try:
        r = fn(*args, **kw)
    except OSError as e:
        ok(False, "%s: failed with %s" % (desc, en(e.errno)))
        return None
    ok(True, desc)
    return r


def fails(desc, want, fn, *args, **kw):
    """fn must fail with one of the errnos in want; returns the errno got."""
    want = want if isinstance(want, tuple) else (want,)
    names = "/".join(en(w) for w in want)
    try:
        fn(*args, **kw)
    except OSError as e:
        ok(e.errno in want, "%s: %s (want %s)" % (desc, en(e.errno), names))
        return e.errno
    ok(False, "%s: succeeded (want %s)" % (desc, names))
    return 0


def eq(desc, got, want):
    if not ok(got == want, desc):
        print("#   got  %r\n#   want %r" % (got, want))


def fsize(fd):
    try:
        return os.fstat(fd).st_size
    except OSError as e:
        return "fstat failed: " + en(e.errno)


def content(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        return "read failed: " + en(e.errno)


def pread_all(fd, n=1 << 20):
    try:
        return os.pread(fd, n, 0)
    except OSError as e:
        return "pread failed: " + en(e.errno)


def gone(path):
    try:
        os.stat(path)
        return False
    except FileNotFoundError:
        return True


# ---- create, write, read, seek, truncate ------------------------------------------------------
t = os.path.join(P, "t.json.tmp")
fd = call("open O_CREAT|O_EXCL|O_RDWR of a new scratch file", os.open, t,
          os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
fails("open O_CREAT|O_EXCL of the same name again", errno.EEXIST, os.open, t,
      os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
if fd is not None:
    eq("fstat size of a new file is 0", fsize(fd), 0)
    eq("write returns the byte count", call("write", os.write, fd, b"hello world"), 11)
    eq("fstat size after write", fsize(fd), 11)
    eq("lseek SEEK_CUR 0 after write is the end", os.lseek(fd, 0, os.SEEK_CUR), 11)
    eq("pwrite at offset 0", call("pwrite at 0", os.pwrite, fd, b"HELLO", 0), 5)
    eq("fstat size after overwriting pwrite unchanged", fsize(fd), 11)
    eq("pwrite does not move the offset", os.lseek(fd, 0, os.SEEK_CUR), 11)
    eq("pwrite at offset 6", call("pwrite at 6", os.pwrite, fd, b"WORLD", 6), 5)
    eq("pread at offset 0", os.pread(fd, 5, 0), b"HELLO")
    eq("pread at offset 6", os.pread(fd, 100, 6), b"WORLD")
    eq("pread at offset 3 of 4 bytes", os.pread(fd, 4, 3), b"LO W")
    eq("pread at the end reads nothing", os.pread(fd, 10, 11), b"")
    eq("pread past the end reads nothing", os.pread(fd, 10, 500), b"")
    eq("lseek SEEK_SET 0", os.lseek(fd, 0, os.SEEK_SET), 0)
    eq("read after SEEK_SET", os.read(fd, 5), b"HELLO")
    eq("lseek SEEK_CUR +1", os.lseek(fd, 1, os.SEEK_CUR), 6)
    eq("read after SEEK_CUR", os.read(fd, 100), b"WORLD")
    eq("lseek SEEK_END 0", os.lseek(fd, 0, os.SEEK_END), 11)
    eq("lseek SEEK_END -5", os.lseek(fd, -5, os.SEEK_END), 6)
    eq("read after SEEK_END -5", os.read(fd, 100), b"WORLD")
    os.lseek(fd, 0, os.SEEK_END)
    eq("write at the end after SEEK_END", os.write(fd, b"!!"), 2)
    eq("fstat size after appending write", fsize(fd), 13)
    eq("whole file", pread_all(fd), b"HELLO WORLD!!")
    call("ftruncate to 5 (smaller)", os.ftruncate, fd, 5)
    eq("fstat size after ftruncate 5", fsize(fd), 5)
    eq("read back after ftruncate 5", pread_all(fd), b"HELLO")
    call("ftruncate to 10 (larger)", os.ftruncate, fd, 10)
    eq("fstat size after ftruncate 10", fsize(fd), 10)
    eq("ftruncate larger reads back zeros", pread_all(fd), b"HELLO" + b"\0" * 5)
    call("truncate by path to 3", os.truncate, t, 3)
    eq("stat size after truncate by path", os.stat(t).st_size, 3)
    eq("fstat size after truncate by path", fsize(fd), 3)
    eq("read back after truncate by path", pread_all(fd), b"HEL")
    eq("pwrite past the end (a hole)", os.pwrite(fd, b"X", 100), 1)
    eq("fstat size after the hole", fsize(fd), 101)
    eq("the hole reads back as zeros", pread_all(fd), b"HEL" + b"\0" * 97 + b"X")
    call("fsync", os.fsync, fd)
    call("fdatasync", os.fdatasync, fd)
    call("close", os.close, fd)
eq("content after close", content(t), b"HEL" + b"\0" * 97 + b"X")

fd = call("open O_WRONLY|O_TRUNC of an existing scratch file", os.open, t, os.O_WRONLY | os.O_TRUNC)
if fd is not None:
    eq("fstat size after O_TRUNC", fsize(fd), 0)
    eq("stat size after O_TRUNC", os.stat(t).st_size, 0)
    os.write(fd, b"abc")
    call("close after O_TRUNC and write", os.close, fd)
eq("content after O_TRUNC and write", content(t), b"abc")

fd = call("open O_WRONLY|O_APPEND", os.open, t, os.O_WRONLY | os.O_APPEND)
if fd is not None:
    os.lseek(fd, 0, os.SEEK_SET)
    eq("O_APPEND write after lseek 0", os.write(fd, b"def"), 3)
    eq("O_APPEND: offset is the new end", os.lseek(fd, 0, os.SEEK_CUR), 6)
    os.lseek(fd, 1, os.SEEK_SET)
    os.write(fd, b"ghi")
    eq("fstat size after O_APPEND writes", fsize(fd), 9)
    call("close after O_APPEND", os.close, fd)
eq("O_APPEND writes went to the end, even after lseek", content(t), b"abcdefghi")
fd = call("open O_CREAT|O_APPEND|O_RDWR of an existing file", os.open, t,
          os.O_CREAT | os.O_APPEND | os.O_RDWR, 0o644)
if fd is not None:
    os.write(fd, b"j")
    eq("O_CREAT without O_EXCL keeps the content; append at the end", pread_all(fd), b"abcdefghij")
    os.close(fd)

# ---- errors --------------------------------------------------------------------------------------
fails("open of a missing file", errno.ENOENT, os.open, os.path.join(P, "missing.tmp"), os.O_RDONLY)
fails("open O_DIRECTORY of a file", errno.ENOTDIR, os.open, t, os.O_RDONLY | os.O_DIRECTORY)
fails("open of a directory (pending/) O_WRONLY", errno.EISDIR, os.open, P, os.O_WRONLY)
fails("open of a directory (pending/) O_RDWR", errno.EISDIR, os.open, P, os.O_RDWR)
dfd = call("open of a directory O_RDONLY", os.open, P, os.O_RDONLY)
if dfd is not None:
    fails("read of a directory fd", errno.EISDIR, os.read, dfd, 100)
    os.close(dfd)
e = fails("rmdir of pending/", (errno.EPERM, errno.EBUSY, errno.EACCES), os.rmdir, P)
print("# rmdir pending/ gives %s" % en(e))
fails("rmdir of a scratch file", errno.ENOTDIR, os.rmdir, t)
fails("unlink of a missing name", errno.ENOENT, os.unlink, os.path.join(P, "missing.tmp"))
fails("unlink of a directory (pending/)", (errno.EISDIR, errno.EPERM), os.unlink, P)
fails("mkdir in pending/", errno.EPERM, os.mkdir, os.path.join(P, "d"))
fails("symlink in pending/", errno.EPERM, os.symlink, "t.json.tmp", os.path.join(P, "l.tmp"))
fails("link in pending/", errno.EPERM, os.link, t, os.path.join(P, "h.tmp"))
fails("mknod (fifo) in pending/", errno.EPERM, os.mkfifo, os.path.join(P, "f.tmp"))
fails("stat of a name under a file", errno.ENOTDIR, os.stat, t + "/x")

# ---- rename ------------------------------------------------------------------------------------
a, b, c, d = (os.path.join(P, n) for n in ("a.json.tmp", "b.json.tmp", "c.json.part", "d.json.part"))
with open(a, "wb") as f:
    f.write(b"bytes of a")
ino_a = os.stat(a).st_ino
call("rename scratch to a new scratch name", os.rename, a, b)
ok(gone(a), "rename: the old name is gone")
eq("rename: the new name has the bytes", content(b), b"bytes of a")
eq("rename: same st_ino", os.stat(b).st_ino, ino_a)
with open(c, "wb") as f:
    f.write(b"other content")
call("rename over an existing scratch file", os.rename, b, c)
ok(gone(b), "rename over: the old name is gone")
eq("rename over: the target is replaced", content(c), b"bytes of a")
eq("rename over: the target has the source's st_ino", os.stat(c).st_ino, ino_a)
eq("rename over: one entry left", sorted(n for n in os.listdir(P) if n[0] in "abc"), ["c.json.part"])
try:
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = libc.renameat2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
except (OSError, AttributeError):
    renameat2 = None
if renameat2 is None:
    print("ok - # SKIP renameat2 not available through ctypes")
else:
    AT_FDCWD, RENAME_NOREPLACE, RENAME_EXCHANGE = -100, 1, 2

    def rename2(src, dst, flags):
        if renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    with open(d, "wb") as f:
        f.write(b"d stays")
    fails("renameat2 RENAME_NOREPLACE over an existing file", errno.EEXIST, rename2, c, d,
          RENAME_NOREPLACE)
    eq("RENAME_NOREPLACE: the source is untouched", content(c), b"bytes of a")
    eq("RENAME_NOREPLACE: the target is untouched", content(d), b"d stays")
    call("renameat2 RENAME_NOREPLACE to a free name", rename2, d, b, RENAME_NOREPLACE)
    eq("RENAME_NOREPLACE to a free name moved the bytes", content(b), b"d stays")
    ok(gone(d), "RENAME_NOREPLACE to a free name: the old name is gone")
    os.unlink(b)
fails("rename of a missing file", errno.ENOENT, os.rename, os.path.join(P, "missing.tmp"), b)
os.unlink(c)

# ---- unlink of an open file ------------------------------------------------------------------
u = os.path.join(P, "u.json.tmp")
fd = os.open(u, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
os.write(fd, b"still here")
call("unlink of an open file", os.unlink, u)
ok(gone(u), "unlinked name is gone from stat")
ok("u.json.tmp" not in os.listdir(P), "unlinked name is gone from readdir")
try:
    got = os.pread(fd, 100, 0)
except OSError as e:
    got = "pread failed: " + en(e.errno)
eq("the open descriptor still reads the bytes after unlink", got, b"still here")
try:
    st = os.fstat(fd)
    ok(True, "fstat of the unlinked open file works")
    eq("fstat size of the unlinked open file", st.st_size, 10)
except OSError as e:
    ok(False, "fstat of the unlinked open file: failed with %s (POSIX: works until close)" % en(e.errno))
call("close of the unlinked file", os.close, fd)

# ---- times, mode, owner -----------------------------------------------------------------------
st = os.stat(t)
call("utime with explicit times", os.utime, t, (1000000000, 1000000000))
eq("st_mtime after utime", os.stat(t).st_mtime, 1000000000)
call("utimensat with explicit ns times", os.utime, t, ns=(1200000000 * 10**9, 1300000000 * 10**9))
eq("st_mtime after utimensat", int(os.stat(t).st_mtime), 1300000000)
now = time.time()
call("utimensat with now (times=None)", os.utime, t, None)
ok(abs(os.stat(t).st_mtime - now) < 5, "st_mtime after utime(now) is now")
fd = os.open(t, os.O_RDONLY)
call("futimens on an open descriptor", os.utime, fd, (1100000000, 1100000000))
eq("st_mtime after futimens", os.fstat(fd).st_mtime, 1100000000)
os.close(fd)
call("chmod 0600", os.chmod, t, 0o600)
print("# mode after chmod 0600: %o" % (os.stat(t).st_mode & 0o7777))
call("chown to the same uid/gid", os.chown, t, st.st_uid, st.st_gid)
call("chown -1/-1", os.chown, t, -1, -1)
fails("chown to another uid (as root: the filesystem must refuse)", errno.EPERM, os.chown, t,
      st.st_uid + 1, -1)
fails("chown to another gid", errno.EPERM, os.chown, t, -1, st.st_gid + 1)
eq("owner unchanged after refused chown", (os.stat(t).st_uid, os.stat(t).st_gid), (st.st_uid, st.st_gid))

# ---- folders -----------------------------------------------------------------------------------
s2 = os.path.join(P, "s2.json.tmp")
open(s2, "wb").close()
names = os.listdir(P)
ok("t.json.tmp" in names and "s2.json.tmp" in names, "os.listdir(pending/) shows the scratch files")
eq("scandir inodes equal stat inodes in pending/",
   {e.name: e.inode() for e in os.scandir(P)}, {n: os.stat(os.path.join(P, n)).st_ino for n in names})
eq("readdir of the root lists exactly the tree", sorted(os.listdir(MNT)),
   sorted("README status pending receipts rejected issued reports device platform".split()))
issued = os.path.join(MNT, "issued")
months = sorted(os.listdir(issued))
ok(len(months) >= 1, "issued/ has a month folder")
month = os.path.join(issued, months[0]) if months else issued
for dpath in [MNT] + [os.path.join(MNT, n) for n in
                      "pending receipts rejected issued reports device platform".split()] + [month]:
    nl = os.stat(dpath).st_nlink
    ok(nl >= 2, "st_nlink of %s/ >= 2 (%d)" % (os.path.relpath(dpath, MNT), nl))
for dpath in (MNT, P, month):
    r = subprocess.run(["ls", "-a1", dpath], capture_output=True, text=True)
    lines = r.stdout.split("\n")
    ok(r.returncode == 0 and "." in lines and ".." in lines,
       "'.' and '..' listed by getdents (ls -a) in %s/" % os.path.relpath(dpath, MNT))
ok(os.stat(os.path.join(P, ".")).st_ino == os.stat(P).st_ino, "pending/. is pending/")
ok(os.stat(os.path.join(P, "..")).st_ino == os.stat(MNT).st_ino, "pending/.. is the root")
os.unlink(s2)

# ---- the read-only side ------------------------------------------------------------------------
invs = sorted(os.listdir(month))
eq("three invoices issued", len(invs), 3)
# Only the exact YYYY-MM names a month: "2026-+3" or "2026- 3" were other names for the month
# 2026-03 (sscanf took them), and reports/ the same.  Such names exist for months 01-09 only, so
# in October-December this runs on names that were never aliases.
y, m = (months[0][:4], months[0][5:]) if months else ("2026", "01")
d = m[1] if m[0] == "0" else "1"
print("# month aliases tried against %s-%s" % (y, m))
for alias in ("%s-+%s" % (y, d), "%s- %s" % (y, d), "%s-%s " % (y, m), "+%s-%s" % (y[1:], m)):
    fails("issued/%r is not a month" % alias, errno.ENOENT, os.stat, os.path.join(issued, alias))
    fails("reports/%r.csv is not a report" % alias, errno.ENOENT, os.stat,
          os.path.join(MNT, "reports", alias + ".csv"))
r = json.load(open(os.path.join(MNT, "receipts", "inv-1.json"), encoding="utf-8"))
inv = os.path.join(MNT, r["path"])
with open(inv, "rb") as f:
    whole = f.read()
size = len(whole)
eq("invoice st_size is the bytes read", os.stat(inv).st_size, size)
fd = os.open(inv, os.O_RDONLY)
for off, n in ((0, 1), (0, 100), (1, 17), (100, 300), (size // 2, 4096), (size - 10, 10),
               (size - 1, 100), (size, 10), (size + 1000, 10)):
    eq("invoice pread(%d, %d) is a slice of the whole" % (n, off), os.pread(fd, n, off), whole[off:off + n])
try:
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as m:
        eq("mmap of an invoice equals its bytes", bytes(m[:]), whole)
except OSError as e:
    ok(False, "mmap of an invoice: failed with %s" % en(e.errno))
os.close(fd)
for desc, fl in (("O_WRONLY", os.O_WRONLY), ("O_RDWR", os.O_RDWR), ("O_WRONLY|O_APPEND",
                 os.O_WRONLY | os.O_APPEND), ("O_RDONLY|O_TRUNC", os.O_RDONLY | os.O_TRUNC)):
    fails("open %s of an invoice" % desc, (errno.EROFS, errno.EACCES), os.open, inv, fl)
fails("truncate of an invoice", (errno.EROFS, errno.EPERM), os.truncate, inv, 0)
fails("unlink of an invoice", (errno.EROFS, errno.EPERM), os.unlink, inv)
fails("rename of an invoice", (errno.EROFS, errno.EPERM), os.rename, inv, inv + ".x")
fails("chmod of an invoice", (errno.EROFS, errno.EPERM), os.chmod, inv, 0o644)
fails("utime of an invoice", (errno.EROFS, errno.EPERM), os.utime, inv, (1, 1))
fails("create in issued/YYYY-MM/", (errno.EROFS, errno.EPERM, errno.EACCES), os.open,
      os.path.join(month, "new.json"), os.O_CREAT | os.O_WRONLY, 0o644)
eq("invoice bytes unchanged", content(inv), whole)

for name in ("status", "README"):
    path = os.path.join(MNT, name)
    reads = []
    for _ in range(2):
        fd = os.open(path, os.O_RDONLY)
        data = b""
        while True:
            chunk = os.read(fd, 7)   # small reads: the snapshot must hold across calls
            if not chunk:
                break
            data += chunk
        reads.append((data, os.fstat(fd).st_size))
        os.close(fd)
    ok(reads[0][0] == reads[1][0], "%s read twice in one process gives the same bytes" % name)
    eq("%s: bytes read = fstat size (1st open)" % name, len(reads[0][0]), reads[0][1])
    eq("%s: bytes read = fstat size (2nd open)" % name, len(reads[1][0]), reads[1][1])
    fails("open O_WRONLY of %s" % name, (errno.EACCES, errno.EROFS, errno.EPERM), os.open, path,
          os.O_WRONLY)

# A process that reads status again after a change sees the change at once: its snapshot is
# pinned from its first stat or open until it closes the file (for tar), not for ten seconds.
def status_invoices():
    with open(os.path.join(MNT, "status"), encoding="utf-8") as f:
        return [l for l in f.read().splitlines() if l.startswith("invoices: ")]
before = status_invoices()
body = open(os.path.join(os.environ["T"], "inv-1.json"), encoding="utf-8").read()
with open(os.path.join(P, "inv-4.json"), "w", encoding="utf-8") as f:
    f.write(body.replace("SO-POSIX-000001", "SO-POSIX-STATUS"))
after = status_invoices()
ok(len(before) == 1 and len(after) == 1 and before != after,
   "status read again by the same process shows the invoice issued in between (%s -> %s)"
   % (before, after))

# ---- statvfs -----------------------------------------------------------------------------------
sv = os.statvfs(MNT)
ok(sv.f_bsize > 0, "statvfs f_bsize > 0 (%d)" % sv.f_bsize)
ok(sv.f_blocks > 0, "statvfs f_blocks > 0 (%d)" % sv.f_blocks)
ok(sv.f_namemax >= 255, "statvfs f_namemax >= 255 (%d)" % sv.f_namemax)

# ---- long names ------------------------------------------------------------------------------
n255 = os.path.join(P, "n" * 251 + ".tmp")
n256 = os.path.join(P, "n" * 252 + ".tmp")
fd = call("create a 255-byte scratch name", os.open, n255, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
if fd is not None:
    os.write(fd, b"long")
    os.close(fd)
    eq("the 255-byte name reads back", content(n255), b"long")
    ok(os.path.basename(n255) in os.listdir(P), "the 255-byte name is listed")
    fails("rename of the 255-byte name to a 256-byte name", errno.ENAMETOOLONG, os.rename, n255, n256)
    call("unlink the 255-byte name", os.unlink, n255)
    ok(gone(n255), "the 255-byte name is gone")
fails("create a 256-byte name", errno.ENAMETOOLONG, os.open, n256, os.O_CREAT | os.O_WRONLY, 0o644)
ok(gone(n256), "no 256-byte name left behind")

# ---- clean up ----------------------------------------------------------------------------------
os.unlink(t)
eq("pending/ is empty at the end", os.listdir(P), [])
eq("scratch files were never processed: no receipts but the invoices'",
   sorted(os.listdir(os.path.join(MNT, "receipts"))),
   ["inv-1.json", "inv-2.json", "inv-3.json", "inv-4.json"])
eq("nothing rejected", os.listdir(os.path.join(MNT, "rejected")), [])
sys.exit(1 if failed else 0)
PY
