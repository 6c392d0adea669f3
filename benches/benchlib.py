#!/usr/bin/env python3
"""Number crunching for benches/compare.sh (standard library only).

Subcommands:
  runstats  one pgbench run: TPS and transaction count from its stdout, latency percentiles from
            its per-transaction logs (-l; column 3 is the latency in microseconds), plus the
            pooler measurements compare.sh passes as --extra key=value; prints one JSON object.
  strace    one syscall run: `strace -c -f` summary + pgbench stdout -> syscalls per transaction
            by class (read/recv, write/send, epoll_wait, epoll_ctl, futex, other); one JSON object.
  report    all runs (JSON lines) + syscall runs + idle-client results + metadata -> latest.json
            and latest.md.
"""

import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

POOLERS = ("pgsluice", "pgbouncer")
TARGETS = ("pgsluice", "pgbouncer", "direct")

# Syscall classes for the per-transaction counts; anything else is "other".
SYSCALL_CLASSES = (
    ("read", ("read", "readv", "recvfrom", "recvmsg", "recvmmsg", "pread64")),
    ("write", ("write", "writev", "sendto", "sendmsg", "sendmmsg", "pwrite64")),
    ("epoll_wait", ("epoll_wait", "epoll_pwait", "epoll_pwait2")),
    ("epoll_ctl", ("epoll_ctl",)),
    ("futex", ("futex",)),
)
CLASS_NAMES = tuple(c for c, _ in SYSCALL_CLASSES) + ("other",)
CLASS_TITLES = {"read": "read/recv", "write": "write/send", "epoll_wait": "epoll_wait",
                "epoll_ctl": "epoll_ctl", "futex": "futex", "other": "other"}


# --------------------------------------------------------------------------------------------
# runstats


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (p in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def parse_pgbench_stdout(text):
    out = {}
    m = re.search(r"number of transactions actually processed:\s*(\d+)", text)
    if m:
        out["transactions"] = int(m.group(1))
    m = re.search(r"number of failed transactions:\s*(\d+)", text)
    if m:
        out["failed_transactions"] = int(m.group(1))
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
    if not m:
        m = re.search(r"tps = ([0-9.]+)", text)
    if m:
        out["tps"] = float(m.group(1))
    m = re.search(r"latency average = ([0-9.]+) ms", text)
    if m:
        out["latency_avg_ms_pgbench"] = float(m.group(1))
    m = re.search(r"initial connection time = ([0-9.]+) ms", text)
    if m:
        out["initial_connection_ms"] = float(m.group(1))
    return out


def read_latencies(log_prefix):
    """Latencies in microseconds from every `<prefix>.<pid>[.<thread>]` log file."""
    values = []
    for path in glob.glob(glob.escape(log_prefix) + ".*"):
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split()
                # client_id transaction_no time script_no time_epoch time_us [schedule_lag]
                if len(parts) >= 3 and parts[2].isdigit():
                    values.append(int(parts[2]))
    values.sort()
    return values


def coerce(value):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return None if value in ("", "null", "None") else value


def cmd_runstats(args):
    try:
        with open(args.stdout, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    run = parse_pgbench_stdout(text)
    lat = read_latencies(args.log_prefix)
    run["latency_samples"] = len(lat)
    for p in (50, 95, 99):
        v = percentile(lat, p)
        run[f"p{p}_ms"] = None if v is None else round(v / 1000.0, 3)
    run["max_ms"] = round(lat[-1] / 1000.0, 3) if lat else None
    run["mean_ms"] = round(sum(lat) / len(lat) / 1000.0, 3) if lat else None
    for item in args.extra or []:
        key, _, value = item.partition("=")
        run[key] = coerce(value)
    cpu = run.get("cpu_seconds")
    tx = run.get("transactions")
    if isinstance(cpu, (int, float)) and tx:
        run["cpu_s_per_10k_tx"] = round(cpu * 10000.0 / tx, 4)
    for key, out in (("user_seconds", "user_us_per_tx"), ("sys_seconds", "sys_us_per_tx")):
        v = run.get(key)
        if isinstance(v, (int, float)) and tx:
            run[out] = round(v * 1e6 / tx, 2)
    ctx = run.get("ctx_switches")
    if isinstance(ctx, int) and tx:
        run["ctx_per_tx"] = round(ctx / tx, 3)
    if args.remove_logs:
        for path in glob.glob(glob.escape(args.log_prefix) + ".*"):
            os.remove(path)
    json.dump(run, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    if args.progress:
        sys.stderr.write(progress_line(args.progress, run) + "\n")


# --------------------------------------------------------------------------------------------
# strace


def parse_strace_summary(text):
    """`strace -c` table -> ({syscall: calls}, {syscall: errors}); the total line is skipped."""
    calls, errors = {}, {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[-1] == "total" or not re.match(r"^[0-9.]+$", parts[0]):
            continue
        name = parts[-1]
        nums = parts[:-1]
        if not all(re.match(r"^[0-9.]+$", n) for n in nums):
            continue
        # % time, seconds, usecs/call, calls[, errors]
        if len(nums) == 5:
            calls[name] = calls.get(name, 0) + int(nums[3])
            errors[name] = errors.get(name, 0) + int(nums[4])
        elif len(nums) == 4:
            calls[name] = calls.get(name, 0) + int(nums[3])
    return calls, errors


def classify(calls):
    out = {c: 0 for c in CLASS_NAMES}
    for name, n in calls.items():
        cls = next((c for c, names in SYSCALL_CLASSES if name in names), "other")
        out[cls] += n
    return out


def cmd_strace(args):
    try:
        with open(args.stdout, encoding="utf-8", errors="replace") as f:
            run = parse_pgbench_stdout(f.read())
    except OSError:
        run = {}
    try:
        with open(args.strace, encoding="utf-8", errors="replace") as f:
            calls, errors = parse_strace_summary(f.read())
    except OSError:
        calls, errors = {}, {}
    for item in args.extra or []:
        key, _, value = item.partition("=")
        run[key] = coerce(value)
    tx = run.get("transactions") or 0
    run["syscalls"] = calls
    run["syscall_errors"] = {k: v for k, v in errors.items() if v}
    # A run pgbench aborted (rc 2) is no measurement of the scenario, whatever it counted.
    run["ok"] = 1 if tx > 0 and calls and run.get("pgbench_rc") == 0 else 0
    if not run["ok"]:
        err = ""
        try:
            with open(args.strace_err, encoding="utf-8", errors="replace") as f:
                err = " ".join(f.read().split())[-200:]
        except OSError:
            pass
        run["error"] = f"no transactions or no strace summary (pgbench rc {run.get('pgbench_rc')}; strace: {err})"
    else:
        classes = classify(calls)
        run["per_tx"] = {c: round(n / tx, 3) for c, n in classes.items()}
        run["per_tx"]["total"] = round(sum(calls.values()) / tx, 3)
        run["errors_per_tx"] = round(sum(errors.values()) / tx, 3)
    json.dump(run, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    if args.progress:
        head = f"  [{args.progress}] {run.get('scenario', '?'):<17} {run.get('target', '?'):<9} strace:"
        if run["ok"]:
            per = run["per_tx"]
            sys.stderr.write(f"{head} {per['total']:.2f} syscalls/tx ({tx} tx; "
                             + ", ".join(f"{CLASS_TITLES[c]} {per[c]:.2f}" for c in CLASS_NAMES)
                             + ")\n")
        else:
            sys.stderr.write(f"{head} FAILED {run['error']}\n")


def progress_line(counter, r):
    head = f"  [{counter}] {r.get('scenario', '?'):<17} {r.get('target', '?'):<9} #{r.get('rep', '?')}:"
    if not r.get("ok"):
        return f"{head} FAILED {r.get('error')}"
    cpu = r.get("cpu_s_per_10k_tx")
    cpu = f", cpu {cpu:.3f} s/10k tx" if cpu is not None else ""
    rss = f", peak rss {r['peak_rss_kb'] / 1024:.1f} MiB" if r.get("peak_rss_kb") else ""
    return (f"{head} {r.get('tps', 0):>9.0f} tps, p50 {r.get('p50_ms')} ms, "
            f"p99 {r.get('p99_ms')} ms{cpu}{rss} ({r.get('wall_s')} s)")


# --------------------------------------------------------------------------------------------
# report


def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def summarize(runs):
    """Per (scenario, target): medians over the repetitions, pooled CPU/10k, max peak RSS."""
    ok = [r for r in runs if r.get("ok")]
    summary = {"runs": len(runs), "ok_runs": len(ok)}
    if not ok:
        summary["error"] = next((r.get("error") for r in runs if r.get("error")), "no run")
        return summary
    for key in ("tps", "p50_ms", "p95_ms", "p99_ms", "mean_ms"):
        v = median([r.get(key) for r in ok])
        summary[key] = None if v is None else round(v, 3)
    cpu = [r.get("cpu_seconds") for r in ok]
    tx = [r.get("transactions") for r in ok]
    if all(isinstance(c, (int, float)) for c in cpu) and sum(t or 0 for t in tx) > 0:
        summary["cpu_s_per_10k_tx"] = round(sum(cpu) * 10000.0 / sum(t or 0 for t in tx), 4)
    # User and system CPU and context switches per transaction, pooled over the runs like CPU.
    for key, out, scale, digits in (("user_seconds", "user_us_per_tx", 1e6, 2),
                                    ("sys_seconds", "sys_us_per_tx", 1e6, 2),
                                    ("ctx_switches", "ctx_per_tx", 1.0, 3)):
        vals = [r.get(key) for r in ok]
        if all(isinstance(v, (int, float)) for v in vals) and sum(t or 0 for t in tx) > 0:
            summary[out] = round(sum(vals) * scale / sum(t or 0 for t in tx), digits)
    hwm = [r.get("peak_rss_kb") for r in ok if isinstance(r.get("peak_rss_kb"), int)]
    if hwm:
        summary["peak_rss_kb"] = max(hwm)
    tps = [r["tps"] for r in ok if isinstance(r.get("tps"), (int, float))]
    if len(tps) > 1:
        summary["tps_min"] = min(tps)
        summary["tps_max"] = max(tps)
    return summary


def ratio(a, b, digits=2):
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return None
    return round(a / b, digits)


def fmt(v, digits=1, suffix=""):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{suffix}"
    return f"{v:,}{suffix}"


def fmt_ratio(v, better_high):
    """A ratio with a mark saying whether pgsluice is better (✓) or worse (✗) than PgBouncer."""
    if v is None:
        return "—"
    good = v >= 1.0 if better_high else v <= 1.0
    return f"{v:.2f} {'✓' if good else '✗'}"


def load_jsonl(path):
    rows = []
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    rows.append(json.loads(line))
    return rows


def build_report(meta, runs, idle, scenario_defs, syscalls=()):
    scenarios = []
    for sdef in scenario_defs:
        name = sdef["name"]
        entry = dict(sdef)
        entry["targets"] = {}
        for target in TARGETS:
            target_runs = [r for r in runs if r.get("scenario") == name and r.get("target") == target]
            skipped = next((r for r in target_runs if r.get("skipped")), None)
            if skipped:
                entry["targets"][target] = {"skipped": skipped.get("reason", "skipped")}
                continue
            if not target_runs:
                continue
            entry["targets"][target] = {"summary": summarize(target_runs), "runs": target_runs}
        s = {t: v.get("summary", {}) for t, v in entry["targets"].items()}
        a, b = s.get("pgsluice", {}), s.get("pgbouncer", {})
        entry["ratios_pgsluice_over_pgbouncer"] = {
            "tps": ratio(a.get("tps"), b.get("tps")),
            "p50": ratio(a.get("p50_ms"), b.get("p50_ms")),
            "p99": ratio(a.get("p99_ms"), b.get("p99_ms")),
            "cpu_per_10k_tx": ratio(a.get("cpu_s_per_10k_tx"), b.get("cpu_s_per_10k_tx")),
            "peak_rss": ratio(a.get("peak_rss_kb"), b.get("peak_rss_kb")),
            "user_per_tx": ratio(a.get("user_us_per_tx"), b.get("user_us_per_tx")),
            "sys_per_tx": ratio(a.get("sys_us_per_tx"), b.get("sys_us_per_tx")),
            "ctx_per_tx": ratio(a.get("ctx_per_tx"), b.get("ctx_per_tx")),
        }
        entry["syscalls"] = {r["target"]: r for r in syscalls if r.get("scenario") == name}
        sa = entry["syscalls"].get("pgsluice", {}).get("per_tx", {})
        sb = entry["syscalls"].get("pgbouncer", {}).get("per_tx", {})
        entry["ratios_pgsluice_over_pgbouncer"]["syscalls_per_tx"] = ratio(sa.get("total"), sb.get("total"))
        scenarios.append(entry)
    idle_out = {}
    for row in idle:
        idle_out[row["target"]] = row
    if idle_out:
        a = idle_out.get("pgsluice", {}).get("rss_per_client_bytes")
        b = idle_out.get("pgbouncer", {}).get("rss_per_client_bytes")
        idle_out["ratio_pgsluice_over_pgbouncer"] = ratio(a, b)
    return {"meta": meta, "scenarios": scenarios, "idle_clients": idle_out}


def cell_target(summary_or_skip, key, digits=1):
    if not summary_or_skip:
        return "—"
    if "skipped" in summary_or_skip:
        return "skipped"
    s = summary_or_skip.get("summary", {})
    if not s.get("ok_runs"):
        return "FAILED"
    return fmt(s.get(key), digits)


def render_markdown(report):
    meta = report["meta"]
    lines = []
    lines.append(f"# pgsluice vs PgBouncer — {meta.get('date', '?')}")
    lines.append("")
    lines.append(f"- command: `{meta.get('command', '?')}`")
    lines.append(f"- machine: {meta.get('cpu_model', '?')}, {meta.get('cores', '?')} cores, "
                 f"kernel {meta.get('kernel', '?')}, {meta.get('mem_total', '?')}")
    lines.append(f"- {meta.get('pgsluice_version', 'pgsluice ?')} ({meta.get('pgsluice_commit', '?')}), "
                 f"{meta.get('pgbouncer_version', '?')}, {meta.get('postgres_version', '?')}, "
                 f"{meta.get('pgbench_version', '?')}")
    lines.append(f"- {meta.get('reps', '?')} run(s) of {meta.get('duration_s', '?')} s per scenario "
                 f"and pooler, alternating ({meta.get('order', '')}); direct Postgres "
                 f"{meta.get('direct_reps', '?')} run(s); pgbench scale {meta.get('scale', '?')}")
    lines.append(f"- config: {meta.get('config_note', '')}")
    lines.append("")
    lines.append("Ratios are pgsluice / PgBouncer (medians over the runs); ✓ = pgsluice better or "
                 "equal. TPS higher is better; p99, CPU per 10k transactions and RSS lower is "
                 "better.")
    lines.append("")
    lines.append("| scenario | TPS pgsluice | TPS PgBouncer | TPS direct | TPS ratio | p99 ms "
                 "pgsluice | p99 ms PgBouncer | p99 ratio | CPU s/10k tx pgsluice | CPU s/10k tx "
                 "PgBouncer | CPU ratio | peak RSS MiB pgsluice | peak RSS MiB PgBouncer | RSS "
                 "ratio |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sc in report["scenarios"]:
        t = sc["targets"]
        r = sc["ratios_pgsluice_over_pgbouncer"]

        def rss(target):
            s = t.get(target, {}).get("summary", {})
            kb = s.get("peak_rss_kb")
            return fmt(kb / 1024.0, 1) if kb else "—"

        lines.append("| " + " | ".join([
            sc["name"],
            cell_target(t.get("pgsluice"), "tps", 0),
            cell_target(t.get("pgbouncer"), "tps", 0),
            cell_target(t.get("direct"), "tps", 0),
            fmt_ratio(r["tps"], True),
            cell_target(t.get("pgsluice"), "p99_ms", 2),
            cell_target(t.get("pgbouncer"), "p99_ms", 2),
            fmt_ratio(r["p99"], False),
            cell_target(t.get("pgsluice"), "cpu_s_per_10k_tx", 3),
            cell_target(t.get("pgbouncer"), "cpu_s_per_10k_tx", 3),
            fmt_ratio(r["cpu_per_10k_tx"], False),
            rss("pgsluice"),
            rss("pgbouncer"),
            fmt_ratio(r["peak_rss"], False),
        ]) + " |")
    lines.append("")
    if report["scenarios"]:
        lines.extend(render_cpu_breakdown(report))
    lines.append("Latency percentiles (ms, medians over the runs) from pgbench's per-transaction "
                 "logs:")
    lines.append("")
    lines.append("| scenario | target | TPS (min–max) | p50 | p95 | p99 | p99/p50 | runs ok |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for sc in report["scenarios"]:
        for target in TARGETS:
            tv = sc["targets"].get(target)
            if not tv:
                continue
            if "skipped" in tv:
                lines.append(f"| {sc['name']} | {target} | skipped: {tv['skipped']} | | | | | |")
                continue
            s = tv["summary"]
            if not s.get("ok_runs"):
                err = str(s.get("error", "failed")).replace("|", "/").replace("\n", " ")[:160]
                lines.append(f"| {sc['name']} | {target} | FAILED: {err} | | | | | 0/{s['runs']} |")
                continue
            spread = ""
            if "tps_min" in s:
                spread = f" ({fmt(s['tps_min'], 0)}–{fmt(s['tps_max'], 0)})"
            p99_p50 = ratio(s.get("p99_ms"), s.get("p50_ms"))
            lines.append("| " + " | ".join([
                sc["name"], target, fmt(s.get("tps"), 0) + spread, fmt(s.get("p50_ms"), 2),
                fmt(s.get("p95_ms"), 2), fmt(s.get("p99_ms"), 2), fmt(p99_p50, 2),
                f"{s['ok_runs']}/{s['runs']}",
            ]) + " |")
    idle = report.get("idle_clients") or {}
    lines.append("")
    if idle:
        lines.append("Idle clients (VmRSS of the pooler before and after N idle, logged-in "
                     "connections; lower is better):")
        lines.append("")
        lines.append("| pooler | idle clients connected | RSS before MiB | RSS after MiB | bytes "
                     "per idle client |")
        lines.append("|---|---:|---:|---:|---:|")
        for target in POOLERS:
            row = idle.get(target)
            if not row:
                continue
            if row.get("error"):
                lines.append(f"| {target} | FAILED: {row['error']} | | | |")
                continue
            lines.append("| " + " | ".join([
                target,
                f"{row.get('connected', 0):,} / {row.get('requested', 0):,}",
                fmt(row.get("rss_before_kb", 0) / 1024.0, 1),
                fmt(row.get("rss_after_kb", 0) / 1024.0, 1),
                fmt(row.get("rss_per_client_bytes"), 0),
            ]) + " |")
        lines.append("")
        lines.append(f"Idle RSS ratio pgsluice / PgBouncer: "
                     f"{fmt_ratio(idle.get('ratio_pgsluice_over_pgbouncer'), False)}")
    else:
        lines.append("Idle clients: not measured in this run.")
    notes = meta.get("notes") or []
    if notes:
        lines.append("")
        lines.append("Notes:")
        lines.append("")
        for note in notes:
            lines.append(f"- {note}")
    lines.append("")
    return "\n".join(lines)


def render_cpu_breakdown(report):
    """User and system CPU, context switches and syscalls per transaction, with ratios."""
    lines = []
    lines.append("Where the pooler's CPU goes, per transaction: user and system CPU (µs, from "
                 "/proc/PID/stat around the timed runs; 100 µs/tx = 1 s/10k tx), context "
                 "switches (voluntary + nonvoluntary, all threads, /proc/PID/task/*/status, same "
                 "runs) and syscalls (`strace -c -f` on one separate short run per pooler, so "
                 "tracing never slows a timed run):")
    lines.append("")
    lines.append("| scenario | user µs/tx pgsluice | user µs/tx PgBouncer | user ratio | sys µs/tx "
                 "pgsluice | sys µs/tx PgBouncer | sys ratio | ctx sw/tx pgsluice | ctx sw/tx "
                 "PgBouncer | ctx ratio | syscalls/tx pgsluice | syscalls/tx PgBouncer | syscall "
                 "ratio |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    any_sys = False
    for sc in report["scenarios"]:
        t = sc["targets"]
        r = sc["ratios_pgsluice_over_pgbouncer"]
        sys_rows = sc.get("syscalls", {})

        def total(target):
            row = sys_rows.get(target)
            if not row:
                return "—"
            if not row.get("ok"):
                return "FAILED"
            return fmt(row["per_tx"]["total"], 2)

        any_sys = any_sys or bool(sys_rows)
        lines.append("| " + " | ".join([
            sc["name"],
            cell_target(t.get("pgsluice"), "user_us_per_tx", 1),
            cell_target(t.get("pgbouncer"), "user_us_per_tx", 1),
            fmt_ratio(r.get("user_per_tx"), False),
            cell_target(t.get("pgsluice"), "sys_us_per_tx", 1),
            cell_target(t.get("pgbouncer"), "sys_us_per_tx", 1),
            fmt_ratio(r.get("sys_per_tx"), False),
            cell_target(t.get("pgsluice"), "ctx_per_tx", 2),
            cell_target(t.get("pgbouncer"), "ctx_per_tx", 2),
            fmt_ratio(r.get("ctx_per_tx"), False),
            total("pgsluice"),
            total("pgbouncer"),
            fmt_ratio(r.get("syscalls_per_tx"), False),
        ]) + " |")
    lines.append("")
    if any_sys:
        lines.append("Syscalls per transaction by class (`strace -c -f -p PID` over one "
                     f"{report['meta'].get('syscall_duration', '?')} s run per pooler; the "
                     "whole run: logins, transactions, logouts; errors are mostly EAGAIN "
                     "reads):")
        lines.append("")
        lines.append("| scenario | pooler | tx traced | " + " | ".join(CLASS_TITLES[c] for c in CLASS_NAMES)
                     + " | total | errors | top 3 syscalls (calls/tx) |")
        lines.append("|---|---|---:|" + "---:|" * (len(CLASS_NAMES) + 2) + "---|")
        for sc in report["scenarios"]:
            for target in POOLERS:
                row = sc.get("syscalls", {}).get(target)
                if not row:
                    continue
                if not row.get("ok"):
                    err = str(row.get("error", "failed")).replace("|", "/")[:160]
                    lines.append(f"| {sc['name']} | {target} | FAILED: {err} |"
                                 + " |" * (len(CLASS_NAMES) + 3))
                    continue
                per = row["per_tx"]
                tx = row.get("transactions") or 1
                top = sorted(row["syscalls"].items(), key=lambda kv: -kv[1])[:3]
                lines.append("| " + " | ".join(
                    [sc["name"], target, fmt(row.get("transactions"), 0)]
                    + [fmt(per[c], 2) for c in CLASS_NAMES]
                    + [fmt(per["total"], 2), fmt(row.get("errors_per_tx"), 2),
                       ", ".join(f"{n} {c / tx:.2f}" for n, c in top)]) + " |")
        lines.append("")
    return lines


def cmd_report(args):
    with open(args.meta, encoding="utf-8") as f:
        meta = json.load(f)
    meta["notes"] = [n for n in load_jsonl_text(args.notes)]
    with open(args.scenarios, encoding="utf-8") as f:
        scenario_defs = json.load(f)
    report = build_report(meta, load_jsonl(args.runs), load_jsonl(args.idle), scenario_defs,
                          load_jsonl(args.syscalls))
    os.makedirs(os.path.dirname(os.path.abspath(args.out_json)), exist_ok=True)
    with open(args.out_json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write("\n")
    md = render_markdown(report)
    with open(args.out_md, "w", encoding="utf-8") as f:
        f.write(md)
    sys.stdout.write(md)


def load_jsonl_text(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    rs = sub.add_parser("runstats")
    rs.add_argument("--stdout", required=True)
    rs.add_argument("--log-prefix", required=True)
    rs.add_argument("--extra", action="append", help="key=value added to the record")
    rs.add_argument("--remove-logs", action="store_true")
    rs.add_argument("--progress", help="also print a progress line to stderr, prefixed with this")
    rs.set_defaults(func=cmd_runstats)
    rp = sub.add_parser("report")
    rp.add_argument("--meta", required=True)
    rp.add_argument("--scenarios", required=True)
    rp.add_argument("--runs", required=True)
    rp.add_argument("--idle")
    rp.add_argument("--syscalls")
    rp.add_argument("--notes")
    rp.add_argument("--out-json", required=True)
    rp.add_argument("--out-md", required=True)
    rp.set_defaults(func=cmd_report)
    st = sub.add_parser("strace")
    st.add_argument("--strace", required=True, help="the `strace -c -o` output")
    st.add_argument("--strace-err", help="strace's stderr, quoted when the run failed")
    st.add_argument("--stdout", required=True, help="pgbench's stdout")
    st.add_argument("--extra", action="append", help="key=value added to the record")
    st.add_argument("--progress")
    st.set_defaults(func=cmd_strace)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
