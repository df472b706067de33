# An invoice opened while no other invoice is open has its bytes in the page cache before open()
# returns (fs/prefill.h), so a cold read sends no READ.  What a reader then gets must be what the
# daemon answers a READ with: each file is read through the page cache and again with O_DIRECT,
# which always asks the daemon.  Then the paths that do not prefill: a second descriptor while a
# first is open, pages dropped while the inode stays, the kernel's inodes dropped (FORGET), and
# eight readers at once while pages keep being dropped — the bytes stay right and nothing hangs.
source "$(dirname "$0")/lib.sh"
t_setup prefill

python3 - "$MNT" "$ROOT/examples/basic.json" <<'PY'
import json, os, sys
mnt, example = sys.argv[1:]
draft = json.load(open(example, encoding="utf-8"))
for i in range(24):
    draft["request_id"] = "prefill-%d" % i
    draft["remark"] = "合同号 HT-%s" % ("9" * i)        # bytes of different lengths
    with open(os.path.join(mnt, "pending", "p%d.json" % i), "w", encoding="utf-8") as f:
        json.dump(draft, f, ensure_ascii=False)
PY
month=$(ls "$MNT/issued" | head -1)
check_eq "24 invoices issued" "$(ls "$MNT/issued/$month" | wc -l)" "24"
t_remount   # the kernel holds no invoice page now

timeout 120 python3 - "$MNT/issued/$month" <<'PY'
import ctypes, mmap, os, sys, threading
folder = sys.argv[1]
names = sorted(os.listdir(folder))
libc = ctypes.CDLL(None, use_errno=True)
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

def resident(fd, size):
    """Pages of fd in the page cache, of how many: mincore on a mapping, which reads nothing."""
    n = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = ctypes.create_string_buffer(n)
    p = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    assert p is not None and p != ctypes.c_void_p(-1).value, "mmap failed"
    rc = libc.mincore(ctypes.c_void_p(p), size, vec)
    libc.munmap(ctypes.c_void_p(p), size)
    assert rc == 0, "mincore failed"
    return sum(b & 1 for b in vec.raw), n

def direct(path):
    """The file as the daemon answers READ: O_DIRECT goes around the page cache."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        out = b""
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return out
            out += chunk
    finally:
        os.close(fd)

def cached(path):
    with open(path, "rb") as f:
        return f.read()

def report(ok, what):
    print(("ok" if ok else "not ok") + " - " + what)

# 1. cold, one at a time: resident right after open(), and the same bytes as READ gives
cold, wrong = [], []
for name in names:
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    have, of = resident(fd, size)
    os.close(fd)
    if have != of:
        cold.append("%s %d/%d" % (name, have, of))
    if cached(path) != direct(path):
        wrong.append(name)
report(not cold, "each invoice's pages are cached as soon as open() returns (%d of %d files not: %s)"
       % (len(cold), len(names), ", ".join(cold[:3])))
report(not wrong, "what a reader gets through the page cache is what READ answers (%d differ: %s)"
       % (len(wrong), ", ".join(wrong[:3])))
ref = {name: direct(os.path.join(folder, name)) for name in names}

# 2. a second descriptor while a first is open, its pages dropped in between: read with READ
path = os.path.join(folder, names[0])
first = os.open(path, os.O_RDONLY)
os.posix_fadvise(first, 0, 0, os.POSIX_FADV_DONTNEED)
second = os.open(path, os.O_RDONLY)
got = os.read(second, 1 << 20)
os.close(second); os.close(first)
report(got == ref[names[0]], "a second descriptor, pages dropped, reads the right bytes")

# 3. pages dropped while the inode stays (what reclaim does): opened again, the right bytes
bad = []
for name in names:
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    if cached(path) != ref[name]:
        bad.append(name)
report(not bad, "after the pages were dropped, every invoice reads right (%d wrong)" % len(bad))

# 4. the kernel's dentries and inodes dropped (FORGET): cached again at the next open
with open("/proc/sys/vm/drop_caches", "w") as f:
    f.write("2\n")
again = 0
for name in names:
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_RDONLY)
    have, of = resident(fd, os.fstat(fd).st_size)
    os.close(fd)
    again += have == of
    if cached(path) != ref[name]:
        bad.append(name)
report(again > 0 and not bad, "after the kernel forgot the inodes, invoices are cached at open again "
       "(%d of %d) and read right" % (again, len(names)))

# 5. eight readers at once while pages keep being dropped
stop = threading.Event()
errors = []
def reader(k):
    i = k
    while not stop.is_set():
        name = names[i % len(names)]
        try:
            if cached(os.path.join(folder, name)) != ref[name]:
                errors.append(name)
        except OSError as e:
            errors.append("%s: %s" % (name, e))
        i += 1
def dropper():
    while not stop.is_set():
        for name in names:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)] + [threading.Thread(target=dropper)]
for t in threads:
    t.start()
threading.Event().wait(3)
stop.set()
for t in threads:
    t.join(30)
report(not any(t.is_alive() for t in threads) and not errors,
       "eight readers and a dropper for 3 s: every read right, none hung (%d errors: %s)"
       % (len(errors), ", ".join(errors[:3])))
PY
ok $? "the readers finished within two minutes"
t_cleanup
exit $T_FAILED
