#!/bin/bash
# benchmarks/bref_skip_check.sh on a test video with a B-pyramid: skipping
# non-reference frames changes no frame (what the loader does); skipping
# every B-frame changes P-frames (why it skips no reference B-frame).
#
# Usage: bref_skip_check_test.sh SOURCE_DIR
set -u
src=${1:?usage: bref_skip_check_test.sh SOURCE_DIR}
out=$(bash "$src/benchmarks/bref_skip_check.sh" \
  "$src/tests/data/video/bt709_full_range.mp4" 2>&1) || {
  echo "FAIL: bref_skip_check.sh exited with an error:" >&2
  echo "$out" >&2
  exit 1
}
echo "$out"
last=$(tail -1 <<<"$out")
[[ $last =~ non-reference\ frames\ 0,\ skipping\ every\ B-frame\ ([0-9]+)$ ]] || {
  echo "FAIL: unexpected summary: $last" >&2
  exit 1
}
[ "${BASH_REMATCH[1]}" -gt 0 ] || {
  echo "FAIL: skipping every B-frame changed no frame" >&2
  exit 1
}
echo "PASS: bref skip check"
