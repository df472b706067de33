# What close() and rename() return with, the kernel's caches already know: the folders a draft
# changed (pending/, receipts/, its month in issued/) are invalidated before the call returns
# (fs/notify.h), so a stat right after it shows the change, though the kernel may keep a folder's
# attributes for a second.  On a test clock, each draft moves the clock ten seconds on: the
# folders' mtimes (pending/: the last draft's arrival; receipts/: its newest receipt;
# issued/MONTH: its last issue) must move with it.  The stat follows the close in the same
# process, within microseconds.  receipts/ and the month depend on our invalidation alone;
# pending/ the kernel also refreshes itself after a create or rename in it, so its check guards
# the folder's time rather than the invalidation.
source "$(dirname "$0")/lib.sh"
T_CLOCK=2026-11-11T10:00:00+08:00 t_setup fresh

cp "$ROOT/examples/basic.json" "$MNT/pending/first.json"
ok $? "a first draft makes the month"
python3 - "$MNT" "$T/clock" "$ROOT/examples/basic.json" <<'PY'
import datetime, json, os, sys
mnt, clock, example = sys.argv[1:]
draft = json.load(open(example, encoding="utf-8"))
month = os.path.join(mnt, "issued", "2026-11")
pending = os.path.join(mnt, "pending")
receipts = os.path.join(mnt, "receipts")
base = datetime.datetime.fromisoformat("2026-11-11T10:00:00+08:00")
stale = {"close": [], "rename": []}
stale_receipts = {"close": [], "rename": []}
for i in range(1, 41):
    when = base + datetime.timedelta(seconds=10 * i)
    os.stat(month); os.stat(pending)          # the kernel now holds both for a second
    os.stat(receipts)
    with open(clock + ".new", "w") as f:
        f.write(when.isoformat() + "\n")
    os.rename(clock + ".new", clock)
    how = "close" if i % 2 else "rename"
    draft["request_id"] = "fresh-%d" % i       # a new invoice each, not a duplicate
    body = json.dumps(draft, ensure_ascii=False).encode()
    if how == "close":
        fd = os.open(os.path.join(pending, "d%d.json" % i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, body)
        os.close(fd)
    else:                                      # a scratch name, renamed into place
        tmp = os.path.join(pending, "d%d.json.part" % i)
        with open(tmp, "wb") as f:
            f.write(body)
        os.rename(tmp, os.path.join(pending, "d%d.json" % i))
    want = int(when.timestamp())
    got = (int(os.stat(month).st_mtime), int(os.stat(pending).st_mtime))
    if got != (want, want):
        stale[how].append("draft %d: issued/2026-11 %d, pending/ %d, want %d" % (i, got[0], got[1], want))
    if int(os.stat(receipts).st_mtime) != want:
        stale_receipts[how].append("draft %d: receipts/ %d, want %d" % (i, os.stat(receipts).st_mtime, want))
for how, bad in stale.items():
    print(("ok" if not bad else "not ok") + " - right after %s() returns, issued/2026-11 and pending/ "
          "show the draft's time (20 drafts)%s" % (how, "; " + "; ".join(bad[:3]) if bad else ""))
for how, bad in stale_receipts.items():
    print(("ok" if not bad else "not ok") + " - right after %s() returns, receipts/ shows the "
          "draft's receipt time (20 drafts)%s" % (how, "; " + "; ".join(bad[:3]) if bad else ""))
PY
check_eq "every draft was issued" "$(ls "$MNT/issued/2026-11" | wc -l)" "41"

# A second descriptor open on a draft sees, right after the writer's close(), that the draft
# left pending/: issued, or refused as too big.  The kernel may keep a new draft's attributes
# for a second after its CREATE (fs/ll.c, fa_create); a write or a LOOKUP replaces them with
# attributes of zero timeout, and the outcome invalidates them as well (pending.c, announce).
python3 - "$MNT" "$ROOT/examples/basic.json" <<'PY'
import errno, json, os, sys
mnt, example = sys.argv[1:]
draft = json.load(open(example, encoding="utf-8"))
draft["request_id"] = "fresh-own"
cases = (("issued", json.dumps(draft, ensure_ascii=False).encode()),
         ("too big", b" " * (1024 * 1024 + 1)))
for what, body in cases:
    path = os.path.join(mnt, "pending", "own-%s.json" % what.replace(" ", "-"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, body)
    except OSError as e:
        if e.errno != errno.EFBIG:
            raise
    other = os.open(path, os.O_RDONLY)
    before = os.fstat(other).st_nlink
    try:
        os.close(fd)
    except OSError:
        pass
    after = os.fstat(other).st_nlink
    os.close(other)
    print(("ok" if (before, after) == (1, 0) else "not ok") + " - a draft %s: another descriptor's "
          "fstat shows it gone right after close() (links %d, then %d)" % (what, before, after))
PY
t_cleanup
