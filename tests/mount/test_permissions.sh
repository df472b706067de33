# Permissions (issue #8, SPEC §2.2, §2.3): a mount with [fs] group = fapiao-ops and
# allow_other, used by a user in that group (fapiao-in) and one outside it (fapiao-out) through
# runuser: who can drop drafts, who can read what, who can clear the card; and nobody, root
# included, can change anything under issued/.  The kernel enforces the mode bits
# (default_permissions), so most refusals to the two users never reach the daemon; root's do.
# Needs root (it creates the group and the two system users when they are missing).
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ]; then echo "not ok - test_permissions needs root (useradd, runuser)"; exit 1; fi

GROUP=fapiao-ops IN=fapiao-in OUT=fapiao-out
getent group "$GROUP" >/dev/null || groupadd --system "$GROUP"
for u in "$IN" "$OUT"; do
  id -u "$u" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$u"
done
id -nG "$IN" | grep -qw "$GROUP" || usermod -aG "$GROUP" "$IN"
id -nG "$OUT" | grep -qw "$GROUP" && gpasswd -d "$OUT" "$GROUP" >/dev/null
IN_UID=$(id -u "$IN") OUT_UID=$(id -u "$OUT")
check "$IN is in $GROUP" bash -c "id -nG $IN | grep -qw $GROUP"
check "$OUT is not in $GROUP" bash -c "! id -nG $OUT | grep -qw $GROUP"

# The two users must reach the mount: with a checkout they cannot enter (under /root, say),
# the test runs in /tmp instead.
T_TMP=$ROOT/tests/tmp
if ! runuser -u "$OUT" -- test -x "$ROOT/tests/tmp" 2>/dev/null; then
  T_TMP=/tmp/fapiaofs-tests; mkdir -p "$T_TMP"; chmod 0755 "$T_TMP"
fi
T_TMP=$T_TMP T_CLOCK=2026-11-10T10:00:00+08:00 T_CONF=$'[fs]\ngroup = fapiao-ops\nallow_other = true' \
  t_setup permissions
ADMIN=http://127.0.0.1:$PLATFORM_ADMIN
PROBE=$T/permprobe.py
install -m 0644 "$ROOT/tests/mount/permprobe.py" "$PROBE"
as()    { local u=$1; shift; runuser -u "$u" -- python3 "$PROBE" "$@"; }   # USER OP ARGS → errno name
field() { sed -n "s/^$2: //p" "$1"; }
# draft NAME ID: the example draft with request_id ID, in $T, readable by everyone
draft() {
  sed "s/SO-2024-000123/$2/" "$ROOT/examples/basic.json" > "$T/$1"
  chmod 0644 "$T/$1"
}
check "the mount is reachable for $OUT (every folder above it is searchable)" \
  runuser -u "$OUT" -- test -x "$MNT"

# ---- the modes the tree gives ------------------------------------------------------------
mode() { stat -c '%a %U:%G' "$MNT/$1"; }
check_eq "/ mode" "$(mode .)" "755 root:$GROUP"
check_eq "pending/: the group may drop" "$(mode pending)" "775 root:$GROUP"
check_eq "device/clear: owner and group rw, others nothing (SPEC §2.3)" \
  "$(mode device/clear)" "660 root:$GROUP"
check_eq "issued/ read-only" "$(mode issued)" "555 root:$GROUP"

# ---- the group member ---------------------------------------------------------------------
draft nov-1.json NOV-1
check_eq "$IN drops a draft: close() returns 0" \
  "$(as $IN drop "$MNT/pending/nov-1.json" "$T/nov-1.json")" "OK"
check "  it is issued" test -f "$MNT/receipts/nov-1.json"
INV=issued/$(json "$MNT/receipts/nov-1.json" 'd["path"]' | cut -d/ -f2-)
MONTH=$(dirname "$INV")
check_eq "$IN reads receipts/" "$(as $IN read "$MNT/receipts/nov-1.json")" "OK"
check_eq "$IN lists issued/ and the month" "$(as $IN list "$MNT/issued")$(as $IN list "$MNT/$MONTH")" "OKOK"
check_eq "$IN reads the invoice" "$(as $IN read "$MNT/$INV")" "OK"
check_eq "$IN reads status, device/log, reports/" "$(as $IN read "$MNT/status") \
$(as $IN read "$MNT/device/log") $(as $IN read "$MNT/reports/2026-11.csv")" "OK OK OK"
printf '{"buyer": {}}' > "$T/bad.json"; chmod 0644 "$T/bad.json"
check_eq "$IN drops an invalid draft: EINVAL" "$(as $IN drop "$MNT/pending/bad.json" "$T/bad.json")" "EINVAL"
check_eq "$IN reads why (rejected/NAME.error)" "$(as $IN read "$MNT/rejected/bad.json.error")" "OK"
draft nov-2.json NOV-2
check_eq "$IN writes a scratch file" "$(as $IN drop "$MNT/pending/nov-2.json.tmp" "$T/nov-2.json")" "OK"
check_eq "$IN renames it into place: issued" \
  "$(as $IN rename "$MNT/pending/nov-2.json.tmp" "$MNT/pending/nov-2.json")" "OK"
check "  receipt for the renamed draft" test -f "$MNT/receipts/nov-2.json"
check_eq "$IN cannot acknowledge an outcome (rm rejected/: the folder is 755 root)" \
  "$(as $IN unlink "$MNT/rejected/bad.json")" "EACCES"
check_eq "$IN writes clear in November: 0 (nothing to clear)" "$(as $IN clear "$MNT/device/clear")" "OK"
check_eq "  device/clear shows $IN's uid" "$(field "$MNT/device/clear" uid)" "$IN_UID"
check "  device/log records $IN's clear with its uid" \
  grep -q " uid=$IN_UID clear: ok: nothing to clear" "$MNT/device/log"
check_eq "$IN reads device/clear" "$(as $IN read "$MNT/device/clear")" "OK"

# ---- outside the group ----------------------------------------------------------------------
draft out.json OUT-1
check_eq "$OUT lists pending/" "$(as $OUT list "$MNT/pending")" "OK"
check_eq "$OUT cannot drop a draft: EACCES" "$(as $OUT drop "$MNT/pending/out.json" "$T/out.json")" "EACCES"
check_eq "$OUT cannot create a scratch file: EACCES" \
  "$(as $OUT drop "$MNT/pending/out.json.tmp" "$T/out.json")" "EACCES"
check "  nothing of it arrived" \
  bash -c "! ls -A '$MNT/pending' | grep -q out && test ! -e '$MNT/receipts/out.json'"
check_eq "$IN leaves a scratch file" "$(as $IN drop "$MNT/pending/keep.json.tmp" "$T/out.json")" "OK"
check_eq "$OUT cannot write into it: EACCES" "$(as $OUT write "$MNT/pending/keep.json.tmp")" "EACCES"
check_eq "$OUT cannot rename it into place: EACCES" \
  "$(as $OUT rename "$MNT/pending/keep.json.tmp" "$MNT/pending/keep.json")" "EACCES"
check_eq "$OUT cannot remove it: EACCES" "$(as $OUT unlink "$MNT/pending/keep.json.tmp")" "EACCES"
check_eq "$IN removes it" "$(as $IN unlink "$MNT/pending/keep.json.tmp")" "OK"
check_eq "$OUT cannot write clear: EACCES" "$(as $OUT clear "$MNT/device/clear")" "EACCES"
check_eq "$OUT cannot read device/clear: EACCES" "$(as $OUT read "$MNT/device/clear")" "EACCES"
check_eq "  the refused attempt never reached the daemon: device/clear still shows $IN" \
  "$(field "$MNT/device/clear" uid)" "$IN_UID"
check_eq "$OUT cannot acknowledge an outcome: EACCES" "$(as $OUT unlink "$MNT/receipts/nov-1.json")" "EACCES"
# What the tree gives everyone today (see the report of issue #8: buyer data readable by all).
check_eq "$OUT reads issued/ (folders 555, invoices 444)" \
  "$(as $OUT list "$MNT/$MONTH") $(as $OUT read "$MNT/$INV")" "OK OK"
check_eq "$OUT reads receipts/ and rejected/ (644)" \
  "$(as $OUT read "$MNT/receipts/nov-1.json") $(as $OUT read "$MNT/rejected/bad.json")" "OK OK"
check_eq "$OUT reads status and device/log (444)" \
  "$(as $OUT read "$MNT/status") $(as $OUT read "$MNT/device/log")" "OK OK"

# ---- a locked device: waiting drafts, and the group member clears it ----------------------
for _ in $(seq 100); do [ "$(platform_count)" = 2 ] && break; sleep 0.1; done
check_eq "both November invoices uploaded" "$(platform_count)" "2"
t_clock 2026-12-16T09:00:00+08:00
sleep 1.1
draft dec-1.json DEC-1
check_eq "16 December, device locked: $IN's draft is accepted (0)" \
  "$(as $IN drop "$MNT/pending/dec-1.json" "$T/dec-1.json")" "OK"
check_eq "  it waits in pending/, read-only" "$(mode pending/dec-1.json)" "444 root:$GROUP"
check_eq "$IN cannot change the waiting draft: EACCES" "$(as $IN write "$MNT/pending/dec-1.json")" "EACCES"
check_eq "$OUT cannot cancel it: EACCES" "$(as $OUT unlink "$MNT/pending/dec-1.json")" "EACCES"
check_eq "$OUT cannot clear the locked device: EACCES" "$(as $OUT clear "$MNT/device/clear")" "EACCES"
check_eq "$IN clears before the return is filed: EPERM" "$(as $IN clear "$MNT/device/clear")" "EPERM"
curl -s -d 2026-11 "$ADMIN/admin/filed" >/dev/null
check_eq "$IN clears after the return is filed: 0" "$(as $IN clear "$MNT/device/clear")" "OK"
check_eq "  cleared through 2026-11" "$(field "$MNT/device/status" cleared_through)" "2026-11"
check_eq "  device/clear: result ok, uid $IN_UID" \
  "$(field "$MNT/device/clear" result) $(field "$MNT/device/clear" uid)" "ok $IN_UID"
check_eq "  device/log: $IN's refused and successful clears, with its uid" \
  "$(grep -c " uid=$IN_UID clear: " "$MNT/device/log")" "3"
check "  device/log: no line with $OUT's uid" bash -c "! grep -q ' uid=$OUT_UID ' '$MNT/device/log'"
for _ in $(seq 50); do [ -e "$MNT/receipts/dec-1.json" ] && break; sleep 0.1; done
check "  the waiting draft is issued" test -f "$MNT/receipts/dec-1.json"

# ---- nobody changes issued/ ------------------------------------------------------------------
# Root passes the kernel's mode check, so its attempts reach the daemon: EROFS (or EPERM).
# The two users are refused by the kernel first: EACCES (not owner: EPERM) is as good.
SUM=$(sha256sum < "$MNT/$INV"); MTIME=$(stat -c %Y "$MNT/$INV"); LIST=$(ls -la "$MNT/$MONTH")
immutable() {   # USER ALLOWED-ERRNOS
  local u=$1 allowed=$2 f=$MNT/$INV d=$MNT/$MONTH got bad="" seen=""
  local ops=(
    "write $f" "append $f" "opentrunc $f" "truncate $f" "unlink $f" "chmod $f 0666"
    "chown $f $(id -u "$u") $(id -g "$u")" "utime $f" "setxattr $f"
    "rename $f $d/00000000.json" "rename $f $MNT/receipts/x.json" "rename $f $MNT/pending/x.json"
    "link $f $MNT/pending/x.json" "link $f $d/x.json" "symlink /etc/passwd $d/x.json"
    "create $d/x.json" "drop $d/$(basename "$f") /dev/null" "mkdir $d/x" "mkdir $MNT/issued/2027-01"
    "rmdir $d" "rename $d $MNT/issued/2027-01" "chmod $d 0777" "utime $d")
  local op
  for op in "${ops[@]}"; do
    # shellcheck disable=SC2086
    got=$(as "$u" $op)
    seen="$seen ${op%% *}=$got"
    case " $allowed " in *" $got "*) ;; *) bad="$bad; ${op%% *} ${op#* } -> $got" ;; esac
  done
  echo "# $u:$seen"
  check_eq "$u cannot change issued/ (23 operations: $allowed)" "${bad#; }" ""
}
immutable root "EROFS EPERM ENOTSUP"
immutable "$IN" "EROFS EPERM EACCES ENOTSUP"
immutable "$OUT" "EROFS EPERM EACCES ENOTSUP"
check_eq "the invoice's bytes are unchanged" "$(sha256sum < "$MNT/$INV")" "$SUM"
check_eq "its mtime is unchanged" "$(stat -c %Y "$MNT/$INV")" "$MTIME"
check_eq "the month's listing is unchanged" "$(ls -la "$MNT/$MONTH")" "$LIST"
check_eq "nothing arrived in pending/ or receipts/ from those attempts" \
  "$(ls -A "$MNT/pending"; ls -A "$MNT/receipts" | grep -c '^x')" "0"
check "the invoice still verifies" verify_signature "$MNT/$INV"
