#!/bin/bash
# Crash consistency of `shoal ingest` through the CLI: an ingestion that
# commits often (--commit-every 50, 256 KiB chunks) is killed with SIGKILL
# at a random moment, again and again. After each kill:
#
#   - the dataset opens (`shoal info`), or there is none when the kill came
#     before the first commit;
#   - `shoal verify` finds nothing but orphan objects, and after
#     `verify --repair` nothing at all;
#   - `--resume` (or, with no dataset, the same command again) finishes the
#     job, and the dataset is then the one an uninterrupted run makes: the
#     same samples (the loader's batch digests) and the same chunk bytes.
#
# SHOAL_KILL_TRIALS sets the number of kills (default 5; the soak test
# runs 100). Kills land uniformly in 0.05 s .. min(2 s, 90 % of an
# uninterrupted run).
#
# Usage: ingest_kill_test.sh PATH/TO/shoal
set -u
SHOAL=${1:?usage: ingest_kill_test.sh PATH/TO/shoal}
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

trials=${SHOAL_KILL_TRIALS:-5}
"$PY" -c 'import numpy, PIL' || { echo "FAIL: $PY lacks numpy or PIL" >&2; exit 1; }
make_jpegs in 1500 480 360 10 5 || finish "ingest kill"
opts=(--commit-every 50 --chunk-bytes 256K)

# The reference, and how long an uninterrupted run takes (ms).
start=$(date +%s%N)
run 0 "$SHOAL" ingest images in ref "${opts[@]}" || finish "ingest kill"
run_ms=$((($(date +%s%N) - start) / 1000000))
run 0 "$SHOAL" bench loader ref --digests ref_digests.txt --shuffle none --epochs 1
ref_digest=$(dataset_digest ref)
max_ms=$((run_ms * 9 / 10))
[ "$max_ms" -gt 2000 ] && max_ms=2000
[ "$max_ms" -lt 100 ] && max_ms=100
echo "an uninterrupted run takes $run_ms ms; kills at 50..$max_ms ms"

killed=0 before_commit=0 no_dataset=0
for ((t = 1; t <= trials; t++)); do
  rm -rf ds
  ms=$((50 + (RANDOM * 32768 + RANDOM) % (max_ms - 49)))
  "$SHOAL" ingest images in ds "${opts[@]}" >kill_out 2>kill_err &
  pid=$!
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  kill -9 $pid 2>/dev/null && killed=$((killed + 1))
  wait $pid 2>/dev/null
  rc=$?
  [ "$rc" -eq 137 ] || [ "$rc" -eq 0 ] || fail "trial $t: the ingestion exited $rc before the kill: $(cat kill_err)"
  what="trial $t (kill at $ms ms)"
  fresh=0
  if [ ! -e ds/HEAD ]; then
    # Killed before the dataset was created: there is none.
    no_dataset=$((no_dataset + 1))
    run 1 "$SHOAL" info ds && contains err "no dataset"
    fresh=1
  else
    run 0 "$SHOAL" info ds --json || { echo "$what" >&2; continue; }
    len=$("$PY" -c 'import json; print(json.load(open("out"))["len"])')
    commit=$("$PY" -c 'import json; print(json.load(open("out"))["commit"])')
    only_orphans ds
    run 0 "$SHOAL" verify ds --repair
    verify_clean ds
    if [ "$commit" -eq 0 ]; then
      before_commit=$((before_commit + 1))
      [ "$len" -eq 0 ] || fail "$what: commit 0 with $len samples"
      fresh=2
    fi
  fi
  if [ "$fresh" -eq 1 ]; then
    run 0 "$SHOAL" ingest images in ds "${opts[@]}" || { echo "$what" >&2; continue; }
  elif ! "$SHOAL" ingest images in ds "${opts[@]}" --resume >out 2>err; then
    # Also a kill before the first commit, which leaves the empty commit 0
    # of Dataset::Create, resumes (from nothing).
    fail "$what: --resume failed: $(head -c 2000 err)"
    continue
  fi
  verify_clean ds
  run 0 "$SHOAL" bench loader ds --digests digests.txt --shuffle none --epochs 1
  cmp -s ref_digests.txt digests.txt || fail "$what: the samples differ from an uninterrupted run"
  [ "$(dataset_digest ds)" = "$ref_digest" ] || fail "$what: the chunks differ from an uninterrupted run"
done
echo "$trials trials: $killed killed mid-way, $before_commit before the first commit," \
  "$no_dataset before the dataset existed"
[ "$killed" -ge 1 ] || fail "no trial killed a running ingestion"
finish "ingest kill"
