# Browsing and backing up with the real tools (SPEC §2.2, §2.4): issued/ is immutable;
# inode numbers, sizes, blocks and mtimes are honest; readdir offsets are cursors;
# cp -a, rsync -a, tar, find, du and ls -lR work on the whole mount; the metadata calls
# of copying tools succeed on scratch files; statfs is the store's volume; a month of
# 200,000 invoices lists in constant memory; the mount(8)/fstab form and allow_other work.
source "$(dirname "$0")/lib.sh"
t_setup backup

note() { echo "# $*"; }

# drop NAME REQUEST_ID: the example draft with another request_id, by shell redirection
drop() { sed "s/SO-2024-000123/$2/" "$ROOT/examples/basic.json" > "$MNT/pending/$1"; }

# py_errno CODE ARG...: run Python CODE (the arguments are in `a`); print OK or the errno name
py_errno() {
  python3 - "$@" <<'PY'
import errno, os, sys
code, a = sys.argv[1], sys.argv[2:]
try:
    exec(code)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
PY
}
# check_ro DESC CODE ARG...: the call must fail with EROFS or EPERM
check_ro() {
  local d=$1 got; shift
  got=$(py_errno "$@")
  case $got in
    EROFS|EPERM) echo "ok - $d ($got)" ;;
    *) echo "not ok - $d (got $got, want EROFS or EPERM)"; T_FAILED=1 ;;
  esac
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$FS_PID/status"; }

# ---- the tree: ~20 invoices, 2 rejected drafts ---------------------------------------------------
fails=0
for i in $(seq -w 1 20); do drop "order-$i.json" "SO-BACKUP-00$i" || fails=$((fails + 1)); done
check_eq "20 drafts issued (close returned 0)" "$fails" "0"
printf '{"type": "026",,}\n' > "$MNT/pending/bad-1.json" 2>/dev/null
printf '{"type": "027", "buyer": {}}\n' > "$MNT/pending/bad-2.json" 2>/dev/null
check_eq "2 rejected drafts (4 files in rejected/)" "$(ls "$MNT/rejected" | wc -l)" "4"
check_eq "20 receipts" "$(ls "$MNT/receipts" | wc -l)" "20"
INV=$MNT/$(json "$MNT/receipts/order-01.json" 'd["path"]')
MONTH=$(dirname "$INV")
check_eq "20 invoices in $(basename "$MONTH")" "$(ls "$MONTH" | wc -l)" "20"
check_eq "pending/ empty" "$(ls -A "$MNT/pending")" ""

# ---- issued/ is immutable --------------------------------------------------------------------------
sum=$(sha256sum < "$INV"); mt=$(stat -c %Y "$INV")
check_ro "open O_WRONLY of an invoice"  'os.open(a[0], os.O_WRONLY)' "$INV"
check_ro "open O_APPEND of an invoice"  'os.open(a[0], os.O_WRONLY | os.O_APPEND)' "$INV"
check_ro "open O_TRUNC of an invoice"   'os.open(a[0], os.O_WRONLY | os.O_TRUNC)' "$INV"
check_ro "truncate(2) of an invoice"    'os.truncate(a[0], 0)' "$INV"
check_ro "rename within the month"      'os.rename(a[0], a[1])' "$INV" "$MONTH/x.json"
check_ro "rename to another month name" 'os.rename(a[0], a[1])' "$INV" "$MNT/issued/2000-01"
check_ro "rename out of issued/ into pending/" 'os.rename(a[0], a[1])' "$INV" "$MNT/pending/x.json"
check_ro "rename out of issued/ into receipts/" 'os.rename(a[0], a[1])' "$INV" "$MNT/receipts/x.json"
check_ro "rename a month folder"        'os.rename(a[0], a[1])' "$MONTH" "$MNT/issued/2000-01"
check_ro "unlink of an invoice"         'os.unlink(a[0])' "$INV"
check_ro "rmdir of a month"             'os.rmdir(a[0])' "$MONTH"
check_ro "chmod of an invoice"          'os.chmod(a[0], 0o644)' "$INV"
check_ro "chmod of a month"             'os.chmod(a[0], 0o755)' "$MONTH"
check_ro "chown of an invoice to another user" 'os.chown(a[0], 65534, 65534)' "$INV"
check_ro "utimensat of an invoice"      'os.utime(a[0], (0, 0))' "$INV"
check_ro "utimensat(NOW) of an invoice" 'os.utime(a[0])' "$INV"
check_ro "create a file in a month"     'os.open(a[0], os.O_WRONLY | os.O_CREAT, 0o644)' "$MONTH/new.json"
check_ro "create a file in issued/"     'os.open(a[0], os.O_WRONLY | os.O_CREAT, 0o644)' "$MNT/issued/x"
check_ro "mkdir in a month"             'os.mkdir(a[0])' "$MONTH/d"
check_ro "mkdir in issued/"             'os.mkdir(a[0])' "$MNT/issued/2000-01"
check_ro "link in a month"              'os.link(a[0], a[1])' "$INV" "$MONTH/hard.json"
check_ro "link of an invoice into pending/" 'os.link(a[0], a[1])' "$INV" "$MNT/pending/hard.json"
check_ro "symlink in a month"           'os.symlink("x", a[0])' "$MONTH/sym"
check_ro "mkfifo in a month"            'os.mkfifo(a[0])' "$MONTH/fifo"
got=$(py_errno 'os.setxattr(a[0], "user.x", b"1")' "$INV")
case $got in EROFS|EPERM|ENOTSUP|EOPNOTSUPP) ok 0 "setxattr on an invoice fails ($got)" ;;
  *) ok 1 "setxattr on an invoice fails (got $got)" ;; esac
# the same through the tools people use
check "echo >> invoice fails"  bash -c "! echo x >> '$INV'"
check "echo > invoice fails"   bash -c "! echo x > '$INV'"
check "truncate -s 0 fails"    bash -c "! truncate -s 0 '$INV'"
check "mv within issued/ fails" bash -c "! mv '$INV' '$MONTH/x.json'"
check "mv out of the mount fails" bash -c "! mv '$INV' '$T/moved.json'"
check "rm -f fails"            bash -c "! rm -f '$INV'"
check "chmod fails"            bash -c "! chmod 600 '$INV'"
check "chown nobody fails"     bash -c "! chown nobody '$INV'"
check "touch -d fails"         bash -c "! touch -d '2001-01-01' '$INV'"
check "mkdir fails"            bash -c "! mkdir '$MONTH/d'"
check "ln fails"               bash -c "! ln '$INV' '$MONTH/h'"
check "ln -s fails"            bash -c "! ln -s x '$MONTH/s'"
check "mkfifo fails"           bash -c "! mkfifo '$MONTH/f'"
check_eq "invoice bytes unchanged after all that" "$(sha256sum < "$INV")" "$sum"
check_eq "invoice mtime unchanged after all that" "$(stat -c %Y "$INV")" "$mt"
check_eq "still 20 invoices, nothing added" "$(ls -A "$MONTH" | wc -l)" "20"
check_eq "pending/ still empty" "$(ls -A "$MNT/pending")" ""

# ---- inode numbers, nlink, sizes, blocks, mtimes, over the whole mount -------------------------------
walk_report() {   # prints "files N" then one line per problem
  python3 - "$MNT" <<'PY'
import datetime, json, os, stat, sys
mnt = sys.argv[1]
files = 0
def visit(d):
    global files
    with os.scandir(d) as it:
        entries = list(it)
    for e in entries:
        st = os.stat(e.path, follow_symlinks=False)
        rel = os.path.relpath(e.path, mnt)
        if e.inode() != st.st_ino:
            print("ino %s: readdir %d, stat %d" % (rel, e.inode(), st.st_ino))
        if stat.S_ISDIR(st.st_mode):
            visit(e.path)
            continue
        files += 1
        with open(e.path, "rb") as f:
            fst = os.fstat(f.fileno())
            data = f.read()
        if st.st_nlink != 1:
            print("nlink %s: %d" % (rel, st.st_nlink))
        if st.st_size != len(data):
            print("size %s: stat %d, read %d" % (rel, st.st_size, len(data)))
        if fst.st_size != len(data):
            print("fsize %s: fstat %d, read %d" % (rel, fst.st_size, len(data)))
        if st.st_blocks != (st.st_size + 511) // 512:
            print("blocks %s: %d for size %d" % (rel, st.st_blocks, st.st_size))
        if rel.startswith("issued/"):
            t = datetime.datetime.fromisoformat(json.loads(data)["issued_at"]).timestamp()
            if int(st.st_mtime) != int(t):
                print("mtime %s: %d, issued_at %d" % (rel, st.st_mtime, t))
visit(mnt)
print("files %d" % files)
PY
}
walk_report > "$T/walk.txt" 2>&1
note "$(grep '^files' "$T/walk.txt") examined"
for k in ino nlink size fsize blocks mtime; do
  got=$(grep -c "^$k " "$T/walk.txt")
  check_eq "every entry: $k as SPEC §2.2 says" "$got" "0"
  [ "$got" -eq 0 ] || grep "^$k " "$T/walk.txt" | head -5 | sed 's/^/#   /'
done
check "walk finished (no exception)" grep -q '^files [1-9]' "$T/walk.txt"
bad_ls=0
while read -r d; do
  while read -r ino name; do
    [ "$ino" = "$(stat -c %i "$d/$name")" ] || { bad_ls=$((bad_ls + 1)); note "ls -i $d/$name: $ino"; }
  done < <(ls -i1A "$d")
done < <(find "$MNT" -type d)
check_eq "ls -i agrees with stat for every entry" "$bad_ls" "0"

find "$MNT" -printf '%i %y %P\n' | sort > "$T/ino.1"
t_remount
find "$MNT" -printf '%i %y %P\n' | sort > "$T/ino.2"
check "st_ino of every path stable across a remount" cmp -s "$T/ino.1" "$T/ino.2"
cmp -s "$T/ino.1" "$T/ino.2" || diff "$T/ino.1" "$T/ino.2" | head -10 | sed 's/^/#   /'

# ---- readdir offsets are cursors -------------------------------------------------------------------
HELPER=$T/readdir_cursor
check "readdir_cursor.c compiles" cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 \
  -o "$HELPER" "$ROOT/tests/mount/readdir_cursor.c"
cat > "$T/drop10.sh" <<EOF
for i in \$(seq 1 10); do
  sed "s/SO-2024-000123/SO-CURSOR-\$(date +%s%N)-\$i/" "$ROOT/examples/basic.json" > "$MNT/pending/c\$i.json"
done
EOF
cursor_run() {   # MODE: list, drop 10 invoices half way, list the rest; check
  local mode=$1 before n
  ls -f "$MONTH" | grep -v '^\.\.\?$' | sort > "$T/before.$mode"
  n=$(wc -l < "$T/before.$mode")
  "$HELPER" "$mode" "$MONTH" $((n / 2)) "bash $T/drop10.sh" > "$T/got.$mode" 2> "$T/err.$mode"
  ok $? "$mode: helper ran (opendir, half of $n entries, 10 drops, the rest)"
  check_eq "$mode: no entry returned twice" "$(sort "$T/got.$mode" | uniq -d | head -3)" ""
  check_eq "$mode: every entry present at opendir returned" \
    "$(sort -u "$T/got.$mode" | comm -23 "$T/before.$mode" - | head -3)" ""
  note "$mode: $(sort -u "$T/got.$mode" | comm -13 "$T/before.$mode" - | wc -l) of the 10 new entries seen"
  check_eq "$mode: 10 more invoices in the month" "$(ls "$MONTH" | wc -l)" "$((n + 10))"
}
cursor_run getdents
cursor_run readdir
out=$("$HELPER" seek "$MONTH" 7 "bash $T/drop10.sh" 2>&1)
ok $? "seek: telldir, read on, 10 drops, seekdir"
set -- $out
check_eq "seekdir back to a telldir position returns the same following entry" "${2:-}" "${1:-x}"
out=$("$HELPER" seek "$MNT/rejected" 1 true 2>&1); set -- $out
check_eq "seekdir in rejected/ (two entries a row) returns the same following entry" "${2:-}" "${1:-x}"

# ---- metadata calls of copying tools on a scratch file in pending/ ------------------------------------
S=$MNT/pending/x.json.tmp
check "create scratch file x.json.tmp" cp "$ROOT/examples/basic.json" "$S"
check "touch -d (utimensat) on scratch" touch -d '2024-01-02 03:04:05 +0800' "$S"
check_eq "scratch mtime set" "$(stat -c %Y "$S")" "$(date -d '2024-01-02 03:04:05 +0800' +%s)"
check_eq "utimensat(times) with Python" "$(py_errno 'os.utime(a[0], (1700000000, 1700000000))' "$S")" OK
check "chmod 0640 on scratch" chmod 0640 "$S"
check "chown to the same owner" chown "$(stat -c %u:%g "$S")" "$S"
check_eq "chown to the same uid and gid (Python os.chown)" \
  "$(py_errno 'st = os.stat(a[0]); os.chown(a[0], st.st_uid, st.st_gid)' "$S")" OK
# ENOTSUP and EOPNOTSUPP are the same number on Linux; Python names it either way
check_eq "setxattr gives ENOTSUP" \
  "$(py_errno 'os.setxattr(a[0], "user.x", b"1")' "$S" | sed 's/^EOPNOTSUPP$/ENOTSUP/')" ENOTSUP
# no extended attributes on this mount: the kernel learns it at the first getxattr (ENOSYS)
# and answers EOPNOTSUPP from then on without asking the daemon
check_eq "getxattr gives ENOTSUP" \
  "$(py_errno 'os.getxattr(a[0], "user.x")' "$S" | sed 's/^EOPNOTSUPP$/ENOTSUP/')" ENOTSUP
check_eq "getxattr of an invoice gives ENOTSUP" \
  "$(py_errno 'os.getxattr(a[0], "user.mime_type")' "$INV" | sed 's/^EOPNOTSUPP$/ENOTSUP/')" ENOTSUP
check_eq "listxattr is empty" "$(python3 -c 'import os,sys; print(os.listxattr(sys.argv[1]))' "$S")" "[]"
check_eq "listxattr of an invoice is empty" \
  "$(python3 -c 'import os,sys; print(os.listxattr(sys.argv[1]))' "$INV")" "[]"
check "rename scratch to another scratch name" mv "$S" "$MNT/pending/.x.json.AbC123"
check "rm scratch" rm "$MNT/pending/.x.json.AbC123"
check_eq "pending/ empty again" "$(ls -A "$MNT/pending")" ""

check "stat -f MNT" stat -f "$MNT"
check "df MNT" df "$MNT"
check_eq "statfs: block size and total blocks of the state volume" \
  "$(stat -f -c '%S %b' "$MNT")" "$(stat -f -c '%S %b' "$T/state")"
check_eq "df: the same size as the state directory's volume" \
  "$(df -P "$MNT" | awk 'NR==2 {print $2}')" "$(df -P "$T/state" | awk 'NR==2 {print $2}')"

# ---- README and status ------------------------------------------------------------------------------
for w in 'pending/' '\.json' 'close' 'rejected'; do
  check "README mentions $w" grep -q "$w" "$MNT/README"
done
check "status fits one screen: at most 24 lines" test "$(wc -l < "$MNT/status")" -le 24
longest=$(python3 -c '
import sys
print(max(len(l.rstrip("\n")) for l in open(sys.argv[1], encoding="utf-8")))' "$MNT/status")
note "status: $(wc -l < "$MNT/status") lines, longest $longest characters"
check "status lines at most 100 characters" test "$longest" -le 100

# ---- cp -a, rsync -a, tar, find, du, ls -lR ---------------------------------------------------------
check "cp -a MNT DEST exits 0" cp -a "$MNT" "$T/cp"
check "diff -r of issued/ after cp -a" diff -r "$MNT/issued" "$T/cp/issued"
check_eq "cp -a kept invoice mtimes" "$(stat -c %Y "$T/cp/${INV#$MNT/}")" "$(stat -c %Y "$INV")"

# a quiet tree: every upload done, so platform/status has no reason to change
for _ in $(seq 100); do grep -qx 'queued: 0' "$MNT/platform/status" && break; sleep 0.1; done
check "upload queue drained before the backups" grep -qx 'queued: 0' "$MNT/platform/status"
rsync -a "$MNT/" "$T/rs/" 2> "$T/rsync.err"
ok $? "rsync -a MNT/ DEST/ exits 0"
check "diff -r of issued/ after rsync" diff -r "$MNT/issued" "$T/rs/issued"
sleep 2   # a second later: a file whose mtime is "now" would show
rsync_again() {   # LABEL: rsync -a again, check nothing is transferred
  rsync -a --itemize-changes "$MNT/" "$T/rs/" > "$T/rsync.$1.out" 2>> "$T/rsync.err"
  ok $? "$1 rsync -a exits 0"
  for d in issued receipts rejected; do
    check_eq "$1 rsync: nothing for $d/" "$(awk -v d="$d" '$2 ~ "^" d "(/|$)"' "$T/rsync.$1.out")" ""
  done
  # After a remount status and platform/status say "unknown" until the uploader's first
  # call (live state), and device/log has gained the line that records the mount.
  check_eq "$1 rsync of the unchanged tree transfers nothing (whole tree)" \
    "$(grep -vE "^[^ ]+ (status|platform/status|device/log)\$" "$T/rsync.$1.out" | tr '\n' ' ')" ""
}
rsync_again second
t_remount
rsync_again "after a remount, a third"
tar -cf "$T/quiet.tar" -C "$MNT" . 2> "$T/tar.quiet.err"
ok $? "tar -cf of the quiet mount exits 0"
check_eq "tar of the quiet mount: no stderr" "$(cat "$T/tar.quiet.err")" ""

# 5 tars while a loop drops drafts and reads the volatile files.  What tar may say of
# pending/ alone: a draft being written grows, an issued one is gone.
PENDING_RACE='^tar: \./pending/[^/]*: (file changed as we read it|File removed before we read it|Cannot (open|stat): No such file or directory)$'
rm -f "$T/stop"
(
  i=0
  while [ ! -e "$T/stop" ]; do
    i=$((i + 1))
    drop "bg-$i.json" "SO-BG-$i"
    cat "$MNT/status" "$MNT/device/status" "$MNT/platform/status" > /dev/null
  done
  echo "$i" > "$T/bg.count"
) 2> "$T/bg.err" &
BG=$!
for n in 1 2 3 4 5; do
  tar -cf "$T/busy-$n.tar" -C "$MNT" . 2> "$T/tar.$n.err"
  rc=$?
  # A file still being written in pending/ is not a draft yet: it changes under tar as it
  # would on any filesystem, and once closed it is issued and leaves pending/, possibly
  # between tar's readdir and its lstat or open.  Everything else must read as one
  # consistent version.
  others=$(grep -vE "$PENDING_RACE" "$T/tar.$n.err" | head -c 300 | tr '\n' ' ')
  [ -s "$T/tar.$n.err" ] || [ "$rc" -eq 0 ]
  ok $? "tar #$n of the whole mount while drafts are dropped: exit 0 when it printed nothing"
  check_eq "tar #$n: no warning but for drafts still being written in pending/" "$others" ""
done
touch "$T/stop"; wait "$BG"
note "background loop dropped $(cat "$T/bg.count" 2>/dev/null) drafts during the 5 tars"
check_eq "background drops all issued" "$(grep -v '^$' "$T/bg.err" | head -3)" ""
cat "$T"/tar.[1-5].err > "$T/tar.all.err"
# A folder that gains entries while tar reads it changes its ctime: tar's warning is then due.
# Regular files (status, device/*, platform/*) and folders whose entries do not change
# (., device/, platform/, reports/, issued/ when no month is new, older months) must never be reported.
changed=$(sed -n 's/^tar: \(.*\): file changed as we read it$/\1/p' "$T/tar.all.err" | sort | uniq -c |
          awk '{print $2 "(" $1 "x)"}' | tr '\n' ' ')
note "tar reported as changed: ${changed:-nothing}"
check_eq "tar: no regular file changed as it was read" \
  "$(sed -n 's/^tar: \(.*\): file changed as we read it$/\1/p' "$T/tar.all.err" |
     while read -r f; do [ -f "$MNT/$f" ] && echo "$f"; done | sort -u | tr '\n' ' ')" ""
check_eq "tar: no folder whose entries did not change (., device, platform, reports, issued) reported" \
  "$(sed -n 's/^tar: \(.*\): file changed as we read it$/\1/p' "$T/tar.all.err" |
     grep -E '^\.(/device|/platform|/reports|/issued|/issued/[0-9]{4}-[0-9]{2})?$' |
     grep -v "^\./${MONTH#$MNT/}\$" | sort -u | tr '\n' ' ')" ""
check_eq "tar: no other warning than 'file changed as we read it' (and drafts gone from pending/)" \
  "$(grep -v 'file changed as we read it$' "$T/tar.all.err" | grep -vE "$PENDING_RACE" | head -3)" ""
# a draft tar found gone must really have been issued: its receipt is there, it is not in pending/
gone=$(grep -E "$PENDING_RACE" "$T/tar.all.err" | grep -v 'file changed as we read it$' |
       sed -E 's|^tar: \./pending/([^/:]*):.*|\1|' | sort -u)
note "drafts tar found gone from pending/: $(echo $gone | wc -w)"
check_eq "every draft tar found gone was issued (receipt, not in pending/)" \
  "$(for f in $gone; do [ -f "$MNT/receipts/$f" ] && [ ! -e "$MNT/pending/$f" ] || echo "$f"; done)" ""

tar --exclude-caches -cf "$T/ex.tar" -C "$MNT" . 2> "$T/tar.ex.err"
ok $? "tar --exclude-caches exits 0"
tar -tf "$T/ex.tar" > "$T/ex.list"
check "archive keeps device/CACHEDIR.TAG"   grep -qx './device/CACHEDIR.TAG' "$T/ex.list"
check "archive keeps platform/CACHEDIR.TAG" grep -qx './platform/CACHEDIR.TAG' "$T/ex.list"
check_eq "device/ and platform/ content skipped" \
  "$(grep -E '^\./(device|platform)/' "$T/ex.list" | grep -vE '^\./[a-z]+/(CACHEDIR\.TAG)?$' |
     tr '\n' ' ')" ""
check "archive has the invoices" grep -q "^\./${INV#$MNT/}\$" "$T/ex.list"
check "CACHEDIR.TAG has the signature" grep -q '^Signature: 8a477f597d28d172789f06886806bc55' \
  "$MNT/device/CACHEDIR.TAG"

check "find MNT exits 0" find "$MNT"
check "du -s MNT exits 0" du -s "$MNT"
check "ls -lR MNT exits 0" ls -lR "$MNT"

# ---- a month of 200,000 invoices: constant memory --------------------------------------------------
t_unmount
sqlite3 "$T/state/fapiaofs.db" <<'SQL' > "$T/sqlite.out" 2>&1
BEGIN;
INSERT OR IGNORE INTO periods(month) VALUES (2020 * 12 + 0);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
INSERT INTO invoices(code, number, name, period, issued_at, draft_id, request_id, draft_hash,
                     total_fen, json)
SELECT '031001900999', printf('%08d', i), printf('031001900999-%08d.json', i), '2020-01',
       1577808000 + i, 0, NULL, 'synthetic', 100,
       printf('{"code":"031001900999","number":"%08d","synthetic":true}' || char(10), i)
FROM n;
COMMIT;
SQL
ok $? "200,000 synthetic invoices inserted for 2020-01 with sqlite3"
t_mount
BIG=$MNT/issued/2020-01
check "issued/2020-01 exists" test -d "$BIG"
ls "$MNT/issued" > /dev/null; cat "$MNT/status" > /dev/null
rss1=$(rss_kib)
start=$(date +%s%N)
count=$(ls -f "$BIG" | wc -l)
ms=$(( ($(date +%s%N) - start) / 1000000 ))
rss2=$(rss_kib)
check_eq "ls -f issued/2020-01 lists 200,000 invoices and . and .." "$count" "200002"
note "ls -f of 200,000 entries: $ms ms; daemon VmRSS $rss1 KiB before, $rss2 KiB after"
check "daemon VmRSS grew by less than 30 MiB listing 200,000 entries ($(( (rss2 - rss1) / 1024 )) MiB)" \
  test $((rss2 - rss1)) -lt $((30 * 1024))
start=$(date +%s%N)
head_out=$(ls -l "$BIG" | head)
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check_eq "ls -l | head shows 10 lines" "$(printf '%s\n' "$head_out" | wc -l)" "10"
check "ls -l | head shows the first invoice" grep -q '031001900999-00000001.json' <<<"$head_out"
note "ls -l | head of 200,000 entries: $ms ms; daemon VmRSS now $(rss_kib) KiB"
out=$("$HELPER" seek "$BIG" 100000 true 2>&1); set -- $out
check_eq "seekdir in the big month returns the same following entry" "${2:-}" "${1:-x}"
check_eq "a synthetic invoice reads back" "$(cat "$BIG/031001900999-00200000.json")" \
  '{"code":"031001900999","number":"00200000","synthetic":true}'
check_eq "its mtime is its issued_at" "$(stat -c %Y "$BIG/031001900999-00200000.json")" "1578008000"

# ---- the mount(8) / fstab form (SPEC §2.4) ---------------------------------------------------------
# mount(8) runs /sbin/mount.fuse (-> mount.fuse3, Debian's fuse3 package) as
# "mount.fuse SOURCE DIR -o OPTS -t fuse.TYPE"; mount.fuse3 then runs, through /bin/sh,
# "TYPE SOURCE DIR -o OPTS", or "PROG SOURCE DIR -o OPTS" for a source "PROG#SOURCE" and -t fuse.
t_unmount
M2=$T/mnt2
mkdir -p "$T/bin" "$M2"
ln -sf "$FAPIAOFS" "$T/bin/fapiaofs"
daemon_of() {   # DIR: the pid of our fapiaofs serving DIR
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$FAPIAOFS" ] || continue
    tr '\0' '\n' < "$p/cmdline" 2>/dev/null | grep -qxF "$1" && { echo "${p#/proc/}"; return; }
  done
}
mount_form() {   # DESC CMD...: mounts on $M2, lists issued/, unmounts, the daemon exits
  local d=$1 rc pid; shift
  mountpoint -q "$M2" && umount "$M2"
  "$@" > "$T/mount.out" 2>&1
  rc=$?
  ok $rc "$d: exits 0"
  [ $rc -eq 0 ] || sed 's/^/#   /' "$T/mount.out"
  check "$d: mounted" mountpoint -q "$M2"
  mountpoint -q "$M2" || return
  check "$d: ls issued/ works" ls "$M2/issued/2020-01/031001900999-00000001.json"
  pid=$(daemon_of "$M2")
  note "$d: $(awk -v m="$M2" '$2 == m {print $1, $3, $4}' /proc/mounts), daemon ${pid:-?}"
  check_eq "$d: file system type" "$(awk -v m="$M2" '$2 == m {print $3}' /proc/mounts)" "fuse.fapiaofs"
  check "$d: umount exits 0" umount "$M2"
  for _ in $(seq 200); do [ -n "$pid" ] && [ -e "/proc/$pid" ] || break; sleep 0.05; done
  check "$d: the daemon exited after umount" test -n "$pid" -a ! -e "/proc/$pid"
}
note "mount helpers: $(ls /sbin/mount.fuse* /usr/sbin/mount.fuse* 2>/dev/null | tr '\n' ' ')"
PATH=$T/bin:$PATH mount -t fuse.fapiaofs "$T/fapiaofs.conf" "$M2" > "$T/mount8.out" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q 'fapiaofs: not found' "$T/mount8.out"; then
  echo "ok - mount -t fuse.fapiaofs CONFIG DIR with fapiaofs in PATH # SKIP mount(8) drops PATH from" \
       "the helper's environment (util-linux sanitize_env), so /bin/sh finds only what is in" \
       "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
else
  ok $rc "mount -t fuse.fapiaofs CONFIG DIR with fapiaofs in PATH"
  mountpoint -q "$M2" && { check "ls works" ls "$M2/issued"; check "umount" umount "$M2"; }
fi
mount_form "mount.fuse3 CONFIG DIR -t fuse.fapiaofs (what mount(8) runs), fapiaofs in PATH" \
  env PATH="$T/bin:$PATH" /sbin/mount.fuse3 "$T/fapiaofs.conf" "$M2" -o rw -t fuse.fapiaofs
mount_form "mount -t fuse /path/to/fapiaofs#CONFIG DIR (mount(8))" \
  mount -t fuse "$T/bin/fapiaofs#$T/fapiaofs.conf" "$M2"
echo "$T/bin/fapiaofs#$T/fapiaofs.conf $M2 fuse defaults 0 0" > "$T/fstab"
mount_form "fstab line /path/to/fapiaofs#CONFIG DIR fuse defaults (mount -T FSTAB DIR)" \
  mount -T "$T/fstab" "$M2"
# SPEC §2.4's example line "fapiaofs#/etc/fapiaofs.conf /srv/fapiao fuse.fapiaofs defaults 0 0":
# mount(8) runs "mount.fuse fapiaofs#CONFIG DIR -o rw -t fuse.fapiaofs", which passes the source
# as it is, so fapiaofs must take "fapiaofs#CONFIG" as CONFIG.
mount_form "SPEC fstab line fapiaofs#CONFIG DIR fuse.fapiaofs (mount.fuse3, fapiaofs in PATH)" \
  env PATH="$T/bin:$PATH" /sbin/mount.fuse3 "fapiaofs#$T/fapiaofs.conf" "$M2" -o rw -t fuse.fapiaofs

# ---- options --------------------------------------------------------------------------------------
"$FAPIAOFS" --help > "$T/help.out" 2>&1
ok $? "fapiaofs --help exits 0"
check "--help mentions --config" grep -q -- '--config' "$T/help.out"
check "--help mentions allow_other" grep -q 'allow_other' "$T/help.out"

# A configuration is refused before anything is mounted: plain http to another host (SPEC §6:
# TLS unless loopback http), a name that only starts like 127.x, a default drawer too long.
bad_config() {   # WHAT TEXT PATTERN
  printf '%b\n' "$2" > "$T/bad.conf"
  (cd "$T" && timeout 20 "$FAPIAOFS" -f --config "$T/bad.conf" "$M2") > "$T/bad.out" 2>&1
  check "config refused: $1 (exit status, message)" \
    bash -c '[ "$1" != 0 ] && [ "$1" != 124 ] && grep -q -- "$2" "$3"' _ "$?" "$3" "$T/bad.out"
}
bad_config "url http://192.0.2.1:8080" "[platform]\nurl = http://192.0.2.1:8080" "plain http is allowed only"
bad_config "url http://127.0.0.1.example.com" "[platform]\nurl = http://127.0.0.1.example.com/" \
  "plain http is allowed only"
bad_config "url http://localhost:x@192.0.2.1/ (a user name, another host)" \
  "[platform]\nurl = http://localhost:x@192.0.2.1/" "plain http is allowed only"
bad_config "drawer of 9 Chinese characters" "[invoice]\ndrawer = 一二三四五六七八九" "at most 16 bytes in GBK"
head -c 300 /dev/zero | tr '\0' 's' > "$T/long.secret" && chmod 600 "$T/long.secret"
bad_config "an app secret of 300 bytes (it was cut to 255, and every upload got 401)" \
  "[platform]\napp_secret_file = $T/long.secret" "longer than 255 bytes"
printf 'demo-secret\n' > "$T/open.secret" && chmod 644 "$T/open.secret"
bad_config "an app secret file others can read (they could sign uploads as us)" \
  "[platform]\napp_secret_file = $T/open.secret" "app_secret_file .* must be mode 0600 (it is 644)"
: > "$T/empty.pin" && chmod 600 "$T/empty.pin"
bad_config "an empty pin_file (its empty PIN cost a device try at every mount)" \
  "[device]\npin_file = $T/empty.pin" "pin_file .*empty.pin is empty"
mkdir -p "$T/pin.dir" && chmod 700 "$T/pin.dir"
bad_config "a pin_file that is a directory" "[device]\npin_file = $T/pin.dir" "not a regular file"
bad_config "two bad lines: the first one's line and words" \
  "[platform]\ntimeout_ms = 0\nca_flie = x" "bad.conf:2: \[platform\] timeout_ms: invalid value"
check "  and nothing was mounted" bash -c '! mountpoint -q "$1"' _ "$M2"

"$FAPIAOFS" -f -o allow_other --config "$T/fapiaofs.conf" "$MNT" >> "$T/fapiaofs.log" 2>&1 &
FS_PID=$!
for _ in $(seq 200); do mountpoint -q "$MNT" && break; sleep 0.05; done
check "mount with -o allow_other" mountpoint -q "$MNT"
check_eq "/proc/mounts shows allow_other" \
  "$(awk -v m="$MNT" '$2 == m {print $4}' /proc/mounts | grep -o allow_other)" "allow_other"
check "ls MNT/issued works with allow_other" ls "$MNT/issued/2020-01/031001900999-00000001.json"
if su nobody -s /bin/sh -c "test -x '$MNT/..'" 2>/dev/null; then
  check "another user (nobody) can read issued/" su nobody -s /bin/sh -c "ls '$MNT/issued' >/dev/null"
else
  note "nobody cannot reach $MNT (path permissions): allow_other for another user not exercised"
fi
