#!/usr/bin/env bash
# tests/bench/walframes.sh — what each store commit of an issued draft writes
# into the WAL (docs/BENCHMARKS.md, "Session of 2026-12-07, fourth").  Needs
# strace and the sqlite3 shell.
#
#   bash tests/bench/walframes.sh [DRAFTS]      (200; root, make bench-tools first)
#
# Mounts a fresh state (genstore --invoices 0, no platform), issues 300
# drafts to warm it, then traces the daemon's pwrite64 calls while one writer
# drops DRAFTS more.  SQLite writes each WAL frame's 24-byte header apart from
# its page: the header's first word is the page number, its second the
# database's size on a commit's last frame, so the headers alone cut the
# frames into commits.  Prints commits and WAL bytes per draft, how many
# commits had how many frames, and the pages of the last few commits named
# by table or index (the dbstat table of the store after the unmount).
set -u -o pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DRAFTS=${1:-200}
D=${WALFRAMES_DIR:-$ROOT/tests/tmp/walframes}
TOOLS=$ROOT/build/bench FAPIAOFS=$ROOT/build/fapiaofs MOUNTWAIT=$ROOT/build/bench/mountwait
# say, die, since, need_tools, fs_mount, fs_mount_fresh, fs_unmount
source "$ROOT/tests/bench/lib.sh"
for t in strace sqlite3; do
  command -v "$t" >/dev/null || die "$t is not installed (apt-get install $t)"
done
need_tools genstore drop mountwait
mkdir -p "$D"
fs_mount_fresh "$D"
drop() {  # PREFIX COUNT
  "$TOOLS/drop" --writers 1 --count "$2" --prefix "$1" --template "$ROOT/examples/basic.json" \
    "$D/mnt/pending" > /dev/null || die "drop failed"
}
drop warm 300
strace -f -xx -s 24 -e trace=pwrite64 -o "$D/strace.txt" -p "$FS_PID" 2> /dev/null &
tracer=$!
sleep 1   # strace attaches to every thread
drop r "$DRAFTS"
kill "$tracer"; wait "$tracer" 2> /dev/null
wal=$(readlink -f "$D/state/fapiaofs.db-wal")
fds=$(ls -l "/proc/$FS_PID/fd" | awk -v w="$wal" '$NF == w { printf "%s ", $(NF - 2) }')
fs_unmount
sqlite3 "$D/state/fapiaofs.db" "SELECT pageno, name FROM dbstat" > "$D/pages.txt" ||
  die "sqlite3 has no dbstat table"

python3 - "$D" "$DRAFTS" "$fds" <<'EOF'
import collections, re, sys
d, drafts, fds = sys.argv[1], int(sys.argv[2]), set(sys.argv[3].split())
names = dict(l.strip().split('|', 1) for l in open(d + '/pages.txt') if '|' in l)
commits, frames, nbytes = [], [], 0
for line in open(d + '/strace.txt'):
    m = re.search(r'pwrite64\((\d+), "([^"]*)"\.*, (\d+), \d+\) = (\d+)', line)
    if not m or m.group(1) not in fds:
        continue
    nbytes += int(m.group(4))
    if int(m.group(3)) != 24:
        continue   # a page, not a frame header
    h = bytes.fromhex(m.group(2).replace('\\x', ''))
    frames.append(int.from_bytes(h[0:4], 'big'))
    if int.from_bytes(h[4:8], 'big'):
        commits.append(frames)
        frames = []
print(f"{drafts} drafts: {len(commits) / drafts:.2f} commits and"
      f" {nbytes / drafts / 1024:.1f} KB of WAL per draft")
sizes = collections.Counter(len(c) for c in commits)
print("frames per commit: " + ", ".join(f"{n} x{k}" for n, k in sorted(sizes.items())))
print("the last commits, page (table or index):")
for c in commits[-6:]:
    print("  " + ", ".join(f"{p} ({names.get(str(p), '?')})" for p in c))
EOF
