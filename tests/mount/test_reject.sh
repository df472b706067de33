# Invalid drafts are rejected: close() returns EINVAL, the draft and the
# reasons are kept in rejected/.
source "$(dirname "$0")/lib.sh"
t_setup reject

# close() must return EINVAL: check the errno itself, with Python.
drop() {  # name, content → prints the errno of write+close (0 on success)
  python3 - "$MNT/pending/$1" "$2" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, sys.argv[2].encode())
try:
    os.close(fd); print(0)
except OSError as e:
    print(e.errno)
PY
}

bad=$'{\n  "type": "026",\n  "buyer": {"name": "x"},,\n}\n'
check_eq "invalid JSON: close returns EINVAL (22)" "$(drop broken.json "$bad")" "22"
check "rejected draft kept byte for byte" cmp <(printf '%s' "$bad") "$MNT/rejected/broken.json"
check "error names line and column" grep -q 'line 3, column' "$MNT/rejected/broken.json.error"
check_eq "pending/ empty after the rejection" "$(ls -A "$MNT/pending")" ""

many='{"type": "027", "buyer": {}, "items": [{"name": "a", "category": "b", "tax_code": "123", "amount": "1.001", "tax_rate": "0.07"}], "colour": 1}'
check_eq "invalid fields: EINVAL" "$(drop many.json "$many")" "22"
E=$MNT/rejected/many.json.error
check "type named"             grep -q '^type: "027"' "$E"
check "buyer.name named"       grep -q '^buyer.name: required' "$E"
check "items[0].tax_code named" grep -q '^items\[0\].tax_code:' "$E"
check "items[0].amount named"  grep -q '^items\[0\].amount:' "$E"
check "items[0].tax_rate named with the allowed rates" grep -q '^items\[0\].tax_rate: 0.07 is not an allowed rate (0 0.01' "$E"
check "unknown field named"    grep -q '^colour: unknown field' "$E"
check "drawer named"           grep -q '^drawer: required' "$E"
check_eq "one problem per line" "$(wc -l < "$E")" "7"
check "cp reports the failure" bash -c "! cp '$ROOT/tests/mount/lib.sh' '$MNT/pending/notjson.json' 2>/dev/null"

# A shell redirection: the duplicated descriptor closes first, with nothing written.
check "echo > pending/x.json issues" bash -c "cat '$ROOT/examples/basic.json' > '$MNT/pending/shell.json'"
check "receipt for the shell drop" test -f "$MNT/receipts/shell.json"

# Scratch names are not processed; rename into place is.
check "write to a scratch name" cp "$ROOT/examples/basic.json" "$MNT/pending/x.json.tmp"
check "scratch file stays" test -f "$MNT/pending/x.json.tmp"
check "rename into place issues" mv "$MNT/pending/x.json.tmp" "$MNT/pending/x.json"
check "receipt after rename" test -f "$MNT/receipts/x.json"
check_eq "pending/ empty" "$(ls -A "$MNT/pending")" ""

# rm in receipts/ and rejected/ hides the entry only.
check "rm receipt" rm "$MNT/receipts/x.json"
check "receipt hidden" test ! -e "$MNT/receipts/x.json"
check "rm rejection" rm "$MNT/rejected/broken.json"
check "rejection hidden" test ! -e "$MNT/rejected/broken.json"
check_eq "still in the store" "$(sqlite3 "$T/state/fapiaofs.db" 'select count(*) from rejects where name="broken.json"')" "1"
check "its reasons stay until they are acknowledged too" test -e "$MNT/rejected/broken.json.error"
check "rm of them" rm "$MNT/rejected/broken.json.error"
# rm of a whole folder of rejections by a glob, which names NAME and NAME.error: the rm of
# NAME hid both, and rm exited 1 ("cannot remove ... .error") for each rejection.
printf '{"oops": ' > "$T/g1.json"; printf 'nope' > "$T/g2.json"
for g in g1 g2; do cp "$T/$g.json" "$MNT/pending/$g.json" 2>/dev/null; done
check_eq "two more rejections: four names" "$(cd "$MNT/rejected" && ls g1.json* g2.json* | wc -l)" "4"
check "rm rejected/g* (bodies and reasons): exit 0" rm "$MNT"/rejected/g*
check_eq "all four gone" "$(cd "$MNT/rejected" && ls | grep -c '^g[12]\.json')" "0"
check_eq "rm of a name never there: still ENOENT" \
  "$(rm "$MNT/rejected/never.json" 2>&1 | grep -c 'No such file')" "1"
check "mkdir in pending/ is EPERM" bash -c "mkdir '$MNT/pending/d' 2>&1 | grep -q 'not permitted'"
check "write above 1 MiB fails (EFBIG)" bash -c "head -c 1100000 /dev/zero | tr '\\0' ' ' > '$MNT/pending/big.json.tmp' 2>&1; [ \$? -ne 0 ]"
rm -f "$MNT/pending/big.json.tmp"
