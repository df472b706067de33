# The clock set back while invoices wait to be uploaded (NTP after a drift, an administrator):
# their due times are then further ahead than any backoff, and the queue must not stall until
# the clock catches up with them (engine/upload.c, struct store_due).
source "$(dirname "$0")/lib.sh"
T_CLOCK=2026-11-11T10:00:00+08:00 t_setup clock
queued() { sed -n 's/^queued: //p' "$MNT/platform/status"; }

platform_mode down
cp "$ROOT/examples/basic.json" "$MNT/pending/a.json"
ok $? "a draft with the platform down is issued"
# The first failure is retried at once, the second after 2 s or more: on this clock, which
# stands still, that retry is never due.
wait_for 20 test "$(sqlite3 "$T/state/fapiaofs.db" 'select attempts from upload_queue')" = 2
check_eq "two attempts failed" "$(sqlite3 "$T/state/fapiaofs.db" 'select attempts from upload_queue')" "2"
platform_mode up
sleep 3
check_eq "the platform back, the clock standing still: the retry is not due yet" "$(queued)" "1"
t_clock 2026-11-10T10:00:00+08:00
wait_for 45 test "$(queued)" = 0
check_eq "the clock set back a day: the retry counts as due, and the invoice is uploaded" \
  "$(queued) $(platform_count)" "0 1"
