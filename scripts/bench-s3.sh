#!/usr/bin/env bash
# Loading and ingesting over the network (results in benchmarks/RESULTS.md,
# "Over the network"): the same ImageNet-like JPEG folder and dataset on
# file:// and on s3:// through a proxy that adds LATENCY ms to every request
# (tests/format/s3_proxy.js in front of s3rver, both on this machine):
#
#  1. the loader (--transform decode, THREADS threads, chunk shuffle):
#     samples/s on s3:// ÷ samples/s on file://. Target ≥ 0.9.
#  2. the loader under --shuffle full with a budget that its chunks do not
#     fit (sample-by-sample ranged reads, coalesced per chunk), the same
#     ratio, as a second figure.
#  3. `shoal ingest images` of the folder to s3:// ÷ to file://, images/s
#     (process wall). Target ≥ 0.8.
#  For every s3:// run: requests per sample and GET bytes ÷ bytes needed,
#  counted by the proxy (GET /__shoal_faults before and after), where the
#  bytes needed are the JPEG files' sizes times the epochs.
#  The server (node: the proxy and s3rver) runs on this machine. Every job
#  runs in two placements: "split", the server on the last core and shoal
#  on the others, in the file:// jobs as well (what a server on another
#  machine gives: shoal keeps its cores), and "shared", everything on all
#  cores (the server's CPU taken from shoal's). Every job records the CPU
#  seconds of shoal and of the server; the loader on s3:// without the
#  added latency (the proxy's other port) tells how much of the gap the
#  latency still makes.
#
# Every job is repeated (SHOAL_BENCH_REPEATS, default 3), file:// and s3://
# interleaved (which goes first alternates), so each ratio is also taken
# within a repeat; the summary gives medians and min-max. Wall times are
# taken around the whole process.
#
# Usage: bench-s3.sh BUILD_DIR [THREADS]; SHOAL_BENCH_IMAGES (default 5000),
# SHOAL_BENCH_S3_DIR (default /tmp/shoal-s3-bench: input folder, datasets,
# the server's objects and raw results), SHOAL_BENCH_REPEATS (3),
# SHOAL_BENCH_LATENCY_MS (20) and SHOAL_BENCH_EPOCHS (2) change the setup.
set -euo pipefail
build=${1:-build-release}
threads=${2:-2}
shoal="$build/tools/shoal"
images=${SHOAL_BENCH_IMAGES:-5000}
work=${SHOAL_BENCH_S3_DIR:-/tmp/shoal-s3-bench}
repeats=${SHOAL_BENCH_REPEATS:-3}
latency=${SHOAL_BENCH_LATENCY_MS:-20}
epochs=${SHOAL_BENCH_EPOCHS:-2}
s3rver=${SHOAL_S3RVER:-/opt/shoal-s3rver/node_modules/.bin/s3rver}
src="$work/images"
res="$work/results"
[ -x "$shoal" ] || { echo "bench-s3: $shoal is missing (build the Release tree)" >&2; exit 1; }
[ -x "$s3rver" ] || { echo "bench-s3: $s3rver is missing (scripts/install-deps.sh)" >&2; exit 1; }
shoal=$(realpath "$shoal")
here=$(cd "$(dirname "$0")/.." && pwd)

mkdir -p "$work"
if [ ! -f "$work/images.count" ] || [ "$(cat "$work/images.count")" != "$images" ]; then
  /usr/bin/python3 "$here/scripts/make-image-dataset.py" "$src" --count "$images" --jobs "$threads" --force
  echo "$images" >"$work/images.count"
fi
rm -rf "$res" "$work/s3data" "$work/file"
mkdir -p "$res" "$work/s3data" "$work/file"
tsv="$res/results.tsv"
printf 'repeat\tjob\twall_s\tsamples\tsamples_per_s\trequests\tget_bytes\tcpu_s\tserver_cpu_s\n' >"$tsv"

# The proxy (and s3rver behind it) live while this script holds the fifo.
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
slow_port=$(free_port)
rm -f "$work/keep"
mkfifo "$work/keep"
node "$here/tests/format/s3_proxy.js" "$port" "$s3rver" "$work/s3data" bench S3RVER S3RVER \
  "$slow_port" "latency=$latency" <"$work/keep" 2>"$res/proxy.err" &
proxy_pid=$!
exec 9>"$work/keep"
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$slow_port/__shoal_faults" >/dev/null 2>&1 && break
  sleep 0.05
done
counts() { curl -sf "http://127.0.0.1:$slow_port/__shoal_faults"; }
# CPU seconds (user + system) of the proxy and s3rver so far.
server_cpu() {
  local ticks=0 pid
  for pid in $proxy_pid $(pgrep -P "$proxy_pid"); do
    ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
counts >/dev/null || { echo "bench-s3: the proxy did not start: $(cat "$res/proxy.err")" >&2; exit 1; }
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
unset AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
fast="?endpoint=http://127.0.0.1:$port"
slow="?endpoint=http://127.0.0.1:$slow_port"

# timed REPEAT JOB CMD...: runs CMD, output in $res/JOB.REPEAT.{out,err};
# appends wall seconds, samples (from the --json summary), samples/s, the
# requests and GET bytes the proxy saw meanwhile, shoal's CPU seconds and
# the server's to the TSV.
timed() {
  local rep=$1 job=$2
  shift 2
  local base="$res/${job//\//_}.$rep" before after t0 t1 c0 c1
  before=$(counts)
  c0=$(server_cpu)
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%U %S' -o "$base.time" "$@" >"$base.out" 2>"$base.err" || {
    echo "bench-s3: $job failed:" >&2
    cat "$base.err" >&2
    exit 1
  }
  t1=$EPOCHREALTIME
  c1=$(server_cpu)
  after=$(counts)
  /usr/bin/python3 - "$rep" "$job" "$t0" "$t1" "$base.out" "$before" "$after" \
    "$(tail -1 "$base.time")" "$c0" "$c1" >>"$tsv" <<'EOF'
import json, sys
rep, job, t0, t1, out, before, after, cpu, c0, c1 = sys.argv[1:]
j = json.load(open(out))
n = j.get("samples_added", j.get("samples"))
wall = float(t1) - float(t0)
b, a = json.loads(before), json.loads(after)
print("%s\t%s\t%.4f\t%d\t%.1f\t%d\t%d\t%.2f\t%.2f" % (rep, job, wall, n, n / wall,
      a["requests"] - b["requests"], a["get_bytes"] - b["get_bytes"],
      sum(map(float, cpu.split())), float(c1) - float(c0)))
EOF
  tail -1 "$tsv"
}

# The datasets the loader reads: one ingestion each, through the fast port.
"$shoal" ingest images "$src" "$work/file/images.shoal" --overwrite --no-check >/dev/null
"$shoal" ingest images "$src" "s3://bench/images$fast" --no-check >/dev/null
load_flags=(--transform decode --threads "$threads" --batch 128 --epochs "$epochs" --json)
# A budget the dataset's chunks do not fit: --shuffle full reads sample by
# sample.
full_flags=(--shuffle full --memory-budget 384MiB)

echo "== over the network: $images ImageNet-like JPEGs ($(du -sh --apparent-size "$src/" | cut -f1)), $threads threads, $latency ms per request, $repeats repeats"
echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'repeat\tjob\twall_s\tsamples\tsamples_per_s\trequests\tget_bytes\tcpu_s\tserver_cpu_s\n'
# Where the processes run. "split": the server (proxy and s3rver, all their
# threads) on the last core, shoal on the others, in the file:// jobs too,
# so that shoal has the same cores on both sides and the server's CPU is
# not taken from it, as with a server on another machine. "shared": all on
# all cores, the server competing with shoal for them.
ncpu=$(nproc)
server_pids() { echo "$proxy_pid" $(pgrep -P "$proxy_pid"); }
for placement in split shared; do
  if [ $placement = split ]; then
    [ "$ncpu" -ge 2 ] || continue
    for pid in $(server_pids); do taskset -a -p -c $((ncpu - 1)) "$pid" >/dev/null; done
    pin=(taskset -c "0-$((ncpu - 2))")
  else
    for pid in $(server_pids); do taskset -a -p -c "0-$((ncpu - 1))" "$pid" >/dev/null; done
    pin=()
  fi
  for rep in $(seq 1 "$repeats"); do
    # Without the added latency, as a reference.
    timed "$rep" $placement/load.s3fast "${pin[@]}" "$shoal" bench loader "s3://bench/images$fast" "${load_flags[@]}"
    for pair in load full ingest; do
      for side in file s3; do
        # Alternate which side goes first.
        if [ $((rep % 2)) = 0 ]; then side=$([ $side = file ] && echo s3 || echo file); fi
        job=$placement/$pair.$side
        case $pair.$side in
          load.file) timed "$rep" $job "${pin[@]}" "$shoal" bench loader "$work/file/images.shoal" "${load_flags[@]}" ;;
          load.s3) timed "$rep" $job "${pin[@]}" "$shoal" bench loader "s3://bench/images$slow" "${load_flags[@]}" ;;
          full.file) timed "$rep" $job "${pin[@]}" "$shoal" bench loader "$work/file/images.shoal" "${load_flags[@]}" "${full_flags[@]}" ;;
          full.s3) timed "$rep" $job "${pin[@]}" "$shoal" bench loader "s3://bench/images$slow" "${load_flags[@]}" "${full_flags[@]}" ;;
          ingest.file)
            rm -rf "$work/file/ingest" && sync
            timed "$rep" $job "${pin[@]}" "$shoal" ingest images "$src" "$work/file/ingest" --json
            rm -rf "$work/file/ingest" ;;
          ingest.s3)
            timed "$rep" $job "${pin[@]}" "$shoal" ingest images "$src" "s3://bench/ingest$placement$rep$slow" --json
            rm -rf "$work/s3data/bench/ingest$placement$rep" ;;
        esac
      done
    done
  done
done
echo "   load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
needed=$(find "$src/" -type f -name '*.jpg' -printf '%s\n' | awk '{ s += $1 } END { print s }')
/usr/bin/python3 - "$tsv" "$needed" "$epochs" <<'EOF'
import collections, statistics, sys

tsv, needed, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = collections.defaultdict(dict)  # job -> repeat -> row
for line in open(tsv).read().splitlines()[1:]:
    rep, job, wall, n, sps, req, got, cpu, server = line.split("\t")
    rows[job][int(rep)] = dict(wall=float(wall), n=int(n), sps=float(sps), req=int(req), got=int(got),
                               cpu=float(cpu), server=float(server))

def stat(values, fmt="%.0f"):
    return "%s (%s-%s)" % (fmt % statistics.median(values), fmt % min(values), fmt % max(values))

titles = {"split": "server on a core of its own, shoal on the others (as with a server elsewhere)",
          "shared": "server and shoal sharing all cores"}
for placement in ("split", "shared"):
    if placement + "/load.file" not in rows:
        continue
    reps = sorted(rows[placement + "/load.file"])
    def series(job, key):
        return [rows[placement + "/" + job][r][key] for r in reps]
    def row(job, r):
        return rows[placement + "/" + job][r]
    print()
    print("%s:" % titles[placement])
    print()
    print("| figure | median (min-max) of %d repeats | target |" % len(reps))
    print("|---|---|---|")
    for pair, label, target in [("load", "loader, chunk shuffle", "≥ 0.9"),
                                ("full", "loader, --shuffle full (sample reads)", ""),
                                ("ingest", "ingest images", "≥ 0.8")]:
        print("| %s on file://, samples/s | %s | |" % (label, stat(series(pair + ".file", "sps"))))
        print("| %s on s3://, samples/s | %s | |" % (label, stat(series(pair + ".s3", "sps"))))
        ratio = [row(pair + ".s3", r)["sps"] / row(pair + ".file", r)["sps"] for r in reps]
        print("| **%s, s3:// ÷ file://** | **%s** | %s |" % (label, stat(ratio, "%.3f"), target))
        per = [row(pair + ".s3", r)["req"] / row(pair + ".s3", r)["n"] for r in reps]
        print("| %s, requests per sample | %s | |" % (label, stat(per, "%.4f")))
        if pair != "ingest":
            got = [row(pair + ".s3", r)["got"] / (needed * epochs) for r in reps]
            print("| %s, bytes read ÷ bytes needed | %s | |" % (label, stat(got, "%.3f")))
        for side in ("file", "s3"):
            print("| %s on %s://, CPU s of shoal / of the server | %s / %s | |" % (
                label, side, stat(series(pair + "." + side, "cpu"), "%.2f"),
                stat(series(pair + "." + side, "server"), "%.2f")))
        if placement == "shared":
            # The ratio the cores allow when the run is CPU-bound: file://
            # CPU seconds ÷ (shoal's + the server's on s3://).
            bound = [row(pair + ".file", r)["cpu"] / (row(pair + ".s3", r)["cpu"] + row(pair + ".s3", r)["server"])
                     for r in reps]
            print("| %s, CPU bound: file:// CPU ÷ (s3:// CPU + server CPU) | %s | |" % (label, stat(bound, "%.3f")))
    fast = [row("load.s3fast", r)["sps"] / row("load.file", r)["sps"] for r in reps]
    print("| loader, chunk shuffle, s3:// without added latency ÷ file:// | %s | |" % stat(fast, "%.3f"))
EOF
echo "raw results: $tsv and $res/*.out (--json summaries)"
