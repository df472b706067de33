# Reconciliation (SPEC §5.1): the daemon dies between the device's signature
# and the store's commit; at the next mount the invoice is restored from the
# device journal and the write-ahead intent, and numbers stay without gaps.
source "$(dirname "$0")/lib.sh"
t_setup reconcile

drop() {  # NAME REQUEST_ID [SED] → close()'s errno (0: success)
  sed -e "s/SO-2024-000123/$2/" -e "${3:-}" "$ROOT/examples/basic.json" > "$T/$1"
  drop_file "$MNT/pending/$1" "$T/$1"
}

check_eq "first draft issued" "$(drop one.json REC-1)" "0"
t_unmount

# Mount with the test-only fault: the daemon dies (like kill -9) right after signing.
# Its buyer tax id fails the check digit: issued with a warning in the receipt.
FAPIAOFS_FAULT=after-sign t_mount
rc=$(drop two.json REC-2 's/91350200MA2YJ1XR9G/91350200MA2YJ1XR9A/')
check "close fails when the daemon dies mid-draft (errno $rc)" test "$rc" != 0
wait "$FS_PID"; code=$?
check_eq "the daemon died at the fault (exit 86)" "$code" "86"
fusermount3 -uz "$MNT" 2>/dev/null
check_eq "the device journal has signed 2 invoices" "$(wc -l < "$T/state/device.json.journal")" "2"
check_eq "the store has committed 1" "$(sqlite3 "$T/state/fapiaofs.db" 'select count(*) from invoices')" "1"
check_eq "the write-ahead intent is there" "$(sqlite3 "$T/state/fapiaofs.db" 'select number from intents')" "00000002"
# what a power loss after close() returned would also leave: the invoice commit has no
# sync of its own, the intent and the journal line have
sqlite3 "$T/state/fapiaofs.db" "select writefile('$T/intent-receipt.json', receipt) from intents" >/dev/null
check "the intent holds the receipt, with its warning" \
  grep -q 'fails the unified social credit code check' "$T/intent-receipt.json"

t_mount
INV=$(ls "$MNT"/issued/*/031001900111-00000002.json 2>/dev/null)
check "the signed invoice is restored at mount" test -n "$INV"
check_eq "its receipt is there" "$(json "$MNT/receipts/two.json" 'd["number"]')" "00000002"
check "the restored receipt is the intent's, byte for byte (warning included)" \
  cmp -s "$MNT/receipts/two.json" "$T/intent-receipt.json"
check_eq "restored invoice keeps its request_id" "$(json "$INV" 'd["request_id"]')" "REC-2"
echo "# status: $(grep ^reconciliation "$MNT/status")"
check "status reports the restoration" grep -q '^reconciliation: device journal 2, store 2, restored 1, alarms 0; last: restored 031001900111-00000002' "$MNT/status"
check "device/log reports the restoration" grep -q 'reconcile: restored 031001900111-00000002 (draft two.json)' "$MNT/device/log"
check "status says when the reconciliation ran (its counts are of that moment)" \
  grep -Eq '^reconciled_at: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\+08:00$' "$MNT/status"
check_eq "no intents left" "$(sqlite3 "$T/state/fapiaofs.db" 'select count(*) from intents')" "0"
check_eq "stat size = bytes read of the restored invoice" "$(stat -c %s "$INV")" "$(wc -c < "$INV")"

verify_signature "$INV"
ok $? "the restored invoice's signature verifies with the device's key"

# The writer retries its draft: a duplicate of the restored invoice, not a second one.
check_eq "the retried draft: close succeeds" \
  "$(drop two-again.json REC-2 's/91350200MA2YJ1XR9G/91350200MA2YJ1XR9A/')" "0"
check_eq "the retry is a duplicate" "$(json "$MNT/receipts/two-again.json" 'd["status"]')" "duplicate"
check_eq "next draft: issued" "$(drop three.json REC-3)" "0"
check_eq "next draft gets the next number: no gap" "$(json "$MNT/receipts/three.json" 'd["number"]')" "00000003"

# An invoice commit that fails after the device signed (a full disk, say).  The invoice
# exists (its intent and the device's journal line are on disk), so the writer is not told
# to retry (EIO: a draft without a request_id would be issued twice): close returns 0, the
# draft waits in pending/, the next round or the retry thread restores the invoice from its
# intent, and the draft is issued as that invoice.  This draft has no request_id.
t_unmount
FAPIAOFS_FAULT=commit-fails-once t_mount
check_eq "the commit fails after the signature: close returns 0 (accepted, waits)" \
  "$(drop four.json REC-4 '/"request_id"/d')" "0"
check_eq "the device signed it" "$(wc -l < "$T/state/device.json.journal")" "4"
wait_for 10 test -e "$MNT/receipts/four.json"
check_eq "restored, then issued as that invoice: its receipt" \
  "$(json "$MNT/receipts/four.json" 'd["status"]+" "+d["number"]')" "issued 00000004"
check "it left pending/" test ! -e "$MNT/pending/four.json"
check "the signed invoice was restored" test -n "$(ls "$MNT"/issued/*/031001900111-00000004.json 2>/dev/null)"
check_eq "one invoice for it, not two: the store has what the device signed" \
  "$(sqlite3 "$T/state/fapiaofs.db" 'select count(*) from invoices')" "4"
check "status reports it" grep -q '^reconciliation: device journal 4, store 4, restored 1, alarms 0; last: restored 031001900111-00000004' "$MNT/status"
check_eq "the next draft: issued" "$(drop five.json REC-5)" "0"
check_eq "the next draft gets the number after it" "$(json "$MNT/receipts/five.json" 'd["number"]')" "00000005"

# A restore that keeps failing (the disk still full): the draft waits and says why, every
# new draft in the meantime gets EIO (nothing more is issued over the gap), the retries try
# the restore again, and the standing problem is one alarm, logged once.  Five commits fail:
# the invoice's own, then its restores (the retry thread's, at once and every 2 s; n7a's).
t_unmount
FAPIAOFS_FAULT=commit-fails-5 t_mount
check_eq "commit 1 fails after the signature: close returns 0" "$(drop n6.json REC-6)" "0"
check_eq "a new draft while the restore fails: EIO" "$(drop n7a.json REC-7)" "5"
check "the signed draft waits in pending/, read-only" test "$(stat -c %a "$MNT/pending/n6.json" 2>&1)" = 444
echo "# status: $(grep ^waiting_draft "$MNT/status")"
check "status says why it waits, naming the signed invoice" grep -Eq \
  '^waiting_draft: n6.json since .*(signed by the device as 031001900111-00000006, but the store could not take it|cannot restore 031001900111-00000006)' \
  "$MNT/status"
echo "# status: $(grep ^reconciliation "$MNT/status")"
check "the failing restore is one alarm, not one per try" grep -q \
  '^reconciliation: device journal 6, store 5, restored 0, alarms 1; last: cannot restore 031001900111-00000006' \
  "$MNT/status"
wait_for 15 test -e "$MNT/receipts/n6.json"
check_eq "when the restore works, the waiting draft is issued as its invoice" \
  "$(json "$MNT/receipts/n6.json" 'd["status"]+" "+d["number"]+" "+d["request_id"]')" "issued 00000006 REC-6"
check "n6.json left pending/" test ! -e "$MNT/pending/n6.json"
check_eq "device/log names the failed restore once" \
  "$(grep -c 'cannot restore 031001900111-00000006' "$MNT/device/log")" "1"
check_eq "the next draft is issued" "$(drop n7.json REC-7)" "0"
check_eq "after the restored invoice" "$(json "$MNT/receipts/n7.json" 'd["number"]')" "00000007"
echo "# status: $(grep ^reconciliation "$MNT/status")"
check "status reports the restoration (the counts are of that moment)" grep -q \
  '^reconciliation: device journal 6, store 6, restored 1, alarms 1; last: restored 031001900111-00000006' \
  "$MNT/status"

# A gap older than what the mount looks back over (the last 16 of the journal): the store
# lost invoice 6 and 39 came after it.  It cannot be restored (its intent went with its
# commit) and must not pass unnoticed.
for i in $(seq 8 45); do
  [ "$(drop "n$i.json" "REC-$i")" = 0 ] || echo "not ok - draft n$i.json was not issued"
done
t_unmount
sqlite3 "$T/state/fapiaofs.db" \
  "delete from invoices where number = '00000006'; update tallies set invoices = invoices - 1"
t_mount
check "an old gap in the store is found at mount" grep -q \
  '^reconciliation: device journal 45, store 44, restored 0, alarms 1; last: the device signed 031001900111-00000006 (journal entry 6) but the store has no record of it' \
  "$MNT/status"

# A signed invoice whose restore conflicts with what the store holds (FA_EXISTS): here its
# request_id is already on another invoice, as a store edited or restored by hand would
# have it.  Trying again cannot fix that, so it keeps its intent and its alarm, and issuing
# goes on; a failure that may pass (above) makes issuing wait instead.
t_unmount
FAPIAOFS_FAULT=commit-fails-1000 t_mount
check_eq "a second failed commit: the draft waits" "$(drop n46.json REC-46)" "0"
t_unmount
sqlite3 "$T/state/fapiaofs.db" "update invoices set request_id = 'REC-46' where number = '00000045'"
t_mount
echo "# status: $(grep ^reconciliation "$MNT/status")"
check "the conflict is an alarm (with the old gap's), in status" grep -q \
  '^reconciliation: device journal 46, store 44, restored 0, alarms 2;' "$MNT/status"
check "device/log names the invoice and the cause" grep -q 'cannot restore 031001900111-00000046: already exists' "$MNT/device/log"
check_eq "issuing goes on: the next draft is issued" "$(drop n47.json REC-47)" "0"
check_eq "with the next number" "$(json "$MNT/receipts/n47.json" 'd["number"]')" "00000047"
check_eq "the conflicting invoice's intent is kept" \
  "$(sqlite3 "$T/state/fapiaofs.db" "select number from intents")" "00000046"

# A draft whose number the device signed waits for its invoice's restore: rm cannot cancel it
# (the invoice exists, and e-invoices are reversed, never voided).  Its waiting state could
# not be written either (the same full disk: here set back by hand), so after a remount it is
# not in pending/; the retry thread still restores its invoice with no other draft to issue.
rmerr() { python3 -c 'import os,sys
try: os.unlink(sys.argv[1]); print(0)
except OSError as e: print(e.errno)' "$1"; }
wait_for 10 test ! -e "$MNT/pending/n46.json"   # its retry: rejected, REC-46 is on 45 now
t_unmount
sqlite3 "$T/state/fapiaofs.db" "delete from intents"   # the conflict of 46 settled by hand
FAPIAOFS_FAULT=commit-fails-1000 t_mount
check_eq "a draft signed, its commit failed: it waits" "$(drop n48.json REC-48)" "0"
check_eq "rm of it: EBUSY" "$(rmerr "$MNT/pending/n48.json")" "16"
check "it is still in pending/" test -e "$MNT/pending/n48.json"
check_eq "and not cancelled in the store" \
  "$(sqlite3 "$T/state/fapiaofs.db" "select state from drafts where name = 'n48.json'")" "waiting"
t_unmount
sqlite3 "$T/state/fapiaofs.db" "update drafts set state = 'received' where name = 'n48.json'"
FAPIAOFS_FAULT=commit-fails-4 t_mount
check "after the remount its restore failed (the fault): no receipt yet" test ! -e "$MNT/receipts/n48.json"
check_eq "and it is not in pending/" "$(ls -A "$MNT/pending")" ""
wait_for 15 test -e "$MNT/receipts/n48.json"
check_eq "the retry thread restored it, with no draft to issue" \
  "$(json "$MNT/receipts/n48.json" 'd["status"]+" "+d["number"]')" "issued 00000048"

# The device signs and its answer is lost on the way back (a USB transfer that failed after
# the device journaled the invoice).  The reconciliation after the error finds the signature
# and restores the invoice, and the writer hears "issued": EIO would have it drop the draft
# again, and a draft without a request_id would get a second invoice.
t_unmount
journal() { wc -l < "$T/state/device.json.journal"; }
store_n() { sqlite3 "$T/state/fapiaofs.db" 'select count(*) from invoices'; }
FAPIAOFS_FAULT=sign-lost-once t_mount
check_eq "the answer lost after the signature: close returns 0" "$(drop n49.json REC-49 '/"request_id"/d')" "0"
check_eq "its receipt: issued, as the number the device signed" \
  "$(json "$MNT/receipts/n49.json" 'd["status"]+" "+d["number"]')" "issued 00000049"
check "it left pending/" test ! -e "$MNT/pending/n49.json"
check_eq "the device signed it once" "$(journal)" "49"
check_eq "the next draft gets the next number" "$(drop n50.json REC-50)$(json "$MNT/receipts/n50.json" 'd["number"]')" "000000050"

# The same, and the device cannot be read right after: whether it signed is not known, so
# the draft waits (close returns 0), and the next reconciliation that works issues it as the
# invoice the device signed.
t_unmount
FAPIAOFS_FAULT=sign-lost-unread t_mount
check_eq "the answer lost, the device unreadable: close returns 0" "$(drop n51.json REC-51 '/"request_id"/d')" "0"
wait_for 15 test -e "$MNT/receipts/n51.json"
check_eq "issued as the invoice the device signed, once" \
  "$(json "$MNT/receipts/n51.json" 'd["status"]+" "+d["number"]') $(journal)" "issued 00000051 51"
check "it left pending/" test ! -e "$MNT/pending/n51.json"

# A mount whose reconciliation cannot read the device, after a crash between the signature and
# the commit: nothing is issued over what the journal may hold, and the first reconciliation
# that works restores the invoice, so the writer's retry is its duplicate, not a second one.
t_unmount
stored=$(store_n)   # the gaps made above stay
FAPIAOFS_FAULT=after-sign t_mount
rc=$(drop n52.json REC-52)
wait "$FS_PID"
fusermount3 -uz "$MNT" 2>/dev/null
check_eq "signed, not committed" "$(journal) $(store_n)" "52 $stored"
FAPIAOFS_FAULT=reconcile-fails-1 t_mount
check "status says the reconciliation at mount failed" grep -q \
  'last: cannot compare the device journal with the store (device failure)' "$MNT/status"
check_eq "the writer's retry: close returns 0" "$(drop n52-again.json REC-52)" "0"
check_eq "a duplicate of the restored invoice, not a second invoice" \
  "$(json "$MNT/receipts/n52-again.json" 'd["status"]+" "+d["number"]') $(journal) $(store_n)" \
  "duplicate 00000052 52 $((stored + 1))"
