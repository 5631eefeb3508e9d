#!/usr/bin/python3
"""Draws a shoal profile as a PNG chart: an ingestion's
(shoal ingest ... --profile FILE) or a loader's (shoal bench loader ...
--profile FILE).

Usage: plot-profile.py PROFILE.json OUT.png

Four panels sharing the time axis:
  1. throughput: samples/s and MB/s (right axis);
  2. workers per parallel stage, as steps; dashed vertical lines mark the
     adaptive controller's decisions (green: grow, red: shrink or undo);
  3. where the time goes: per stage, the share of its workers' time spent
     busy in bodies (solid) and waiting for input (hatched), stacked; for a
     loader also the consumer's stall (time the training loop waited in
     Next());
  4. memory: the budget in use against the budget, and the process's RSS.
The profile format is described in loader/controller.h (ProfileRecorder).
Needs python3-matplotlib.
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on build machines
import matplotlib.pyplot as plt  # noqa: E402

MIB = 1 << 20


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    with open(argv[1], encoding="utf-8") as f:
        profile = json.load(f)
    if profile.get("version") != 1:
        sys.stderr.write(f"{argv[1]}: unknown profile version "
                         f"{profile.get('version')!r}\n")
        return 1
    kind = profile.get("kind", "ingest")
    stages = profile["stages"]
    intervals = profile["intervals"]
    decisions = profile["decisions"]
    if not intervals:
        sys.stderr.write(f"{argv[1]}: no intervals to draw\n")
        return 1

    t = [iv["t"] for iv in intervals]
    fig, (top, workers_ax, time_ax, mem_ax) = plt.subplots(
        4, 1, sharex=True, figsize=(11, 11),
        gridspec_kw={"height_ratios": [3, 2, 3, 2]})

    # 1. Throughput. With fixed-size samples the two curves coincide; the
    # dashed MB/s line keeps the solid samples/s line visible under it.
    samples = top.plot(t, [iv["samples_per_s"] for iv in intervals],
                       color="tab:blue", linewidth=1.6, label="samples/s")
    top.set_ylabel("samples/s", color="tab:blue")
    top.set_ylim(bottom=0)
    mb = top.twinx()
    mbs = mb.plot(t, [iv["mb_per_s"] for iv in intervals],
                  color="tab:orange", linewidth=1.0, linestyle="--",
                  label="MB/s")
    mb.set_ylabel("MB/s", color="tab:orange")
    mb.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    top.legend(handles=samples + mbs, loc="lower right", fontsize="small")
    top.set_title("throughput", fontsize="medium")

    # 2. Workers. A serial stage reports concurrency 0; it always runs one
    # body and no one changes it, so it is left out.
    for i, name in enumerate(stages):
        counts = [iv["concurrency"][i] for iv in intervals]
        if max(counts) == 0:
            continue
        workers_ax.step(t, counts, where="pre", label=name)
    workers_ax.set_ylabel("workers")
    workers_ax.set_ylim(bottom=0)
    workers_ax.yaxis.get_major_locator().set_params(integer=True)
    workers_ax.grid(alpha=0.3)
    workers_ax.legend(loc="upper left", ncol=len(stages), fontsize="small")
    workers_ax.set_title("workers per stage (dashed: decisions, green grow, "
                         "red shrink or undo)", fontsize="medium")

    # 3. Where the time goes: each stage's busy and input-wait shares of its
    # workers' time, stacked stage on stage (so the total reads as "stages'
    # worth" of time); the consumer's stall on top for a loader.
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    base = [0.0] * len(t)
    for i, name in enumerate(stages):
        busy = [min(1.0, iv["busy"][i]) for iv in intervals]
        wait = [min(1.0 - b, iv["wait_input"][i])
                for b, iv in zip(busy, intervals)]
        color = colors[i % len(colors)]
        top_busy = [b + x for b, x in zip(base, busy)]
        time_ax.fill_between(t, base, top_busy, step="pre", color=color,
                             alpha=0.8, label=f"{name} busy")
        top_wait = [b + w for b, w in zip(top_busy, wait)]
        time_ax.fill_between(t, top_busy, top_wait, step="pre",
                             facecolor="none", edgecolor=color, hatch="//",
                             linewidth=0, label=f"{name} waits for input")
        base = [b + 1.0 for b in base]
    if kind == "loader" and "consumer_stall" in intervals[0]:
        stall = [iv.get("consumer_stall", 0.0) for iv in intervals]
        time_ax.fill_between(t, base, [b + s for b, s in zip(base, stall)],
                             step="pre", color="tab:red", alpha=0.5,
                             label="consumer stalled in Next()")
    time_ax.set_ylabel("share of time\n(one band per stage)")
    time_ax.set_ylim(bottom=0)
    time_ax.grid(alpha=0.3)
    time_ax.legend(loc="upper left", ncol=3, fontsize="x-small")
    time_ax.set_title("where the time goes (solid: in bodies; hatched: "
                      "waiting for input)", fontsize="medium")

    # 4. Memory against the budget.
    in_use = [iv["budget_in_use"] / MIB for iv in intervals]
    mem_ax.plot(t, in_use, color="tab:purple", label="budget in use")
    budget = [iv["budget_bytes"] / MIB for iv in intervals]
    if max(budget) > 0:
        mem_ax.plot(t, budget, color="black", linestyle=":", label="budget")
    rss = [iv.get("rss_bytes", 0) / MIB for iv in intervals]
    if max(rss) > 0:
        mem_ax.plot(t, rss, color="tab:gray", label="RSS")
    mem_ax.set_ylabel("MiB")
    mem_ax.set_ylim(bottom=0)
    mem_ax.set_xlabel("seconds since start")
    mem_ax.grid(alpha=0.3)
    mem_ax.legend(loc="lower right", fontsize="small")
    mem_ax.set_title("memory", fontsize="medium")

    for d in decisions:
        grow = d["to"] > d["from"]
        for ax in (top, workers_ax):
            ax.axvline(d["t"], color="tab:green" if grow else "tab:red",
                       linestyle="--", linewidth=0.6, alpha=0.5)

    peak = max(iv["samples_per_s"] for iv in intervals)
    if kind == "ingest":
        grows = sum(1 for d in decisions if d["to"] > d["from"])
        what = (f"ingestion, {len(decisions)} decisions ({grows} grow, "
                f"{len(decisions) - grows} shrink or undo)")
    else:
        stalls = [iv.get("consumer_stall", 0.0) for iv in intervals]
        what = f"loader, consumer stalled {100 * sum(stalls) / len(stalls):.0f}%"
    fig.suptitle(f"{os.path.basename(argv[1])}: {what}; peak {peak:.0f} "
                 f"samples/s")
    fig.tight_layout()
    fig.savefig(argv[2], dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
