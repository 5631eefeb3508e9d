#!/bin/bash
# Every job file in configs/ run as it is, on small data put where the files
# point (out/... under a scratch directory): the ingest ones ingest, the
# loader ones load (their figures checked against the data: sample counts,
# and bytes per sample for the fixed-size transforms), flags override a file,
# --print-config loads back, and the --help of every command that takes a
# job agrees with the key table (`shoal config keys`), as configs/README.md
# does (tests/loader/config_test.cc).
#
# Usage: configs_test.sh PATH/TO/shoal SOURCE_DIR
set -u

SHOAL=${1:?usage: configs_test.sh PATH/TO/shoal SOURCE_DIR}
SRC=${2:?usage: configs_test.sh PATH/TO/shoal SOURCE_DIR}
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

# json_field FILE EXPR: evaluates EXPR on the JSON object in FILE (as j).
json() { "$PY" -c "import json,sys; j=json.load(open('$1')); print($2)"; }
expect() {  # expect WHAT GOT WANT
  [ "$2" = "$3" ] || fail "$1: got $2, want $3"
}

# ---- Small data where the configs point ----
# In job/, so that the configs' out/... does not meet run()'s $work/out.
mkdir -p job/out
cd job || exit 1
"$PY" - <<'EOF' || { echo "FAIL: cannot make the test data" >&2; exit 1; }
import os, struct
import numpy as np
from PIL import Image

rng = np.random.default_rng(3)
for c in ("cat", "dog"):
    os.makedirs(f"out/imagenet-like/{c}", exist_ok=True)
    for i in range(8):
        h, w = 60 + 7 * i, 90 + 5 * i
        px = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(px).save(f"out/imagenet-like/{c}/{i:03d}.jpg", quality=90)

def idx(array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()

open("fm-images.idx3-ubyte", "wb").write(idx(rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)))
open("fm-labels.idx1-ubyte", "wb").write(idx(rng.integers(0, 10, 300, dtype=np.uint8)))
EOF
videos="$SRC/tests/data/video"
mkdir -p out/videos/a out/videos/b
cp "$videos/nasa_13013.mp4" out/videos/a/
cp "$videos/bt709_full_range.mp4" out/videos/b/

for f in "$SRC"/configs/*.yaml; do
  run 0 "$SHOAL" config check "$f" && contains "$work/out" "ok"
done
[ "$(ls "$SRC"/configs/*.yaml | wc -l)" -eq 6 ] || fail "configs/ should hold the 6 files its README lists"

# ---- fashion-mnist.yaml: its ingest (on small IDX files), then its loader ----
run 0 "$SHOAL" ingest --config "$SRC/configs/fashion-mnist.yaml" \
  --set 'ingest.source.paths=[fm-images.idx3-ubyte, fm-labels.idx1-ubyte]' --json &&
  expect "fashion-mnist ingest samples" "$(json "$work/out" "j['samples']")" 300
run 0 "$SHOAL" info out/fashion-mnist --json && contains "$work/out" "Ankle boot"
# Per-tensor chunk compression, and a tensor the source does not make.
run 0 "$SHOAL" ingest --config "$SRC/configs/fashion-mnist.yaml" \
  --set 'ingest.source.paths=[fm-images.idx3-ubyte, fm-labels.idx1-ubyte]' \
  --set 'ingest.tensor_compression={labels: "zstd:9", images: raw}' --set ingest.dataset=fm2 &&
  run 0 "$SHOAL" info fm2 --json && "$PY" -c "
import json; t = {x['name']: x for x in json.load(open('$work/out'))['tensors']}
assert t['labels']['chunk_compression'] == 'zstd:9', t['labels']
assert t['images']['chunk_compression'] == '', t['images']" || fail "tensor_compression: $(cat "$work/out")"
run 1 "$SHOAL" ingest --config "$SRC/configs/fashion-mnist.yaml" \
  --set 'ingest.source.paths=[fm-images.idx3-ubyte, fm-labels.idx1-ubyte]' \
  --set 'ingest.tensor_compression={label: lz4}' --set ingest.dataset=fm3 &&
  contains "$work/err" "chunk compression for tensor 'label'" && contains "$work/err" "makes images, labels"
run 0 "$SHOAL" bench --config "$SRC/configs/fashion-mnist.yaml" --json &&
  # batches of 256 with drop_last, 3 epochs: one batch an epoch.
  expect "fashion-mnist bench samples" "$(json "$work/out" "j['samples']")" 768

# ---- imagefolder-ingest.yaml, then the three loaders on its dataset ----
run 0 "$SHOAL" ingest --config "$SRC/configs/imagefolder-ingest.yaml" --json &&
  expect "imagefolder ingest samples" "$(json "$work/out" "j['samples']")" 16
# train: RandomResizedCrop 224, 2 epochs, drop_last; --batch overrides 128.
run 0 "$SHOAL" bench loader --config "$SRC/configs/imagefolder-train.yaml" --batch 5 --json && {
  expect "train samples" "$(json "$work/out" "j['samples']")" 30
  expect "train bytes per sample" "$(json "$work/out" "j['bytes'] // j['samples']")" $((224 * 224 * 3 + 4))
  json "$work/out" "j['ratio_to_reference'] > 0" | grep -q True || fail "train: no reference ratio"
}
run 0 "$SHOAL" bench --config "$SRC/configs/imagefolder-eval.yaml" --json && {
  expect "eval samples" "$(json "$work/out" "j['samples']")" 16
  expect "eval bytes per sample" "$(json "$work/out" "j['bytes'] // j['samples']")" $((224 * 224 * 3 + 4))
}
# decode: every image at its own size: the bytes are the images' pixels.
want=$("$PY" -c "print(2 * sum((60 + 7 * i) * (90 + 5 * i) * 3 + 4 for i in range(8)) * 2)")
run 0 "$SHOAL" bench --config "$SRC/configs/bench-decode.yaml" --json &&
  expect "decode bytes" "$(json "$work/out" "j['bytes']")" "$want"

# ---- video-clips.yaml: ingest the videos, then 16-frame 112x112 clips ----
run 0 "$SHOAL" ingest --config "$SRC/configs/video-clips.yaml" --json &&
  expect "video ingest samples" "$(json "$work/out" "j['samples']")" 2
run 0 "$SHOAL" bench --config "$SRC/configs/video-clips.yaml" --json && {
  expect "clips" "$(json "$work/out" "j['samples']")" 2
  expect "clip bytes" "$(json "$work/out" "j['bytes'] // j['samples']")" $((16 * 112 * 112 * 3 + 4))
}

# ---- Profiles of a loader and of an ingestion, drawn as charts ----
run 0 "$SHOAL" bench --config "$SRC/configs/imagefolder-train.yaml" --set loader.epochs=40 --set loader.batch_size=4 \
  --set bench.reference=false --profile train.json --json &&
  "$PY" - "$(json "$work/out" "j['samples']")" <<'EOF' || fail "loader profile: $(head -c 600 train.json)"
import json, sys
p = json.load(open("train.json"))
assert p["version"] == 1 and p["kind"] == "loader", p.get("kind")
assert p["stages"] == ["fetch", "decode"], p["stages"]
ivs = p["intervals"]
assert len(ivs) >= 1, f"{len(ivs)} intervals"
for iv in ivs:
    for k in ("t", "samples_per_s", "mb_per_s", "busy", "wait_input", "concurrency",
              "budget_in_use", "budget_bytes", "rss_bytes", "consumer_stall"):
        assert k in iv, k
    assert 0 <= iv["consumer_stall"] <= 1.01 and iv["rss_bytes"] > 0
# The intervals add up to the samples the bench reported (within rounding).
total = sum(iv["samples_per_s"] * (iv["t"] - prev) for iv, prev in
            zip(ivs, [0.0] + [iv["t"] for iv in ivs]))
assert abs(total - int(sys.argv[1])) <= 2, (total, sys.argv[1])
EOF
rm -rf out/imagenet-like.shoal
run 0 "$SHOAL" ingest --config "$SRC/configs/imagefolder-ingest.yaml" --profile ingest.json &&
  "$PY" -c "
import json; p = json.load(open('ingest.json'))
assert p['kind'] == 'ingest' and 'read' in p['stages'], p['stages']" ||
  fail "ingest profile: $(head -c 600 ingest.json)"
if "$PY" -c 'import matplotlib' 2>/dev/null; then
  for p in train ingest; do
    "$PY" "$SRC/scripts/plot-profile.py" $p.json $p.png 2>plot.err &&
      "$PY" -c "from PIL import Image; im = Image.open('$p.png'); assert im.size[0] > 500" ||
      fail "plot-profile.py $p.json: $(cat plot.err)"
  done
else
  fail "python3-matplotlib is missing (scripts/install-deps.sh installs it)"
fi

# ---- Layering and --print-config ----
run 0 "$SHOAL" bench loader --config "$SRC/configs/imagefolder-train.yaml" --batch 7 \
  --set loader.seed=9 --print-config && {
  contains "$work/out" "batch_size: 7"
  contains "$work/out" "seed: 9"
  contains "$work/out" "kind: random_resized_crop"
  cp "$work/out" printed.yaml
}
run 0 "$SHOAL" bench --config printed.yaml --print-config && cmp -s "$work/out" printed.yaml ||
  fail "--print-config did not load back to the same job"
run 0 "$SHOAL" ingest images out/imagenet-like x.shoal --workers 2 --print-config && {
  contains "$work/out" "kind: images"
  contains "$work/out" "workers: 2"
  contains "$work/out" "dataset: x.shoal"
}
[ ! -e x.shoal ] || fail "--print-config wrote a dataset"

# ---- Strict errors reach the user with file, line and column, exit 2 ----
printf 'loader:\n  dataset: out/fashion-mnist\n  shufle: full\n' >typo.yaml
run 2 "$SHOAL" bench --config typo.yaml &&
  contains "$work/err" "typo.yaml:3:3: unknown key 'loader.shufle' (did you mean 'loader.shuffle'?)"
printf 'ingest:\n  memory_budget: lots\n' >type.yaml
run 2 "$SHOAL" ingest --config type.yaml && contains "$work/err" "type.yaml:2:18: ingest.memory_budget"
run 2 "$SHOAL" bench --config "$SRC/configs/imagefolder-train.yaml" --set loader.rank=3 &&
  contains "$work/err" "loader.rank: 3 is not below loader.world_size (1)"
run 2 "$SHOAL" bench loader --config "$SRC/configs/imagefolder-train.yaml" --batch 0 &&
  contains "$work/err" "--batch: must be a whole number from 1 to 16777216, got 0"
run 1 "$SHOAL" config check typo.yaml type.yaml && contains "$work/err" "typo.yaml:3:3"

# ---- --help agrees with the key table ----
run 0 "$SHOAL" config keys --format json && cp "$work/out" keys.json
for cmd in "bench loader" "ingest images" "ingest videos" "ingest idx" "ingest npy" "ingest"; do
  # shellcheck disable=SC2086
  run 0 "$SHOAL" $cmd --help && cp "$work/out" "help.txt" &&
    "$PY" - "$cmd" <<'EOF' || fail "$cmd --help disagrees with shoal config keys"
import json, re, sys
keys = {k["key"]: k for k in json.load(open("keys.json"))}
text = open("help.txt").read()
lines = text.splitlines()
seen = 0
for i, line in enumerate(lines):
    m = re.search(r"\[([a-z_.]+)\]\s*$", line)
    if not m or m.group(1) not in keys:
        continue
    k = keys[m.group(1)]
    seen += 1
    # The description (and the range, when the key has one) is the table's.
    if k["description"] not in line:
        sys.exit(f"{k['key']}: description differs: {line!r}")
    if k["range"] and f"({k['range']})" not in line:
        sys.exit(f"{k['key']}: range {k['range']} missing: {line!r}")
    # The default printed with the flag (the line above when wrapped).
    flag_line = line if re.match(r"\s*--", line) else lines[i - 1]
    m2 = re.search(r"=(\S+)", flag_line)
    if m2 and sys.argv[1] != "bench loader":  # the bench's batch is 256
        if m2.group(1) != k["default"] and not (k["default"] in ('""', "[]")):
            sys.exit(f"{k['key']}: default {m2.group(1)} != {k['default']}")
if seen < 5:
    sys.exit(f"only {seen} keyed flags found")
EOF
done

finish configs_test
