#!/usr/bin/env python3
"""A model of N agents starting together on Route53's token bucket (10/s,
burst 50), each retrying a refused join after a uniform draw in [0, min(60 s,
2^k s)] (the pacer's windows, k = refusals so far), and asking one
confirmation (GetChange) some time after its join; a refused confirmation
comes back 30-38 s later. Prints when the last agent joined, averaged over 20
seeds, for several confirmation delays: the figures `confirm_not_before` in
src/agent.rs quotes. A model, not a measurement: no PriorRequestNotComplete,
processes started 15 s apart in a line, requests take no time.

    python3 bench/sim/confirmations.py
"""
import heapq
import random


def run(n, seed, confirm, spawn=15.0, rate=10.0, burst=50.0):
    rnd, later = random.Random(seed), random.Random(99 + seed)
    ev = [(spawn * i / n, i, 0, "join", spawn * i / n) for i in range(n)]
    heapq.heapify(ev)
    tokens, last, end = burst, 0.0, 0.0
    while ev:
        t, i, k, kind, t0 = heapq.heappop(ev)
        tokens = min(burst, tokens + (t - last) * rate)
        last = t
        if tokens >= 1:
            tokens -= 1
            if kind == "join":
                end = t
                if confirm:
                    heapq.heappush(ev, (t + confirm(t - t0, k, later), i, 0, "confirm", t))
        elif kind == "join":
            heapq.heappush(ev, (t + rnd.uniform(0, min(60, 2**k)), i, k + 1, kind, t0))
        else:
            heapq.heappush(ev, (t + 30 + rnd.uniform(0, 8), i, k + 1, kind, t0))
    return end


# T: how long this agent's join was throttled; k: its refusals.
DELAYS = {
    "none": None,
    "60 s after the join": lambda T, k, r: 60,
    "after [T, 2T]": lambda T, k, r: max(60, r.uniform(T, 2 * T)) if k else 60,
    "after [T, 20T]": lambda T, k, r: max(60, r.uniform(T, 20 * T)) if k else 60,
}

if __name__ == "__main__":
    for name, delay in DELAYS.items():
        ends = [run(1000, s, delay) for s in range(20)]
        print(f"1,000 agents, confirmations {name}: last joined at {sum(ends) / len(ends):.0f} s")
