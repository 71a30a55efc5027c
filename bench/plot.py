#!/usr/bin/env python3
"""The fleets as a picture: bench/results/latest.json -> fleet.png.

One column per fleet size N, so that N=10 and N=1000 are each readable on
their own axes. Top row: the join, machines with all three values published
against seconds since all N were started. Bottom row: the leave, machines
with any value left against seconds since SIGTERM (the short-stop scenario
there too: what the stopped fleet left, until the survivors reaped it). One
colour per provider and limit; the floor each limit allows as a dotted
vertical line in the same colour; the AWS CLI baseline dashed.

    plot.py RESULTS_JSON OUTPUT_PNG
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    # label: colour
    "route53-multivalue": "tab:blue",
    "route53-multivalue, legacy 5/s": "tab:cyan",
    "route53-simple": "tab:orange",
    "cloudflare": "tab:red",
    "rfc2136": "tab:green",
    "short stop, reaped by 3 survivors": "tab:purple",
    "AWS CLI (route53.sh)": "grey",
}


def label(f):
    if f.get("limit") and f["limit"].get("name") == "legacy":
        return f["provider"] + ", legacy 5/s"
    return f["provider"]


def steps(series):
    """A step curve (t, count) from the points where the count changed."""
    xs, ys = [], []
    for t, c in series:
        if ys:
            xs.append(t)
            ys.append(ys[-1])
        xs.append(t)
        ys.append(c)
    return xs, ys


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS_JSON OUTPUT_PNG")
    with open(sys.argv[1], encoding="utf-8") as f:
        r = json.load(f)
    fleets = [f for f in r.get("fleet", []) if "join" in f]
    reaps = r.get("reap", [])
    base = r.get("baseline_fleet", [])
    sizes = sorted({f["n"] for f in fleets} | {x["n"] for x in reaps} | {b["n"] for b in base})
    if not sizes:
        sys.exit("plot.py: no fleet results in " + sys.argv[1])

    fig, axes = plt.subplots(2, len(sizes), figsize=(max(11.0, 4.6 * len(sizes) + 0.6), 8.2), squeeze=False)
    fig.suptitle(
        "dnsreg fleets: N agents started together (top), then SIGTERM to all (bottom)\n"
        "dotted: the floor each provider's limit allows; dashed: the AWS CLI baseline"
    )
    used = set()
    for col, n in enumerate(sizes):
        join, leave = axes[0][col], axes[1][col]
        for f in (f for f in fleets if f["n"] == n):
            name = label(f)
            colour = STYLE.get(name, "black")
            used.add(name)
            for ax, key in ((join, "join"), (leave, "leave")):
                xs, ys = steps(f[key].get("series", []))
                ax.plot(xs, ys, "-", color=colour, linewidth=1.6)
                floor = f.get("floor_secs")
                if floor:
                    ax.axvline(floor, color=colour, linestyle=":", linewidth=1.2)
        for b in (b for b in base if b["n"] == n):
            name = "AWS CLI (route53.sh)"
            used.add(name)
            xs, ys = steps(b.get("series", []))
            join.plot(xs, ys, "--", color=STYLE[name], linewidth=1.6)
        for x in (x for x in reaps if x["n"] == n):
            name = "short stop, reaped by 3 survivors"
            used.add(name)
            # Its count includes the survivors, which stay: show the stopped fleet's.
            xs, ys = steps([(t, max(0, c - x["survivors"])) for t, c in x.get("series", [])])
            leave.plot(xs, ys, "-", color=STYLE[name], linewidth=1.6)
        join.set_title(f"N = {n}: join")
        leave.set_title(f"N = {n}: leave")
        join.set_ylabel("machines fully published")
        leave.set_ylabel("machines with records left")
        for ax in (join, leave):
            ax.set_xlabel("seconds")
            ax.set_ylim(-0.03 * n, n * 1.05)
            ax.set_xlim(left=0)
            ax.grid(True, alpha=0.3)

    handles = [
        plt.Line2D([], [], color=STYLE[name], linestyle="--" if name.startswith("AWS") else "-", linewidth=1.6)
        for name in STYLE
        if name in used
    ]
    fig.legend(handles, [name for name in STYLE if name in used], loc="lower center",
               ncol=min(len(handles), 4), fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 0.93))
    fig.savefig(sys.argv[2], dpi=100)


if __name__ == "__main__":
    main()
