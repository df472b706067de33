# A draft dropped into pending/ comes out as a signed invoice in issued/.
source "$(dirname "$0")/lib.sh"
t_setup issue

check "cp of the example into pending/ succeeds" cp "$ROOT/examples/basic.json" "$MNT/pending/order-1.json"
check_eq "pending/ is empty after processing" "$(ls -A "$MNT/pending")" ""
R=$MNT/receipts/order-1.json
check "receipt exists" test -f "$R"
check_eq "receipt status" "$(json "$R" 'd["status"]')" "issued"
check_eq "receipt total" "$(json "$R" 'd["total"]')" "10070.00"
INV=$MNT/$(json "$R" 'd["path"]')
check "invoice file exists at the receipt's path" test -f "$INV"
check_eq "invoice path is issued/YYYY-MM/CODE-NUMBER.json" \
  "$(json "$R" '__import__("re").fullmatch(r"issued/\d{4}-\d\d/\d{12}-\d{8}\.json", d["path"]) is not None')" "True"

check_eq "code is 12 digits"   "$(json "$INV" 'len(d["code"]) == 12 and d["code"].isdigit()')" "True"
check_eq "number is 8 digits"  "$(json "$INV" 'len(d["number"]) == 8 and d["number"].isdigit()')" "True"
check_eq "first number"        "$(json "$INV" 'd["number"]')" "00000001"
check_eq "check code is 20 digits" "$(json "$INV" 'len(d["check_code"]) == 20 and d["check_code"].isdigit()')" "True"
check_eq "cipher is 108 of 0-9+-*/<>" "$(json "$INV" 'len(d["cipher"]) == 108 and set(d["cipher"]) <= set("0123456789+-*/<>")')" "True"
check_eq "machine number 12 digits" "$(json "$INV" 'len(d["machine_number"])')" "12"
check_eq "totals.amount" "$(json "$INV" 'd["totals"]["amount"]')" "9500.00"
check_eq "totals.tax"    "$(json "$INV" 'd["totals"]["tax"]')" "570.00"
check_eq "totals.total"  "$(json "$INV" 'd["totals"]["total"]')" "10070.00"
check_eq "totals.total_upper" "$(json "$INV" 'd["totals"]["total_upper"]')" "壹万零柒拾圆整"
check_eq "discount line tax computed" "$(json "$INV" 'd["items"][1]["tax"]')" "-30.00"
check_eq "printed name *category*name" "$(json "$INV" 'd["items"][0]["name"]')" "*信息技术服务*软件开发服务"
check_eq "seller from the device" "$(json "$INV" 'd["seller"]["tax_id"]')" \
  "$(sed -n 's/^seller_tax_id: //p' "$MNT/device/info")"
check_eq "period matches folder" "$(json "$INV" 'd["period"]')" "$(basename "$(dirname "$INV")")"
check_eq "issued_at in +08:00" "$(json "$INV" 'd["issued_at"].endswith("+08:00")')" "True"
check_eq "qr payload" "$(json "$INV" 'd["qr"].startswith("01,10,%s,%s,9500.00," % (d["code"], d["number"]))')" "True"
check_eq "request_id kept" "$(json "$INV" 'd["request_id"]')" "SO-2024-000123"
check_eq "draft name kept" "$(json "$INV" 'd["draft"]')" "order-1.json"

# The signature verifies with the device's public key over the canonical bytes.
verify_signature "$INV"
ok $? "SM2 signature verifies with the device's public key (openssl)"
printf 'x' >> "$T/canon"
! openssl pkeyutl -verify -pubin -inkey "$T/pub.pem" -rawin -digest sm3 \
    -pkeyopt distid:1234567812345678 -in "$T/canon" -sigfile "$T/sig" >/dev/null 2>&1
ok $? "a changed byte fails verification"

# Exact sizes, blocks, stable inode numbers.
for f in "$INV" "$R" "$MNT/status" "$MNT/README" "$MNT/device/info" "$MNT/device/status"; do
  check_eq "stat size = bytes read: ${f#$MNT/}" "$(stat -c %s "$f")" "$(wc -c < "$f")"
done
size=$(stat -c %s "$INV")
check_eq "st_blocks = ceil(size/512)" "$(stat -c %b "$INV")" "$(( (size + 511) / 512 ))"
check_eq "nlink 1" "$(stat -c %h "$INV")" "1"
ino_stat=$(stat -c %i "$INV")
ino_ls=$(ls -i "$(dirname "$INV")" | awk -v n="$(basename "$INV")" '$2 == n {print $1}')
check_eq "inode equal in readdir and stat" "$ino_ls" "$ino_stat"
check "issued/ is read-only (write fails)" bash -c "! echo x >> '$INV'"
check "issued/ is read-only (rm fails)" bash -c "! rm -f '$INV'"
check_eq "device/status says not locked" "$(sed -n 's/^locked: //p' "$MNT/device/status")" "no"

# Uploaded in the background.
for _ in $(seq 100); do [ "$(platform_count)" = 1 ] && break; sleep 0.1; done
check_eq "invoice uploaded to the platform" "$(platform_count)" "1"

# The platform down: issuing goes on.
platform_mode down
sed 's/SO-2024-000123/SO-2024-000124/' "$ROOT/examples/basic.json" > "$T/order-2.json"
check "issuing works with the platform down" cp "$T/order-2.json" "$MNT/pending/order-2.json"
check_eq "second invoice number" "$(json "$MNT/receipts/order-2.json" 'd["number"]')" "00000002"

# The same request_id again: a duplicate receipt pointing at the first invoice.
check "same request_id again: close succeeds" cp "$ROOT/examples/basic.json" "$MNT/pending/again.json"
check_eq "receipt says duplicate" "$(json "$MNT/receipts/again.json" 'd["status"]')" "duplicate"
check_eq "duplicate points at the first invoice" "$(json "$MNT/receipts/again.json" 'd["number"]')" "00000001"

# Remount: the same inode, the same bytes.
sum=$(sha256sum < "$INV")
t_remount
check_eq "inode stable across remount" "$(stat -c %i "$INV")" "$ino_stat"
check_eq "bytes unchanged across remount" "$(sha256sum < "$INV")" "$sum"
check_eq "two invoices listed" "$(ls "$(dirname "$INV")" | wc -l)" "2"
platform_mode up
for _ in $(seq 100); do [ "$(platform_count)" = 2 ] && break; sleep 0.1; done
check_eq "queued invoice uploaded after the platform came back" "$(platform_count)" "2"

# A store from before migration 9 (no receipts.size, no receipts_list; and so none of 10,
# upload_queue.refused, nor 11, drafts.entry, nor 12, a hidden bit each for rejected/NAME and
# NAME.error): opened, it is migrated, and receipts/ lists the same names with exact sizes.
t_unmount
sqlite3 "$T/state/fapiaofs.db" "drop index receipts_list; drop trigger receipt_size;
  alter table receipts drop column size; drop index upload_refused;
  alter table upload_queue drop column refused; alter table drafts drop column entry;
  delete from meta where key = 'next_entry';
  insert into drafts(id, name, received_at, body, state) values(5000, 'mig.json', 0, '{}', 'waiting');
  insert into rejects(name, draft_id, body, error, mtime, hidden) values('gone.json', 5000, 'x', 'y', 0, 1);
  pragma user_version = 8"
t_mount
db() { sqlite3 "$T/state/fapiaofs.db" "$1"; }
check_eq "the store is migrated at mount" "$(db 'pragma user_version')" "12"
check_eq "  a rejection hidden before stays hidden, its .error too" \
  "$(db "select hidden from rejects where name = 'gone.json'") $(ls "$MNT/rejected" | grep -c gone)" "3 0"
check_eq "  upload_queue has its refused column again" \
  "$(db "select count(*) from pragma_table_info('upload_queue') where name = 'refused'")" "1"
check_eq "  pending/ numbers start above every draft's row id" \
  "$(db "select (select value from meta where key = 'next_entry') > max(id) from drafts")" "1"
check_eq "  and a draft waiting then keeps its row id as its number" \
  "$(db "select entry from drafts where id = 5000")" "5000"
check_eq "receipts/ lists the three receipts" "$(ls "$MNT/receipts" | sort | tr '\n' ' ')" \
  "again.json order-1.json order-2.json "
for r in again.json order-1.json order-2.json; do
  check_eq "receipts/$r: stat size = bytes read" "$(stat -c %s "$MNT/receipts/$r")" "$(wc -c < "$MNT/receipts/$r")"
done
check_eq "the listing is answered from the index alone" \
  "$(sqlite3 "$T/state/fapiaofs.db" "explain query plan select id, name, mtime, size from receipts
     where 1 is 1 and hidden = 0 and id > 0 order by id limit 10" | grep -c 'COVERING INDEX receipts_list')" "1"
