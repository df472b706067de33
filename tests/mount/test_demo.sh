# make run and make stop, as the README has a new user type them: scripts/run-demo starts the
# platform simulator on 127.0.0.1:8470, mounts the embedded default on ./mnt and issues the
# example draft; run again, it issues another on the same state; scripts/stop undoes it all.
# Run in a copy of the scripts and the example beside this build, so that a developer's own
# ./var and ./mnt are not touched; skipped (one line, no failure) while something else holds
# port 8470, such as that developer's own `make run`.
source "$(dirname "$0")/lib.sh"
T=$ROOT/tests/tmp/demo.$(basename "$BUILD")
if curl -s -o /dev/null --max-time 2 http://127.0.0.1:8470/v1/health; then
  echo "# skip: something answers on 127.0.0.1:8470 already (make stop ends a make run)"
  exit 0
fi
[ -d "$T/mnt" ] && fusermount3 -uz "$T/mnt" 2>/dev/null
rm -rf "$T"; mkdir -p "$T/scripts" "$T/examples"
cp "$ROOT/scripts/run-demo" "$ROOT/scripts/stop" "$T/scripts/"
cp "$ROOT/examples/basic.json" "$T/examples/"
ln -s "$BUILD" "$T/build"
demo_cleanup() {
  bash "$T/scripts/stop" --quiet
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/var/*.log 2>/dev/null; then
    echo "not ok - sanitizer report in var/*.log:"; grep -h -A20 -E 'Sanitizer|runtime error' "$T"/var/*.log | head -40
    T_FAILED=1
  fi
  exit $T_FAILED
}
trap demo_cleanup EXIT

receipt_status() { sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p' "$1" | head -1; }
status_field() { sed -n "s/^$1: //p" "$T/mnt/status"; }

(cd "$T" && bash scripts/run-demo) > "$T/run1.out" 2>&1
ok $? "scripts/run-demo (make run) exits 0"
check "  the simulated device is created on the first run" grep -q 'fapiaofs-sim create var/device.json' "$T/run1.out"
check "  fapiaofs is mounted on ./mnt" mountpoint -q "$T/mnt"
check_eq "  the example draft's receipt says issued" "$(receipt_status "$T/run1.out")" "issued"
check "  and the invoice is shown" grep -q '"signature"' "$T/run1.out"
check_eq "  status: invoices 1" "$(status_field invoices)" "1"
wait_for 40 test "$(curl -s http://127.0.0.1:8471/admin/count)" = 1
check_eq "  the invoice reaches the platform simulator" "$(curl -s http://127.0.0.1:8471/admin/count)" "1"

(cd "$T" && bash scripts/run-demo) > "$T/run2.out" 2>&1
ok $? "run again (it restarts both on the same state): exits 0"
check_eq "  a second draft is issued, not a duplicate" "$(receipt_status "$T/run2.out")" "issued"
check_eq "  status: invoices 2" "$(status_field invoices)" "2"

(cd "$T" && bash scripts/stop) > "$T/stop.out" 2>&1
ok $? "scripts/stop (make stop) exits 0"
check "  ./mnt is unmounted" bash -c '! mountpoint -q "$1"' _ "$T/mnt"
check "  the platform simulator is stopped" bash -c '! curl -s -o /dev/null --max-time 2 http://127.0.0.1:8470/v1/health'
check "  and it says so" grep -q 'stopped the platform simulator' "$T/stop.out"
