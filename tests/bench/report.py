#!/usr/bin/env python3
# tests/bench/report.py — turns tests/bench/run.sh's results (one "kind key=value ..."
# line per figure) into the tables of docs/BENCHMARKS.md, between the lines
# "<!-- bench:results:begin -->" and "<!-- bench:results:end -->"; the rest of the
# file (method, profile, proposals) is left as it is.
#
#   python3 tests/bench/report.py RESULTS OUT
import os
import shlex
import statistics
import sys

BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def load(path):
    rows = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("machine "):   # machine key=free text
            k, _, v = line[len("machine "):].rstrip("\n").partition("=")
            rows.append(("machine", {k: v}))
            continue
        parts = shlex.split(line)
        if not parts:
            continue
        kv = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            kv[k] = v
        rows.append((parts[0], kv))
    return rows


def num(x):
    return float(x) if x not in (None, "") else 0.0


def n_inv(n):
    return f"{int(n):,}"


def ratio(a, b):
    return f"{a / b:.2f}" if b else "–"


def met(ok):
    return "**met**" if ok else "**missed**"


def render(rows):
    out = []
    m = {k: v for kind, kv in rows if kind == "machine" for k, v in kv.items()}
    out.append(f"Command: `{m.get('command', 'make bench')}`, {m.get('date', '')}, "
               f"commit {m.get('commit', '?')}.\n")
    out.append(f"Machine: {m.get('nproc', '?')} CPUs ({m.get('cpu', '?')}), {m.get('mem', '?')} RAM, "
               f"{m.get('kernel', '?')}, {m.get('os', '?')}; disk {m.get('disk', '?')}; "
               f"{m.get('libs', '')}. Load average at the start: {m.get('load', '?')} "
               f"(other work on the machine makes every figure noisy: compare the ratios).\n")

    issue = [kv for kind, kv in rows if kind == "issue"]
    checks = [kv for kind, kv in rows if kind == "issue_check"]
    targets = []
    if issue:
        reps = sorted({kv.get("rep", "1") for kv in issue})
        out.append("### Issuing: drafts into `pending/` vs the same files written with fsync "
                   "to a plain directory\n")
        out.append(f"{len(reps)} run{'s' if len(reps) > 1 else ''} of each, each on a fresh state "
                   "and right after its baseline; the figures are the medians of the runs, with the "
                   "lowest and highest rate in brackets. *close* is the `close()` that issues the draft "
                   "(plain directory: `fsync()` + `close()`); *first / last tenth* is the close p50 of "
                   "the first and of the last 10 % of a run's drafts; the ratio is the median of each "
                   "run's pending/ rate over the rate of its own baseline.\n")
        out.append("| platform | writers | drafts | pending/ per s | plain dir per s | ratio | "
                   "close p50 ms | close p99 ms | plain p50 ms | plain p99 ms | "
                   "first / last tenth p50 ms | daemon VmHWM |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        groups = {}
        for kv in issue:
            groups.setdefault((kv["mode"], int(kv["writers"])), {}).setdefault(
                kv.get("rep", "1"), {})[kv["side"]] = kv
        for (mode, w), by_rep in sorted(groups.items(), key=lambda g: (g[0][0] != "platform", g[0][1])):
            pairs = [(r["fs"], r.get("plain", {})) for r in by_rep.values() if "fs" in r]
            med = lambda side, key: statistics.median(num(p[side][key]) if side == 0 else
                                                      num(p[1].get(key)) for p in pairs)
            fs_rates = [num(p[0]["rate"]) for p in pairs]
            pl_rates = [num(p[1].get("rate")) for p in pairs]
            ratios = [num(a["rate"]) / num(b["rate"]) for a, b in pairs if num(b.get("rate"))]
            rng = lambda v: f" [{min(v):,.0f}–{max(v):,.0f}]" if len(v) > 1 else ""
            rate = statistics.median(fs_rates)
            p99 = med(0, "close_p99_ms")
            out.append(
                f"| {'simulator' if mode == 'platform' else 'none'} | {w} | "
                f"{n_inv(pairs[0][0]['drafts'])} | {rate:,.0f}{rng(fs_rates)} | "
                f"{statistics.median(pl_rates):,.0f}{rng(pl_rates)} | "
                f"{statistics.median(ratios) if ratios else 0:.2f} | {med(0, 'close_p50_ms'):.2f} | "
                f"{p99:.2f} | {med(1, 'close_p50_ms'):.2f} | {med(1, 'close_p99_ms'):.2f} | "
                f"{med(0, 'close_first10_p50_ms'):.2f} / {med(0, 'close_last10_p50_ms'):.2f} | "
                f"{max(num(p[0].get('hwm_kb')) for p in pairs) / 1024:.1f} MiB |")
            if mode == "platform":
                goal = 1500 if w == 1 else 4000
                targets.append((f"≥ {goal:,} invoices/s with {w} writer{'s' if w > 1 else ''}",
                                f"{rate:,.0f}/s ({ratio(rate, goal)} of the target; plain directory "
                                f"{statistics.median(pl_rates):,.0f}/s)", rate >= goal))
                targets.append((f"close p99 ≤ 20 ms with {w} writer{'s' if w > 1 else ''}",
                                f"{p99:.1f} ms", p99 <= 20))
        out.append("")
        for kv in checks:
            out.append(f"- after run {kv.get('rep', '1')} with platform "
                       f"{'simulator' if kv['mode'] == 'platform' else 'none'}: status says invoices "
                       f"{kv.get('invoices')}, waiting {kv.get('waiting')}, alarms {kv.get('alarms')}, "
                       f"upload_queued {kv.get('upload_queued')}")
        out.append("")

    mounts = {}
    for kind, kv in rows:
        if kind == "mount":
            mounts.setdefault(int(kv["invoices"]), []).append(num(kv["seconds"]))
    gens = {int(kv["invoices"]): kv for kind, kv in rows if kind == "gen"}
    browse = [kv for kind, kv in rows if kind == "browse"]
    copies = {int(kv["invoices"]): kv for kind, kv in rows if kind == "copy"}
    sizes = sorted({int(kv["invoices"]) for kv in browse})
    if browse:
        out.append("### Browsing `issued/YYYY-MM` vs the same files on the local disk\n")
        out.append("The local copy was made with `cp -r` out of the mount (its time is in the last "
                   "line of each size) and is warm in the page cache; the mount is remounted before "
                   "each tool, so the kernel holds nothing of it (the store's file is warm). The cold `ls -f` "
                   "comes last: before each side, `sync` and `echo 3 > /proc/sys/vm/drop_caches`.\n")
        out.append("| invoices | tool | fapiaofs s | local disk s | ratio | daemon VmRSS / VmHWM after |")
        out.append("|---:|---|---:|---:|---:|---:|")
        names = {"ls_f": "`ls -f`", "ls_f_cold": "`ls -f`, cold (page cache dropped before each side)",
                 "ls_l": "`ls -l`", "cat": "`cat` of every file (find -exec cat +)",
                 "tar": "`tar cf -` of the month"}
        for n in sizes:
            for kv in (kv for kv in browse if int(kv["invoices"]) == n):
                out.append(f"| {n_inv(n)} | {names[kv['tool']]} | {num(kv['fs_s']):.2f} | "
                           f"{num(kv['local_s']):.2f} | {ratio(num(kv['fs_s']), num(kv['local_s']))} | "
                           f"{num(kv['rss_kb']) / 1024:.1f} / {num(kv['hwm_kb']) / 1024:.1f} MiB |")
            if n in copies:
                c = copies[n]
                out.append(f"| {n_inv(n)} | `cp -r` of the month out of the mount | "
                           f"{num(c['seconds']):.2f} | | | {num(c['rss_kb']) / 1024:.1f} / "
                           f"{num(c['hwm_kb']) / 1024:.1f} MiB |")
        out.append("")
        if gens:
            out.append("Generated stores (tests/bench/genstore): " + "; ".join(
                f"{n_inv(n)} invoices in {num(g['seconds']):.0f} s, store {g['store_mb']} MB, device "
                f"journal {g['journal_mb']} MB" for n, g in sorted(gens.items())) + ".\n")
        big = max(sizes)
        lsf = [kv for kv in browse if int(kv["invoices"]) == big and kv["tool"] in ("ls_f", "ls_f_cold")]
        if lsf:   # met only if the cold pass (when there is one) is within it too
            targets.append((f"`ls -f` of a {n_inv(big)}-invoice month ≤ 3 s",
                            ", ".join(f"{num(kv['fs_s']):.2f} s {'cold' if kv['tool'] == 'ls_f_cold' else 'warm'}"
                                      f" (local disk {num(kv['local_s']):.2f} s)" for kv in lsf),
                            all(num(kv["fs_s"]) <= 3 for kv in lsf)))
        hwm = max(num(kv["hwm_kb"]) for kv in browse if int(kv["invoices"]) == big)
        targets.append((f"daemon RSS ≤ 100 MiB with {n_inv(big)} invoices",
                        f"VmHWM {hwm / 1024:.1f} MiB (highest of all passes)", hwm <= 100 * 1024))

    if mounts:
        out.append("### Mount time\n")
        out.append("From starting `fapiaofs -f` until the mount point answers a read of `status` "
                   "(tests/bench/mountwait); every mount of the run counts.\n")
        out.append("| invoices | mounts | median s | min s | max s | ratio to 0 invoices |")
        out.append("|---:|---:|---:|---:|---:|---:|")
        base = statistics.median(mounts[0]) if 0 in mounts else 0
        for n in sorted(mounts):
            v = mounts[n]
            out.append(f"| {n_inv(n)} | {len(v)} | {statistics.median(v):.3f} | {min(v):.3f} | "
                       f"{max(v):.3f} | {ratio(statistics.median(v), base)} |")
        out.append("")
        if 0 in mounts and len(mounts) > 1:
            big = max(mounts)
            med = statistics.median(mounts[big])
            targets.append((f"mount time flat (at {n_inv(big)} invoices at most twice, or 0.1 s more "
                            "than, at 0)", f"{med:.3f} s vs {base:.3f} s ({ratio(med, base)}×)",
                            med <= max(2 * base, base + 0.1)))

    for kind, kv in rows:
        if kind == "skipped":
            out.append(f"Skipped: the {n_inv(kv['invoices'])}-invoice store ({kv['reason']}).\n")

    if targets:
        out.append("### Targets (SPEC §7, 2-core machine)\n")
        out.append("| target | this run | |")
        out.append("|---|---|---|")
        for t, fig, ok in targets:
            out.append(f"| {t} | {fig} | {met(ok)} |")
        out.append("")
    return "\n".join(out)


def main():
    rows = load(sys.argv[1])
    out = sys.argv[2]
    text = open(out, encoding="utf-8").read() if os.path.exists(out) else "# Benchmarks\n"
    block = f"{BEGIN}\n{render(rows)}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + block + "\n"
    tmp = out + ".new"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
