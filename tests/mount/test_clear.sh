# Clearing the card (SPEC §2.3, §5.3, §5.4) through device/clear, on a test clock:
# lock date, waiting drafts, every errno of the control file, reports/, and a
# clearing killed after each of its steps and run again.
source "$(dirname "$0")/lib.sh"
T_CLOCK=2026-11-10T10:00:00+08:00 t_setup clear
ADMIN=http://127.0.0.1:$PLATFORM_ADMIN

# draft NAME REQUEST_ID: the example with its own request_id, into pending/
draft() {
  python3 - "$ROOT/examples/basic.json" "$T/$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
d["request_id"] = sys.argv[3]
json.dump(d, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
PY
  cp "$T/$1" "$MNT/pending/$1"
}
# clear [COMMAND]: write it to device/clear; prints the shell's error, if any
clear_cmd() { ( echo "${1:-clear}" > "$MNT/device/clear" ) 2>&1 | sed 's/.*: //'; }
field() { sed -n "s/^$2: //p" "$1"; }
filed() { curl -s -d "$1" "$ADMIN/admin/filed" >/dev/null; }

check_eq "device/clear before any attempt" "$(field "$MNT/device/clear" result)" "none"
check_eq "device/clear mode: owner rw only without [fs] group" "$(stat -c %a "$MNT/device/clear")" "600"
# One process stats the file, writes the command and reads the result: it reads this attempt's
# result (its stat had pinned the text before the command, and it read "result: none").
check_eq "clear in the month of creation, read back by the same process: result ok" "$(python3 -c '
import os, sys
p = sys.argv[1]
os.stat(p)
with open(p, "w") as f:
    f.write("clear\n")
print([l for l in open(p).read().splitlines() if l.startswith("result: ")][0])' "$MNT/device/clear")" \
  "result: ok"
check_eq "  result ok" "$(field "$MNT/device/clear" result)" "ok"
check "  says nothing to clear" grep -q '^outcome: nothing to clear' "$MNT/device/clear"
check_eq "stat size = bytes read: device/clear" "$(stat -c %s "$MNT/device/clear")" \
  "$(wc -c < "$MNT/device/clear")"

# November: three invoices; reports/2026-11.csv sums them.
for i in 1 2 3; do draft nov-$i.json NOV-$i; done
check_eq "three November invoices" "$(ls "$MNT/issued/2026-11" | wc -l)" "3"
REPORT=$MNT/reports/2026-11.csv
check_eq "reports/ lists the period" "$(ls "$MNT/reports")" "2026-11.csv"
check_eq "report header" "$(head -1 "$REPORT")" "period,type,kind,tax_rate,invoices,amount,tax,total"
check_eq "report line" "$(grep '^2026-11,026,blue,0.06,' "$REPORT")" "2026-11,026,blue,0.06,3,28500.00,1710.00,30210.00"
check_eq "report total" "$(grep '^2026-11,all,all,all,' "$REPORT")" "2026-11,all,all,all,3,28500.00,1710.00,30210.00"
check_eq "stat size = bytes read: report" "$(stat -c %s "$REPORT")" "$(wc -c < "$REPORT")"
for _ in $(seq 100); do [ "$(platform_count)" = 3 ] && break; sleep 0.1; done

# 1 December: not locked yet, nothing finished is cleared yet but the lock date is the 15th.
t_clock 2026-12-01T09:00:00+08:00
sleep 1.1
check_eq "1 December: device not locked" "$(field "$MNT/device/status" locked)" "no"
# 16 December: locked; a draft waits and status says why.
t_clock 2026-12-16T09:00:00+08:00
sleep 1.1   # generated files are rendered at most once a second
check_eq "16 December: device locked" "$(field "$MNT/device/status" locked)" "yes"
draft dec-1.json DEC-1
check "the draft waits in pending/" test -f "$MNT/pending/dec-1.json"
check "status names the period and the command" \
  grep -q 'device locked: period 2026-11 not cleared (echo clear > device/clear)' "$MNT/status"

# Refusals, each with its errno and a readable reason.
check_eq "clear before the return is filed: EPERM" "$(clear_cmd)" "Operation not permitted"
check_eq "  result failed" "$(field "$MNT/device/clear" result)" "failed"
check_eq "  period" "$(field "$MNT/device/clear" period)" "2026-11"
check "  reason names return_not_filed" grep -q '^reason: .*tax return of 2026-11 is not filed' "$MNT/device/clear"
check "  step 5 failed, step 6 not run" bash -c "grep -q '^step_5_clearance: failed' '$MNT/device/clear' &&
  grep -q '^step_6_write_back: not run' '$MNT/device/clear'"
check_eq "  the summary reached the platform" \
  "$(curl -s "$ADMIN/admin/summary/2026-11" | python3 -c 'import json,sys; print(json.load(sys.stdin)["period"])')" "2026-11"
platform_mode down
check_eq "clear with the platform down: EAGAIN" "$(clear_cmd)" "Resource temporarily unavailable"
check "  reason says unreachable" grep -q '^reason: platform unreachable' "$MNT/device/clear"
platform_mode portal   # a captive portal's page with 200 is not the platform's answer
check_eq "clear with a portal answering 200 for the platform: EAGAIN" "$(clear_cmd)" \
  "Resource temporarily unavailable"
check "  reason says something other than the platform answers" \
  grep -q '^reason: HTTP 200, but the answer is not .*something other than the platform' "$MNT/device/clear"
check_eq "  step 6 not run" "$(field "$MNT/device/clear" step_6_write_back)" "not run"
echo "# $(grep '^reason' "$MNT/device/clear")"
platform_mode up
check_eq "wrong PIN: EACCES" "$(clear_cmd 'clear pin=00000000')" "Permission denied"
check "  the retry count" grep -q '4 tries left' "$MNT/device/clear"
check_eq "  the PIN is not shown" "$(field "$MNT/device/clear" command)" "clear pin=********"
check_eq "unknown command: EINVAL" "$(clear_cmd 'clean')" "Invalid argument"
check "  reason names it" grep -q 'unknown command "clean"' "$MNT/device/clear"
# A mistyped PIN command is refused without recording the PIN anywhere (device/log is 0444).
for cmd in 'clear PIN=24681357' 'clear pin = 24681357' 'clear pin=2468135７' '24681357'; do
  check_eq "unknown command \"${cmd%%=*}...\": EINVAL" "$(clear_cmd "$cmd")" "Invalid argument"
done
check "  the refusal shows the command's words" grep -q 'unknown command "clear PIN=…"' "$MNT/device/log"
check "  and a PIN alone not at all" grep -q '^reason: unknown command "…"' "$MNT/device/clear"
check_eq "  no PIN in device/clear or device/log" \
  "$(cat "$MNT/device/clear" "$MNT/device/log" | grep -c 2468135)" "0"
platform_mode "slow 1500"
( echo clear > "$MNT/device/clear" ) 2>/dev/null & FIRST=$!
sleep 0.5
check_eq "a second concurrent clear: EBUSY" "$(clear_cmd)" "Device or resource busy"
wait $FIRST
platform_mode up
check "the first one's result is kept (not the EBUSY one)" grep -q '^reason: .*return_not_filed' "$MNT/device/clear"

# File the return; a command split over two write() calls clears the card.
filed 2026-11
python3 - "$MNT/device/clear" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"cle")
os.write(fd, b"ar\n")   # the newline runs the command: this write returns its result
os.close(fd)
PY
ok $? "split-write clear succeeds"
check_eq "  result ok" "$(field "$MNT/device/clear" result)" "ok"
check "  every step ok" bash -c "[ \$(grep -c '^step_[1-7]_[a-z_]*: ok' '$MNT/device/clear') = 7 ]"
check_eq "cleared through 2026-11" "$(field "$MNT/device/status" cleared_through)" "2026-11"
check_eq "lock date moves to 15 January" "$(field "$MNT/device/status" lock_date)" "2027-01-15T23:59:59+08:00"
check_eq "not locked" "$(field "$MNT/device/status" locked)" "no"
for _ in $(seq 50); do [ -f "$MNT/receipts/dec-1.json" ] && break; sleep 0.1; done
check "the waiting draft is issued after clearing" test -f "$MNT/receipts/dec-1.json"
check_eq "pending/ is empty" "$(ls -A "$MNT/pending")" ""
check_eq "clear again: success" "$(clear_cmd)" ""
check "  nothing to clear" grep -q '^outcome: nothing to clear' "$MNT/device/clear"
check "device/log records the clearing with uid" grep -q "uid=$(id -u) clear: ok 2026-11" "$MNT/device/log"
check_eq "the platform cleared 2026-11 once" "$(curl -s "$ADMIN/admin/clearances" | grep -c '^2026-11 ')" "1"
t_remount
check "the last result survives a remount" grep -q '^outcome: nothing to clear' "$MNT/device/clear"

# Resumability: each month, a clearing killed after step N, then run again.
month=2026-12; day=2027-01-16
for step in 1 2 3 4 5 6; do
  draft "m$step.json" "M-$step"
  t_clock "${day}T09:00:00+08:00"
  filed "$month"
  t_unmount >/dev/null
  FAPIAOFS_FAULT=clear-after-$step t_mount
  clear_cmd >/dev/null
  fusermount3 -uz "$MNT" 2>/dev/null; wait "$FS_PID" 2>/dev/null
  t_mount
  check_eq "killed after step $step, clear again: success" "$(clear_cmd)" ""
  [ "$step" = 6 ] && check "  device/log shows the write-back of $month the kill cut short" \
    grep -q "clear-write-back: $month: " "$MNT/device/log"
  check_eq "  cleared through $month" "$(field "$MNT/device/status" cleared_through)" "$month"
  check_eq "  the platform cleared $month once" \
    "$(curl -s "$ADMIN/admin/clearances" | grep -c "^$month ")" "1"
  month=$(python3 -c "import sys; y,m=map(int,sys.argv[1].split('-')); m+=1; y+=m>12; m=(m-1)%12+1; print('%04d-%02d'%(y,m))" "$month")
  day=$(python3 -c "import sys; y,m=map(int,sys.argv[1].split('-')[:2]); m+=1; y+=m>12; m=(m-1)%12+1; print('%04d-%02d-16'%(y,m))" "$day")
done
check_eq "device and store agree after the runs" \
  "$(field "$MNT/device/status" signed_invoices)" "$(field "$MNT/status" invoices)"

# An invoice the platform refuses for good (409: it holds other bytes for that number) stops a
# clearing at step 2 with EPERM naming it; once the platform's side is mended, clear goes through.
IFS='|' read -r RCODE RNUM <<<"$(sqlite3 "$T/state/fapiaofs.db" \
  "select code, printf('%08d', number + 1) from invoices order by id desc limit 1")"
sqlite3 "$T/platform.db" "insert into invoices values('$RCODE', '$RNUM', 'other bytes', 0)"
draft refused.json REFUSED
check "the draft is issued as $RCODE-$RNUM" test -f "$MNT/issued/$month/$RCODE-$RNUM.json"
t_clock "${day}T09:00:00+08:00"
filed "$month"
check_eq "clear with an invoice the platform refuses (409): EPERM" "$(clear_cmd)" "Operation not permitted"
check "  the reason names the invoice and the integrity alarm" \
  grep -q "^reason: the platform holds other bytes for $RCODE-$RNUM (HTTP 409" "$MNT/device/clear"
echo "# $(grep '^reason' "$MNT/device/clear")"
check "  step 2 failed" grep -q '^step_2_upload: failed' "$MNT/device/clear"
sqlite3 "$T/platform.db" "delete from invoices where code = '$RCODE' and number = '$RNUM'"
check_eq "mended on the platform: clear goes through" "$(clear_cmd)" ""
check_eq "  cleared through $month" "$(field "$MNT/device/status" cleared_through)" "$month"

# Only the exact YYYY-MM names a month (fs/ll.c parse_period): "2027-+5" and "2027- 5" were other
# names for 2027-05, which the months above issued into, and reports/ the same.
check "issued/2027-05 exists (the months above)" test -d "$MNT/issued/2027-05"
for alias in "2027-+5" "2027- 5" "2027-05 " "+027-05"; do
  check "issued/'$alias' is not a month" test ! -e "$MNT/issued/$alias"
  check "reports/'$alias.csv' is not a report" test ! -e "$MNT/reports/$alias.csv"
done
