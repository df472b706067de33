# Every way a legacy integration drops a draft into pending/ (SPEC §2.1), against a real mount:
# cp, shell redirections, small-chunk writers, O_APPEND, O_TRUNC, scratch names renamed into
# place (.tmp .part .filepart rsync's .NAME.XXXXXX ~x.tmp), mv across filesystems; the result of
# close()/rename() (0, EINVAL) checked as an errno; name reuse; 8 concurrent writers; EFBIG;
# EPERM for mkdir/symlink/link/mknod; rm of a waiting draft (wrong PIN) cancels it; rm in
# receipts/ and rejected/ hides the entry only.
source "$(dirname "$0")/lib.sh"
t_setup drops
P=$MNT/pending
DB=$T/state/fapiaofs.db
sql() { sqlite3 "$DB" "$1"; }

# mkdraft ID: the example draft with request_id ID (distinct ids: no duplicates).
mkdraft() { sed "s/SO-2024-000123/$1/" "$ROOT/examples/basic.json"; }

# Writers and errno probes, in Python: each prints the errno of the failing call (0: success).
cat > "$T/drop.py" <<'PY'
import errno, json, os, sys, time
def err(f, *a):
    try:
        f(*a); return 0
    except OSError as e:
        return e.errno
def chunks(data, n):
    return [data[i:i + n] for i in range(0, len(data), n)]
mode, args = sys.argv[1], sys.argv[2:]
if mode == "close":          # PATH SRC CHUNK: os.open/os.write in CHUNK-byte pieces, os.close
    path, data, n = args[0], open(args[1], "rb").read(), int(args[2])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for c in chunks(data, n):
        assert os.write(fd, c) == len(c)
    print(err(os.close, fd))
elif mode == "fileobj":      # PATH SRC CHUNK: an unbuffered file object
    path, data, n = args[0], open(args[1], "rb").read(), int(args[2])
    f = open(path, "wb", buffering=0)
    for c in chunks(data, n):
        f.write(c)
    print(err(f.close))
elif mode == "append":       # PATH SRC: O_APPEND, two writes
    path, data = args[0], open(args[1], "rb").read()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    h = len(data) // 2
    os.write(fd, data[:h]); os.write(fd, data[h:])
    print(err(os.close, fd))
elif mode == "trunc":        # PATH SRC: open an existing file with O_TRUNC (no O_CREAT), write
    path, data = args[0], open(args[1], "rb").read()
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, data)
    print(err(os.close, fd))
elif mode == "dup":          # PATH SRC: close a dup before writing (must do nothing), report state
    path, data = args[0], open(args[1], "rb").read()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    fd2 = os.dup(fd)
    r = err(os.close, fd2)
    mnt = os.path.dirname(os.path.dirname(path)); name = os.path.basename(path)
    still = os.path.exists(path)
    outcome = os.path.exists(f"{mnt}/receipts/{name}") or os.path.exists(f"{mnt}/rejected/{name}")
    os.write(fd, data)
    print(r, still, outcome, err(os.close, fd))
elif mode == "twofds":       # DIR SRC N: N drafts (no request_id), each written through two
    import threading         # descriptors that two threads close at once; prints the closes' errnos
    d, body, n = args[0], json.load(open(args[1], encoding="utf-8")), int(args[2])
    body.pop("request_id", None)
    data = json.dumps(body, ensure_ascii=False).encode()
    res = []
    for i in range(n):
        path = "%s/two-%02d.json" % (d, i)
        fds = [os.open(path, os.O_WRONLY | os.O_CREAT, 0o644) for _ in range(2)]
        for fd in fds:
            os.pwrite(fd, data, 0)
        go = threading.Barrier(2)
        def close(fd):
            go.wait(); res.append(err(os.close, fd))
        ts = [threading.Thread(target=close, args=(fd,)) for fd in fds]
        for t in ts: t.start()
        for t in ts: t.join()
    print(" ".join(sorted(set(map(str, res)))), len(res))
elif mode == "renameopen":   # DIR SRC: a scratch file renamed to a draft name while a reader
    d, data = args[0], open(args[1], "rb").read()  # holds it open; the reader's close processes it
    open(d + "/ro.json.tmp", "wb").write(data)
    fd = os.open(d + "/ro.json.tmp", os.O_RDONLY)
    os.rename(d + "/ro.json.tmp", d + "/ro.json")
    print(err(os.close, fd))
elif mode == "renamemapped":  # DIR SRC: a scratch file written, mapped, closed, renamed into
    import ctypes, mmap          # place, then unmapped: the kernel sends no FLUSH at the unmap,
    libc = ctypes.CDLL(None, use_errno=True)   # only the RELEASE; prints whether the receipt
    libc.mmap.restype = ctypes.c_void_p        # was there before it, and after a second
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    d, data = args[0], open(args[1], "rb").read()
    fd = os.open(d + "/mm.json.tmp", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    addr = libc.mmap(None, len(data), mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    os.close(fd)
    os.rename(d + "/mm.json.tmp", d + "/mm.json")
    before = os.path.exists(d + "/../receipts/mm.json")
    libc.munmap(addr, len(data))
    for _ in range(100):
        if os.path.exists(d + "/../receipts/mm.json"):
            break
        time.sleep(0.05)
    print(int(before), int(os.path.exists(d + "/../receipts/mm.json")))
elif mode == "heldbig":      # PATH SRC: a second descriptor held while the draft is written
    d = open(args[1], "rb").read()            # and closed (it waits), then a write past 1 MiB
    held = os.open(args[0], os.O_RDWR | os.O_CREAT, 0o644)   # through the held one; prints
    w = os.open(args[0], os.O_WRONLY)         # the errnos of the close, the write and the
    os.write(w, d)                            # held descriptor's close
    print(err(os.close, w), err(os.pwrite, held, b"x", 2 << 20), err(os.close, held))
elif mode == "manyscratch":  # DIR MAX: empty scratch files created until one fails (at most
    d, made, e = args[0], 0, 0               # MAX + 1); prints how many were made, the errno,
    while made <= int(args[1]):             # and the errnos of their unlinks
        try:
            os.close(os.open("%s/many-%05d.tmp" % (d, made), os.O_WRONLY | os.O_CREAT, 0o644))
        except OSError as x:
            e = x.errno; break
        made += 1
    gone = set(err(os.unlink, "%s/many-%05d.tmp" % (d, i)) for i in range(made))
    print(made, e, " ".join(sorted(map(str, gone))))
elif mode == "rename":       # FROM TO
    print(err(os.rename, args[0], args[1]))
elif mode == "open":         # PATH FLAGS...: open (and close) with the named flags
    fl = 0
    for a in args[1:]:
        fl |= getattr(os, a)
    try:
        fd = os.open(args[0], fl, 0o644)
    except OSError as e:
        print(e.errno); sys.exit()
    print(err(os.close, fd))
elif mode == "append1":      # PATH: open an existing file O_WRONLY|O_APPEND, write one byte
    try:
        fd = os.open(args[0], os.O_WRONLY | os.O_APPEND)
        os.write(fd, b" "); os.close(fd); print(0)
    except OSError as e:
        print(e.errno)
elif mode == "efbig":        # PATH SRC: SRC padded with spaces to exactly 1 MiB, then one byte more
    path, data = args[0], open(args[1], "rb").read()
    data += b" " * (1048576 - len(data))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    w = 0
    for c in chunks(data, 65536):
        w += os.write(fd, c)
    more = err(os.write, fd, b" ")
    print(w, more, err(os.close, fd))
elif mode == "bigwrite":     # PATH SRC SIZE: SRC padded to SIZE in one write; the kernel may
    path, data = args[0], open(args[1], "rb").read()          # split it (a short write): retry
    data += b" " * (int(args[2]) - len(data))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        w = os.write(fd, data)
    except OSError as e:
        w = "E%d" % e.errno
    rest = err(os.write, fd, data[w:]) if isinstance(w, int) and w < len(data) else "-"
    print(w, rest, err(os.close, fd))
elif mode == "pwrite":       # PATH SRC OFF: write SRC, then pwrite one byte at OFF
    path, data = args[0], open(args[1], "rb").read()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    print(err(os.pwrite, fd, b" ", int(args[2])), err(os.close, fd))
elif mode == "eperm":        # DIR EXISTING: mkdir, symlink, link, mknod(fifo) errnos
    d, f = args
    print(err(os.mkdir, d + "/d.json"), err(os.symlink, f, d + "/s.json"),
          err(os.link, f, d + "/l.json"), err(os.mkfifo, d + "/f.json"))
elif mode == "copytools":    # MNT SRC DIR: Python's copying calls, which set the mode and times
    import shutil, subprocess, threading   # by name after the close that issued the draft
    mnt, body, tmp = args[0], open(args[1], encoding="utf-8").read(), args[2]
    def src(rid):
        path = "%s/ct-%s.json" % (tmp, rid)
        open(path, "w", encoding="utf-8").write(body.replace("SO-2024-000123", rid))
        return path
    def call(f, *a):
        try:
            f(*a); return 0
        except OSError as e:
            return e.errno
    dst = f"{mnt}/pending/py-copy.json"
    print("copy=%d" % call(shutil.copy, src("PY-COPY-1"), dst))
    # another process: neither a chmod (no ghost for it) nor a stat finds the name
    print("others_chmod=%d" % subprocess.call(["chmod", "644", dst], stderr=subprocess.DEVNULL))
    print("others_see=%d" % subprocess.call(["test", "-e", dst]))
    print("own_chmod=%d" % call(os.chmod, dst, 0o600))
    print("exists_after=%s" % os.path.exists(dst))
    print("stat_after=%d" % call(os.stat, dst))
    print("listed_after=%s" % ("py-copy.json" in os.listdir(f"{mnt}/pending")))
    # the same name again at once: a new draft (the kernel walks the path again)
    print("copy_again=%d" % call(shutil.copy, src("PY-COPY-2"), dst))
    # and with no stat in between: open() itself looks the name up, finds the ghost, and the
    # kernel's permission check, which reads its attributes, ends it
    ro = f"{mnt}/pending/py-reopen.json"
    print("reopen_copy=%d" % call(shutil.copy, src("PY-REOPEN-1"), ro))
    fd = os.open(ro, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, body.replace("SO-2024-000123", "PY-REOPEN-2").encode())
    print("reopen_create=%d" % call(os.close, fd))
    print("reopen_plain=%d" % call(os.open, ro, os.O_WRONLY))
    print("copy2=%d" % call(shutil.copy2, src("PY-COPY2-1"), f"{mnt}/pending/py-copy2.json"))
    print("move=%d" % call(shutil.move, src("PY-MOVE-1"), f"{mnt}/pending/py-move.json"))
    # closed by one thread, its mode set by another of the same process after the first ended
    data = body.replace("SO-2024-000123", "PY-THREAD-1").encode()
    fd = os.open(f"{mnt}/pending/py-thread.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    res = []
    t = threading.Thread(target=lambda: res.append(call(os.close, fd))); t.start(); t.join()
    u = threading.Thread(target=lambda: res.append(call(os.chmod, f"{mnt}/pending/py-thread.json", 0o644)))
    u.start(); u.join()
    print("thread_close_chmod=%d,%d" % tuple(res))
    # a rejected draft leaves no ghost: the close said EINVAL, and the name is gone
    bad = "%s/ct-bad.json" % tmp
    open(bad, "w").write("{not json")
    print("rejected_copy=%d" % call(shutil.copy, bad, f"{mnt}/pending/py-bad.json"))
    print("rejected_chmod=%d" % call(os.chmod, f"{mnt}/pending/py-bad.json", 0o644))
    # two drafts of one name within the second (the second renamed into place while open):
    # one ghost per name, or a stat would meet the older one after the kernel's retry (ESTALE)
    tw = f"{mnt}/pending/py-twice.json"
    r1 = call(shutil.copy, src("PY-TWICE-1"), tw)
    fd = os.open(tw + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, body.replace("SO-2024-000123", "PY-TWICE-2").encode())
    os.rename(tw + ".tmp", tw)
    print("twice=%d,%d,%d" % (r1, call(os.close, fd), call(os.stat, tw)))
    # what the kernel answers from the name alone within that second: an O_EXCL create of
    # the same name by the same process gets EEXIST (docs/DROPS.md); after it, it works
    ex = f"{mnt}/pending/py-excl.json"
    def excl(rid):
        try:
            fd = os.open(ex, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            return e.errno
        os.write(fd, body.replace("SO-2024-000123", rid).encode())
        return call(os.close, fd)
    print("excl_first=%d" % excl("PY-EXCL-1"))
    print("excl_at_once=%d" % excl("PY-EXCL-2"))
    time.sleep(1.2)
    print("excl_later=%d" % excl("PY-EXCL-3"))
    # the afterglow lasts a second: then the name is gone for the writer too
    print("copy3=%d" % call(shutil.copyfile, src("PY-LATE-1"), f"{mnt}/pending/py-late.json"))
    time.sleep(1.5)
    print("late_chmod=%d" % call(os.chmod, f"{mnt}/pending/py-late.json", 0o644))
elif mode == "storm":        # MNT SRC NPROC NPER OUT: NPROC processes drop NPER drafts each and,
    import multiprocessing   # like an integration, read each receipt right after close() returned 0
    mnt, src, nproc, nper, out = args[0], args[1], int(args[2]), int(args[3]), args[4]
    body = open(src, encoding="utf-8").read()
    def worker(i):
        res = []
        for j in range(nper):
            name, rid = "storm-%d-%04d.json" % (i, j), "STORM-%d-%04d" % (i, j)
            try:
                fd = os.open(f"{mnt}/pending/{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, body.replace("SO-2024-000123", rid).encode())
            except OSError as e:
                res.append((name, "write", e.errno, None)); continue
            e = err(os.close, fd)
            if e:
                res.append((name, "close", e, None)); continue
            try:
                r = json.load(open(f"{mnt}/receipts/{name}", encoding="utf-8"))
            except (OSError, ValueError) as x:
                res.append((name, "receipt", str(x), None)); continue
            ok = r.get("status") == "issued" and r.get("request_id") == rid
            res.append((name, "receipt" if not ok else "ok", 0 if ok else repr(r), r.get("number")))
        return res
    t0 = time.monotonic()
    with multiprocessing.Pool(nproc) as pool:
        results = [r for part in pool.map(worker, range(nproc)) for r in part]
    json.dump({"seconds": time.monotonic() - t0, "results": results}, open(out, "w"))
elif mode == "stormcheck":   # MNT OUT N: the storm's outcome, one "key: value" per line
    import glob
    mnt, out, n = args[0], json.load(open(args[1])), int(args[2])
    res = out["results"]
    print("closed_ok: %d" % sum(1 for r in res if r[1] in ("ok", "receipt")))
    bad = [r for r in res if r[1] in ("write", "close")]
    print("failures: %s" % (bad[:3] if bad else "none"))
    bad = [r for r in res if r[1] == "receipt"]
    print("receipts_bad: %d %s" % (len(bad), bad[:2] if bad else ""))
    want = list(range(1, n + 1))
    print("receipt_numbers_1_to_n: %s" % (sorted(int(r[3]) for r in res if r[1] == "ok") == want))
    files = [os.path.basename(f) for f in glob.glob(f"{mnt}/issued/*/*.json")]
    fnums = sorted(int(f.rsplit("-", 1)[1][:-5]) for f in files)
    print("issued_numbers_1_to_n: %s" % (fnums == want))
    print("seconds: %.1f" % out["seconds"])
PY
drop() { python3 "$T/drop.py" "$@"; }

# issued NAME ID: receipts/NAME says issued for ID, NAME left pending/, the invoice is that draft.
issued() {
  local r=$MNT/receipts/$1 p
  check_eq "$1: receipt says issued, request_id $2" \
    "$(json "$r" '(d["status"], d["request_id"])' 2>&1 | tail -1)" "('issued', '$2')"
  check "$1: gone from pending/" test ! -e "$P/$1"
  p=$(json "$r" 'd["path"]' 2>/dev/null)
  check_eq "$1: invoice at the receipt's path is this draft" \
    "$(json "$MNT/$p" '(d["draft"], d["request_id"])' 2>&1 | tail -1)" "('$1', '$2')"
}
# rejected NAME: rejected/NAME byte for byte as SRC, NAME.error, nothing in pending/ or receipts/.
rejected() {
  check "$1: rejected/$1 is the draft byte for byte" cmp "$2" "$MNT/rejected/$1"
  check "$1: rejected/$1.error says why" test -s "$MNT/rejected/$1.error"
  check "$1: gone from pending/" test ! -e "$P/$1"
  check "$1: no receipt" test ! -e "$MNT/receipts/$1"
}
printf '{"type": "026", "buyer": {"name": "x"},,}\n' > "$T/bad.json"

# alive WHAT: if the daemon died, say so (t_unmount shows its sanitizer report), keep its log
# as fapiaofs.log.N and mount again on the same state, so the later sections still run.
alive() {
  mountpoint -q "$MNT" && return
  echo "not ok - the daemon died during: $1"
  t_unmount
  local n=1; while [ -e "$T/fapiaofs.log.$n" ]; do n=$((n + 1)); done
  mv "$T/fapiaofs.log" "$T/fapiaofs.log.$n"; T_FAILED=1
  t_mount
}

# --- 8 processes x 1000 drafts at the same time (first, so the numbers start at 1) -------------
# Not scaled for ASan: 8 x 1000 takes ~25 s with build/ and ~20-25 s with build-asan/ (2 CPUs).
# DROPS_PER=N runs 8 x N instead, for a quick try.
PER=${DROPS_PER:-1000}
N=$((8 * PER))
# The storm is about issuing, not the offline limit (test_upload's): 8,000 drafts of 10,070.00
# are 80.56 million, and the demo device's 10 million would make drafts wait (close 0, no
# receipt yet) whenever the uploader fell 993 invoices behind — which on a loaded CI machine
# it did (139 waiting drafts once).
check "offline amount raised to 1,000,000,000.00 for the storm" \
  "$BUILD/fapiaofs-sim" set "$T/state/device.json" offline_amount=1000000000.00
drop storm "$MNT" "$ROOT/examples/basic.json" 8 "$PER" "$T/storm.out"
check "8 x $PER concurrent drops completed" test -s "$T/storm.out"
drop stormcheck "$MNT" "$T/storm.out" "$N" > "$T/storm.check" 2>&1
sc() { sed -n "s/^$1: //p" "$T/storm.check"; }
echo "# note: 8 x $PER concurrent drafts took $(sc seconds) s"
check_eq "every concurrent close() returned 0" "$(sc closed_ok)" "$N"
check_eq "no write or close failed" "$(sc failures)" "none"
check_eq "every draft whose close returned 0 has its receipt, read right after close" \
  "$(sc receipts_bad)" "0 "
check_eq "receipt numbers are 1..$N, no gaps, no duplicates" "$(sc receipt_numbers_1_to_n)" "True"
check_eq "issued/ holds numbers 1..$N, no gaps, no duplicates" "$(sc issued_numbers_1_to_n)" "True"
check_eq "receipts/ lists one receipt per concurrent draft" "$(ls "$MNT/receipts" | grep -c '^storm-')" "$N"
check_eq "exactly one receipt per concurrent draft (store)" \
  "$(sql "select count(*), count(distinct name) from receipts where name like 'storm-%'")" "$N|$N"
check_eq "pending/ empty after the concurrent drops" "$(ls -A "$P" | wc -l)" "0"
alive "the concurrent drops"

# --- plain writers -------------------------------------------------------------------------------
for id in CP CAT ECHO PRINTF CH1 CH7 OSW APP1 APP2 DUP TRUNC; do mkdraft "D-$id" > "$T/$id.json"; done
check "cp draft.json pending/" cp "$T/CP.json" "$P/cp.json"
issued cp.json D-CP
check "cat draft > pending/x.json" bash -c 'cat "$1" > "$2"' _ "$T/CAT.json" "$P/cat.json"
issued cat.json D-CAT
json_text=$(cat "$T/ECHO.json")
# (bash ignores a failing close() after a builtin: the receipt is what tells)
check 'echo "$json" > pending/echo.json' bash -c 'echo "$1" > "$2"' _ "$json_text" "$P/echo.json"
issued echo.json D-ECHO
json_text=$(cat "$T/PRINTF.json")
check 'printf "%s\n" "$json" > pending/printf.json' \
  bash -c 'printf "%s\n" "$1" > "$2"' _ "$json_text" "$P/printf.json"
issued printf.json D-PRINTF
check_eq "a dup closed before any write does nothing; the writing close issues" \
  "$(drop dup "$P/dup.json" "$T/DUP.json")" "0 True False 0"
issued dup.json D-DUP
check_eq "Python file object, 1-byte writes: close returns 0" \
  "$(drop fileobj "$P/chunk1.json" "$T/CH1.json" 1)" "0"
issued chunk1.json D-CH1
check_eq "Python file object, 7-byte writes: close returns 0" \
  "$(drop fileobj "$P/chunk7.json" "$T/CH7.json" 7)" "0"
issued chunk7.json D-CH7
check_eq "os.write in 13-byte chunks: close returns 0" "$(drop close "$P/oswrite.json" "$T/OSW.json" 13)" "0"
issued oswrite.json D-OSW
check "cat draft >> pending/append.json (O_APPEND, new name)" \
  bash -c 'cat "$1" >> "$2"' _ "$T/APP1.json" "$P/append.json"
issued append.json D-APP1
check_eq "os.open O_APPEND, two writes: close returns 0" "$(drop append "$P/append2.json" "$T/APP2.json")" "0"
issued append2.json D-APP2
# O_TRUNC on an existing scratch file that is longer than the new content.
head -c 3000 /dev/urandom | base64 > "$T/junk"
check "scratch file with junk" cp "$T/junk" "$P/trunc.json.tmp"
check_eq "open(O_TRUNC) of the scratch file, write, close: 0" \
  "$(drop trunc "$P/trunc.json.tmp" "$T/TRUNC.json")" "0"
check "after O_TRUNC the scratch file holds only the new bytes" cmp "$T/TRUNC.json" "$P/trunc.json.tmp"
check "... and is renamed into place" mv "$P/trunc.json.tmp" "$P/trunc.json"
issued trunc.json D-TRUNC
alive "the plain writers"

# --- scratch names renamed into place ------------------------------------------------------------
n=0
for s in x.json.tmp x.json.part x.json.filepart .x.json.Ab12Cd '~x.tmp'; do
  n=$((n + 1)); mkdraft "S-$n" > "$T/S$n.json"
  check "write scratch $s" cp "$T/S$n.json" "$P/$s"
  check "scratch $s is listed" bash -c 'ls -A "$1" | grep -qxF -- "$2"' _ "$P" "$s"
  check "scratch $s reads back byte for byte" cmp "$T/S$n.json" "$P/$s"
  check "scratch $s: no receipt after close" test ! -e "$MNT/receipts/$s"
  check "scratch $s: not rejected" test ! -e "$MNT/rejected/$s"
  check "mv $s scratch$n.json" mv "$P/$s" "$P/scratch$n.json"
  check "scratch $s gone after the rename" test ! -e "$P/$s"
  issued "scratch$n.json" "S-$n"
done

# rsync: a temporary .NAME.XXXXXX renamed into place; --inplace writes the final name directly.
mkdir -p "$T/rs" "$T/rsi"; mkdraft RSYNC-1 > "$T/rs/rsync.json"; mkdraft RSYNC-2 > "$T/rsi/rsync-inplace.json"
check "rsync draft.json pending/" rsync "$T/rs/rsync.json" "$P/"
issued rsync.json RSYNC-1
# --inplace: the draft is issued at rsync's close, then rsync stats the name to set its
# times, and the draft has left pending/ (SPEC §2.1), so rsync exits 23.  The draft is
# issued once all the same; docs/DROPS.md tells integrators to use rsync without --inplace.
rsync --inplace "$T/rsi/rsync-inplace.json" "$P/" > "$T/rsync-inplace.log" 2>&1
check_eq "rsync --inplace: exit 23, only because the issued draft has left pending/" \
  "$? $(grep -c 'rsync-inplace.json" failed: No such file or directory' "$T/rsync-inplace.log")" "23 1"
issued rsync-inplace.json RSYNC-2

# Tools that set the mode or times by name after the close that issued the draft: install -m,
# Python's shutil.copy (chmod), copy2 and move (utime, chmod).  The draft has left pending/, but
# for a second its writer still finds the name and those calls succeed, changing nothing
# (fs/pending.c, the afterglow); they used to fail with ENOENT for an issued draft.
mkdraft INSTALL-1 > "$T/install.json"
check "install -m 644 draft.json pending/inst.json exits 0" install -m 644 "$T/install.json" "$P/inst.json"
issued inst.json INSTALL-1
# into the directory: install stats the name after the close and before its chmod, and a stat
# says the draft has left, even to its writer (docs/DROPS.md), so install exits 1; issued once.
mkdir -p "$T/inst"; mkdraft INSTALL-2 > "$T/inst/inst-dir.json"
install -m 644 "$T/inst/inst-dir.json" "$P/" > "$T/install-dir.log" 2>&1; rc=$?
check_eq "install -m 644 draft.json pending/: exit 1, only because the issued draft has left" \
  "$rc $(grep -c "cannot change permissions of '.*inst-dir.json': No such file" "$T/install-dir.log")" "1 1"
issued inst-dir.json INSTALL-2
mkdir -p "$T/ct"; drop copytools "$MNT" "$ROOT/examples/basic.json" "$T/ct" > "$T/copytools.out" 2>&1
ct() { grep "^$1=" "$T/copytools.out" | cut -d= -f2-; }
check_eq "shutil.copy of a draft: no error" "$(ct copy)" "0"
check_eq "the writer itself: os.path.exists says the draft left" "$(ct exists_after)" "False"
check_eq "the writer itself: stat gives ENOENT" "$(ct stat_after)" "2"
check_eq "the writer itself: not listed" "$(ct listed_after)" "False"
check_eq "another process: its chmod fails, test -e fails" "$(ct others_chmod) $(ct others_see)" "1 1"
check_eq "the writer itself: its chmod succeeds (and changes nothing)" "$(ct own_chmod)" "0"
check_eq "shutil.copy to the same name at once: a new draft, no error" "$(ct copy_again)" "0"
check_eq "open(O_CREAT) right after shutil.copy's chmod, no stat between: a new draft" \
  "$(ct reopen_copy) $(ct reopen_create)" "0 0"
check_eq "open(O_WRONLY) right after that close: ENOENT, the draft left" "$(ct reopen_plain)" "2"
check_eq "py-reopen.json twice: two invoices" \
  "$(sqlite3 "$DB" "SELECT count(*) FROM invoices WHERE request_id LIKE 'PY-REOPEN-%'")" "2"
issued py-reopen.json PY-REOPEN-2
check_eq "shutil.copy2: no error" "$(ct copy2)" "0"
check_eq "shutil.move from another filesystem: no error" "$(ct move)" "0"
check_eq "closed by a thread that then ended, chmod by another of the process: both 0" \
  "$(ct thread_close_chmod)" "0,0"
check_eq "a name issued twice within the second: both 0, then stat ENOENT (not ESTALE)" \
  "$(ct twice)" "0,0,2"
issued py-twice.json PY-TWICE-2
check_eq "O_EXCL create of the same name by the writer: EEXIST within the second, then works" \
  "$(ct excl_first) $(ct excl_at_once) $(ct excl_later)" "0 17 0"
check_eq "a rejected draft: shutil.copy raises EINVAL" "$(ct rejected_copy)" "22"
check_eq "a rejected draft: no afterglow, chmod gives ENOENT" "$(ct rejected_chmod)" "2"
check_eq "after a second: chmod of the issued name gives ENOENT" "$(ct late_chmod)" "2"
issued py-copy2.json PY-COPY2-1
issued py-move.json PY-MOVE-1
issued py-thread.json PY-THREAD-1
issued py-late.json PY-LATE-1
check_eq "py-copy.json twice: two invoices, PY-COPY-1 and PY-COPY-2" \
  "$(sqlite3 "$DB" "SELECT group_concat(request_id, ' ') FROM (SELECT request_id FROM invoices
                     WHERE request_id LIKE 'PY-COPY-%' ORDER BY request_id)")" "PY-COPY-1 PY-COPY-2"
issued py-copy.json PY-COPY-2

# mv from another filesystem: copied (processed at close), then the source is removed.
TMPD=$(mktemp -d /tmp/fapiaofs-drops.XXXXXX)
mkdraft MV-1 > "$TMPD/moved.json"
check "mv /tmp/moved.json pending/" mv "$TMPD/moved.json" "$P/"
check "the source is gone from /tmp" test ! -e "$TMPD/moved.json"
issued moved.json MV-1
rm -rf "$TMPD"

# Rename over an existing scratch file; rename between scratch names; rm of a scratch file.
mkdraft OVER-1 > "$T/over.json"
check "scratch a.json.tmp (junk)" cp "$T/junk" "$P/a.json.tmp"
check "scratch b.json.part (draft)" cp "$T/over.json" "$P/b.json.part"
check "mv b.json.part over a.json.tmp" mv "$P/b.json.part" "$P/a.json.tmp"
check "a.json.tmp now holds the draft" cmp "$T/over.json" "$P/a.json.tmp"
check_eq "one scratch file left of the two" "$(ls -A "$P")" "a.json.tmp"
check "rename between scratch names (a.json.tmp -> a.json.filepart)" mv "$P/a.json.tmp" "$P/a.json.filepart"
check "no receipt for scratch renames" bash -c '! ls -A "$1" | grep -q "^a\.json\."' _ "$MNT/receipts"
check "rename into place" mv "$P/a.json.filepart" "$P/over.json"
issued over.json OVER-1
check "an invalid draft under a scratch name is kept, not rejected" cp "$T/bad.json" "$P/bad.json.tmp"
check "it reads back" cmp "$T/bad.json" "$P/bad.json.tmp"
check "no rejection for the scratch name" test ! -e "$MNT/rejected/bad.json.tmp"
check "rm of a scratch file" rm "$P/bad.json.tmp"
check_eq "pending/ empty" "$(ls -A "$P")" ""
# A scratch file renamed into place while a descriptor is still open on it: processed at that
# descriptor's close (it was left in pending/ for ever, and gone at the next mount).
mkdraft RENAME-OPEN > "$T/ro.json"
check_eq "rename into place while a reader holds it open; its close returns 0" \
  "$(drop renameopen "$P" "$T/ro.json")" "0"
issued ro.json RENAME-OPEN
# The same in a shell: the writer's descriptor, its write flag spent at a builtin's close.
mkdraft RENAME-OPEN-2 > "$T/ro2.json"
bash -c 'exec 3>"$1/ro2.json.tmp"; cat "$2" >&3; mv "$1/ro2.json.tmp" "$1/ro2.json"; exec 3>&-' \
  _ "$P" "$T/ro2.json"
issued ro2.json RENAME-OPEN-2
# Still mapped when renamed: no close is left to process it, only the RELEASE at the unmap
# (which is also what a rename right after a close meets when the kernel's RELEASE, sent in
# the background, comes after it).  It stayed in pending/ for ever, and gone at the next mount.
mkdraft RENAME-MAPPED > "$T/mm.json"
check_eq "renamed into place while mapped: processed at the unmap's release, not before" \
  "$(drop renamemapped "$P" "$T/mm.json")" "0 1"
issued mm.json RENAME-MAPPED
alive "the scratch names"
# Empty files cost no content, so they are counted: without a bound a writer could fill the
# daemon's memory with them (and slow every lookup, which walks the folder).
check_eq "16,384 scratch files at most: the next create gives ENOSPC; all removed" \
  "$(drop manyscratch "$P" 20000)" "16384 28 0"
check_eq "pending/ empty again" "$(ls -A "$P")" ""
alive "16,384 scratch files"

# --- one file written through two descriptors closed at the same moment: one invoice ----------
# Both closes processed it (the second while the first was still in the engine): 20 files made
# 40 invoices.  Now the second close waits for the first one's outcome and returns it.
before=$(sql "select count(*) from invoices")
check_eq "20 files, two descriptors each, closed at once: every close returns 0" \
  "$(drop twofds "$P" "$ROOT/examples/basic.json" 20)" "0 40"
check_eq "  20 invoices, not 40" "$(( $(sql "select count(*) from invoices") - before ))" "20"
check_eq "  20 receipts" "$(ls "$MNT/receipts" | grep -c '^two-')" "20"
check_eq "  pending/ empty" "$(ls -A "$P")" ""
alive "two descriptors"

# --- results as errnos: close() and rename() --------------------------------------------------
mkdraft RES-1 > "$T/res1.json"; mkdraft RES-2 > "$T/res2.json"
check_eq "close() of a valid draft returns 0" "$(drop close "$P/res-close.json" "$T/res1.json" 4096)" "0"
issued res-close.json RES-1
check_eq "close() of an invalid draft returns EINVAL (22)" \
  "$(drop close "$P/res-bad.json" "$T/bad.json" 4096)" "22"
rejected res-bad.json "$T/bad.json"
check "valid draft to a scratch name" cp "$T/res2.json" "$P/res-rename.json.tmp"
check_eq "os.rename() of a valid scratch file to a draft name returns 0" \
  "$(drop rename "$P/res-rename.json.tmp" "$P/res-rename.json")" "0"
issued res-rename.json RES-2
check "scratch source gone after the rename" test ! -e "$P/res-rename.json.tmp"
check "invalid draft to a scratch name" cp "$T/bad.json" "$P/res-badrename.json.part"
check_eq "os.rename() of an invalid scratch file to a draft name returns EINVAL (22)" \
  "$(drop rename "$P/res-badrename.json.part" "$P/res-badrename.json")" "22"
rejected res-badrename.json "$T/bad.json"
check "scratch source gone after the rejected rename" test ! -e "$P/res-badrename.json.part"
check_eq "cp of an invalid draft fails with Invalid argument" \
  "$(cp "$T/bad.json" "$P/cp-bad.json" 2>&1 >/dev/null | grep -c 'Invalid argument')" "1"
rejected cp-bad.json "$T/bad.json"
alive "the errno checks"

# --- a name reused after the first draft was processed ------------------------------------------
mkdraft REUSE-1 > "$T/reuse1.json"; mkdraft REUSE-2 > "$T/reuse2.json"; mkdraft REUSE-3 > "$T/reuse3.json"
check "first reuse.json" cp "$T/reuse1.json" "$P/reuse.json"
n1=$(json "$MNT/receipts/reuse.json" 'd["number"]')
check "second reuse.json (a new draft)" cp "$T/reuse2.json" "$P/reuse.json"
issued reuse.json REUSE-2
n2=$(json "$MNT/receipts/reuse.json" 'd["number"]')
check_eq "the receipt shows the newest invoice (number changed by one)" "$((10#$n2 - 10#$n1))" "1"
check_eq "reuse.json: an invalid third draft is rejected" \
  "$(drop close "$P/reuse.json" "$T/bad.json" 4096)" "22"
check "rejected/reuse.json is the newest outcome" cmp "$T/bad.json" "$MNT/rejected/reuse.json"
check "the older receipt no longer shows" test ! -e "$MNT/receipts/reuse.json"
check "a fourth, valid reuse.json" cp "$T/reuse3.json" "$P/reuse.json"
issued reuse.json REUSE-3
check "the older rejection no longer shows" test ! -e "$MNT/rejected/reuse.json"
check_eq "every reuse.json draft is in the store" \
  "$(sql "select count(*) from drafts where name='reuse.json'")" "4"
alive "name reuse"

# --- EFBIG: each over-size draft is a valid draft padded with spaces, so a draft processed from
# its first MiB would be issued; none may be (the writer never finished it).
before=$(sql 'select count(*) from invoices')
for i in 1 2 3 4; do mkdraft "BIG-$i" > "$T/big$i.json"; done
out=$(drop efbig "$P/big1.json" "$T/big1.json")
check_eq "a valid draft padded to exactly 1 MiB is written" "${out%% *}" "1048576"
more=${out#* }
check_eq "one more byte fails with EFBIG (27)" "${more%% *}" "27"
echo "# note: close() after the EFBIG write returned errno ${out##* }"
out=$(drop bigwrite "$P/big2.json" "$T/big2.json" 1048577)
case ${out% *} in "1048576 27" | "E27 -") r=0 ;; *) r=1 ;; esac
ok $r "one write of 1 MiB + 1 byte: EFBIG, or a short write of 1 MiB and EFBIG for the rest ($out)"
check_eq "pwrite at offset 1 MiB fails with EFBIG" \
  "$(drop pwrite "$P/big3.json" "$T/big3.json" 1048576 | cut -d' ' -f1)" "27"
for i in 1 2 3; do
  check "big$i.json: the over-size draft is not issued (no receipt)" test ! -e "$MNT/receipts/big$i.json"
  check "big$i.json: the over-size draft is not rejected either" test ! -e "$MNT/rejected/big$i.json"
done
check_eq "no invoice issued for the over-size drafts" "$(sql 'select count(*) from invoices')" "$before"
echo "# note: left in pending/ after EFBIG: $(ls -A "$P" | tr '\n' ' ')"
rm -f "$P"/big*.json 2>/dev/null
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); sys.stdout.buffer.write(d + b" "*(1048576-len(d)))' \
  "$T/big4.json" > "$T/big4-1mib.json"
check_eq "a draft of exactly 1 MiB is fine: close returns 0" \
  "$(drop close "$P/big4.json" "$T/big4-1mib.json" 65536)" "0"
issued big4.json BIG-4
alive "EFBIG"

# --- EPERM for mkdir, symlink, link, mknod in pending/ -------------------------------------------
check "scratch file to link to" cp "$T/junk" "$P/link-src.tmp"
check "mkdir pending/d.json: Operation not permitted" \
  bash -c 'mkdir "$1/d.json" 2>&1 | grep -q "not permitted"' _ "$P"
check "ln -s pending/s.json: Operation not permitted" \
  bash -c 'ln -s /etc/hostname "$1/s.json" 2>&1 | grep -q "not permitted"' _ "$P"
check "ln pending/link-src.tmp pending/l.json: Operation not permitted" \
  bash -c 'ln "$1/link-src.tmp" "$1/l.json" 2>&1 | grep -q "not permitted"' _ "$P"
check "mkfifo pending/f.json: Operation not permitted" \
  bash -c 'mkfifo "$1/f.json" 2>&1 | grep -q "not permitted"' _ "$P"
check_eq "errnos of mkdir, symlink, link, mkfifo are EPERM (1)" \
  "$(drop eperm "$P" "$P/link-src.tmp")" "1 1 1 1"
check "rm the link source" rm "$P/link-src.tmp"
check_eq "pending/ empty after the refused operations" "$(ls -A "$P")" ""
alive "EPERM"

# --- rm in receipts/ and rejected/ hides the entry, never from the store -------------------------
check "rm receipts/cp.json" rm "$MNT/receipts/cp.json"
check "receipts/cp.json hidden" test ! -e "$MNT/receipts/cp.json"
check "receipts/cp.json not listed" bash -c '! ls "$1" | grep -qx cp.json' _ "$MNT/receipts"
check_eq "receipt still in the store (hidden)" \
  "$(sql "select count(*), sum(hidden) from receipts where name='cp.json'")" "1|1"
check_eq "the invoice is still there" "$(sql "select count(*) from invoices where request_id='D-CP'")" "1"
check "rm rejected/res-bad.json" rm "$MNT/rejected/res-bad.json"
check "rejected/res-bad.json hidden" test ! -e "$MNT/rejected/res-bad.json"
check "rejected/res-bad.json not listed" bash -c '! ls "$1" | grep -qx res-bad.json' _ "$MNT/rejected"
check_eq "rejection still in the store (hidden)" \
  "$(sql "select count(*), sum(hidden) from rejects where name='res-bad.json'")" "1|1"
alive "rm in receipts/ and rejected/"

# --- a waiting draft (the device refuses a wrong PIN); rm cancels it -------------------------------
t_unmount
printf '00000000\n' > "$T/pin"; chmod 600 "$T/pin"
sed -i "/^\[device\]/a pin_file = $T/pin" "$T/fapiaofs.conf"
t_mount
mkdraft WAIT-1 > "$T/wait.json"; mkdraft WAIT-2 > "$T/wait2.json"
check_eq "wrong PIN: close of a draft returns 0 (accepted, waiting)" \
  "$(drop close "$P/wait.json" "$T/wait.json" 4096)" "0"
check "the waiting draft stays in pending/" test -f "$P/wait.json"
check_eq "the waiting draft has mode 0444" "$(stat -c %a "$P/wait.json")" "444"
check "the waiting draft reads back" cmp "$T/wait.json" "$P/wait.json"
check "no receipt for the waiting draft" test ! -e "$MNT/receipts/wait.json"
for _ in $(seq 30); do grep -q '^waiting_draft: wait.json ' "$MNT/status" && break; sleep 0.1; done
check "status has a waiting_draft: line naming it" grep -q '^waiting_draft: wait.json ' "$MNT/status"
check "... and saying why (the PIN)" grep -q '^waiting_draft: wait.json .*PIN' "$MNT/status"
check_eq "writing to the waiting draft: EACCES (13)" "$(drop open "$P/wait.json" O_WRONLY)" "13"
check_eq "appending to the waiting draft: EACCES (13)" "$(drop append1 "$P/wait.json")" "13"
check_eq "O_TRUNC of the waiting draft: EACCES (13)" "$(drop open "$P/wait.json" O_WRONLY O_TRUNC)" "13"
check_eq "O_RDONLY|O_TRUNC of the waiting draft (root): EACCES (13)" \
  "$(drop open "$P/wait.json" O_RDONLY O_TRUNC)" "13"
check_eq "the waiting draft is unchanged" "$(cmp "$T/wait.json" "$P/wait.json" && echo same)" "same"
check_eq "a second waiting draft" "$(drop close "$P/wait2.json" "$T/wait2.json" 4096)" "0"
check_eq "the store says waiting" "$(sql "select state from drafts where name='wait.json'")" "waiting"
check "rm pending/wait.json cancels it" rm "$P/wait.json"
check "gone from pending/" test ! -e "$P/wait.json"
check "no receipt for the cancelled draft" test ! -e "$MNT/receipts/wait.json"
wait_state() { sql "select group_concat(state) from drafts where name='wait.json'"; }
check_eq "the store shows the draft cancelled" "$(wait_state)" "cancelled"
sleep 1.1   # status is a 1-second snapshot
check "status no longer names the cancelled draft" \
  bash -c '! grep -q "^waiting_draft: wait.json " "$1"' _ "$MNT/status"
check "status still names the other waiting draft" grep -q '^waiting_draft: wait2.json' "$MNT/status"
# A write past 1 MiB through an older descriptor of a waiting draft: refused as a write to a
# waiting draft, and its close leaves the draft where it is (the too-big path unlinked it: the
# draft waited in the store, out of pending/, and came back at the next mount).
mkdraft WAIT-HELD > "$T/held.json"
check_eq "held descriptor: the writer's close 0, a write past 1 MiB EACCES, its close 0" \
  "$(drop heldbig "$P/held.json" "$T/held.json")" "0 13 0"
check_eq "the waiting draft is still in pending/, unchanged" \
  "$(cmp "$T/held.json" "$P/held.json" && echo same)" "same"
check "... and can be cancelled" rm "$P/held.json"
# With the right PIN the other one is issued; the cancelled one never is.
t_unmount
sed -i '/^pin_file = /d' "$T/fapiaofs.conf"
t_mount
for _ in $(seq 50); do [ -e "$MNT/receipts/wait2.json" ] && break; sleep 0.1; done
issued wait2.json WAIT-2
check "the cancelled draft is not issued after the cause is gone" test ! -e "$MNT/receipts/wait.json"
check_eq "... and stays cancelled in the store" "$(wait_state)" "cancelled"
check_eq "pending/ empty at the end" "$(ls -A "$P")" ""
alive "the waiting drafts"
