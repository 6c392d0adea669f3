#!/usr/bin/env python3
"""Summarises and draws the samples scripts/soak.sh writes: soak_plot.py SOAK.csv OUT.png.

Prints, for each series, its start, end, min and max, and whether it ended flat: the mean of the
last tenth of the run within 10% (or within a small absolute slack) of the mean of the second
tenth (the first tenth is warm-up). Draws one panel per series when matplotlib is installed.
"""

import csv
import sys

SERIES = [
    ("rss_kb", "RSS (kB)", 2048),
    ("fds", "open fds", 4),
    ("threads", "threads", 1),
    ("clients", "client connections", 4),
    ("server_conns", "server connections", 2),
    ("tps", "transactions/s", None),
]


def column(rows, name):
    values = []
    for row in rows:
        try:
            values.append((float(row["elapsed_s"]), float(row[name])))
        except (KeyError, TypeError, ValueError):
            continue
    return values


def mean(values):
    return sum(values) / len(values) if values else 0.0


def flat(values, slack):
    n = len(values)
    if n < 20:
        return None
    tenth = n // 10
    early = mean([v for _, v in values[tenth : 2 * tenth]])
    late = mean([v for _, v in values[n - tenth :]])
    limit = max(abs(early) * 0.10, slack or 0)
    return late - early <= limit, early, late


def main():
    path, png = sys.argv[1], sys.argv[2]
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"samples: {len(rows)}, every 10 s")
    print("| series | start | end | min | max | mean 2nd tenth -> last tenth | flat |")
    print("|---|---|---|---|---|---|---|")
    for name, label, slack in SERIES:
        values = column(rows, name)
        if not values:
            continue
        ys = [v for _, v in values]
        verdict = flat(values, slack)
        if verdict is None:
            trend, ok = "", "n/a"
        else:
            ok_flag, early, late = verdict
            trend = f"{early:.0f} -> {late:.0f}"
            ok = "yes" if ok_flag or slack is None else "NO"
            if slack is None:
                ok = "(throughput)"
        print(
            f"| {label} | {ys[0]:.0f} | {ys[-1]:.0f} | {min(ys):.0f} | {max(ys):.0f} "
            f"| {trend} | {ok} |"
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no graph drawn")
        return
    fig, axes = plt.subplots(len(SERIES), 1, figsize=(7, 1.5 * len(SERIES)), sharex=True)
    for ax, (name, label, _) in zip(axes, SERIES):
        values = column(rows, name)
        ax.plot([t / 60 for t, _ in values], [v for _, v in values], linewidth=1)
        ax.set_ylabel(label, fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes", fontsize=8)
    fig.suptitle("pgsluice soak: mixed load, RELOAD every minute", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=72)
    print(f"graph: {png}")


if __name__ == "__main__":
    main()
