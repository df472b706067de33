# Drafts through the mount: encodings, idempotency across remounts, red invoices.
source "$(dirname "$0")/lib.sh"
t_setup drafts

close_errno() {  # FILE SRC: write SRC into pending/FILE; prints close()'s errno (0: success)
  python3 - "$MNT/pending/$1" "$2" <<'PY'
import os, sys
data = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
try:
    os.close(fd); print(0)
except OSError as e:
    print(e.errno)
PY
}

# GB18030 / GBK, as older Chinese systems write them, with CRLF line ends.
sed 's/SO-2024-000123/GBK-1/; s/$/\r/' "$ROOT/examples/basic.json" | iconv -f UTF-8 -t GB18030 > "$T/gbk.json"
check "the GB18030 file is not UTF-8" bash -c "! iconv -f UTF-8 -t UTF-8 '$T/gbk.json' >/dev/null 2>&1"
check_eq "GB18030 draft with CRLF: issued" "$(close_errno gbk.json "$T/gbk.json")" "0"
INV=$MNT/$(json "$MNT/receipts/gbk.json" 'd["path"]')
check_eq "GB18030 text arrives as UTF-8 in the invoice" "$(json "$INV" 'd["buyer"]["name"]')" "上海示例科技有限公司"
printf '\xef\xbb\xbf' > "$T/bom.json"; sed 's/SO-2024-000123/BOM-1/' "$ROOT/examples/basic.json" >> "$T/bom.json"
check_eq "UTF-8 with BOM: issued" "$(close_errno bom.json "$T/bom.json")" "0"
printf '{"buyer": {"name": "\xff\xfe\x80"}}' > "$T/neither.json"
check_eq "neither UTF-8 nor GB18030: EINVAL" "$(close_errno neither.json "$T/neither.json")" "22"
check "the error says which encodings were tried" grep -q 'UTF-8.*GB18030' "$MNT/rejected/neither.json.error"

# Idempotency: the same request_id and content is a duplicate, also after a remount.
sed 's/SO-2024-000123/IDEM-1/' "$ROOT/examples/basic.json" > "$T/idem.json"
check_eq "first IDEM-1: issued" "$(close_errno idem-a.json "$T/idem.json")" "0"
first=$(json "$MNT/receipts/idem-a.json" 'd["number"]')
t_remount
check_eq "IDEM-1 again after remount: close succeeds" "$(close_errno idem-b.json "$T/idem.json")" "0"
check_eq "receipt says duplicate" "$(json "$MNT/receipts/idem-b.json" 'd["status"]')" "duplicate"
check_eq "duplicate names the first invoice" "$(json "$MNT/receipts/idem-b.json" 'd["number"]')" "$first"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d, indent=8))' "$T/idem.json" > "$T/idem-reformatted.json"
check_eq "same draft re-indented: still a duplicate" "$(close_errno idem-c.json "$T/idem-reformatted.json")" "0"
check_eq "re-indented receipt says duplicate" "$(json "$MNT/receipts/idem-c.json" 'd["status"]')" "duplicate"
sed 's/合同号 HT-001/合同号 HT-002/' "$T/idem.json" > "$T/idem-other.json"
check_eq "IDEM-1 with other content: EINVAL" "$(close_errno idem-d.json "$T/idem-other.json")" "22"
check "the error names request_id and the existing invoice" \
  grep -q "^request_id: IDEM-1 was already issued as invoice 031001900111-$first" "$MNT/rejected/idem-d.json.error"
check_eq "no invoice was added for duplicates" "$(ls "$(dirname "$INV")" | wc -l)" "3"

# Red invoice: full reversal of the first one.
BLUE_CODE=$(json "$INV" 'd["code"]'); BLUE_NUM=$(json "$INV" 'd["number"]')
printf '{"request_id": "RED-1", "red": {"code": "%s", "number": "%s", "reason": "01"}, "drawer": "张三"}' \
  "$BLUE_CODE" "$BLUE_NUM" > "$T/red.json"
check_eq "full red reversal: issued" "$(close_errno red.json "$T/red.json")" "0"
RED=$MNT/$(json "$MNT/receipts/red.json" 'd["path"]')
check_eq "red total is the negated blue total" "$(json "$RED" 'd["totals"]["total"]')" "-10070.00"
check_eq "red upper-case amount" "$(json "$RED" 'd["totals"]["total_upper"]')" "（负数）壹万零柒拾圆整"
check_eq "red remark prefix" "$(json "$RED" 'd["remark"].split(" ")[0]')" "对应正数发票代码:${BLUE_CODE}号码:${BLUE_NUM}"
check_eq "red names the blue invoice" "$(json "$RED" 'd["red"]["number"]')" "$BLUE_NUM"
check_eq "discount merged into its line" "$(json "$RED" '[i["amount"] for i in d["items"]]')" "['-9500.00']"
sed 's/RED-1/RED-2/' "$T/red.json" > "$T/red2.json"
check_eq "a second full reversal: EINVAL" "$(close_errno red2.json "$T/red2.json")" "22"
check "the error says the blue total would be exceeded" grep -q '^items: .*more than the blue invoice' "$MNT/rejected/red2.json.error"

# Stopped with descriptors still open (a draft being written, a file being
# read): the kernel never sends their RELEASE, the daemon frees them itself
# (the sanitizer build reports a leak otherwise) and exits cleanly.
exec 3>"$MNT/pending/half.json" 4<"$MNT/README"
printf '{"request_id": ' >&3
t_stop
exec 3>&- 4<&-
check "the mount is gone" bash -c "! mountpoint -q '$MNT'"
