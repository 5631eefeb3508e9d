#!/usr/bin/env bash
# Runs the benchmarks of benchmarks/ from a Release build directory and prints
# their tables (copy them into benchmarks/RESULTS.md with the command line).
set -euo pipefail
build=${1:-build-release}
echo "== $build/benchmarks/shoal_format_bench"
"$build/benchmarks/shoal_format_bench"
