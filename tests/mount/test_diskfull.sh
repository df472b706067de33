# A full disk under the state directory (SPEC §2.1): a close that could not store its draft
# fails with ENOSPC and leaves nothing behind, one that returned 0 is issued exactly
# once, and the writer that drops a refused draft again gets one invoice for it.  The state
# lives on a small tmpfs filled by a file, so the disk fills for real: at several fill levels
# drafts without a request_id are dropped until the disk refuses them, then room is made and
# each refused draft is dropped again, as its writer must.  Whichever write the disk refused
# (the draft's record, the intent, the device's journal line, the invoice commit, a WAL
# page), every draft ends as one invoice, the device's journal and the store agree, and
# nothing is left waiting or rejected.  A mount on the full disk is refused in plain words.
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then echo "ok - skipped: a tmpfs for the state needs root"; exit 0; fi
T_STATE_TMPFS=8m t_setup diskfull
P=$MNT/pending

drop() {  # NAME → close()'s errno (0: success); the draft has no request_id, its remark names it
  sed -e '/"request_id"/d' -e "s/\"remark\": \"[^\"]*\"/\"remark\": \"draft $1\"/" \
    "$ROOT/examples/basic.json" > "$T/$1"
  drop_file "$P/$1" "$T/$1"
}

fill_leaving() {  # KB: the filler takes all but KB of the state's volume
  rm -f "$T/state/filler"
  local avail; avail=$(df -k --output=avail "$T/state" | tail -1)
  [ "$avail" -gt "$1" ] && fallocate -l $(( (avail - $1) * 1024 )) "$T/state/filler"
}

all=() refused=() codes=""
for room in 0 24 48 72 96 128 160 224 288; do
  fill_leaving "$room"
  after=0 line=""
  for i in $(seq 1 60); do
    name="r$room-$i.json"; rc=$(drop "$name"); all+=("$name"); line+="$rc "
    if [ "$rc" != 0 ]; then
      refused+=("$name"); codes+=" $rc"; after=$((after + 1))
      [ "$after" -ge 3 ] && break   # a few more while full: EIO/ENOSPC again, nothing kept
    fi
  done
  echo "# $room KB free: $line"
  rm -f "$T/state/filler"
  # a draft the device signed and the store could not take waits: issued once restored
  wait_for 20 bash -c '[ -z "$(ls -A "$1")" ]' _ "$P" || echo "# still in pending/: $(ls -A "$P")"
done
check "the disk refused some drafts (${#refused[@]} of ${#all[@]})" test "${#refused[@]}" -gt 0
# ENOSPC, whatever write the disk refused: EIO ("device failure", "input/output error") would
# send the admin looking for the wrong cause
check_eq "each refusal was ENOSPC (No space left on device)" \
  "$(tr ' ' '\n' <<<"$codes" | grep -cvE '^(28|)$')" "0"
bad=""
for name in "${refused[@]}"; do
  rc=$(drop "$name"); [ "$rc" = 0 ] || bad+=" $name:$rc"
done
check_eq "with room again, every refused draft dropped again is taken" "$bad" ""
check_eq "nothing waits in pending/" "$(ls -A "$P")" ""
check_eq "nothing was rejected" "$(ls -A "$MNT/rejected")" ""
python3 - "$MNT" "${all[@]}" > "$T/count.txt" <<'PY'
import collections, glob, json, os, sys
mnt, names = sys.argv[1], sys.argv[2:]
n = collections.Counter()
for f in glob.glob(mnt + "/issued/*/*.json"):
    n[json.load(open(f, encoding="utf-8"))["remark"]] += 1
print("invoices: %d" % sum(n.values()))
print("twice: %s" % ([k for k, v in n.items() if v > 1] or "none"))
print("missing: %s" % ([x for x in names if n["draft " + x] == 0] or "none"))
receipts = set(os.listdir(mnt + "/receipts"))
print("without receipt: %s" % ([x for x in names if x not in receipts] or "none"))
PY
cat "$T/count.txt" | sed 's/^/# /'
check "one invoice per draft: none twice" grep -qx 'twice: none' "$T/count.txt"
check "one invoice per draft: none missing" grep -qx 'missing: none' "$T/count.txt"
check "a receipt per draft" grep -qx 'without receipt: none' "$T/count.txt"
check_eq "as many invoices as drafts" "$(sed -n 's/^invoices: //p' "$T/count.txt")" "${#all[@]}"
echo "# the disk filled at an invoice commit $(grep -c 'cannot restore' "$T/fapiaofs.log") time(s)"
check "the disk filled at an invoice commit at least once: the path this test is for" \
  grep -q 'restored 031001900111-[0-9]* (draft r[0-9]*-[0-9]*.json) from the device journal' "$MNT/device/log"
# A mount on a full disk is refused with the cause in words, not SQLite's "disk I/O error"
# alone (the -shm file of the store's WAL cannot be made); with room again it mounts.
t_unmount
fill_leaving 0
dd if=/dev/zero of="$T/state/filler.rest" bs=4k 2>/dev/null
timeout 30 "$FAPIAOFS" -f --config "$T/fapiaofs.conf" "$MNT" > "$T/full-mount.log" 2>&1
rc=$?
check "a mount on a full disk fails (exit $rc), nothing mounted" \
  bash -c '[ "$1" -ne 0 ] && ! mountpoint -q "$2"' _ "$rc" "$MNT"
check "and says why" grep -q "no space left on its disk: free some, then mount again" "$T/full-mount.log"
rm -f "$T/state/filler" "$T/state/filler.rest"
# the same for a state volume that became read-only (a disk remounted ro after errors)
mount -o remount,ro "$T/state"
timeout 30 "$FAPIAOFS" -f --config "$T/fapiaofs.conf" "$MNT" > "$T/ro-mount.log" 2>&1
rc=$?
mount -o remount,rw "$T/state"
echo "# $(head -1 "$T/ro-mount.log")"
check "a mount on a read-only state volume fails (exit $rc) and says why" grep -Eq \
  "it cannot be written here: a read-only volume, or its permissions|: Read-only file system" \
  "$T/ro-mount.log"
t_mount
echo "# status: $(grep ^reconciliation "$MNT/status")"
check "after a remount the device's journal and the store agree, no alarm" grep -Eq \
  "^reconciliation: device journal ${#all[@]}, store ${#all[@]}, restored 0, alarms 0" "$MNT/status"
