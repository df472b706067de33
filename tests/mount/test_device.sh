# Every refusal of the simulated device seen through the mount, with the device set up and
# changed by fapiaofs-sim while mounted: the per-invoice limit (EINVAL, totals.amount in the
# .error), rolls used in order and running out (the draft waits, close() returns 0; add-roll
# issues it), the lock date (set in the past: drafts wait; set back: issued), a wrong PIN
# (drafts wait; five wrong PINs through remounts lock the device, even the right PIN is refused;
# reset-pin and the right PIN issue).
source "$(dirname "$0")/lib.sh"
SIMTOOL=$BUILD/fapiaofs-sim

# The setup of lib.sh's t_setup, with a device made by fapiaofs-sim before the first mount.
T=$ROOT/tests/tmp/device.$(basename "$BUILD")
[ -d "$T/mnt" ] && fusermount3 -uz "$T/mnt" 2>/dev/null
rm -rf "$T"; mkdir -p "$T/state" "$T/mnt" "$T/dev"
MNT=$T/mnt
P=$MNT/pending
DEV=$T/dev/device.json
trap t_cleanup EXIT
t_platform_start
cat > "$T/fapiaofs.conf" <<CONF
[store]
state_dir = $T/state
path = fapiaofs.db
[device]
kind = sim
state = $DEV
[platform]
url = http://127.0.0.1:$PLATFORM_PORT
app_key = demo-app
app_secret_file = $T/secret
timeout_ms = 2000
CONF
printf 'demo-secret\n' > "$T/secret" && chmod 600 "$T/secret"

R1=044031900111 R2=044031900112 R3=044031900113
check "fapiaofs-sim --help" "$SIMTOOL" --help
check "fapiaofs-sim create: a 026 roll of 2, a second 026 roll of 1, limit 20000.00" \
  "$SIMTOOL" create "$DEV" --roll "026:$R1:1:2" --roll "026:$R2:1:1" --limit 20000.00 \
    --seller-name 深圳设备测试有限公司 --machine-number 499099000555
sim() { "$SIMTOOL" show "$DEV" | sed -n "s/^$1: //p"; }
check_eq "show: per_invoice_limit" "$(sim per_invoice_limit)" "20000.00"
check_eq "show: the two rolls in order" "$(sim roll | cut -d' ' -f1-5 | tr '\n' '|')" \
  "026 $R1 00000001 00000002 00000001|026 $R2 00000001 00000001 00000001|"
"$SIMTOOL" create "$DEV" 2>"$T/err"; rc=$?
check_eq "a second create is refused (exit 1) and names the file" \
  "$rc $(grep -c "$DEV already exists" "$T/err")" "1 1"
"$SIMTOOL" set "$DEV" limit=lots 2>"$T/err"; rc=$?
check_eq "set limit=lots is refused, naming the file and field" \
  "$rc $(grep -c "$DEV: limit: \"lots\" is not an amount" "$T/err")" "1 1"
ORIG_LOCK=$(sim lock_date)
t_mount

cat > "$T/drop.py" <<'PY'
import os, sys
path, data = sys.argv[1], open(sys.argv[2], "rb").read()
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
try:
    os.close(fd); print(0)
except OSError as e:
    print(e.errno)
PY
# close_errno NAME SRC: write SRC to pending/NAME; print close()'s errno (0: success).
close_errno() { python3 "$T/drop.py" "$P/$1" "$2"; }
mkdraft() { sed "s/SO-2024-000123/$1/" "$ROOT/examples/basic.json" > "$T/$1.json"; }
retries() { sed -n 's/^pin_retries_left: //p' "$MNT/device/status"; }
has_line() { grep -q "$2" "$1" 2>/dev/null; }
receipt_of() { json "$MNT/receipts/$1" '"%s %s-%s" % (d["status"], d["code"], d["number"])' 2>&1 | tail -1; }
waiting() {   # NAME WHY: close 0 already checked; the draft waits, read-only, status says WHY
  check "$1 stays in pending/" test -f "$P/$1"
  check_eq "$1 is read-only (0444)" "$(stat -c %a "$P/$1" 2>/dev/null)" "444"
  check "no receipt for $1" test ! -e "$MNT/receipts/$1"
  wait_for 5 has_line "$MNT/status" "^waiting_draft: $1 .*$2"
  ok $? "status: waiting_draft: $1 ... $2"
}

# --- above the per-invoice limit: rejected at close, EINVAL -------------------------------------
# the example with its first line at 30000.00: amount 29500.00, total 31270.00
sed 's/SO-2024-000123/DEV-BIG/; s/"10000.00"/"30000.00"/g; s/"600.00"/"1800.00"/' \
  "$ROOT/examples/basic.json" > "$T/big.json"
check_eq "a draft above the limit: close() returns EINVAL (22)" "$(close_errno big.json "$T/big.json")" "22"
check "rejected/big.json.error: totals.amount 29500.00 exceeds the device's limit of 20000.00" \
  grep -q '^totals.amount: 29500.00 exceeds .*limit of 20000.00' "$MNT/rejected/big.json.error"
check "no receipt for the draft above the limit" test ! -e "$MNT/receipts/big.json"

# --- rolls used in order, then exhausted ---------------------------------------------------------
for i in 1 2 3 4 5 6 7; do mkdraft "DEV-$i"; done
for i in 1 2 3; do
  check_eq "draft $i: close() returns 0" "$(close_errno "d$i.json" "$T/DEV-$i.json")" "0"
done
check_eq "d1 from the first roll" "$(receipt_of d1.json)" "issued $R1-00000001"
check_eq "d2 from the first roll" "$(receipt_of d2.json)" "issued $R1-00000002"
check_eq "d3 from the second roll once the first ran out" "$(receipt_of d3.json)" "issued $R2-00000001"
check_eq "the invoice names the seller of the device" \
  "$(json "$MNT/$(json "$MNT/receipts/d3.json" 'd["path"]')" 'd["seller"]["name"], d["machine_number"]')" \
  "('深圳设备测试有限公司', '499099000555')"
check_eq "draft 4, rolls exhausted: close() returns 0 (accepted, waiting)" \
  "$(close_errno d4.json "$T/DEV-4.json")" "0"
waiting d4.json "invoice roll exhausted"
check_eq "device/rolls: nothing remaining" "$(awk '{s += $6} END {print s}' "$MNT/device/rolls")" "0"
check_eq "device/rolls: one line per roll, six fields each (SPEC §2)" \
  "$(awk 'NF != 6 || $1 !~ /^02[68]$/' "$MNT/device/rolls")" ""
check_eq "the state file still holds the admin's limit after the daemon's writes" \
  "$(sim per_invoice_limit)" "20000.00"

check "fapiaofs-sim add-roll while mounted" "$SIMTOOL" add-roll "$DEV" "026:$R3:1:10"
wait_for 8 test -e "$MNT/receipts/d4.json"
ok $? "the waiting draft is issued from the added roll within 8 s"
check_eq "d4 from the added roll" "$(receipt_of d4.json)" "issued $R3-00000001"
check "d4 gone from pending/" test ! -e "$P/d4.json"
wait_for 3 has_line "$MNT/device/rolls" "^026 $R3 00000001 00000010 00000002 9$"
ok $? "device/rolls lists the added roll, next 2, 9 remaining"
check_eq "show: the added roll's next follows the daemon" \
  "$(sim roll | grep "$R3" | cut -d' ' -f5)" "00000002"

# --- lock date in the past while mounted ---------------------------------------------------------
check "fapiaofs-sim set lock_date in the past" "$SIMTOOL" set "$DEV" lock_date=2000-01-01T00:00:00+08:00
wait_for 3 has_line "$MNT/device/status" '^locked: yes$'
ok $? "device/status: locked: yes"
# Arrival order is when a draft is handed over, not when its file was made: late.json is
# created first and held open, d5 arrives, then late.json is written and closed.
mkdraft DEV-late
exec 7> "$P/late.json"
check_eq "draft 5, device locked: close() returns 0 (accepted, waiting)" \
  "$(close_errno d5.json "$T/DEV-5.json")" "0"
cat "$T/DEV-late.json" >&7
exec 7>&-
waiting d5.json "device locked"
waiting late.json "device locked"
check_eq "status lists them in arrival order, the next to go first" \
  "$(sed -n 's/^waiting_draft: \([^ ]*\) .*/\1/p' "$MNT/status" | tr '\n' ' ')" "d5.json late.json "
check "status: device: locked" grep -q '^device: locked' "$MNT/status"
t_remount
check "after a remount, status still says why it waited until the retry says it again" grep -q \
  '^waiting_draft: d5.json since .*: waiting since the last mount; before it: .*locked' "$MNT/status"
check "fapiaofs-sim set lock_date back" "$SIMTOOL" set "$DEV" "lock_date=$ORIG_LOCK"
wait_for 8 test -e "$MNT/receipts/late.json"
ok $? "the waiting drafts are issued within 8 s of the lock date moving back"
check_eq "d5 issued first: it arrived first (SPEC §2.1), though its file was made later" \
  "$(receipt_of d5.json)" "issued $R3-00000002"
check_eq "late.json issued after it" "$(receipt_of late.json)" "issued $R3-00000003"
check_eq "show: lock date as set back" "$(sim lock_date)" "$ORIG_LOCK"

# --- a wrong PIN; five lock the device -----------------------------------------------------------
t_unmount
printf '00000000\n' > "$T/pin"; chmod 600 "$T/pin"
sed -i "/^\[device\]/a pin_file = $T/pin" "$T/fapiaofs.conf"
t_mount
# (one mount, one PIN try: fs/main.c's preflight engine_open must not try the PIN as well)
check_eq "wrong PIN: device/status pin_retries_left 4" "$(retries)" "4"
# A scratch file before d6 and one after it: numbers counted per mount would give d6 another
# one after a remount, and a later mount's files the numbers these had.
scratch_ino() { : > "$P/scratch.tmp" && stat -c %i "$P/scratch.tmp" && rm "$P/scratch.tmp"; }
given=$(scratch_ino)
check_eq "draft 6, wrong PIN: close() returns 0 (accepted, waiting)" \
  "$(close_errno d6.json "$T/DEV-6.json")" "0"
given="$given $(stat -c %i "$P/d6.json") $(scratch_ino)"
waiting d6.json "PIN"
check "status: device: PIN refused, 4 tries left" grep -q '^device: PIN refused, 4 tries left' "$MNT/status"
# A plain clear tries no PIN of its own: retried by a script, it must not lock the device.
for _ in 1 2 3 4 5 6; do
  out=$( (echo clear > "$MNT/device/clear") 2>&1 | sed 's/.*: //')
done
check_eq "six plain clears with the configured PIN refused: EACCES" "$out" "Permission denied"
check_eq "  and no tries used: pin_retries_left still 4" "$(retries)" "4"
check "  the reason says the configured PIN is not tried again" \
  grep -q '^reason: the device refused the configured PIN .* not tried again' "$MNT/device/clear"
ino6=$(stat -c %i "$P/d6.json")
left="" inos=""
for _ in 1 2 3 4; do
  t_remount
  left="$left$(retries) "
  inos="$inos$(stat -c %i "$P/d6.json") "
done
check_eq "each remount with the wrong PIN costs one try" "$left" "3 2 1 0 "
check_eq "the waiting d6.json keeps its st_ino across the four remounts (SPEC §2.2)" \
  "$inos" "$ino6 $ino6 $ino6 $ino6 "
check_eq "  and ls -i says the same" "$(ls -i1 "$P" | awk '$2 == "d6.json" { print $1 }')" "$ino6"
check_eq "show: pin_locked: yes" "$(sim pin_locked)" "yes"
t_unmount
sed -i '/^pin_file = /d' "$T/fapiaofs.conf"
t_mount
check_eq "PIN-locked: the right PIN is refused too, pin_retries_left stays 0" "$(retries)" "0"
check "status: device: PIN-locked" grep -q '^device: PIN-locked after 5 wrong PINs' "$MNT/status"
scratch_ino > /dev/null
check_eq "draft 7, PIN-locked: close() returns 0 (accepted, waiting)" \
  "$(close_errno d7.json "$T/DEV-7.json")" "0"
waiting d6.json "PIN"
waiting d7.json "PIN"   # not "behind d6.json": the PIN stops every draft alike
ino7=$(stat -c %i "$P/d7.json")
check_eq "a file made after the remounts gets a number no earlier mount gave ($given)" \
  "$(for i in $given; do [ "$ino7" -gt "$i" ] || echo "$i"; done)" ""
t_remount
check_eq "both waiting drafts keep their st_ino across a remount" \
  "$(stat -c %i "$P/d6.json") $(stat -c %i "$P/d7.json")" "$ino6 $ino7"
check "fapiaofs-sim reset-pin while mounted" "$SIMTOOL" reset-pin "$DEV"
wait_for 3 has_line "$MNT/device/status" '^pin_retries_left: 5$'
ok $? "device/status: pin_retries_left 5 after reset-pin"
t_remount
wait_for 8 test -e "$MNT/receipts/d7.json"
ok $? "with the right PIN after the reset both waiting drafts are issued"
check_eq "d6 issued" "$(receipt_of d6.json)" "issued $R3-00000004"
check_eq "d7 issued" "$(receipt_of d7.json)" "issued $R3-00000005"
check_eq "pending/ empty at the end" "$(ls -A "$P")" ""
check_eq "the device journal and the store agree: 8 invoices" \
  "$(sim signed_invoices) $(sqlite3 "$T/state/fapiaofs.db" 'select count(*) from invoices')" "8 8"
