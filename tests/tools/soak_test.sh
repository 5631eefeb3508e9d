#!/bin/bash
# The soak (`make soak`; not in `make test`): for SHOAL_SOAK_SECONDS
# (default 1800) two lanes run side by side, each a writer loop and a
# long-lived reader on one dataset:
#
#   - file lane: a dataset in a directory;
#   - s3 lane: s3://shoal-test/soak, through the test proxy's fault port
#     (tests/format/s3_proxy.js), which answers 3 % of requests with a 503
#     SlowDown and resets 3 % of connections, writers' and reader's alike.
#
# A writer loop appends one folder of SHOAL_SOAK_IMAGES PNGs per trial
# (`shoal ingest images ... --append`, committing every 10 samples, cycling
# through 6 folders). Each run of the command is killed with SIGKILL at a
# random moment with probability 1/2; after a kill, `verify` must find
# nothing but orphan objects, `verify --repair` removes them, and the job
# goes on with --resume (or --append again when the kill came before its
# first commit). A trial ends when a run finishes; the dataset then holds
# exactly the trials' samples.
#
# The reader (soak_reader) trains all the while: epoch after epoch it opens
# the latest commit and checks every sample's pixels against its source's
# (CRC-32 of NumPy's decode). An epoch whose commit loses a chunk to a
# newer commit (which replaced the copy of an open chunk and deleted it) is
# cut short and counted as a restart; README says why. At the end every committed sample is checked
# once more, `verify` must be clean, and the reader's RSS over the last
# third of the run must not pass its peak over the middle third by more
# than 10 % + 8 MiB (the first third is warm-up: thread stacks and malloc's
# per-thread arenas filling).
#
# Usage: soak_test.sh PATH/TO/shoal PATH/TO/soak_reader SOURCE_DIR
set -u
SHOAL=${1:?usage: soak_test.sh PATH/TO/shoal PATH/TO/soak_reader SOURCE_DIR}
READER=${2:?usage: soak_test.sh PATH/TO/shoal PATH/TO/soak_reader SOURCE_DIR}
SRC=${3:?usage: soak_test.sh PATH/TO/shoal PATH/TO/soak_reader SOURCE_DIR}
# cli_lib.sh moves into a scratch directory: the paths must not be relative.
SRC=$(cd "$SRC" && pwd) || exit 2
SHOAL=$(realpath "$SHOAL") && READER=$(realpath "$READER") || exit 2
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

seconds=${SHOAL_SOAK_SECONDS:-1800}
images=${SHOAL_SOAK_IMAGES:-100}
folders=6
start_s3 "$SRC" "503=0.03,reset=0.03" || { fail "cannot start the S3 server"; finish soak_test; }

# The sources: folders f0..f5 of distinct 48x64 PNGs (noise, so that every
# image differs), and the CRC-32 of each image's pixels in append order.
"$PY" - "$folders" "$images" <<'EOF_PY' || { fail "cannot write the sources"; finish soak_test; }
import os, sys, zlib
import numpy as np
from PIL import Image
folders, images = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(7)
with open("expected.txt", "w") as out:
    for f in range(folders):
        os.makedirs(f"src/f{f}")
        for i in range(images):
            pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(f"src/f{f}/{f}_{i:04d}.png")
            out.write("%08x\n" % zlib.crc32(pixels.tobytes()))
EOF_PY

deadline=$(($(date +%s) + seconds))
opts=(--commit-every 10 --chunk-bytes 32K --memory-budget 16MiB)

# dataset_len URL: the dataset's length, or -1 when there is none.
dataset_len() {
  "$SHOAL" info "$1" --json >"$2.info" 2>"$2.info_err" || { echo -1; return; }
  "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["len"])' "$2.info"
}

# writer LANE URL MAX_KILL_MS: the lane's writer loop (run in the
# background); its counts go to LANE.counts, its failures to LANE.fail.
writer() {
  local lane=$1 url=$2 max_ms=$3
  local trials=0 kills=0 resumes=0 repairs=0 runs=0 t=0
  while [ "$(date +%s)" -lt "$deadline" ]; do
    local folder="src/f$((t % folders))" before=$((t * images)) mode
    if [ "$t" -eq 0 ]; then mode=(); else mode=(--append); fi
    while :; do
      runs=$((runs + 1))
      "$SHOAL" ingest images "$folder" "$url" "${mode[@]}" "${opts[@]}" \
        >"$lane.out" 2>"$lane.err" &
      local pid=$! rc
      if [ $((RANDOM % 2)) -eq 0 ]; then
        local ms=$((20 + RANDOM % max_ms))
        sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        kill -9 "$pid" 2>/dev/null
      fi
      wait "$pid" 2>/dev/null
      rc=$?
      [ "$rc" -eq 0 ] && break
      if [ "$rc" -ne 137 ]; then
        echo "$lane trial $t: ingest ${mode[*]} exited $rc: $(head -c 1500 "$lane.err")" >>"$lane.fail"
        return
      fi
      kills=$((kills + 1))
      local len
      len=$(dataset_len "$url" "$lane")
      if [ "$len" -ge 0 ]; then
        # A kill leaves at most orphans (objects no commit references).
        # "unreadable" is the store failing (an s3rver 500), not damage:
        # verify again, a few times.
        local vrc try
        for try in 1 2 3 4 5; do
          "$SHOAL" verify "$url" >"$lane.vout" 2>"$lane.verr"
          vrc=$?
          grep -q '^unreadable: ' "$lane.vout" || break
          echo "$lane trial $t: verify try $try: $(grep -m1 '^unreadable: ' "$lane.vout" | head -c 300)" >>"$lane.unreadable"
          sleep 2
        done
        if [ "$vrc" -ne 0 ] && grep -qv -e '^orphan: ' -e '^verify: ' "$lane.vout"; then
          echo "$lane trial $t: verify after a kill found more than orphans: $(head -c 1500 "$lane.vout") $(head -c 500 "$lane.verr")" >>"$lane.fail"
          return
        fi
        if [ "$vrc" -ne 0 ]; then
          "$SHOAL" verify "$url" --repair >"$lane.vout" 2>"$lane.verr" || {
            echo "$lane trial $t: verify --repair failed: $(head -c 1500 "$lane.vout")" >>"$lane.fail"
            return
          }
          repairs=$((repairs + 1))
        fi
      fi
      # Before this job's first commit there is nothing to resume: the
      # same command again (a new dataset's empty first commit resumes).
      if [ "$len" -gt "$before" ] || { [ "$t" -eq 0 ] && [ "$len" -eq 0 ]; }; then
        mode=(--resume)
        resumes=$((resumes + 1))
      fi
    done
    trials=$((trials + 1))
    t=$((t + 1))
    local len
    len=$(dataset_len "$url" "$lane")
    if [ "$len" -ne $((t * images)) ]; then
      echo "$lane trial $((t - 1)): the dataset has $len samples after $t trials of $images" >>"$lane.fail"
      return
    fi
    echo "$trials $kills $resumes $repairs $runs" >"$lane.counts"
  done
}

# reader LANE URL: the lane's long-lived reader, until the deadline.
reader() {
  "$READER" "$2" expected.txt "$((deadline - $(date +%s)))" 2 >"$1.reader" 2>"$1.reader_err"
  echo $? >"$1.reader_rc"
}

# Everything over s3:// goes through the fault port from here on.
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$s3_fault_port"
writer file "$work/fds" 400 &
writer_pids=($!)
writer s3 "s3://shoal-test/soak" 2500 &
writer_pids+=($!)
reader file "$work/fds" &
reader_pids=($!)
reader s3 "s3://shoal-test/soak" &
reader_pids+=($!)
while [ "$(date +%s)" -lt "$deadline" ]; do
  sleep 30
  echo "soak: $((deadline - $(date +%s))) s left; file $(cat file.counts 2>/dev/null), s3 $(cat s3.counts 2>/dev/null) (trials kills resumes repairs runs)"
done
wait "${writer_pids[@]}" "${reader_pids[@]}"

faults=$("$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
  "http://127.0.0.1:$s3_fault_port/__shoal_faults")
summary=""
for lane in file s3; do
  url="$work/fds"
  [ "$lane" = s3 ] && url="s3://shoal-test/soak"
  [ -s "$lane.fail" ] && fail "$(cat "$lane.fail")"
  [ "$(cat "$lane.reader_rc" 2>/dev/null)" = 0 ] ||
    fail "$lane reader: $(head -c 1500 "$lane.reader_err")"
  read -r trials kills resumes repairs runs 2>/dev/null <"$lane.counts" ||
    { fail "$lane: no trial finished"; continue; }
  # Every committed sample, once more, and the whole dataset checked.
  "$READER" "$url" expected.txt 0 2 >"$lane.final" 2>"$lane.final_err" ||
    fail "$lane final check: $(head -c 1500 "$lane.final_err")"
  verify_clean "$url"
  run 0 "$SHOAL" info "$url" --json
  commit=$("$PY" -c 'import json; print(json.load(open("out"))["commit"])')
  len=$("$PY" -c 'import json; print(json.load(open("out"))["len"])')
  [ "$len" -eq $((trials * images)) ] || fail "$lane: $len samples after $trials trials of $images"
  # The reader's memory: epochs in the middle and last thirds of the run.
  read -r epochs checked restarts rss_first rss_mid rss_last <<<"$("$PY" - "$lane.reader" <<'EOF_PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith("epoch ")]
rss = [int(r[r.index("rss_kib") + 1]) for r in rows]
checked = sum(int(r[r.index("samples") + 1]) for r in rows)
restarts = int(rows[-1][rows[-1].index("restarts") + 1]) if rows else 0
n = len(rss)
mid = max(rss[n // 3: 2 * n // 3] or rss or [0])
last = max(rss[2 * n // 3:] or rss or [0])
print(n, checked, restarts, rss[0] if rss else 0, mid, last)
EOF_PY
)"
  [ "$epochs" -ge 3 ] || fail "$lane reader ran $epochs epochs"
  [ "$rss_last" -le $((rss_mid * 11 / 10 + 8192)) ] ||
    fail "$lane reader's RSS grew: peak $rss_mid KiB in the middle third, $rss_last KiB in the last"
  unreadable=$(cat "$lane.unreadable" 2>/dev/null | wc -l)
  summary+="$lane: $trials trials, $runs runs of ingest, $kills kills, $resumes resumes, $repairs repairs, $unreadable verifies again after a store failure, commit $commit, $len samples; reader $epochs epochs ($restarts cut short by a replaced chunk), $checked samples checked (+$len at the end), RSS $((rss_first / 1024)) MiB first epoch, $((rss_mid / 1024)) MiB peak middle third, $((rss_last / 1024)) MiB peak last third"$'\n'
done
printf 'soak: %s s\n%sfaults injected by the proxy: %s\n' "$seconds" "$summary" "$faults"
finish soak_test
