#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for SECONDS each, seeded with
# the golden dataset's objects (valid chunks, indexes, metadata, HEAD).
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-60}
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
# Golden objects share names across folders, so they are numbered.
i=0; for f in $(find "$root/tests/data/golden" -type f); do cp "$f" "$corpus/seed$i"; i=$((i+1)); done
for fuzzer in "$build"/tests/fuzz/shoal_*_fuzz; do
  echo "== $(basename "$fuzzer") for ${seconds}s"
  ASAN_OPTIONS=detect_leaks=1 "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 "$corpus"
done
