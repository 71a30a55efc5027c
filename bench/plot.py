#!/usr/bin/env python3
"""The fleet simulation as a picture: bench/results/latest.json -> fleet.png.

Left: time until the zone converged (all N agents published; all gone after
SIGTERM) against the floor Route53's account rate allows. Right: requests the
fleet sent, and how many of them were throttled. The AWS CLI baseline is drawn
beside dnsreg where it ran.

    plot.py RESULTS_JSON OUTPUT_PNG
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS_JSON OUTPUT_PNG")
    with open(sys.argv[1], encoding="utf-8") as f:
        r = json.load(f)
    fleet = r["fleet"]
    if not fleet:
        sys.exit("plot.py: no fleet results in " + sys.argv[1])
    base = r.get("baseline_fleet", [])
    n = [f["n"] for f in fleet]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    rate = r["route53_rate_per_second"]
    fig.suptitle(
        f"dnsreg fleet on the Route53 stand-in throttled at {rate:g} requests/s (account rate)"
    )

    def phase(key, marker, label):
        # A phase that did not converge is drawn at its deadline, hollow.
        ys = [f[key] if f[key] is not None else f["deadline_secs"] for f in fleet]
        (line,) = ax1.plot(n, ys, marker + "-", label=label)
        open_n = [x for x, f in zip(n, fleet) if f[key] is None]
        open_y = [f["deadline_secs"] for f in fleet if f[key] is None]
        if open_n:
            ax1.plot(open_n, open_y, marker, markersize=12, markerfacecolor="white",
                     color=line.get_color(), label=label.split(":")[0] + ": not converged by the deadline")

    phase("join_secs", "o", "dnsreg join: all N published")
    phase("leave_secs", "s", "dnsreg leave: all N removed")
    ax1.plot(n, [f["join_floor_secs"] for f in fleet], "k--_", markersize=14, label="floor: N changes at the rate")
    baseline(ax1, base, "secs", "AWS CLI join (loses values)")
    finish(ax1, "seconds", "time to converge")

    ax2.plot(n, [f["join_requests"] for f in fleet], "o-", label="dnsreg join: requests")
    ax2.plot(n, [f["leave_requests"] for f in fleet], "s-", label="dnsreg leave: requests")
    ax2.plot(n, [f["join_throttled"] for f in fleet], "o:", label="of which throttled (join)")
    ax2.plot(n, [f["leave_throttled"] for f in fleet], "s:", label="of which throttled (leave)")
    ax2.plot(n, n, "k--_", markersize=14, label="floor: one change per agent")
    baseline(ax2, base, "requests", "AWS CLI join: requests")
    finish(ax2, "requests", "requests sent")

    lost = ", ".join(
        f"N={f['n']}: {f['lost']} lost, {f['left_behind']} left behind" for f in fleet
    )
    fig.text(0.5, 0.01, f"dnsreg values: {lost}", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(sys.argv[2], dpi=110)


def baseline(ax, base, key, label):
    """The AWS CLI fleet's `key` against N, where it was run."""
    if base:
        ax.plot([b["n"] for b in base], [b[key] for b in base], "x:", color="grey", label=label)


def finish(ax, ylabel, title):
    ax.set_xlabel("agents joining at once (N)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


if __name__ == "__main__":
    main()
