#!/usr/bin/python3
"""Draws an ingestion profile (shoal ingest ... --profile FILE) as a chart.

Usage: plot-profile.py PROFILE.json OUT.png

Top panel: throughput over time, samples/s and MB/s (right axis). Bottom
panel: each stage's worker count as a step plot. Dashed vertical lines mark
the adaptive controller's decisions, so a change in throughput can be read
against the step that caused it. The profile format is described in
loader/controller.h (ProfileRecorder). Needs python3-matplotlib.
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on build machines
import matplotlib.pyplot as plt  # noqa: E402


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
    stages = profile["stages"]
    intervals = profile["intervals"]
    decisions = profile["decisions"]
    if not intervals:
        sys.stderr.write(f"{argv[1]}: no intervals to draw\n")
        return 1

    t = [iv["t"] for iv in intervals]
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(11, 7),
        gridspec_kw={"height_ratios": [3, 2]})

    # With fixed-size samples the two curves coincide; the dashed MB/s line
    # keeps the solid samples/s line visible under it.
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

    # A serial stage reports concurrency 0; it always runs one body, and
    # the controller never changes it, so it is left out.
    for i, name in enumerate(stages):
        workers = [iv["concurrency"][i] for iv in intervals]
        if max(workers) == 0:
            continue
        bottom.step(t, workers, where="post", label=name)
    bottom.set_ylabel("workers")
    bottom.set_xlabel("seconds since start")
    bottom.set_ylim(bottom=0)
    bottom.yaxis.get_major_locator().set_params(integer=True)
    bottom.grid(alpha=0.3)
    bottom.legend(loc="upper left", ncol=len(stages), fontsize="small")

    for d in decisions:
        grow = d["to"] > d["from"]
        for ax in (top, bottom):
            ax.axvline(d["t"], color="tab:green" if grow else "tab:red",
                       linestyle="--", linewidth=0.6, alpha=0.5)

    grows = sum(1 for d in decisions if d["to"] > d["from"])
    fig.suptitle(f"{os.path.basename(argv[1])}: {len(decisions)} decisions "
                 f"({grows} grow, {len(decisions) - grows} shrink or undo); "
                 f"peak {max(iv['samples_per_s'] for iv in intervals):.0f} "
                 f"samples/s")
    top.set_title("throughput", fontsize="medium")
    bottom.set_title("workers per stage (dashed: decisions, green grow, "
                     "red shrink or undo)", fontsize="medium")
    fig.tight_layout()
    fig.savefig(argv[2], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
