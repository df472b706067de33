#!/usr/bin/env bash
# tests/bench/ab.sh — two builds of fapiaofs issuing in alternation, for a
# before/after figure on a noisy machine (docs/BENCHMARKS.md, "Fixes").
#
#   bash tests/bench/ab.sh A_BUILD B_BUILD       (root; make bench-tools first)
#
# Each build runs, on a fresh state without a platform: N drafts from 1
# writer, from 8 writers, and from 1 writer with every sync a no-op
# (nosync.so: what the daemon's work and FUSE leave of the rate).  The order
# is A B B A, then B A A B, so that a drift of the machine hits both alike.
# One line per run on stdout and appended to OUT: build variant writers
# rate close_p50_ms.  N (3000), OUT (tests/tmp/ab/results.txt) and AB_DIR
# (tests/tmp/ab) from the environment.  The tools are those of this tree's
# build/; A_BUILD and B_BUILD need only fapiaofs.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ $# -eq 2 ] || { echo "usage: $0 A_BUILD B_BUILD" >&2; exit 2; }
A_BUILD=$(cd "$1" && pwd) B_BUILD=$(cd "$2" && pwd)
N=${N:-3000}; DIR=${AB_DIR:-$ROOT/tests/tmp/ab}; OUT=${OUT:-$DIR/results.txt}
TOOLS=$ROOT/build/bench MOUNTWAIT=$ROOT/build/bench/mountwait
# say, die, since, need_tools, fs_mount, fs_mount_fresh, fs_unmount
source "$ROOT/tests/bench/lib.sh"
need_tools genstore drop mountwait nosync.so
mkdir -p "$DIR"

one() {  # BUILD VARIANT WRITERS
  local line
  FAPIAOFS=$1/fapiaofs FS_PRELOAD=
  [ "$2" = nosync ] && FS_PRELOAD=$TOOLS/nosync.so
  fs_mount_fresh "$DIR"
  line=$("$TOOLS/drop" --writers "$3" --count "$N" --prefix r --template "$ROOT/examples/basic.json" \
         "$MNT/pending")
  echo "$1 $2 w$3 $(grep -o 'rate=[0-9.]*' <<< "$line") $(grep -o 'close_p50_ms=[0-9.]*' <<< "$line")" |
    tee -a "$OUT"
  fs_unmount
}

for order in "A B B A" "B A A B"; do
  for x in $order; do
    if [ "$x" = A ]; then b=$A_BUILD; else b=$B_BUILD; fi
    one "$b" normal 1; one "$b" normal 8; one "$b" nosync 1
  done
done
