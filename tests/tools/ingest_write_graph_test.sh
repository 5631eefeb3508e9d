#!/bin/bash
# `shoal ingest` on the write graph (loader/ingestor.h), end to end through
# the CLI: the findings of the write-graph review, each of which must be
# impossible now, and Ctrl-C with --resume.
#
#  (a) two writers into one new path at once: never both succeed; the loser
#      names the lock holder
#  (b) two --overwrite writers at once: never both report success while one
#      of them is lost
#  (c) a failed or killed --overwrite leaves the old dataset whole
#  (d) the AlreadyExists error names --overwrite
#  (e) a non-empty folder that holds no dataset is refused unless --overwrite
#  (f) a .jpg symlink loop is named and counted
#  (g) a file name that is not UTF-8 ingests, its bytes kept in path_hex
#  (h) a 108-byte IDX file claiming 2^32-1 labels fails fast in little memory
#  (i) a 4000x3000 JPEG ingests with default options and comes back as it was
#  --json: the summary's fields, pinned --workers
#  kill -9 before a new dataset's first commit
#  Ctrl-C: exit 130, the samples in and a --resume command that finishes the
#      job into the dataset an uninterrupted run makes
#
# Kill -9 at random moments is ingest_kill_test.sh.
#
# Usage: ingest_write_graph_test.sh PATH/TO/shoal
set -u
SHOAL=${1:?usage: ingest_write_graph_test.sh PATH/TO/shoal}
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

"$PY" -c 'import numpy, PIL' ||
  { echo "FAIL: $PY lacks numpy or PIL" >&2; exit 1; }
HOST=$(hostname)

# json_len DS: the dataset's len (from info --json), or "none".
json_len() {
  "$SHOAL" info "$1" --json 2>/dev/null |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["len"])' 2>/dev/null ||
    echo none
}

# Inputs: many small files (A: 300 in 3 classes; B: 200 in 2 classes), and
# 1500 larger ones that take a few seconds.
make_jpegs tiny_a 300 40 30 3 1
make_jpegs tiny_b 200 40 30 2 2
make_jpegs big 1500 480 360 10 3

# ---- (a) two writers into one new path at once ----
trials=${SHOAL_LOCK_TRIALS:-22}
refused=0
for ((t = 0; t < trials; t++)); do
  rm -rf race
  "$SHOAL" ingest images tiny_a race >out1 2>err1 &
  p1=$!
  "$SHOAL" ingest images tiny_a race >out2 2>err2 &
  p2=$!
  wait $p1; r1=$?
  wait $p2; r2=$?
  if [ "$r1" -eq 0 ] && [ "$r2" -eq 0 ]; then
    fail "(a) trial $t: both writers into one new path exited 0"
    continue
  fi
  if [ "$r1" -eq 0 ]; then winner=$p1 loser=err2 lrc=$r2
  elif [ "$r2" -eq 0 ]; then winner=$p2 loser=err1 lrc=$r1
  else
    fail "(a) trial $t: neither writer succeeded: $(cat err1 err2)"
    continue
  fi
  [ "$lrc" -eq 1 ] || fail "(a) trial $t: the loser exited $lrc"
  # The loser met the winner's lock, or (started late) its finished dataset.
  if grep -qF "is locked by another writer, pid $winner on host $HOST, started " "$loser"; then
    refused=$((refused + 1))
    contains "$loser" "running '$SHOAL ingest images tiny_a race'"
    contains "$loser" "--break-lock"
  else
    contains "$loser" "a dataset already exists"
  fi
  [ "$(json_len race)" = 300 ] || fail "(a) trial $t: the dataset has $(json_len race) samples, not 300"
  [ -e race/LOCK ] && fail "(a) trial $t: the LOCK outlived both writers"
done
verify_clean race
# Most trials overlap (each run takes far longer than starting the other).
[ "$refused" -ge $(((trials + 1) / 2)) ] ||
  fail "(a) only $refused of $trials trials had the writers overlap"
echo "(a) $trials trials, $refused refused by the lock"

# ---- (b) two --overwrite writers at once ----
classes() { "$SHOAL" info "$1" --json | "$PY" -c '
import json, sys
t = {x["name"]: x for x in json.load(sys.stdin)["tensors"]}
print(",".join(t["labels"]["class_names"]))'; }
trials=${SHOAL_OVERWRITE_TRIALS:-10}
for ((t = 0; t < trials; t++)); do
  rm -rf ow
  run 0 "$SHOAL" ingest images tiny_b ow || break
  ("$SHOAL" ingest images tiny_a ow --overwrite >out1 2>err1; echo $? >rc1; date +%s%N >end1) &
  p1=$!
  ("$SHOAL" ingest images tiny_b ow --overwrite >out2 2>err2; echo $? >rc2; date +%s%N >end2) &
  p2=$!
  wait $p1 $p2
  r1=$(cat rc1) r2=$(cat rc2)
  got="$(json_len ow) $(classes ow)"
  a="300 c0,c1,c2" b="200 c0,c1"
  if [ "$r1" -eq 0 ] && [ "$r2" -eq 0 ]; then
    # One after the other: the dataset is the one that finished last.
    if [ "$(cat end1)" -gt "$(cat end2)" ]; then want=$a; else want=$b; fi
    [ "$got" = "$want" ] ||
      fail "(b) trial $t: both --overwrite writers succeeded, but the dataset ($got) is not the last one's ($want)"
  elif [ "$r1" -eq 0 ] || [ "$r2" -eq 0 ]; then
    if [ "$r1" -eq 0 ]; then want=$a loser=err2 lrc=$r2; else want=$b loser=err1 lrc=$r1; fi
    [ "$got" = "$want" ] || fail "(b) trial $t: the dataset ($got) is not the winner's ($want)"
    [ "$lrc" -eq 1 ] || fail "(b) trial $t: the loser exited $lrc"
    contains "$loser" "is locked by another writer, pid "
    contains "$loser" "on host $HOST"
  else
    fail "(b) trial $t: neither --overwrite succeeded: $(cat err1 err2)"
  fi
  verify_clean ow
done

# ---- (c) a failed --overwrite leaves the old dataset whole ----
run 0 "$SHOAL" ingest images tiny_b old
run 0 "$SHOAL" bench loader old --digests old_before.txt --shuffle none --epochs 1
old_digest=$(dataset_digest old)
# The same images and a truncated JPEG last in sorted order: the header
# reads, the decode check fails after many chunks of the new dataset (16 KiB
# each) were written.
mkdir -p fails/zz
cp -r tiny_a/c0 tiny_a/c1 fails/
head -c 600 big/c0/00000.jpg >fails/zz/zzz.jpg
run 1 "$SHOAL" ingest images fails old --overwrite --chunk-bytes 16K &&
  contains err "fails/zz/zzz.jpg: jpeg: Premature end of JPEG file"
check_old() {  # WHAT [DEAD_PID]: DEAD_PID's lock is left, which the repair takes over
  [ "$(json_len old)" = 200 ] || fail "(c) after $1 the old dataset has $(json_len old) samples, not 200"
  only_orphans old
  run 0 "$SHOAL" bench loader old --digests old_after.txt --shuffle none --epochs 1
  cmp -s old_before.txt old_after.txt || fail "(c) after $1 the old dataset reads differently"
  run 0 "$SHOAL" verify old --repair
  if [ -n "${2:-}" ]; then
    contains err "took over the stale write lock of pid $2 on host $HOST"
    contains err "the process is gone"
  fi
  verify_clean old
  [ "$(dataset_digest old)" = "$old_digest" ] || fail "(c) after $1 the old dataset's objects changed"
}
check_old "a failed --overwrite"
# Killed mid-way, before the new dataset's first commit (there is none
# before the end: --commit-seconds 1000), once it has written 40 chunks of
# the ~300 it makes.
chunk_files() { find "$1/chunks" -type f ! -name '.tmp.*' 2>/dev/null | wc -l; }
old_chunks=$(chunk_files old)
"$SHOAL" ingest images big old --overwrite --chunk-bytes 256K --commit-seconds 1000 >out 2>err &
pid=$!
wait_for() {  # SECONDS CMD...: polls CMD every 10 ms until it succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.01
  done
}
wait_for 60 eval '[ "$(chunk_files old)" -ge $((old_chunks + 40)) ]' ||
  fail "(c) the --overwrite wrote no chunks in 60 s"
kill -9 $pid 2>/dev/null || fail "(c) the --overwrite of 1500 images ended before the kill: $(cat err)"
wait $pid 2>/dev/null
[ -e old/LOCK ] || fail "(c) the killed writer left no LOCK"
# A repair is a writer: it takes the dead writer's lock over.
check_old "a --overwrite killed mid-way" $pid
# A killed writer's lock is taken over by the next writer too.
"$SHOAL" ingest images big old --overwrite --chunk-bytes 256K --commit-seconds 1000 >out 2>err &
pid=$!
wait_for 60 eval '[ "$(chunk_files old)" -ge $((old_chunks + 40)) ]' ||
  fail "(c) the --overwrite wrote no chunks in 60 s"
kill -9 $pid 2>/dev/null || fail "(c) the --overwrite of 1500 images ended before the kill: $(cat err)"
wait $pid 2>/dev/null
run 0 "$SHOAL" ingest images tiny_a old --overwrite &&
  contains err "took over the stale write lock of pid $pid on host $HOST" &&
  contains err "the process is gone"
[ "$(json_len old)" = 300 ] || fail "(c) the --overwrite after the kill did not replace the dataset"
verify_clean old

# ---- (d) AlreadyExists names --overwrite ----
run 1 "$SHOAL" ingest images tiny_a old &&
  contains err "AlreadyExists: dataset 'file://$work/old': a dataset already exists (--overwrite replaces it, --append adds to it)"
[ "$(json_len old)" = 300 ] || fail "(d) the refused ingestion changed the dataset"

# ---- (e) a non-empty folder that is not a dataset ----
mkdir notds
echo "keep me" >notds/notes.txt
run 1 "$SHOAL" ingest images tiny_a notds &&
  contains err "dataset 'file://$work/notds' is not empty (e.g. 'notes.txt') and holds no dataset; --overwrite writes the dataset there anyway"
[ "$(ls -A notds)" = notes.txt ] || fail "(e) the refused ingestion left $(ls -A notds | tr '\n' ' ')"
run 0 "$SHOAL" ingest images tiny_a notds --overwrite && summary out 300 notds "images jpeg, labels lz4 chunks"
[ "$(cat notds/notes.txt)" = "keep me" ] || fail "(e) --overwrite into a folder lost its other files"
verify_clean notds

# ---- (f) a .jpg symlink loop ----
mkdir -p loops/a
cp tiny_a/c0/00000.jpg tiny_a/c0/00003.jpg loops/a/
ln -s self.jpg loops/a/self.jpg
ln -s two.jpg loops/a/one.jpg
ln -s one.jpg loops/a/two.jpg
run 1 "$SHOAL" ingest images loops loops_ds &&
  contains err "loops/a/one.jpg: Too many levels of symbolic links"
[ -e loops_ds/HEAD ] && fail "(f) a failed ingestion left a dataset behind"
run 0 "$SHOAL" ingest images loops loops_ds --skip-bad && {
  summary out 2 loops_ds "images jpeg, labels lz4 chunks"
  contains out "ingest: skipped 3 bad files (--skip-bad)"
  for f in one two self; do
    contains err "shoal: skipped loops/a/$f.jpg: Too many levels of symbolic links"
  done
}

# The same with --json: the skipped files are listed.
run 0 "$SHOAL" ingest images loops loops_json --skip-bad --json && "$PY" - <<'EOF' || fail "(f) --json: $(cat out)"
import json
j = json.load(open("out"))
assert j["samples"] == 2 and j["stopped"] is False, j
assert sorted(j["skipped"]) == [f"loops/a/{n}.jpg: Too many levels of symbolic links"
                                for n in ("one", "self", "two")], j["skipped"]
EOF

# ---- --json and pinned --workers ----
run 0 "$SHOAL" ingest images tiny_a json_ds --workers read=1,prepare=2,compress=1,write=3 \
  --commit-every 100 --json && "$PY" - "$work" <<'EOF' || fail "ingest --json: $(cat out)"
import json, sys
j = json.load(open("out"))
assert j["dataset"] == f"file://{sys.argv[1]}/json_ds", j["dataset"]
assert (j["samples"], j["samples_added"], j["records"], j["resumed_samples"]) == (300, 300, 300, 0), j
assert j["skipped"] == [] and j["ignored"] == 0 and j["stopped"] is False, j
assert j["commit"] == j["commits"] >= 2, j   # a new dataset: commits 1, 2, ...
assert j["stored_bytes"] > 0 and j["raw_bytes"] == 300 * (40 * 30 * 3 + 4), j  # pixels + labels
# Pinned workers: the controller is off, so it decides nothing.
assert j["decisions"] == [], j["decisions"]
stages = {s["name"]: s for s in j["stages"]}
assert [s["name"] for s in j["stages"]] == ["read", "prepare", "append", "compress", "write"], j["stages"]
assert {n: stages[n]["concurrency"] for n in ("read", "prepare", "compress", "write")} == \
    {"read": 1, "prepare": 2, "compress": 1, "write": 3}, stages
assert all(s["items"] >= 1 for s in j["stages"]), stages
EOF
run 0 "$SHOAL" info json_ds --json && contains out '"len": 300'
# Progress: redrawn in place on a terminal (script(1) gives it one), then
# erased before the summary; nothing on a pipe for a run shorter than 5 s.
script -qec "'$SHOAL' ingest images tiny_a tty_ds" /dev/null >tty.txt </dev/null ||
  fail "ingest on a terminal failed: $(cat tty.txt)"
"$PY" - "$work" <<'EOF' || fail "the progress line on a terminal: $(od -c tty.txt | head -20)"
import re, sys
t = open("tty.txt", "rb").read().decode()
lines = re.findall(r"\r(ingest: [^\r\n\x1b]*)\x1b\[K", t)
assert lines, t
assert re.fullmatch(r"ingest: 300/300 \(100%\) images, \d+ samples/s, [\d.]+ MB/s ETA 0m00s, "
                    r"read=\d+ prepare=\d+ compress=\d+ write=\d+", lines[-1]), lines
assert f"\r\x1b[Kingest: 300 samples into file://{sys.argv[1]}/tty_ds in " in t, t
EOF
run 0 "$SHOAL" ingest images tiny_a pipe_ds && [ ! -s err ] || fail "ingest printed on a pipe: $(cat err)"
# A commit lands every --commit-every rows, also when one pipeline item (up
# to 64 records) holds several such points.
commits_at_least() {  # N CMD...: CMD's --json summary counts N commits or more
  local want=$1
  shift
  "$@" >out 2>err || return 1
  "$PY" - "$want" <<'EOF'
import json, sys
n = json.load(open("out"))["commits"]
print(f"commits: {n}, wanted {sys.argv[1]}", file=sys.stderr)
sys.exit(0 if n >= int(sys.argv[1]) else 1)
EOF
}
commits_at_least 30 "$SHOAL" ingest images tiny_a every10_ds --commit-every 10 --json ||
  fail "--commit-every 10 of 300 images made fewer than 30 commits: $(cat out err)"
verify_clean every10_ds

# ---- (g) a file name that is not UTF-8 ----
mkdir names
bad_name=$(printf 'bad\xff\xfe.jpg')
cp tiny_a/c0/00000.jpg "names/$bad_name"
cp tiny_a/c1/00001.jpg names/good.jpg
run 0 "$SHOAL" ingest images names names_ds && summary out 2 names_ds "images jpeg"
# Byte order: "bad\xff..." before "good.jpg".
run 0 "$SHOAL" get names_ds images 0 --info &&
  "$PY" - <<'EOF' || fail "(g) the info of a non-UTF-8 name: $(cat out)"
import json
info = json.load(open("out"))
assert info["path_hex"] == b"bad\xff\xfe.jpg".hex(), info
assert info["path"] == "bad\\xff\\xfe.jpg", info
EOF
run 0 "$SHOAL" get names_ds images 0 --raw -o bad_back.jpg &&
  { cmp -s bad_back.jpg "names/$bad_name" || fail "(g) the sample is not the file"; }
run 0 "$SHOAL" get names_ds images 1 --info && contains out '{"path":"good.jpg"}'
run 0 "$SHOAL" info names_ds --json
# Resume checks the last committed record's name against the input again;
# here that name is not UTF-8.
mkdir names_last
cp tiny_a/c1/00001.jpg names_last/good.jpg
cp tiny_a/c0/00000.jpg "names_last/$(printf 'zz\xff\xfe.jpg')"
run 0 "$SHOAL" ingest images names_last names_last_ds && summary out 2 names_last_ds "images jpeg"
run 0 "$SHOAL" ingest images names_last names_last_ds --resume &&
  contains out "the dataset has 2 samples"

# ---- (h) a tiny IDX file claiming 2^32-1 labels ----
"$PY" - <<'EOF' || fail "cannot write the IDX files"
import gzip, struct
def idx(dims, data):
    return struct.pack(">BBBB", 0, 0, 8, len(dims)) + struct.pack(">" + "I" * len(dims), *dims) + data
open("ok-images-idx3-ubyte", "wb").write(idx([10, 2, 2], bytes(40)))
open("huge-labels-idx1-ubyte", "wb").write(idx([2**32 - 1], bytes(100)))
open("huge-images-idx3-ubyte", "wb").write(idx([2**32 - 1, 1, 1], bytes(92)))
for name in ("huge-labels-idx1-ubyte", "huge-images-idx3-ubyte"):
    with gzip.open(name + ".gz", "wb") as f:
        f.write(open(name, "rb").read())
EOF
[ "$(stat -c %s huge-labels-idx1-ubyte)" -eq 108 ] || fail "(h) the labels file is not 108 bytes"
# peak_rss CMD...: runs CMD (stdout in out, stderr in err); prints its exit
# code and peak RSS in KiB (getrusage of the child) and seconds.
peak_rss() {
  "$PY" - "$@" <<'EOF'
import resource, subprocess, sys, time
t = time.monotonic()
with open("out", "wb") as out, open("err", "wb") as err:
    rc = subprocess.run(sys.argv[1:], stdout=out, stderr=err).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, round(time.monotonic() - t, 2))
EOF
}
# What the process holds before it reads anything (a sanitizer build's
# runtime alone holds ~240 MiB): the limit is on top of it.
read -r _ base_kib _ < <(peak_rss "$SHOAL" info does-not-exist)
for pair in "ok-images-idx3-ubyte huge-labels-idx1-ubyte:huge-labels-idx1-ubyte" \
  "huge-images-idx3-ubyte huge-labels-idx1-ubyte:huge-images-idx3-ubyte" \
  "ok-images-idx3-ubyte huge-labels-idx1-ubyte.gz:huge-labels-idx1-ubyte.gz" \
  "huge-images-idx3-ubyte.gz huge-labels-idx1-ubyte.gz:huge-images-idx3-ubyte.gz"; do
  files=${pair%%:*} named=${pair##*:}
  # shellcheck disable=SC2086  # $files is two words
  read -r rc kib seconds < <(peak_rss "$SHOAL" ingest idx $files idx_ds)
  [ "$rc" -eq 1 ] || fail "(h) ingest idx $files exited $rc: $(cat err)"
  contains err "shoal: Corruption: $named: declares 4294967295 bytes of data"
  [ "$kib" -lt $((base_kib + 200 * 1024)) ] ||
    fail "(h) ingest idx $files peaked at $kib KiB, $base_kib KiB before reading"
  "$PY" -c "import sys; sys.exit(not $seconds < 5)" || fail "(h) ingest idx $files took $seconds s"
  [ -e idx_ds ] && fail "(h) ingest idx $files left idx_ds behind"
  echo "(h) ingest idx $files: exit $rc, peak RSS $((kib / 1024)) MiB, $seconds s"
done

# ---- (i) a 4000x3000 JPEG ----
mkdir large
"$PY" - <<'EOF' || fail "cannot write the large JPEG"
import numpy as np
from PIL import Image
rng = np.random.default_rng(4)
Image.fromarray(rng.integers(0, 256, size=(3000, 4000, 3), dtype=np.uint8)).save(
    "large/photo.jpg", quality=90)
EOF
run 0 "$SHOAL" ingest images large large_ds && summary out 1 large_ds "images jpeg"
run 0 "$SHOAL" get large_ds images 0 --raw -o large_raw.jpg &&
  { cmp -s large_raw.jpg large/photo.jpg || fail "(i) get --raw is not the ingested file"; }
run 0 "$SHOAL" get large_ds images 0 -o large_back.jpg &&
  { cmp -s large_back.jpg large/photo.jpg || fail "(i) get -o .jpg is not the ingested file"; }
run 0 "$SHOAL" info large_ds --json && "$PY" - <<'EOF' || fail "(i) info of the large JPEG"
import json
t = json.load(open("out"))["tensors"][0]
assert t["max_shape"] == [3000, 4000, 3] and t["sample_compression"] == "jpeg", t
EOF
verify_clean large_ds
# Decoded (36 MB, above the 8 MiB tiling threshold that stored-as-is JPEGs
# never go through), it is what PIL decodes.
run 0 "$SHOAL" get large_ds images 0 -o large.npy &&
  "$PY" - <<'EOF' || fail "(i) the decoded large JPEG differs from PIL's decode"
import numpy as np
from PIL import Image
a = np.load("large.npy")
b = np.asarray(Image.open("large/photo.jpg").convert("RGB"))
assert a.shape == b.shape == (3000, 4000, 3), (a.shape, b.shape)
d = np.abs(a.astype(np.int16) - b.astype(np.int16))
assert d.max() <= 2 and d.mean() < 0.5, (d.max(), d.mean())
EOF
run 0 "$SHOAL" verify large_ds --decode && contains out ": OK"

# ---- kill -9 of a new ingestion before its first commit ----
# (ingest_kill_test.sh kills at random moments.) The dataset must then be
# absent, or resumable from nothing.
"$SHOAL" ingest images big k1 --chunk-bytes 256K --commit-seconds 1000 >out 2>err &
pid=$!
wait_for 60 eval '[ "$(chunk_files k1)" -ge 40 ]' || fail "the ingestion into k1 wrote no chunks in 60 s"
kill -9 $pid 2>/dev/null || fail "the ingestion into k1 ended before the kill: $(cat err)"
wait $pid 2>/dev/null
if [ -e k1/HEAD ]; then
  run 0 "$SHOAL" info k1 --json && "$PY" - <<'EOF' || fail "k1 holds more than an empty dataset"
import json
d = json.load(open("out"))
assert d["commit"] == 0 and d["len"] == 0 and d["tensors"] == [], d
EOF
  only_orphans k1
  # Dataset::Create publishes an empty commit 0 before the first rows;
  # --resume of it starts from nothing.
  run 0 "$SHOAL" ingest images big k1 --chunk-bytes 256K --commit-seconds 1000 --resume &&
    summary out 1500 k1 "images jpeg, labels lz4 chunks"
  # The killed run's chunks stay orphans until a repair.
  only_orphans k1
  run 0 "$SHOAL" verify k1 --repair
  verify_clean k1
else
  run 1 "$SHOAL" info k1 && contains err "no dataset"
fi

# ---- Ctrl-C, then the printed --resume command ----
# The reference: an uninterrupted run with default options.
run 0 "$SHOAL" ingest images big ref && summary out 1500 ref "images jpeg, labels lz4 chunks"
run 0 "$SHOAL" bench loader ref --digests ref_digests.txt --shuffle none --epochs 1
ref_digest=$(dataset_digest ref)
# A dataset name a shell would split, so that the printed command must quote.
ds="it's stopped"
"$SHOAL" ingest images big "$ds" --commit-every 100 --memory-budget 16MiB >out 2>err &
pid=$!
# About a second, or less once a first commit is in (so that a fast machine
# still stops mid-way).
for ((i = 0; i < 20; i++)); do
  sleep 0.05
  commit=$("$SHOAL" info "$ds" --json 2>/dev/null | sed -n 's/^  "commit": \([0-9]*\),$/\1/p')
  [ "${commit:-0}" -ge 1 ] && break
done
kill -INT $pid 2>/dev/null || fail "Ctrl-C: the ingestion of 1500 images ended before the signal; use a larger folder"
wait $pid
rc=$?
[ "$rc" -eq 130 ] || fail "Ctrl-C: exit $rc, expected 130: $(cat err)"
contains err "shoal: stopping after the current items (again to stop at once)"
stopped_re="^shoal: stopped: ([0-9]+) samples? (is|are) in file://$work/it's stopped \\(commit ([0-9]+)\\); to continue:\$"
matches err "$stopped_re"
in=$(sed -nE "s#$stopped_re#\\1#p" err)
commit=$(sed -nE "s#$stopped_re#\\3#p" err)
resume=$(grep -A1 "^shoal: stopped: " err | tail -1)
[ "$resume" = "  $SHOAL ingest images big 'it'\\''s stopped' --commit-every 100 --memory-budget 16MiB --resume" ] ||
  fail "Ctrl-C: the printed resume command is '$resume'"
echo "Ctrl-C: stopped with ${in:-?} samples in, commit ${commit:-?}"
[ -n "$in" ] && [ "$in" -lt 1500 ] || fail "Ctrl-C did not stop the ingestion early (${in:-?} of 1500 in)"
summary out "${in:-?}" "it's stopped" "images jpeg, labels lz4 chunks"
run 0 "$SHOAL" info "$ds" --json && "$PY" - "${in:-0}" "${commit:-0}" <<'EOF' || fail "Ctrl-C: info disagrees with the stop message"
import json, sys
d = json.load(open("out"))
assert d["len"] == int(sys.argv[1]) and d["commit"] == int(sys.argv[2]), d
EOF
only_orphans "$ds"
[ -e "$ds/LOCK" ] && fail "Ctrl-C: the LOCK outlived the writer"
# The printed command, as a user pastes it.
eval "${resume# }" >out 2>err
rc=$?
[ "$rc" -eq 0 ] || fail "the printed resume command exited $rc: $(cat err)"
contains out "ingest: resumed after $in samples already in; the dataset has 1500 samples"
verify_clean "$ds"
run 0 "$SHOAL" bench loader "$ds" --digests resumed_digests.txt --shuffle none --epochs 1
cmp -s ref_digests.txt resumed_digests.txt ||
  fail "Ctrl-C + resume: the samples differ from an uninterrupted ingestion"
[ "$(dataset_digest "$ds")" = "$ref_digest" ] ||
  fail "Ctrl-C + resume: the chunks differ from an uninterrupted ingestion"

# A second Ctrl-C stops at once; the dataset is then at its last commit and
# resumes all the same.
"$SHOAL" ingest images big twice --commit-every 100 >out 2>err &
pid=$!
wait_for 60 eval '[ "$("$SHOAL" info twice --json 2>/dev/null | sed -n "s/^  \"commit\": \([0-9]*\),\$/\1/p")" -ge 1 ] 2>/dev/null' ||
  fail "the ingestion into twice made no commit in 60 s"
kill -INT $pid 2>/dev/null && sleep 0.05 && kill -INT $pid 2>/dev/null
wait $pid
rc=$?
[ "$rc" -eq 130 ] || fail "two Ctrl-C: exit $rc, expected 130: $(cat err)"
run 0 "$SHOAL" info twice
only_orphans twice
# Orphans of the abandoned writes stay until a repair (resume keeps them).
run 0 "$SHOAL" verify twice --repair
run 0 "$SHOAL" ingest images big twice --commit-every 100 --resume
verify_clean twice
[ "$(dataset_digest twice)" = "$ref_digest" ] ||
  fail "two Ctrl-C + resume: the chunks differ from an uninterrupted ingestion"

finish "ingest write graph"
