# tests/mount/lib.sh — shared by the mount tests: a private state directory,
# the platform simulator on free loopback ports, a real FUSE mount, and
# checks that print "ok - ..." / "not ok - ...".
#
#   source tests/mount/lib.sh
#   t_setup NAME            state dir, simulator, configuration, mount
#   ok COND_EXIT_STATUS DESC / check DESC CMD... / check_eq DESC GOT WANT
#   t_remount               unmount and mount again on the same state
#   T_CLOCK=ISO t_setup ... the mount runs on a test clock ([clock] file = $T/clock);
#   t_clock ISO             move it (the daemon and the device re-read it at every use)
#   T_CONF=$'[fs]\ngroup = g' t_setup ...   lines appended to the configuration before the mount
#   T_TMP=DIR t_setup ...   the test's folder under DIR instead of tests/tmp
#   T_STATE_TMPFS=SIZE t_setup ...   the state directory on a tmpfs of SIZE (root only)
#   wait_for SECONDS CMD... until CMD succeeds (its output discarded); 1 if it never did
#   drop_file PATH SRC      write SRC's bytes to PATH and close; prints the errno (0: success)
#   (cleanup runs at exit: unmount, stop the simulator, sanitizer report check)
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${FAPIAOFS_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
FAPIAOFS=$BUILD/fapiaofs
PLATFORM_SIM=$BUILD/fapiaofs-platform-sim
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

T_FAILED=0
ok()       { if [ "$1" -eq 0 ]; then echo "ok - $2"; else echo "not ok - $2"; T_FAILED=1; fi; }
check()    { local d=$1; shift; "$@" >/dev/null 2>&1; ok $? "$d"; }
wait_for() {  # SECONDS COMMAND...: until the command succeeds
  local limit=$1; shift
  for _ in $(seq $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
drop_file() {  # PATH SRC: open (O_CREAT|O_TRUNC), write, close; the first failure's errno
  python3 - "$1" "$2" <<'PY'
import os, sys
data = open(sys.argv[2], "rb").read()
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.close(fd); print(0)
except OSError as e:
    print(e.errno)
PY
}
check_eq() { if [ "$2" == "$3" ]; then echo "ok - $1"; else echo "not ok - $1 (got '$2', want '$3')"; T_FAILED=1; fi; }

t_setup() {
  T=${T_TMP:-$ROOT/tests/tmp}/$1.$(basename "$BUILD")
  [ -d "$T/mnt" ] && fusermount3 -uz "$T/mnt" 2>/dev/null
  mountpoint -q "$T/state" 2>/dev/null && umount -l "$T/state"
  rm -rf "$T"; mkdir -p "$T/state" "$T/mnt"
  T_TMPFS_MOUNTED=
  if [ -n "${T_STATE_TMPFS:-}" ]; then   # T_STATE_TMPFS=SIZE t_setup sets it for t_setup only
    mount -t tmpfs -o "size=$T_STATE_TMPFS,mode=0755" fapiaofs-test "$T/state" ||
      { echo "not ok - mount a tmpfs for the state directory"; exit 1; }
    T_TMPFS_MOUNTED=1
  fi
  MNT=$T/mnt
  trap t_cleanup EXIT
  t_platform_start
  cat > "$T/fapiaofs.conf" <<CONF
[store]
state_dir = $T/state
path = fapiaofs.db
[device]
kind = sim
state = device.json
[platform]
url = http://127.0.0.1:$PLATFORM_PORT
app_key = demo-app
app_secret_file = $T/secret
timeout_ms = 2000
CONF
  printf 'demo-secret\n' > "$T/secret" && chmod 600 "$T/secret"
  if [ -n "${T_CLOCK:-}" ]; then
    t_clock "$T_CLOCK"
    printf '[clock]\nfile = %s\n' "$T/clock" >> "$T/fapiaofs.conf"
  fi
  if [ -n "${T_CONF:-}" ]; then printf '%s\n' "$T_CONF" >> "$T/fapiaofs.conf"; fi
  t_mount
}

t_clock() { printf '%s\n' "$1" > "$T/clock.new" && mv "$T/clock.new" "$T/clock"; }

source "$(dirname "${BASH_SOURCE[0]}")/../platform.sh"
t_platform_start() { platform_sim_start "$PLATFORM_SIM" "$T"; }

platform_mode()  { curl -s -d "$1" "http://127.0.0.1:$PLATFORM_ADMIN/admin/mode" >/dev/null; }
platform_count() { curl -s "http://127.0.0.1:$PLATFORM_ADMIN/admin/count"; }

t_mount() {
  "$FAPIAOFS" -f --config "$T/fapiaofs.conf" "$MNT" >>"$T/fapiaofs.log" 2>&1 &
  FS_PID=$!
  for _ in $(seq 200); do mountpoint -q "$MNT" && break; sleep 0.05; done
  mountpoint -q "$MNT" || { echo "not ok - mount (see $T/fapiaofs.log)"; cat "$T/fapiaofs.log"; exit 1; }
}

t_unmount() {
  fusermount3 -u "$MNT" 2>/dev/null || { sleep 0.5; fusermount3 -uz "$MNT"; }
  t_daemon_exited
}

# t_stop: stop the daemon with SIGTERM, as a service manager does; it unmounts
# lazily, so files may still be open.
t_stop() {
  kill -TERM "$FS_PID"
  t_daemon_exited
}

t_daemon_exited() {
  wait "$FS_PID" 2>/dev/null
  local rc=$?
  ok $rc "daemon exited cleanly (exit $rc)"
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T/fapiaofs.log"; then
    echo "not ok - sanitizer report in fapiaofs.log:"; sed 's/^/    /' "$T/fapiaofs.log" | head -60
    T_FAILED=1
  fi
}

t_remount() { t_unmount; t_mount; }

t_cleanup() {
  if mountpoint -q "$MNT" 2>/dev/null; then t_unmount; fi
  if [ -n "${T_TMPFS_MOUNTED:-}" ] && mountpoint -q "$T/state" 2>/dev/null; then umount "$T/state"; fi
  if [ -n "${PLATFORM_PID:-}" ]; then
    kill "$PLATFORM_PID" 2>/dev/null; wait "$PLATFORM_PID" 2>/dev/null
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T/platform.log"; then
      echo "not ok - sanitizer report in platform.log:"; sed 's/^/    /' "$T/platform.log" | head -40
      T_FAILED=1
    fi
  fi
  exit $T_FAILED
}

# json FILE EXPR: evaluate a Python expression over the parsed document `d`.
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1],encoding="utf-8")); print(eval(sys.argv[2]))' "$1" "$2"; }

# verify_signature INVOICE: its SM2 signature verifies with the device's public key over the
# canonical bytes (the invoice without "signature", compact, keys in file order), with the
# openssl command alone.  Returns openssl's status.
verify_signature() {
  python3 - "$1" "$T/canon" "$T/sig" <<'PY'
import base64, json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
sig = d.pop("signature")
open(sys.argv[2], "wb").write(json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode())
open(sys.argv[3], "wb").write(base64.b64decode(sig))
PY
  { echo "-----BEGIN PUBLIC KEY-----"; sed -n 's/^public_key: //p' "$MNT/device/info" | fold -w 64
    echo "-----END PUBLIC KEY-----"; } > "$T/pub.pem"
  openssl pkeyutl -verify -pubin -inkey "$T/pub.pem" -rawin -digest sm3 \
    -pkeyopt distid:1234567812345678 -in "$T/canon" -sigfile "$T/sig" >/dev/null 2>&1
}
