#!/usr/bin/env python3
# tests/crash/verify.py — the checks at the end of a crash run (tests/crash/README.md):
# holds the mounted tree, the device and the platform to what every close() of the
# writers said (drafts.log from tests/crash/writer.c).  Run on a clean mount after
# pending/ and the upload queue drained.  Prints "ok - ..." / "not ok - ..." lines and
# "# ..." figures; exits 1 when a check failed.
import argparse
import collections
import json
import os
import re
import sys
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--mount", required=True)
ap.add_argument("--log", required=True, help="drafts.log of crash-writer")
ap.add_argument("--admin", required=True, help="the platform simulator's admin URL")
ap.add_argument("--windows", help="lines 'FROM_MS TO_MS PERIOD': the device was locked")
args = ap.parse_args()
M = args.mount
FAILED = False
SHOW = 10   # examples shown per failed check


def ok(cond, desc, examples=()):
    global FAILED
    if cond:
        print("ok - " + desc)
    else:
        FAILED = True
        print("not ok - " + desc)
        for e in list(examples)[:SHOW]:
            print("    " + str(e))


def fields(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            k, sep, v = line.rstrip("\n").partition(": ")
            if sep:
                out.setdefault(k, v)
    return out


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---- what the writers did ----------------------------------------------------------
Rec = collections.namedtuple("Rec", "kind name rid result errno stage ms")
recs = []
with open(args.log, encoding="utf-8") as f:
    for line in f:
        p = line.rstrip("\n").split("\t")
        if len(p) == 7:
            recs.append(Rec(p[0], p[1], p[2], p[3], int(p[4]), p[5], int(p[6])))
by_rid = collections.defaultdict(list)
for r in recs:
    by_rid[r.rid].append(r)
names = collections.Counter(r.name for r in recs)
table = collections.Counter((r.kind, r.result) for r in recs)
gone_errno = collections.Counter((r.stage, os.strerror(r.errno)) for r in recs if r.result == "gone")
print("# drafts: %d; outcomes: %s" % (len(recs), ", ".join(
    "%s %d" % (res, sum(v for (k, rr), v in table.items() if rr == res))
    for res in ("ok", "einval", "gone", "other"))))
for kind in ("new", "retry", "dup", "conflict", "bad"):
    print("#   %-8s %s" % (kind, ", ".join("%s %d" % (res, table[(kind, res)])
                                          for res in ("ok", "einval", "gone", "other"))))
print("# daemon gone: %s" % ", ".join("%s %s %d" % (s, e, n) for (s, e), n in sorted(gone_errno.items())))
ok(all(n == 1 for n in names.values()), "every draft has its own name",
   [n for n, c in names.items() if c > 1])
ok(not [r for r in recs if r.result == "other"], "no close() failed otherwise than EINVAL or a daemon gone",
   ["%s %s: %s at %s" % (r.kind, r.name, os.strerror(r.errno), r.stage)
    for r in recs if r.result == "other"])

# ---- the invoices ------------------------------------------------------------------
inv_by_rid = collections.defaultdict(list)
numbers = collections.defaultdict(list)
invoices = {}
for month in sorted(os.listdir(os.path.join(M, "issued"))):
    for fn in os.listdir(os.path.join(M, "issued", month)):
        m = re.fullmatch(r"(\d{12})-(\d{8})\.json", fn)
        if not m:
            continue
        d = read_json(os.path.join(M, "issued", month, fn))
        inv = {"file": "issued/%s/%s" % (month, fn), "code": m.group(1), "number": m.group(2),
               "rid": d.get("request_id"), "draft": d.get("draft"), "remark": d.get("remark", "")}
        invoices[(inv["code"], inv["number"])] = inv
        numbers[inv["code"]].append(int(inv["number"]))
        inv_by_rid[inv["rid"]].append(inv)
n_inv = len(invoices)
print("# invoices: %d in %s" % (n_inv, ", ".join("%s: %d" % (c, len(v)) for c, v in sorted(numbers.items()))))

ok(not [rid for rid, v in inv_by_rid.items() if len(v) > 1],
   "one invoice per request_id (nothing issued twice)",
   ["%s: %s" % (rid, " ".join(i["file"] + " (" + str(i["draft"]) + ")" for i in v))
    for rid, v in inv_by_rid.items() if len(v) > 1])
valid_ok = {r.rid for r in recs if r.kind in ("new", "retry", "dup") and r.result == "ok"}
ok(not [rid for rid in valid_ok if rid not in inv_by_rid],
   "every draft whose close() returned 0 is issued (%d request_ids)" % len(valid_ok),
   ["%s: %s" % (rid, ", ".join("%s %s %s" % (r.kind, r.name, r.result) for r in by_rid[rid]))
    for rid in sorted(valid_ok) if rid not in inv_by_rid])
issuers = {rid: {r.name for r in v if r.kind in ("new", "retry")} for rid, v in by_rid.items()}
ok(not [i for i in invoices.values() if i["draft"] not in issuers.get(i["rid"], ())],
   "every invoice comes from a valid draft of the writers with its request_id",
   ["%s: request_id %s, draft %s" % (i["file"], i["rid"], i["draft"])
    for i in invoices.values() if i["draft"] not in issuers.get(i["rid"], ())])
ok(not [i for i in invoices.values() if "HT-999" in i["remark"] or str(i["rid"]).startswith("BAD-")],
   "no invoice for an invalid draft or a request_id reused with other content",
   [i["file"] for i in invoices.values() if "HT-999" in i["remark"] or str(i["rid"]).startswith("BAD-")])
gaps = []
for code, nums in sorted(numbers.items()):
    nums.sort()
    if nums != list(range(1, len(nums) + 1)):
        have = set(nums)
        missing = [n for n in range(1, nums[-1] + 1) if n not in have]
        gaps.append("%s: %d invoices, highest %d, missing %s" % (code, len(nums), nums[-1], missing[:20]))
ok(not gaps, "invoice numbers of each roll are 1..N without gaps", gaps)

# ---- what close() said, against receipts/ and rejected/ ------------------------------
bad_receipts, missing_rejects, wrong_einval = [], [], []
counted = collections.Counter()
for r in recs:
    if r.result == "ok" and r.kind in ("new", "retry", "dup"):
        want = {"new": ("issued",), "retry": ("issued", "duplicate"), "dup": ("duplicate",)}[r.kind]
        path = os.path.join(M, "receipts", r.name)
        inv = (inv_by_rid.get(r.rid) or [None])[0]
        try:
            rc = read_json(path)
        except (OSError, ValueError) as e:
            bad_receipts.append("%s %s: receipt: %s" % (r.kind, r.name, e))
            continue
        counted[rc.get("status")] += 1
        if rc.get("status") not in want or rc.get("request_id") != r.rid or not inv or \
           (rc.get("code"), rc.get("number")) != (inv["code"], inv["number"]):
            bad_receipts.append("%s %s: receipt %s %s-%s, want %s of %s" % (
                r.kind, r.name, rc.get("status"), rc.get("code"), rc.get("number"), "/".join(want),
                inv["file"] if inv else "(no invoice)"))
    elif r.result == "ok":
        wrong_einval.append("%s %s (%s): close() returned 0, want EINVAL" % (r.kind, r.name, r.rid))
    elif r.result == "einval" and r.kind not in ("bad", "conflict"):
        wrong_einval.append("%s %s (%s): EINVAL for a valid draft" % (r.kind, r.name, r.rid))
    if r.result == "einval":
        for suffix in ("", ".error"):
            if not os.path.exists(os.path.join(M, "rejected", r.name + suffix)):
                missing_rejects.append("rejected/%s%s is missing" % (r.name, suffix))
print("# receipts of drafts whose close() returned 0: %s" % dict(counted))
ok(not bad_receipts, "every draft whose close() returned 0 has its receipt: issued, or duplicate "
   "pointing at the invoice of its request_id", bad_receipts)
ok(not wrong_einval, "close() returned EINVAL exactly for the invalid drafts and the conflicts",
   wrong_einval)
ok(not missing_rejects, "every draft rejected with EINVAL is in rejected/ with its .error (%d)"
   % sum(1 for r in recs if r.result == "einval"), missing_rejects)
gone_valid = {r.rid for r in recs if r.result == "gone" and r.kind in ("new", "retry")} - valid_ok
print("# request_ids only ever dropped with an unknown outcome: %d, of which issued %d" % (
    len(gone_valid), sum(1 for rid in gone_valid if rid in inv_by_rid)))
gone_bad = [r for r in recs if r.kind == "bad" and r.result == "gone"]
print("# invalid drafts with an unknown outcome: %d, of which rejected %d" % (
    len(gone_bad), sum(1 for r in gone_bad if os.path.exists(os.path.join(M, "rejected", r.name)))))

# drafts accepted while the device was locked waited for the clearing, then were issued once
if args.windows and os.path.exists(args.windows):
    with open(args.windows) as f:
        for line in f:
            lo, hi, period = line.split()
            waited = {r.rid for r in recs if r.result == "ok" and r.kind in ("new", "retry")
                      and int(lo) <= r.ms <= int(hi)}
            ok(all(len(inv_by_rid.get(rid, ())) == 1 for rid in waited),
               "the %d drafts accepted while %s was not cleared were issued exactly once"
               % (len(waited), period),
               [rid for rid in waited if len(inv_by_rid.get(rid, ())) != 1])

# ---- the daemon's own accounts --------------------------------------------------------
st = fields(os.path.join(M, "status"))
ds = fields(os.path.join(M, "device", "status"))
ps = fields(os.path.join(M, "platform", "status"))
print("# status: invoices %s, rejected %s; %s" % (st.get("invoices"), st.get("rejected"),
                                                  st.get("reconciliation")))
ok(st.get("invoices") == str(n_inv), "status invoices = the files in issued/ (%s, %d)"
   % (st.get("invoices"), n_inv))
ok(ds.get("signed_invoices") == str(n_inv), "device/status signed_invoices = the invoices "
   "(device journal and store agree: %s, %d)" % (ds.get("signed_invoices"), n_inv))
m = re.search(r"alarms (\d+)", st.get("reconciliation", ""))
ok(m and m.group(1) == "0", "status: reconciliation alarms 0 (%s)" % st.get("reconciliation"))
log = open(os.path.join(M, "device", "log"), encoding="utf-8").read().splitlines()
alarms = [line for line in log if " integrity alarm: " in line]
ok(not alarms, "device/log: no integrity alarm in the whole run", alarms)
print("# device/log: %d restored from the journal, %d mounts" % (
    sum(1 for line in log if " reconcile: restored " in line),
    sum(1 for line in log if " open: device opened" in line)))
report_total = 0
for fn in os.listdir(os.path.join(M, "reports")):
    with open(os.path.join(M, "reports", fn), encoding="utf-8") as f:
        for line in f:
            p = line.split(",")
            if p[1:4] == ["all", "all", "all"]:
                report_total += int(p[4])
ok(report_total == n_inv, "reports/*.csv count every invoice once (%d)" % report_total)
ok(not os.listdir(os.path.join(M, "pending")) and st.get("waiting") == "0",
   "pending/ is empty, nothing waits")
with urllib.request.urlopen(args.admin + "/admin/count", timeout=10) as resp:
    on_platform = int(resp.read().decode().strip())
ok(ps.get("queued") == "0" and on_platform == n_inv,
   "the platform has every invoice (%d of %d; queued %s; last_error: %s)"
   % (on_platform, n_inv, ps.get("queued"), ps.get("last_error")))
sys.exit(1 if FAILED else 0)
