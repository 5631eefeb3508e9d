#!/bin/bash
# Several `shoal ingest` processes filling one dataset, each its share of the
# source (format/FORMAT.md, "Several writers"), on file:// and on s3://
# (s3rver behind tests/format/s3_proxy.js, which decides conditional PUTs):
#
#   - 4 writers started together, ranks given as --rank/--world-size and as
#     torchrun's, srun's and mpirun's variables, commit often and race for
#     commit numbers; the dataset then holds the samples a single-process
#     ingestion of the folder makes, in the same order (loader digests with
#     no shuffle), and verifies clean;
#   - a writer killed mid-way leaves the others' commits whole (the dataset
#     opens and verifies with orphans at most) and its own --resume
#     completes the dataset to the same samples.
#
# Usage: multi_writer_test.sh PATH/TO/shoal SOURCE_DIR
set -u
SHOAL=${1:?usage: multi_writer_test.sh PATH/TO/shoal SOURCE_DIR}
SRC=${2:?usage: multi_writer_test.sh PATH/TO/shoal SOURCE_DIR}
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

start_s3 "$SRC" || exit 1
make_jpegs imgs 135 48 32 3 11 || finish multi_writer_test
opts=(--chunk-bytes 32k --commit-every 4 --commit-seconds 0)

digests() {  # digests DATASET FILE: the loader's batches, in dataset order
  run 0 "$SHOAL" bench loader "$1" --shuffle none --epochs 1 --batch 7 --digests "$2"
}
run 0 "$SHOAL" ingest images imgs ref --chunk-bytes 32k || finish multi_writer_test
digests ref ref.txt

# writers DS: starts 4 writers of DS in the background, one way of giving
# the rank each; their pids in $pids.
writers() {
  local ds=$1
  pids=()
  "$SHOAL" ingest images imgs "$ds" "${opts[@]}" --rank 0 --world-size 4 >w0.out 2>w0.err &
  pids+=($!)
  env RANK=1 WORLD_SIZE=4 "$SHOAL" ingest images imgs "$ds" "${opts[@]}" >w1.out 2>w1.err &
  pids+=($!)
  env SLURM_PROCID=2 SLURM_NTASKS=4 "$SHOAL" ingest images imgs "$ds" "${opts[@]}" >w2.out 2>w2.err &
  pids+=($!)
  env OMPI_COMM_WORLD_RANK=3 OMPI_COMM_WORLD_SIZE=4 "$SHOAL" ingest images imgs "$ds" "${opts[@]}" >w3.out 2>w3.err &
  pids+=($!)
}

for ds in local s3://shoal-test/four; do
  writers "$ds"
  for r in 0 1 2 3; do
    wait "${pids[$r]}" || fail "$ds: writer $r exited $?: $(cat w$r.err)"
  done
  contains w2.out "(writer 2 of 4)"
  digests "$ds" four.txt
  cmp -s ref.txt four.txt || fail "$ds: 4 writers made other samples than one"
  run 0 "$SHOAL" verify "$ds" && contains out ": OK"
  run 0 "$SHOAL" info "$ds" && contains out "len:     135"
done
# The writers did race on S3: conditional PUTs of commit numbers (and
# nothing else races here) were refused, and no commit was lost.
conflicts=$("$PY" -c "import json, urllib.request; print(json.load(urllib.request.urlopen('http://127.0.0.1:$s3_port/__shoal_faults'))['conflicts'])")
[ "${conflicts:-0}" -gt 0 ] || fail "no writer lost a race for a commit on S3 (conflicts: ${conflicts:-none})"
echo "S3: $conflicts conditional PUTs refused while 4 writers raced"

# A writer killed mid-way: the others' commits stay, its --resume finishes.
for ds in killed s3://shoal-test/killed; do
  writers "$ds"
  sleep 0.3
  kill -9 "${pids[2]}" 2>/dev/null
  for r in 0 1 3; do
    wait "${pids[$r]}" || fail "$ds: writer $r exited $?: $(cat w$r.err)"
  done
  wait "${pids[2]}"
  rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "note: $ds: writer 2 finished before the kill"
  else
    run 0 "$SHOAL" info "$ds" --json || continue
    # Clean, or orphans (its uncommitted objects) and nothing else.
    "$SHOAL" verify "$ds" >out 2>&1
    grep -q -e ": OK" -e "orphan" out || fail "$ds: verify after the kill: $(cat out)"
    grep -i -e "missing" -e "corrupt" -e "inconsistent" out &&
      fail "$ds: verify after the kill found more than orphans: $(cat out)"
  fi
  run 0 "$SHOAL" ingest images imgs "$ds" "${opts[@]}" --rank 2 --world-size 4 --resume
  digests "$ds" killed.txt
  cmp -s ref.txt killed.txt || fail "$ds: after the kill and --resume, other samples than one writer makes"
done

# Several writers refuse what would lose others' rows.
run 2 "$SHOAL" ingest images imgs local --rank 4 --world-size 4 &&
  contains err "--rank 4 is not below --world-size 4"
run 1 "$SHOAL" ingest images imgs local --overwrite --rank 1 --world-size 4 &&
  contains err "cannot overwrite"
run 1 "$SHOAL" ingest images imgs local --rank 1 --world-size 4 &&
  contains err "already has rows of writer 1"

finish multi_writer_test
