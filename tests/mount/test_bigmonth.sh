# A month big enough for the listing read-ahead (engine/readahead.h, from 16,384 invoice ids):
# ls -f, ls -l and two listings at once give every name exactly once while its threads read
# the month's index beside the daemon's own connection.  The extra rows are written into the
# store with sqlite3 while unmounted (issuing 20,000 drafts would take minutes); the device did
# not sign them, which status reports as an alarm, and which the listing does not care about.
source "$(dirname "$0")/lib.sh"
t_setup bigmonth
N=20000

sed "s/SO-2024-000123/BIG-1/" "$ROOT/examples/basic.json" > "$MNT/pending/big.json"
check "one draft issued" test -f "$MNT/receipts/big.json"
t_unmount
DB=$T/state/fapiaofs.db
P=$(sqlite3 "$DB" "select period from invoices")
sqlite3 "$DB" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
  INSERT INTO invoices(id, code, number, name, period, issued_at, draft_id, draft_hash,
                       total_fen, json, size)
  SELECT 100 + i, '999999999999', printf('%08d', i), printf('999999999999-%08d.json', i), '$P',
         0, 0, '', 0, '{}', 2 FROM n"
check_eq "the store holds $((N + 1)) invoices of $P" \
  "$(sqlite3 "$DB" "select count(*) from invoices where period = '$P'")" "$((N + 1))"
sqlite3 "$DB" "select name from invoices where period = '$P'" | sort > "$T/want"

t_mount
ls -f "$MNT/issued/$P" | grep -v '^\.\.\?$' | sort > "$T/got.f"
check_eq "ls -f lists $((N + 1)) names" "$(wc -l < "$T/got.f")" "$((N + 1))"
check "ls -f: the store's names, each once" cmp -s "$T/got.f" "$T/want"
ls -l "$MNT/issued/$P" > "$T/got.l"
check_eq "ls -l lists them with their sizes" "$(grep -c ' 2 .* 999999999999-' "$T/got.l")" "$N"
t_remount
ls -f "$MNT/issued/$P" | grep -v '^\.\.\?$' | sort > "$T/got.a" &
ls -f "$MNT/issued/$P" | grep -v '^\.\.\?$' | sort > "$T/got.b"
wait $!
check "two listings at once after a remount: both complete" cmp -s "$T/got.a" "$T/want"
check "  (the second)" cmp -s "$T/got.b" "$T/want"
sed "s/SO-2024-000123/BIG-2/" "$ROOT/examples/basic.json" > "$MNT/pending/big2.json"
check "issuing goes on beside it" test -f "$MNT/receipts/big2.json"
