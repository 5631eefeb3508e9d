#!/usr/bin/env bash
# Peak RSS (VmHWM, from /usr/bin/time -v) and throughput of the loader at
# memory budgets from 32 MiB to 1 GiB, on the ImageNet-like JPEG folder of
# scripts/bench-loader.sh (run that first, or set SHOAL_BENCH_DIR), 2 epochs,
# --transform decode (batch 32) and train (batch 128, 224x224): a batch of
# each is ~20 MB. Prints a Markdown table for benchmarks/RESULTS.md.
# Usage: bench-loader-memory.sh BUILD_DIR [THREADS]
set -euo pipefail
build=${1:-build-release}
threads=${2:-2}
shoal="$build/tools/shoal"
dir=${SHOAL_BENCH_DIR:-out/bench}
ds="$dir/images.shoal"
[ -d "$ds" ] || { echo "bench-loader-memory: no $ds; run scripts/bench-loader.sh first" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| transform | budget | samples/s | ÷ 1 GiB | accounted peak MB | peak RSS MiB | shuffle buffer |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for transform in decode train; do
  batch=128
  [ "$transform" = decode ] && batch=32
  declare -A rate=()
  for budget in 1024 32 64 128 256 512; do
    /usr/bin/time -v "$shoal" bench loader "$ds" --batch "$batch" --epochs 2 --threads "$threads" \
      --transform "$transform" --size 224 --memory-budget "${budget}MiB" --json \
      >"$out/json" 2>"$out/err"
    rss=$(awk '/Maximum resident/ {printf "%.0f", $6 / 1024}' "$out/err")
    buffer=$(grep -o 'lowered from [0-9]* to [0-9]*' "$out/err" | awk '{print $5}' || true)
    read -r sps peak < <(/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(round(j["samples_per_s"]), round(j["memory_peak_bytes"]/1e6, 1))' "$out/json")
    rate[$budget]=$sps
    ratio=$(/usr/bin/python3 -c "print(f'{$sps / ${rate[1024]}:.2f}')")
    echo "| $transform (batch $batch) | $budget MiB | $sps | $ratio | $peak | $rss | ${buffer:-2048} |"
  done
done
