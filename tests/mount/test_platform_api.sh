# The platform simulator's clearing calls (SPEC §5.4 steps 4-5, §6), spoken to directly over
# HTTP, without a mount: its own SM2 key (GET /v1/platform-key, kept across restarts), 上报汇总
# (POST /v1/periods/P/summary: device-signed, checked, stored, replaced) and 监控回传
# (POST /v1/periods/P/clearance: refused until filed, without a summary, with invoices missing
# or sums that differ; then a platform-signed answer that openssl verifies, the same every time).
source "$(dirname "$0")/lib.sh"

T=$ROOT/tests/tmp/platform_api.$(basename "$BUILD")
rm -rf "$T"; mkdir -p "$T"
PERIOD=2026-11 MACHINE=499099000001 SELLER=9131011259474644XJ
DISTID=distid:1234567812345678

platform_stop() {
  [ -n "${PLATFORM_PID:-}" ] || return 0
  kill "$PLATFORM_PID" 2>/dev/null; wait "$PLATFORM_PID" 2>/dev/null
  PLATFORM_PID=
}
cleanup() {
  platform_stop
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T/platform.log"; then
    echo "not ok - sanitizer report in platform.log:"; sed 's/^/    /' "$T/platform.log" | head -40
    T_FAILED=1
  fi
  exit $T_FAILED
}
trap cleanup EXIT
t_platform_start
[ -n "$PLATFORM_ADMIN" ] || { echo "not ok - the simulator did not start (see $T/platform.log)"; exit 1; }
ADMIN=http://127.0.0.1:$PLATFORM_ADMIN

# api METHOD PATH [BODY_FILE]: a request signed as SPEC §6 says; sets STATUS, the body in $T/resp.
cat > "$T/api.py" <<'PY'
import base64, hashlib, hmac, os, sys, time, urllib.error, urllib.request
port, method, path = sys.argv[1:4]
body = open(sys.argv[4], "rb").read() if len(sys.argv) > 4 else b""
timestamp = str(int(time.time()) + int(os.environ.get("SKEW", "0")))
nonce = os.urandom(8).hex()
signed = "\n".join([method, path, timestamp, nonce]).encode() + b"\n" + body
headers = {"X-App-Key": "demo-app", "X-Timestamp": timestamp, "X-Nonce": nonce,
           "X-Signature": base64.b64encode(hmac.new(b"demo-secret", signed, hashlib.sha256).digest()),
           "Content-Type": "application/json"}
if os.environ.get("UNSIGNED"):
    headers = {}
req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), method=method, headers=headers,
                             data=body if method == "POST" else None)
try:
    with urllib.request.urlopen(req, timeout=20) as r:
        status, out = r.status, r.read()
except urllib.error.HTTPError as e:
    status, out = e.code, e.read()
sys.stdout.buffer.write(b"%d\n" % status + out)
PY
api() {
  python3 "$T/api.py" "$PLATFORM_PORT" "$@" > "$T/out"
  STATUS=$(head -n 1 "$T/out"); tail -n +2 "$T/out" > "$T/resp"
}
# field EXPR: a Python expression over the last answer, parsed as `d`.
field() { json "$T/resp" "$1" 2>/dev/null; }

# summary NAME [KEY] LINE...: $T/NAME.json, the summary of $PERIOD signed with KEY (a PEM file,
# default the device's key) over the text device_summary_text() makes; each LINE is
# "TYPE blue|red RATE_PM COUNT AMOUNT TAX", amounts in yuan.
cat > "$T/summary.py" <<'PY'
import base64, json, sys
from decimal import Decimal
mode, name, period, machine, seller = sys.argv[1:6]
lines = [l.split() for l in sys.argv[6:]]
if mode == "text":
    fen = lambda a: "%d" % (Decimal(a) * 100)
    text = "%s %s\n" % (period, machine) + "".join(
        "%s %s %s %s %s %s\n" % (t, c, r, n, fen(a), fen(x)) for t, c, r, n, a, x in lines)
    open(name + ".txt", "w").write(text)
else:
    sig, pub = base64.b64encode(open(name + ".sig", "rb").read()).decode(), open(name + ".pub").read().strip()
    doc = {"period": period, "machine_number": machine, "seller_tax_id": seller,
           "lines": [{"type": t, "red": c == "red", "rate_pm": int(r), "count": int(n), "amount": a, "tax": x}
                     for t, c, r, n, a, x in lines],
           "device_signature": sig, "device_public_key": pub}
    open(name + ".json", "w").write(json.dumps(doc, ensure_ascii=False))
PY
summary() {
  local name=$T/$1 key=$T/device.pem; shift
  case $1 in *.pem) key=$1; shift ;; esac
  python3 "$T/summary.py" text "$name" "$PERIOD" "$MACHINE" "$SELLER" "$@"
  openssl pkeyutl -sign -inkey "$key" -rawin -digest sm3 -pkeyopt "$DISTID" \
    -in "$name.txt" -out "$name.sig" || echo "not ok - openssl could not sign $name.txt"
  cp "$T/device.pub" "$name.pub"
  python3 "$T/summary.py" json "$name" "$PERIOD" "$MACHINE" "$SELLER" "$@"
}

# invoice FILE CODE NUMBER PERIOD TOTAL ITEM...: an invoice as the engine writes it, reduced to
# what the platform reads; ITEM is "AMOUNT RATE TAX".
invoice() {
  python3 - "$@" <<'PY'
import json, sys
from decimal import Decimal
path, code, number, period, total = sys.argv[1:6]
items = [i.split() for i in sys.argv[6:]]
doc = {"code": code, "number": number, "type": "026", "issued_at": period + "-20T10:00:00+08:00",
       "period": period, "seller": {"tax_id": "9131011259474644XJ"}, "machine_number": "499099000001",
       "items": [{"line": n + 1, "amount": a, "tax_rate": r, "tax": x} for n, (a, r, x) in enumerate(items)],
       "totals": {"amount": "%.2f" % sum(Decimal(a) for a, _, _ in items),
                  "tax": "%.2f" % sum(Decimal(x) for _, _, x in items), "total": total}}
open(path, "w").write(json.dumps(doc, ensure_ascii=False))
PY
}

openssl genpkey -algorithm SM2 -out "$T/device.pem" 2>/dev/null &&
  openssl pkey -in "$T/device.pem" -pubout -outform DER | base64 -w0 > "$T/device.pub"
ok $? "a device SM2 key made with openssl"
openssl genpkey -algorithm SM2 -out "$T/other.pem" 2>/dev/null

check "--help documents the signed clearance text" \
  grep -q 'CLEARANCE PERIOD MACHINE LOCK_DATE PER_INVOICE OFFLINE_HOURS OFFLINE_AMOUNT' \
  <("$PLATFORM_SIM" --help)

# ---- the platform's key ----
UNSIGNED=1 api GET /v1/platform-key
check_eq "GET /v1/platform-key unsigned: 401" "$STATUS" 401
SKEW=-301 api GET /v1/platform-key
check_eq "a timestamp 301 s old: 401 stale_timestamp" "$STATUS $(field 'd["error"]')" "401 stale_timestamp"
SKEW=301 api GET /v1/platform-key
check_eq "301 s ahead: 401 too" "$STATUS" 401
SKEW=-290 api GET /v1/platform-key
check_eq "290 s old: accepted (clocks differ)" "$STATUS" 200
api GET /v1/platform-key
check_eq "GET /v1/platform-key: 200" "$STATUS" 200
PLATFORM_KEY=$(field 'd["public_key"]')
base64 -d <<<"$PLATFORM_KEY" > "$T/platform.der" 2>/dev/null
openssl pkey -pubin -inform DER -in "$T/platform.der" -noout -text 2>/dev/null | grep -q 'ASN1 OID: SM2'
ok $? "the platform key is a base64 DER SM2 public key"

# ---- invoices: two of $PERIOD (blue and red), one of the month before ----
invoice "$T/inv1.json" 031001900111 00000001 "$PERIOD" 10070.00 "10000.00 0.06 600.00" "-500.00 0.06 -30.00"
invoice "$T/inv2.json" 031001900111 00000002 "$PERIOD" -1060.00 "-1000.00 0.06 -60.00"
invoice "$T/inv0.json" 031001900111 00000003 2026-10 106.00 "100.00 0.06 6.00"
codes=""
for i in 1 2 0; do api POST /v1/invoices "$T/inv$i.json"; codes="$codes $STATUS"; done
check_eq "three invoices uploaded" "$codes" " 201 201 201"

GOOD=("026 blue 60 1 9500.00 570.00" "026 red 60 1 -1000.00 -60.00")

# ---- 上报汇总: refusals ----
summary forged "$T/other.pem" "${GOOD[@]}"
api POST /v1/periods/$PERIOD/summary "$T/forged.json"
check_eq "a summary signed with another key: 403 bad_device_signature" \
  "$STATUS $(field 'd["error"]')" "403 bad_device_signature"
summary tampered "${GOOD[@]}"
sed -i 's/"9500.00"/"9400.00"/' "$T/tampered.json"
api POST /v1/periods/$PERIOD/summary "$T/tampered.json"
check_eq "a summary changed after signing: 403 bad_device_signature" \
  "$STATUS $(field 'd["error"]')" "403 bad_device_signature"
summary good "${GOOD[@]}"
api POST /v1/periods/2026-10/summary "$T/good.json"
check_eq "a summary sent to another period's URL: 400 invalid_summary" \
  "$STATUS $(field 'd["error"]')" "400 invalid_summary"
printf '{"period": "2026-11", "lines": [' > "$T/broken.json"
api POST /v1/periods/$PERIOD/summary "$T/broken.json"
check_eq "a summary that is not JSON: 400 invalid_json" "$STATUS $(field 'd["error"]')" "400 invalid_json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["lines"][0]["amount"]="9500.001"
open(sys.argv[1],"w").write(json.dumps(d))' "$T/good.json"
api POST /v1/periods/$PERIOD/summary "$T/good.json"
check_eq "a summary amount with 3 decimals: 400 invalid_summary" \
  "$STATUS $(field 'd["error"]')" "400 invalid_summary"
api POST /v1/periods/2026-13/summary "$T/good.json"
check_eq "period 2026-13 in the URL: 400 invalid_period" "$STATUS $(field 'd["error"]')" "400 invalid_period"

# ---- 监控回传 before anything ----
printf '{"machine_number": "%s"}' "$MACHINE" > "$T/clear.json"
api POST /v1/periods/$PERIOD/clearance "$T/clear.json"
check_eq "clearance before the return is filed: 403 return_not_filed" \
  "$STATUS $(field 'd["error"]')" "403 return_not_filed"

# ---- 上报汇总 accepted ----
summary good "${GOOD[@]}"
api POST /v1/periods/$PERIOD/summary "$T/good.json"
check_eq "the device-signed summary: 201 created" "$STATUS $(field 'd["status"]')" "201 created"
summary good "${GOOD[@]}"   # signed again: SM2 signatures differ, the summary is the same
api POST /v1/periods/$PERIOD/summary "$T/good.json"
check_eq "the same summary again, signed anew: 200 already_have" \
  "$STATUS $(field 'd["status"]')" "200 already_have"
check_eq "GET /admin/summary/$PERIOD: the summary stored" \
  "$(curl -s "$ADMIN/admin/summary/$PERIOD" | python3 -c 'import json,sys; d=json.load(sys.stdin)
print(d["period"], d["machine_number"], len(d["lines"]))')" "$PERIOD $MACHINE 2"
check_eq "GET /admin/summary/2026-10: 404" \
  "$(curl -s -o /dev/null -w '%{http_code}' "$ADMIN/admin/summary/2026-10")" 404

api POST /v1/periods/$PERIOD/clearance "$T/clear.json"
check_eq "clearance with a summary, return not filed: 403 return_not_filed" \
  "$STATUS $(field 'd["error"]')" "403 return_not_filed"

check_eq "POST /admin/filed $PERIOD" "$(curl -s -d "$PERIOD" "$ADMIN/admin/filed")" "filed $PERIOD"
check_eq "POST /admin/filed 2026-10" "$(curl -s -d 2026-10 "$ADMIN/admin/filed")" "filed 2026-10"
check_eq "POST /admin/filed nonsense: 400" \
  "$(curl -s -o /dev/null -w '%{http_code}' -d 2026-1x "$ADMIN/admin/filed")" 400
api POST /v1/periods/2026-10/clearance "$T/clear.json"
check_eq "clearance of a filed period without a summary: 403 summary_missing" \
  "$STATUS $(field 'd["error"]')" "403 summary_missing"

# ---- refusals after filing ----
summary three "026 blue 60 2 9500.00 570.00" "026 red 60 1 -1000.00 -60.00"
api POST /v1/periods/$PERIOD/summary "$T/three.json"
check_eq "a summary counting 3 invoices replaces the stored one: 200 replaced" \
  "$STATUS $(field 'd["status"]')" "200 replaced"
api POST /v1/periods/$PERIOD/clearance "$T/clear.json"
check_eq "3 invoices summarised, 2 uploaded: 403 invoices_missing, missing 1" \
  "$STATUS $(field 'd["error"]') $(field 'd["missing"]')" "403 invoices_missing 1"

summary differ "026 blue 60 1 9600.00 576.00" "026 red 60 1 -1000.00 -60.00"
api POST /v1/periods/$PERIOD/summary "$T/differ.json"
check_eq "a summary with other amounts: 200 replaced" "$STATUS $(field 'd["status"]')" "200 replaced"
api POST /v1/periods/$PERIOD/clearance "$T/clear.json"
check_eq "amounts that differ: 403 summary_mismatch" "$STATUS $(field 'd["error"]')" "403 summary_mismatch"
field 'd["detail"]' | grep -q '^026 blue 6%: the summary counts 1 invoice, amount 9600.00, tax 576.00; the platform 1, 9500.00, 570.00$'
ok $? "the mismatch detail names the line and both sums ($(field 'd["detail"]'))"

# ---- the answer ----
summary good "${GOOD[@]}"
api POST /v1/periods/$PERIOD/summary "$T/good.json"
check_eq "the right summary again: 200 replaced" "$STATUS $(field 'd["status"]')" "200 replaced"
api POST /v1/periods/$PERIOD/clearance "$T/clear.json"
check_eq "clearance: 200" "$STATUS" 200
cp "$T/resp" "$T/answer.json"
check_eq "the answer's fields" \
  "$(field '" ".join(map(str, [d["period"], d["machine_number"], d["cleared"], d["lock_date"],
      d["limits"]["per_invoice"], d["limits"]["offline_hours"], d["limits"]["offline_amount"]]))')" \
  "$PERIOD $MACHINE True 2027-01-15T23:59:59+08:00 10000000.00 72 10000000.00"
printf 'CLEARANCE %s %s 2027-01-15T23:59:59+08:00 10000000.00 72 10000000.00' "$PERIOD" "$MACHINE" \
  > "$T/clear.txt"
field 'd["signature"]' | base64 -d > "$T/clear.sig"
openssl pkeyutl -verify -pubin -keyform DER -inkey "$T/platform.der" -rawin -digest sm3 \
  -pkeyopt "$DISTID" -in "$T/clear.txt" -sigfile "$T/clear.sig" > /dev/null 2>&1
ok $? "the answer's signature verifies with the platform key over the documented text"
sed 's/ 72 / 96 /' "$T/clear.txt" > "$T/clear-changed.txt"
openssl pkeyutl -verify -pubin -keyform DER -inkey "$T/platform.der" -rawin -digest sm3 \
  -pkeyopt "$DISTID" -in "$T/clear-changed.txt" -sigfile "$T/clear.sig" > /dev/null 2>&1
[ $? -ne 0 ]; ok $? "...and not over a text with other limits"

api POST /v1/periods/$PERIOD/clearance "$T/clear.json"
cmp -s "$T/resp" "$T/answer.json"
ok $? "clearance again: $STATUS, the same bytes"
check_eq "GET /admin/clearances" "$(curl -s "$ADMIN/admin/clearances")" \
  "$PERIOD $MACHINE 2027-01-15T23:59:59+08:00"

summary good "${GOOD[@]}"
api POST /v1/periods/$PERIOD/summary "$T/good.json"
check_eq "the cleared period's summary again: 200 already_have" \
  "$STATUS $(field 'd["status"]')" "200 already_have"
api POST /v1/periods/$PERIOD/summary "$T/differ.json"
check_eq "another summary for the cleared period: 409 period_cleared" \
  "$STATUS $(field 'd["error"]')" "409 period_cleared"

# ---- after a restart ----
platform_stop
t_platform_start
api GET /v1/platform-key
check_eq "after a restart: the same platform key" "$(field 'd["public_key"]')" "$PLATFORM_KEY"
api POST /v1/periods/$PERIOD/clearance "$T/clear.json"
cmp -s "$T/resp" "$T/answer.json"
ok $? "after a restart: clearance $STATUS, the same bytes"
