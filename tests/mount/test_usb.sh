# [device] kind=usb with no device attached (SPEC §5.2): the mount works for
# browsing, drafts wait with "device absent", device/info says why.
source "$(dirname "$0")/lib.sh"
t_setup usb
check "a draft with the simulated device" cp "$ROOT/examples/basic.json" "$MNT/pending/sim.json"
t_unmount
sed -i 's/^kind = sim$/kind = usb/' "$T/fapiaofs.conf"
t_mount
check "kind=usb without a device: mounted" mountpoint -q "$MNT"
check "browsing works: the earlier invoice is listed" test -f "$(ls -d "$MNT"/issued/*/031001900111-00000001.json)"
check_eq "device/info: kind usb" "$(sed -n 's/^kind: //p' "$MNT/device/info")" "usb"
check "device/info says why it is absent" grep -q '^model: absent: .*1209:000c' "$MNT/device/info"
check_eq "status: device absent" "$(sed -n 's/^device: //p' "$MNT/status")" "absent"
check_eq "device/rolls reads as an empty file (it was ENOMEM: tar and rsync failed)" \
  "$(cat "$MNT/device/rolls" 2>&1; echo "rc=$?")" "rc=0"
sed 's/SO-2024-000123/USB-1/' "$ROOT/examples/basic.json" > "$T/usb.json"
check "a draft is accepted (close returns 0)" cp "$T/usb.json" "$MNT/pending/usb.json"
check_eq "it waits in pending/, read-only" "$(stat -c %a "$MNT/pending/usb.json")" "444"
check "status names it and the reason" grep -q '^waiting_draft: usb.json since .*: device absent' "$MNT/status"
check "no receipt yet" test ! -e "$MNT/receipts/usb.json"
# Back to the simulated device: the waiting draft is issued by itself.
t_unmount
sed -i 's/^kind = usb$/kind = sim/' "$T/fapiaofs.conf"
t_mount
for _ in $(seq 50); do [ -e "$MNT/receipts/usb.json" ] && break; sleep 0.1; done
check_eq "after remount with the device, the waiting draft is issued" \
  "$(json "$MNT/receipts/usb.json" 'd["status"]')" "issued"
check_eq "pending/ is empty" "$(ls -A "$MNT/pending")" ""
