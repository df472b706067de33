#!/usr/bin/env bash
# tests/bench/profile.sh — where an issued draft's time goes, stage by stage
# (docs/BENCHMARKS.md, "Profile").  Needs perf with uprobes (root, or
# perf_event_paranoid <= 1, and tracefs).
#
#   bash tests/bench/profile.sh [WRITERS [DRAFTS [platform|none]]]   (1 1000 none)
#
# Mounts a fresh state (tests/bench/genstore --invoices 0) with a copy of
# build/fapiaofs, puts a uprobe on the entry and the return of each stage of
# the pipeline (engine.c, store.c, sim.c, presign.c, invoice.c), of fsync,
# fdatasync and rename in libc and of SQLite's checkpoints, drops DRAFTS
# drafts from WRITERS writers (tests/bench/drop) and prints, per function:
# calls, calls per draft, mean, p50 and p99 wall time, and milliseconds per
# draft (the sum over the run divided by the drafts).  Times include the probes' own cost (a few µs each)
# and, with several writers, the waits for locks held by other threads.
set -u -o pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
WRITERS=${1:-1}
DRAFTS=${2:-1000}
MODE=${3:-none}
BUILD=${BUILD:-build}
P=${PROFILE_DIR:-$ROOT/tests/tmp/profile}
# the stages that are functions of their own (engine.c's per-round steps are static and
# inlined; the batch calls below are what a round does)
FUNCS="engine_submit store_add_draft draft_parse store_find_request store_queue_counts
       sim_issue_begin sim_issue_reserve_next invoice_build store_put_intents sim_issue_sign_batch
       presign_sign_b64 invoice_render store_put_invoices pending_flush process
       store_uploads_done store_next_upload"
LIBC_FUNCS="fdatasync fsync rename"
# SQLite's checkpoints: automatic ones call sqlite3_wal_checkpoint in the committing thread
SQLITE_FUNCS="sqlite3_wal_checkpoint"

if ! command -v perf >/dev/null; then
  echo "profile: perf is not installed (apt-get install linux-perf)" >&2
  exit 1
fi
make --no-print-directory bench-tools >/dev/null || exit 1
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
[ -d "$P/mnt" ] && fusermount3 -uz "$P/mnt" 2>/dev/null
rm -rf "$P"
mkdir -p "$P/mnt"
cp "$BUILD/fapiaofs" "$P/fapiaofs"   # the probes stay on this copy, not on build/
LIBC=$(ldd "$P/fapiaofs" | awk '/libc.so.6/ { print $3 }')
LIBSQLITE=$(ldd "$P/fapiaofs" | awk '/libsqlite3.so/ { print $3 }')

FS_PID= PLATFORM_PID= PERF_PID=
cleanup() {
  [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null
  mountpoint -q "$P/mnt" && fusermount3 -u "$P/mnt"
  [ -n "$FS_PID" ] && wait "$FS_PID" 2>/dev/null
  [ -n "$PLATFORM_PID" ] && kill "$PLATFORM_PID" 2>/dev/null
  perf probe -q -d 'probe_fapiaofs:*' 2>/dev/null
  perf probe -q -d 'probe_libc:*' 2>/dev/null
  perf probe -q -d 'probe_libsqlite3:*' 2>/dev/null
}
trap cleanup EXIT

perf probe -q -d 'probe_fapiaofs:*' 2>/dev/null
perf probe -q -d 'probe_libc:*' 2>/dev/null
perf probe -q -d 'probe_libsqlite3:*' 2>/dev/null
for f in $FUNCS; do
  perf probe -q -x "$P/fapiaofs" -a "$f" && perf probe -q -x "$P/fapiaofs" -a "${f}_ret=$f%return" ||
    echo "profile: no probe on $f (inlined?)" >&2
done
for f in $LIBC_FUNCS; do
  perf probe -q -x "$LIBC" -a "$f" && perf probe -q -x "$LIBC" -a "${f}_ret=$f%return"
done
for f in $SQLITE_FUNCS; do
  [ -n "$LIBSQLITE" ] && perf probe -q -x "$LIBSQLITE" -a "$f" &&
    perf probe -q -x "$LIBSQLITE" -a "${f}_ret=$f%return"
done

"$BUILD/bench/genstore" --state "$P/state" --invoices 0 >/dev/null || exit 1
conf=$P/state/fapiaofs.conf
if [ "$MODE" = platform ]; then
  "$BUILD/fapiaofs-platform-sim" --port 0 --db "$P/platform.db" --port-file "$P/platform.port" \
      --admin-port-file "$P/platform.admin" >>"$P/platform.log" 2>&1 &
  PLATFORM_PID=$!
  for _ in $(seq 200); do [ -s "$P/platform.admin" ] && break; sleep 0.05; done
  printf 'demo-secret\n' > "$P/secret" && chmod 600 "$P/secret"
  conf=$P/platform.conf
  printf '[store]\nstate_dir = %s\npath = fapiaofs.db\n[device]\nkind = sim\nstate = device.json\n'\
'[platform]\nurl = http://127.0.0.1:%s\napp_key = demo-app\napp_secret_file = %s\n' \
    "$P/state" "$(cat "$P/platform.port")" "$P/secret" > "$conf"
fi
"$P/fapiaofs" -f --config "$conf" "$P/mnt" >>"$P/fapiaofs.log" 2>&1 &
FS_PID=$!
"$BUILD/bench/mountwait" "$P/mnt" "$FS_PID" || exit 1
perf record -q -e 'probe_fapiaofs:*' -e 'probe_libc:*' -e 'probe_libsqlite3:*' -p "$FS_PID" \
  -o "$P/perf.data" 2>/dev/null &
PERF_PID=$!
sleep 1
"$BUILD/bench/drop" --writers "$WRITERS" --count "$DRAFTS" --prefix prof "$P/mnt/pending"
kill -INT "$PERF_PID"
wait "$PERF_PID"
PERF_PID=
perf script -i "$P/perf.data" 2>/dev/null | python3 -c '
import collections, re, sys
pat = re.compile(r"^\s*\S.*?\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+\S+?:(\w+?)(_ret__return)?:")
open_calls, dur = collections.defaultdict(list), collections.defaultdict(list)
for line in sys.stdin:
    m = pat.match(line)
    if not m:
        continue
    tid, ts, fn, ret = m.group(1), float(m.group(2)), m.group(3), m.group(4)
    if not ret:
        open_calls[(tid, fn)].append(ts)
    elif open_calls[(tid, fn)]:
        dur[fn].append(ts - open_calls[(tid, fn)].pop())
n = int(sys.argv[1])
print("%-22s %8s %9s %9s %9s %9s %9s" % ("function", "calls", "per draft", "mean ms", "p50 ms",
                                        "p99 ms", "ms/draft"))
for fn, v in sorted(dur.items(), key=lambda kv: -sum(kv[1])):
    v.sort()
    print("%-22s %8d %9.2f %9.3f %9.3f %9.3f %9.3f" % (fn, len(v), len(v) / n, 1e3 * sum(v) / len(v),
          1e3 * v[len(v) // 2], 1e3 * v[min(len(v) - 1, int(len(v) * 0.99))], 1e3 * sum(v) / n))
' "$DRAFTS"
