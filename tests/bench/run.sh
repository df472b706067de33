#!/usr/bin/env bash
# tests/bench/run.sh — make bench: the benchmarks of SPEC §7, each against a
# baseline measured in the same run, results into docs/BENCHMARKS.md between
# its "bench:results" markers (the rest of that file is prose and stays).
#
# Environment (bench.mk passes its variables): BUILD, BENCH_DRAFTS,
# BENCH_WRITERS, BENCH_REPEAT, BENCH_INVOICES, BENCH_BIG, BENCH_DIR,
# BENCH_OUT, BENCH_KEEP.
#
#   1. issuing, BENCH_REPEAT times, each time on a fresh state: BENCH_DRAFTS
#      drafts from 1 and from BENCH_WRITERS writers into pending/ (platform
#      simulator reachable, fresh database), each run right after the same
#      drafts written with fsync to a plain directory on the same disk; then
#      1 writer with no platform configured (the upload queue grows);
#   2. mount time with 0 invoices (5 mounts);
#   3. for BENCH_INVOICES and BENCH_BIG invoices (tests/bench/genstore):
#      mount time (3 mounts, plus every remount below), a copy of the month
#      out of the mount with cp -r (the baseline's files), then ls -f, ls -l,
#      cat of every file, tar of the month: first on the copy, then on the
#      mount, remounted before each tool so that the kernel caches nothing of
#      it; last ls -f again with the page cache dropped before each side (root
#      only: the cold case); the daemon's VmRSS and VmHWM after each tool.
set -u -o pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
DRAFTS=${BENCH_DRAFTS:-10000}
WRITERS=${BENCH_WRITERS:-8}
REPEAT=${BENCH_REPEAT:-3}
SMALL=${BENCH_INVOICES:-100000}
BIG=${BENCH_BIG:-1000000}
OUT=${BENCH_OUT:-docs/BENCHMARKS.md}
KEEP=${BENCH_KEEP:-0}
B=${BENCH_DIR:-tests/tmp/bench}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
FAPIAOFS=$ROOT/$BUILD/fapiaofs
PLATFORM_SIM=$ROOT/$BUILD/fapiaofs-platform-sim
DROP=$ROOT/$BUILD/bench/drop
GEN=$ROOT/$BUILD/bench/genstore
MOUNTWAIT=$ROOT/$BUILD/bench/mountwait
R=$B/results.txt          # one "kind key=value ..." line per figure
FS_PID= MNT= PLATFORM_PID=

# say, die, since, fs_mount, fs_unmount
source "$ROOT/tests/bench/lib.sh"

cleanup() {
  [ -n "$MNT" ] && mountpoint -q "$MNT" 2>/dev/null && fs_unmount
  [ -n "$PLATFORM_PID" ] && { kill "$PLATFORM_PID" 2>/dev/null; wait "$PLATFORM_PID" 2>/dev/null; }
  if [ "$KEEP" != 1 ] && [ -d "$B" ]; then
    find "$B" -mindepth 1 -maxdepth 1 ! -name results.txt ! -name '*.log' -exec rm -rf {} +
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# "VmRSS_kb VmHWM_kb" of the daemon
rss() { awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { print r, h }' "/proc/$FS_PID/status"; }

status_value() { sed -n "s/^$1: //p" "$MNT/status"; }

machine() {
  local dev fstype
  dev=$(df --output=source "$B" | tail -1)
  fstype=$(df --output=fstype "$B" | tail -1)
  {
    printf 'machine nproc=%s\n' "$(nproc)"
    printf 'machine cpu=%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    printf 'machine mem=%s\n' "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    printf 'machine kernel=%s\n' "$(uname -sr)"
    printf 'machine os=%s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")"
    printf 'machine disk=%s\n' "$dev ($fstype, $(df -h --output=size "$B" | tail -1 | tr -d ' '))"
    printf 'machine libs=%s\n' "OpenSSL $(openssl version | awk '{ print $2 }'), SQLite \
$(pkg-config --modversion sqlite3), libfuse $(pkg-config --modversion fuse3), jansson \
$(pkg-config --modversion jansson)"
    printf 'machine load=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'machine commit=%s\n' "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD \
2>/dev/null || echo ' + uncommitted changes')"
    printf 'machine date=%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'machine command=%s\n' "make bench BENCH_DRAFTS=$DRAFTS BENCH_WRITERS=$WRITERS \
BENCH_REPEAT=$REPEAT BENCH_INVOICES=$SMALL BENCH_BIG=$BIG"
  } >> "$R"
}

source "$ROOT/tests/platform.sh"
platform_start() {
  platform_sim_start "$PLATFORM_SIM" "$B" ||
    die "the platform simulator did not start (see $B/platform.log)"
}

# ---- 1. issuing ---------------------------------------------------------------

# issue_rep REP MODE: a fresh state (and platform database), then drafts from 1 writer
# (and $WRITERS writers with the platform), each run right after its baseline; MODE
# platform (simulator reachable) or none (no platform: the upload queue grows)
issue_rep() {
  local rep=$1 mode=$2 s=$B/issue-$2 w line conf
  rm -rf "$s" "$s.mnt" "$B/plain"
  "$GEN" --state "$s" --invoices 0 >/dev/null || die "genstore failed"
  conf=$s/fapiaofs.conf
  if [ "$mode" = platform ]; then
    platform_start
    printf 'demo-secret\n' > "$B/secret" && chmod 600 "$B/secret"
    conf=$s/platform.conf
    printf '[store]\nstate_dir = %s\npath = fapiaofs.db\n[device]\nkind = sim\nstate = device.json\n'\
'[platform]\nurl = http://127.0.0.1:%s\napp_key = demo-app\napp_secret_file = %s\ntimeout_ms = 2000\n' \
      "$s" "$PLATFORM_PORT" "$B/secret" > "$conf"
  fi
  mkdir -p "$s.mnt"
  fs_mount "$conf" "$s.mnt" "$B/issue.log"
  for w in 1 $([ "$mode" = platform ] && echo "$WRITERS"); do
    mkdir -p "$B/plain/w$w"
    say "issuing, run $rep of $REPEAT: $DRAFTS drafts, $w writer(s), plain directory with fsync"
    line=$("$DROP" --fsync --writers "$w" --count "$DRAFTS" --prefix "w$w" \
           --template examples/basic.json "$B/plain/w$w") || die "drop into a plain directory failed"
    echo "issue rep=$rep side=plain mode=$mode $line" >> "$R"
    say "issuing, run $rep of $REPEAT: $DRAFTS drafts, $w writer(s), pending/ (platform: $mode)"
    line=$("$DROP" --writers "$w" --count "$DRAFTS" --prefix "w$w" \
           --template examples/basic.json "$MNT/pending") || die "drop into pending/ failed"
    echo "issue rep=$rep side=fs mode=$mode $line $(rss | awk '{ print "rss_kb=" $1 " hwm_kb=" $2 }')" >> "$R"
    rm -rf "$B/plain/w$w"
  done
  echo "issue_check rep=$rep mode=$mode invoices=$(status_value invoices)" \
       "waiting=$(status_value waiting)" \
       "alarms=$(status_value reconciliation | sed -n 's/.*alarms \([0-9]*\).*/\1/p')" \
       "upload_queued=$(status_value upload_queued)" >> "$R"
  fs_unmount
  if [ -n "$PLATFORM_PID" ]; then
    kill "$PLATFORM_PID" 2>/dev/null
    wait "$PLATFORM_PID" 2>/dev/null
    PLATFORM_PID=
    rm -f "$B/platform.db"*
  fi
  rm -rf "$s" "$s.mnt" "$B/plain"
}

# ---- 2. browsing a big month ------------------------------------------------------

# Write back and drop the page cache (root): the next read of every file comes from the disk.
drop_page_cache() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# tool NAME DIR N: run one tool on DIR (N invoices); T_S, and a check of what it saw.
# ls_f_cold: ls -f after dropping the page cache, the store's pages included.
tool() {
  [ "$1" = ls_f_cold ] && drop_page_cache
  local t0=$EPOCHREALTIME n
  case $1 in
    ls_f|ls_f_cold)
           n=$(ls -f "$2" | wc -l); T_S=$(since "$t0"); [ "$n" -eq $(($3 + 2)) ] ;;
    ls_l)  n=$(ls -l "$2" | wc -l); T_S=$(since "$t0"); [ "$n" -eq $(($3 + 1)) ] ;;
    cat)   n=$(find "$2" -type f -exec cat {} + | wc -c); T_S=$(since "$t0"); BYTES=$n ;;
    tar)   tar cf - -C "$(dirname "$2")" "$(basename "$2")" 2>"$B/tar.err" | cat >/dev/null
           T_S=$(since "$t0"); [ ! -s "$B/tar.err" ] ;;
  esac || die "$1 of $2 went wrong ($n)"
}

browse() {
  local n=$1 s=$B/store-$1 period m t0 i rb tl
  say "store of $n invoices: generating"
  t0=$EPOCHREALTIME
  "$GEN" --state "$s" --invoices "$n" --template examples/basic.json > "$B/genstore-$n.log" ||
    die "genstore failed (see $B/genstore-$n.log)"
  echo "gen invoices=$n seconds=$(since "$t0") store_mb=$(du -m "$s/fapiaofs.db" | cut -f1)" \
       "journal_mb=$(du -m "$s/device.json.journal" | cut -f1)" >> "$R"
  mkdir -p "$s.mnt"
  for i in 1 2 3; do
    fs_mount "$s/fapiaofs.conf" "$s.mnt" "$B/browse-$n.log"
    if [ "$i" = 1 ]; then
      echo "store_check invoices_expected=$n invoices=$(status_value invoices)" \
           "reconciliation=\"$(status_value reconciliation)\"" >> "$R"
      [ "$(status_value invoices)" = "$n" ] || die "status does not show $n invoices"
      status_value reconciliation | grep -q 'alarms 0' ||
        die "integrity alarms: $(status_value reconciliation)"
    fi
    echo "mount invoices=$n seconds=$MOUNT_S rss_kb=$(rss | cut -d' ' -f1)" >> "$R"
    fs_unmount
  done
  fs_mount "$s/fapiaofs.conf" "$s.mnt" "$B/browse-$n.log"
  echo "mount invoices=$n seconds=$MOUNT_S rss_kb=$(rss | cut -d' ' -f1)" >> "$R"
  period=$(ls "$MNT/issued" | head -1)
  say "store of $n invoices: copying issued/$period out of the mount (the baseline)"
  mkdir -p "$B/local-$n"
  t0=$EPOCHREALTIME
  cp -r "$MNT/issued/$period" "$B/local-$n/" || die "cp -r out of the mount failed"
  echo "copy invoices=$n seconds=$(since "$t0") $(rss | awk '{ print "rss_kb=" $1 " hwm_kb=" $2 }')" >> "$R"
  for m in ls_f ls_l cat tar ls_f_cold; do   # cold last: it leaves the others' caches alone
    if [ "$m" = ls_f_cold ] && ! [ -w /proc/sys/vm/drop_caches ]; then
      say "store of $n invoices: no cold ls -f (/proc/sys/vm/drop_caches is not writable)"
      continue
    fi
    say "store of $n invoices: $m, local disk"
    BYTES=
    tool $m "$B/local-$n/$period" "$n"
    rb=${BYTES:-0}
    tl=$T_S
    say "store of $n invoices: $m, mount (remounted)"
    fs_unmount
    fs_mount "$s/fapiaofs.conf" "$s.mnt" "$B/browse-$n.log"
    echo "mount invoices=$n seconds=$MOUNT_S rss_kb=$(rss | cut -d' ' -f1)" >> "$R"
    BYTES=
    tool $m "$MNT/issued/$period" "$n"
    if [ "$m" = cat ] && [ "$BYTES" != "$rb" ]; then
      die "cat read $BYTES bytes from the mount, $rb from the copy"
    fi
    echo "browse invoices=$n tool=$m fs_s=$T_S local_s=$tl" \
         "$(rss | awk '{ print "rss_kb=" $1 " hwm_kb=" $2 }')" >> "$R"
  done
  fs_unmount
  [ "$KEEP" = 1 ] || rm -rf "$B/local-$n" "$s" "$s.mnt"
}

# ---- main -------------------------------------------------------------------------

for f in "$FAPIAOFS" "$PLATFORM_SIM" "$DROP" "$GEN" "$MOUNTWAIT"; do
  [ -x "$f" ] || die "$f is missing: make bench builds it"
done
[ -w /dev/fuse ] || die "/dev/fuse is not writable: FUSE mounts are needed"
if [ -d "$B" ]; then   # left over from an interrupted run
  for m in "$B"/*.mnt; do [ -d "$m" ] && { fusermount3 -uz "$m" 2>/dev/null; }; done
  rm -rf "$B"
fi
mkdir -p "$B"
: > "$R"
machine

# ~3 KiB per draft (store, plain copy), ~5.5 KiB (store) + ~4.5 KiB (copy) per generated
# invoice, and a margin
need=$(( (3 * DRAFTS * REPEAT + (BIG > SMALL ? BIG : SMALL) * 12) / 1024 + 1024 ))
avail=$(df --output=avail -m "$B" | tail -1)
if [ "$avail" -lt "$need" ]; then
  say "only $avail MiB free in $B, $need MiB needed: the $BIG-invoice store is skipped"
  echo "skipped invoices=$BIG reason=\"$avail MiB free, $need MiB needed\"" >> "$R"
  BIG=0
fi

say "results: $R"
for rep in $(seq "$REPEAT"); do
  issue_rep "$rep" platform
  issue_rep "$rep" none
done

say "mount time with 0 invoices"
$GEN --state "$B/store-0" --invoices 0 >/dev/null || die "genstore failed"
mkdir -p "$B/store-0.mnt"
for i in 1 2 3 4 5; do
  fs_mount "$B/store-0/fapiaofs.conf" "$B/store-0.mnt" "$B/browse-0.log"
  echo "mount invoices=0 seconds=$MOUNT_S rss_kb=$(rss | cut -d' ' -f1)" >> "$R"
  fs_unmount
done
rm -rf "$B/store-0" "$B/store-0.mnt"

for n in $SMALL $BIG; do
  [ "$n" -gt 0 ] && browse "$n"
done

python3 tests/bench/report.py "$R" "$OUT" || die "cannot write $OUT"
say "done: $OUT"
