#!/usr/bin/env bash
# The ingestion benchmarks (results in benchmarks/RESULTS.md, "Ingestion"):
# `shoal ingest images` on an ImageNet-like JPEG folder against the least
# work each job implies, on the same data and the same threads, in one run:
#
#  1. ingest with the decode check (default, adaptive) ÷ raw TurboJPEG
#     (list + read + decode every file, THREADS threads, no pipeline:
#     benchmarks/turbojpeg_folder_bench.cc), images/s ÷ images/s. Target ≥ 0.9.
#  2. pass-through ingest (--no-check) ÷ `cp -r DIR DEST && sync` of the same
#     folder to the same filesystem: cp seconds ÷ ingest seconds, both with
#     the final sync, the source warm in the page cache, the target removed
#     (and synced away) before each run. Target ≥ 0.8.
#  3. adaptive ÷ the best static count of --workers 1 .. 2×THREADS (decode
#     check), images/s ÷ images/s. Target ≥ 0.95.
#  4. the same with a store that adds 20 ms to every write (slow:// in
#     benchmarks/ingest_bench.cc; 1 MiB chunks so that there are ~230 chunk
#     writes), adaptive ÷ best of write=1,2,4,8,16 (others at 2). Target ≥ 0.9.
#  5. peak RSS (/usr/bin/time, "Maximum resident set size") with
#     --memory-budget 64MiB (target ≤ 128 MiB), at the default budget, and
#     with --compression png and raw:zstd:3.
#  6. conversion throughput (--compression png, raw:zstd:3) and the scaling
#     from --workers 1 to 2. The conversions run on the first
#     SHOAL_BENCH_CONVERT_IMAGES files (default 1000, linked into their own
#     folder): PNG encoding takes ~85 ms an image (zlib; PIL's takes as
#     long), so all 5000 would take minutes a run.
#
# Every measurement is repeated (SHOAL_BENCH_REPEATS, default 3), the jobs of
# one repeat interleaved, so each ratio is also computed within a repeat; the
# summary gives medians and min-max. Wall times are taken around the whole
# process (process start, scan, final commit and exit included); images/s =
# images ÷ wall seconds. One extra adaptive run writes a --profile and its
# chart (scripts/plot-profile.py) into the work directory.
#
# Usage: bench-ingest.sh BUILD_DIR [THREADS]; SHOAL_BENCH_INGEST_IMAGES
# (default 5000), SHOAL_BENCH_INGEST_DIR (default /tmp/shoal-ingest-bench:
# the input folder, the datasets and the raw results, results.tsv and the
# --json summaries, stay there) and SHOAL_BENCH_REPEATS (default 3) change
# the setup. THREADS should be the machine's core count: the ingest's
# adaptive controller sizes itself from the cores it sees.
set -euo pipefail
build=${1:-build-release}
threads=${2:-2}
shoal="$build/tools/shoal"
tjbench="$build/benchmarks/shoal_turbojpeg_folder_bench"
slowbench="$build/benchmarks/shoal_ingest_bench"
images=${SHOAL_BENCH_INGEST_IMAGES:-5000}
work=${SHOAL_BENCH_INGEST_DIR:-/tmp/shoal-ingest-bench}
repeats=${SHOAL_BENCH_REPEATS:-3}
src="$work/images"
out="$work/out"
res="$work/results"
for b in "$shoal" "$tjbench" "$slowbench"; do
  [ -x "$b" ] || { echo "bench-ingest: $b is missing (build the Release tree)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench-ingest: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
if [ "$(nproc)" != "$threads" ]; then
  echo "bench-ingest: warning: $(nproc) cores but THREADS=$threads; the adaptive runs size themselves from the cores" >&2
fi

mkdir -p "$work"
if [ ! -f "$work/images.count" ] || [ "$(cat "$work/images.count")" != "$images" ]; then
  /usr/bin/python3 scripts/make-image-dataset.py "$src" --count "$images" --jobs "$threads" --force
  echo "$images" >"$work/images.count"
fi
rm -rf "$out" "$res"
mkdir -p "$out" "$res"
tsv="$res/results.tsv"
printf 'repeat\tjob\twall_s\tmax_rss_kib\tcpu_s\timages\timages_per_s\textra\n' >"$tsv"

warm() { find "$src" -type f -exec cat {} + >/dev/null; }

# timed REPEAT JOB CMD...: runs CMD under /usr/bin/time, output kept in
# $res/JOB.REPEAT.{out,err}; appends wall seconds (taken around the whole
# process), peak RSS and CPU seconds (user + sys, children included) to the
# TSV. images/s = images ÷ wall, the images from the --json summary's sample
# count (or the TurboJPEG program's count); "extra" holds the program's own
# images/s (its internal clock: the ingest's "samples_per_second", the
# reference's timed loop).
timed() {
  local rep=$1 job=$2
  shift 2
  local base="$res/$job.$rep"
  local t0 t1
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%M %U %S' -o "$base.time" "$@" >"$base.out" 2>"$base.err" || {
    echo "bench-ingest: $job failed:" >&2
    cat "$base.err" >&2
    exit 1
  }
  t1=$EPOCHREALTIME
  local n=$images extra=""
  if grep -q '"samples_added"' "$base.out" 2>/dev/null; then
    read -r n extra < <(/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["samples_added"], "%.1f" % j["samples_per_second"])' "$base.out")
  elif grep -q '"images_per_second"' "$base.out" 2>/dev/null; then
    read -r n extra < <(/usr/bin/python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).readline()); print(j["images"], "%.1f" % j.get("decode_only_images_per_second", j["images_per_second"]))' "$base.out")
  fi
  awk -v r="$rep" -v j="$job" -v a="$t0" -v b="$t1" -v t="$(tail -1 "$base.time")" -v n="$n" -v e="$extra" \
    'BEGIN { split(t, f, " "); w = b - a; printf "%s\t%s\t%.4f\t%s\t%.2f\t%s\t%.1f\t%s\n", r, j, w, f[1], f[2] + f[3], n, n / w, e }' >>"$tsv"
  tail -1 "$tsv"
}

# ingest REPEAT JOB FLAGS...: a fresh dataset, removed (and synced) before.
# INGEST_SRC (default $src) is the folder.
ingest() {
  local rep=$1 job=$2
  shift 2
  rm -rf "$out/$job"
  sync
  timed "$rep" "$job" "$shoal" ingest images "${INGEST_SRC:-$src}" "$out/$job" --json "$@"
  rm -rf "$out/$job"
}

# The conversion subset: the first files of each class, hard links.
convert_images=${SHOAL_BENCH_CONVERT_IMAGES:-1000}
convsrc="$work/images-$convert_images"
if [ ! -d "$convsrc" ]; then
  per_class=$(( (convert_images + 9) / 10 ))
  for class in "$src"/*/; do
    mkdir -p "$convsrc/$(basename "$class")"
    find "$class" -maxdepth 1 -type f | sort | sed -n "1,${per_class}p" |
      xargs -I{} ln {} "$convsrc/$(basename "$class")/"
  done
fi

echo "== ingestion: $images ImageNet-like JPEGs ($(du -sh --apparent-size "$src" | cut -f1)) in $src, $threads threads, $repeats repeats"
echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'repeat\tjob\twall_s\tmax_rss_kib\tcpu_s\timages\timages_per_s\textra\n'
for rep in $(seq 1 "$repeats"); do
  warm
  # 1. the decode check against raw TurboJPEG: the reference as a process
  #    (list + read + decode), then its decode alone (files in memory).
  timed "$rep" turbojpeg "$tjbench" "$src" --threads "$threads"
  timed "$rep" tjdecode "$tjbench" "$src" --threads "$threads" --decode-only
  # The decode-check jobs (1, 3 with 6's --workers 1 -> 2, and 5's 64 MiB
  # budget), their order rotated by one each repeat.
  jobs=(adaptive budget64)
  for n in $(seq 1 $((2 * threads))); do jobs+=("static$n"); done
  for k in $(seq 0 $((${#jobs[@]} - 1))); do
    job=${jobs[$(((k + rep - 1) % ${#jobs[@]}))]}
    case $job in
      adaptive) ingest "$rep" adaptive ;;
      budget64) ingest "$rep" budget64 --memory-budget 64MiB ;;
      static*) ingest "$rep" "$job" --workers "${job#static}" ;;
    esac
  done
  # 2. pass-through against cp -r + sync: both end with a sync; which goes
  #    first alternates.
  passthrough() {
    rm -rf "$out/nocheck"
    sync
    timed "$rep" nocheck bash -c '"$0" ingest images "$1" "$2" --no-check --json && sync' \
      "$shoal" "$src" "$out/nocheck"
    rm -rf "$out/nocheck"
  }
  copy() {
    rm -rf "$out/cp"
    sync
    timed "$rep" cp bash -c 'cp -r "$0" "$1" && sync' "$src" "$out/cp"
    rm -rf "$out/cp"
  }
  if [ $((rep % 2)) = 1 ]; then passthrough; copy; else copy; passthrough; fi
  # 6. conversions (and their RSS for 5).
  INGEST_SRC=$convsrc ingest "$rep" png --compression png
  INGEST_SRC=$convsrc ingest "$rep" png64 --compression png --memory-budget 64MiB
  INGEST_SRC=$convsrc ingest "$rep" zstd --compression raw:zstd:3
  INGEST_SRC=$convsrc ingest "$rep" zstd64 --compression raw:zstd:3 --memory-budget 64MiB
done
echo "   load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# 4. a store with 20 ms per write.
echo
echo "== the same folder into slow:// (file:// + 20 ms per write), 1 MiB chunks"
echo "\$ $slowbench $src --tmp $out/slow --latency-ms 20 --chunk-bytes 1MiB --writes 1,2,4,8,16 --others 2 --repeats $repeats"
"$slowbench" "$src" --tmp "$out/slow" --latency-ms 20 --chunk-bytes 1MiB \
  --writes 1,2,4,8,16 --others 2 --repeats "$repeats" | tee "$res/slow.txt"
rm -rf "$out/slow"

# One adaptive run with a profile, and its chart.
rm -rf "$out/profiled"
"$shoal" ingest images "$src" "$out/profiled" --json -v --profile "$res/ingest_profile.json" \
  >"$res/profiled.json" 2>"$res/profiled.err"
rm -rf "$out/profiled"
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  if /usr/bin/python3 scripts/plot-profile.py "$res/ingest_profile.json" "$res/ingest_profile.png"; then
    echo "profile chart: $res/ingest_profile.png"
  fi
fi

echo
/usr/bin/python3 - "$tsv" "$res/slow.txt" "$threads" "$convert_images" <<'EOF'
import collections, re, statistics, sys

tsv, slow, threads, convert = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = collections.defaultdict(dict)  # job -> repeat -> row
for line in open(tsv).read().splitlines()[1:]:
    rep, job, wall, rss, cpu, n, ips, extra = line.split("\t")
    rows[job][int(rep)] = dict(wall=float(wall), rss=int(rss), cpu=float(cpu), ips=float(ips),
                               own=float(extra) if extra else None)
reps = sorted(rows["adaptive"])

def stat(values, fmt="%.0f"):
    return "%s (%s-%s)" % (fmt % statistics.median(values), fmt % min(values), fmt % max(values))

def series(job, key):
    return [rows[job][r][key] for r in reps]

statics = ["static%d" % n for n in range(1, 2 * threads + 1)]
tj = series("turbojpeg", "ips")
print("| figure | median (min-max) of %d repeats | target |" % len(reps))
print("|---|---|---|")
print("| TurboJPEG list+read+decode, %d threads, images/s (process wall) | %s | |" % (threads, stat(tj)))
print("| TurboJPEG list+read+decode, images/s (its timed loop) | %s | |" % stat(series("turbojpeg", "own")))
print("| TurboJPEG decode only (files in memory), images/s | %s | |" % stat(series("tjdecode", "own")))
for job, label in [("adaptive", "ingest, decode check, adaptive"),
                   *[(s, "ingest, decode check, --workers %s" % s[6:]) for s in statics],
                   ("budget64", "ingest, decode check, --memory-budget 64MiB"),
                   ("png", "ingest --compression png (%s files)" % convert),
                   ("zstd", "ingest --compression raw:zstd:3 (%s files)" % convert)]:
    print("| %s, images/s | %s | |" % (label, stat(series(job, "ips"))))
    print("|    same, CPU s (user+sys) | %s | |" % stat(series(job, "cpu"), "%.2f"))
print("| cp -r + sync, s | %s | |" % stat(series("cp", "wall"), "%.2f"))
print("| ingest --no-check + sync, s | %s | |" % stat(series("nocheck", "wall"), "%.2f"))

r1 = [rows["adaptive"][r]["ips"] / rows["turbojpeg"][r]["ips"] for r in reps]
print("| 1. ingest (check, adaptive) ÷ TurboJPEG, process walls | %s | ≥ 0.9 |" % stat(r1, "%.3f"))
r1s = [max(rows[s][r]["ips"] for s in statics) / rows["turbojpeg"][r]["ips"] for r in reps]
print("|    best static of the repeat ÷ TurboJPEG, process walls | %s | |" % stat(r1s, "%.3f"))
r1o = [rows["adaptive"][r]["own"] / rows["turbojpeg"][r]["own"] for r in reps]
print("|    same, each program's own clock | %s | |" % stat(r1o, "%.3f"))
print("| TurboJPEG CPU s (user+sys) | %s | |" % stat(series("turbojpeg", "cpu"), "%.2f"))
r2 = [rows["cp"][r]["wall"] / rows["nocheck"][r]["wall"] for r in reps]
print("| 2. cp time ÷ --no-check ingest time | %s | ≥ 0.8 |" % stat(r2, "%.3f"))
r3 = [rows["adaptive"][r]["ips"] / max(rows[s][r]["ips"] for s in statics) for r in reps]
best = max(statics, key=lambda s: statistics.median(series(s, "ips")))
print("| 3. adaptive ÷ best static (per repeat; best by median: %s) | %s | ≥ 0.95 |" % (best, stat(r3, "%.3f")))
print("|    adaptive ÷ %s, medians | %.3f | |" % (best, statistics.median(series("adaptive", "ips")) / statistics.median(series(best, "ips"))))
m = re.search(r"adaptive / best static \((.*)\) = ([0-9.]+)", open(slow).read())
if m:
    print("| 4. slow store: adaptive ÷ best static (%s), medians | %s | ≥ 0.9 |" % (m.group(1), m.group(2)))
mib = lambda job: [v / 1024 for v in series(job, "rss")]
print("| 5. peak RSS, --memory-budget 64MiB, MiB | %s | ≤ 128 |" % stat(mib("budget64")))
print("|    peak RSS, default budget (256 MiB), MiB | %s | |" % stat(mib("adaptive")))
print("|    peak RSS, png / png 64MiB, MiB | %s / %s | |" % (stat(mib("png")), stat(mib("png64"))))
print("|    peak RSS, raw:zstd:3 / raw:zstd:3 64MiB, MiB | %s / %s | |" % (stat(mib("zstd")), stat(mib("zstd64"))))
sc = [rows["static2"][r]["ips"] / rows["static1"][r]["ips"] for r in reps]
print("| 6. scaling --workers 1 -> 2 | %s | |" % stat(sc, "%.2f"))
EOF
echo "raw results: $tsv and $res/*.out (--json summaries)"
