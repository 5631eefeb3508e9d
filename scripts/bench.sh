#!/usr/bin/env bash
# Runs the benchmarks of benchmarks/ from a Release build directory and prints
# their tables (copy them into benchmarks/RESULTS.md with the command line).
set -euo pipefail
build=${1:-build-release}
echo "== $build/benchmarks/shoal_format_bench"
"$build/benchmarks/shoal_format_bench"
for b in shoal_jpeg_bench shoal_png_bench shoal_transform_bench; do
  echo
  echo "== $build/benchmarks/$b"
  "$build/benchmarks/$b"
done
echo
bash scripts/bench-loader.sh "$build"
echo
bash scripts/bench-video.sh "$build"
