#!/bin/bash
# End-to-end test of the `shoal` CLI: small IDX files made with NumPy are
# ingested, described, read back sample by sample and compared with the
# source arrays, verified, corrupted and verified again; usage errors and a
# missing dataset must give the documented exit codes and messages.
#
# Usage: cli_test.sh PATH/TO/shoal
# NumPy comes from the system Python (/usr/bin/python3), not whatever
# python3 is first on PATH (a virtualenv may lack NumPy).
set -u

SHOAL=${1:?usage: cli_test.sh PATH/TO/shoal}
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

py() { "$PY" -c "$@" || fail "python check failed: $1"; }

"$PY" -c 'import numpy' || { echo "FAIL: $PY has no numpy" >&2; exit 1; }

# ---- Source data: 1000 28x28 images and labels, as IDX, plain and gzip ----
"$PY" - <<'EOF' || { echo "FAIL: cannot write IDX files" >&2; exit 1; }
import gzip
import struct
import numpy as np

rng = np.random.default_rng(7)
images = rng.integers(0, 256, size=(1000, 28, 28), dtype=np.uint8)
labels = rng.integers(0, 10, size=1000, dtype=np.uint8)
np.save("src_images.npy", images)
np.save("src_labels.npy", labels)

def idx(array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()

open("images.idx3-ubyte", "wb").write(idx(images))
open("labels.idx1-ubyte", "wb").write(idx(labels))
with gzip.open("images.idx3-ubyte.gz", "wb") as f:
    f.write(idx(images))
with gzip.open("labels.idx1-ubyte.gz", "wb") as f:
    f.write(idx(labels))
open("short_labels.idx1-ubyte", "wb").write(idx(labels[:999]))
EOF

# ---- ingest: gzip images, plain labels; small chunks so there are many ----
run 0 "$SHOAL" ingest idx images.idx3-ubyte.gz labels.idx1-ubyte ds \
  --compression lz4 --chunk-bytes 64k --class-names mnist &&
  summary out 1000 ds "images lz4 chunks, labels lz4 chunks"

# ---- info ----
run 0 "$SHOAL" info ds && {
  contains out "images"
  contains out "class_label"
  contains out "[28, 28, 1]"
  contains out "lz4"
}
run 0 "$SHOAL" info ds --json &&
  py '
import json
info = json.load(open("out"))
assert info["len"] == 1000 and info["max_len"] == 1000, info
assert info["commit"] >= 1, info
t = {x["name"]: x for x in info["tensors"]}
assert sorted(t) == ["images", "labels"], sorted(t)
im, lb = t["images"], t["labels"]
assert im["htype"] == "image" and im["dtype"] == "uint8", im
assert im["min_shape"] == [28, 28, 1] and im["max_shape"] == [28, 28, 1], im
assert im["chunk_compression"] == "lz4" and im["length"] == 1000, im
assert im["chunks"] > 1 and im["raw_bytes"] == 1000 * 784, im
assert lb["htype"] == "class_label" and lb["dtype"] == "uint32", lb
assert lb["min_shape"] == [] and lb["class_names"] == [str(i) for i in range(10)], lb
'
run 0 "$SHOAL" info ds --json --hidden &&
  py '
import json
names = [x["name"] for x in json.load(open("out"))["tensors"]]
assert "_shape/images" in names and "_info/images" in names, names
'

# ---- get: decoded samples, raw bytes, info ----
for i in 0 1 499 998 999; do
  run 0 "$SHOAL" get ds images "$i" -o "img_$i.npy" &&
    py "
import numpy as np
a = np.load('img_$i.npy')
src = np.load('src_images.npy')[$i]
assert a.dtype == np.uint8 and a.shape == (28, 28, 1), (a.dtype, a.shape)
assert np.array_equal(a[:, :, 0], src)
"
  run 0 "$SHOAL" get ds labels "$i" -o "lbl_$i.npy" &&
    py "
import numpy as np
a = np.load('lbl_$i.npy')
assert a.dtype == np.uint32 and a.shape == (), (a.dtype, a.shape)
assert int(a) == int(np.load('src_labels.npy')[$i])
"
done
run 0 "$SHOAL" get ds images 123 --raw -o raw.bin &&
  py '
import numpy as np
assert open("raw.bin", "rb").read() == np.load("src_images.npy")[123].tobytes()
'
# IDX samples have no per-sample info any more: where they came from is
# recorded once, in each tensor's info, which `info` shows.
run 0 "$SHOAL" get ds images 42 --info &&
  py '
import json
assert json.load(open("out")) == {}, open("out").read()
'
run 0 "$SHOAL" info ds --json &&
  py '
import json
t = {x["name"]: x for x in json.load(open("out"))["tensors"]}
assert t["images"]["info"] == {"source": "idx", "file": "images.idx3-ubyte.gz", "samples": 1000}, t["images"]
assert t["labels"]["info"] == {"source": "idx", "file": "labels.idx1-ubyte", "samples": 1000}, t["labels"]
'
run 0 "$SHOAL" info ds &&
  contains out 'images: {"file":"images.idx3-ubyte.gz","samples":1000,"source":"idx"}'
run 1 "$SHOAL" get ds images 1000 -o x.npy && {
  contains err "shoal: "
  contains err "'images'"
  contains err "1000 samples"
}
run 1 "$SHOAL" get ds imagez 0 -o x.npy && {
  contains err "imagez"
  contains err "images, labels"
}

# ---- bench ----
run 0 "$SHOAL" bench loader ds --json &&
  py '
import json
b = json.load(open("out"))
assert b["samples"] == 1000 and b["bytes"] == 1000 * (784 + 4), b
for k in ("samples_per_s", "mb_per_s", "seconds"):
    assert b[k] > 0, b
'
run 0 "$SHOAL" bench read ds --order random --samples 1500 --seed 3 --tensors images --json &&
  py '
import json
b = json.load(open("out"))
assert b["samples"] == 1500 and b["bytes"] == 1500 * 784 and b["tensors"] == ["images"], b
'
run 0 "$SHOAL" bench loader ds && contains out "samples/s" && contains out "consumer stalled"
run 0 "$SHOAL" bench read ds --order sequential --json &&
  py '
import json
b = json.load(open("out"))
assert b["order"] == "sequential" and b["samples"] == 1000, b
'
# The loader mode: every sample once per epoch, the documented JSON keys,
# and digests that do not depend on the thread count.
run 0 "$SHOAL" bench loader ds --batch 64 --epochs 2 --seed 5 --threads 1 --digests d1.txt --json &&
  py '
import json
b = json.load(open("out"))
assert b["mode"] == "loader" and b["samples"] == 2000 and b["batches"] == 32, b
assert b["bytes"] == 2000 * (784 + 4), b
for k in ("samples_per_s", "mb_per_s", "peak_rss_bytes"):
    assert b[k] > 0, b
assert 0 <= b["stall_fraction"] <= 1, b
assert [s["name"] for s in b["stages"]] == ["feeder", "fetch", "decode"], b
q = b["shuffle"]
assert q["mode"] == "chunk" and 0 <= q["mean_displacement"] < 1 and -1 <= q["spearman"] <= 1, q
assert 1 <= q["classes_per_batch"] <= 10, q
'
run 0 "$SHOAL" bench loader ds --batch 64 --epochs 2 --seed 5 --threads 2 --digests d2.txt
cmp -s d1.txt d2.txt || fail "digests differ between 1 and 2 threads"
py '
import numpy as np
lines = open("d1.txt").read().split("\n")[:-1]
assert len(lines) == 32, len(lines)
images = np.load("src_images.npy")
for epoch in (0, 1):
    idx = [int(i) for l in lines if l.split()[0] == str(epoch) for i in l.split()[3].split(",")]
    assert sorted(idx) == list(range(1000)), "epoch %d is not a permutation" % epoch
'
run 0 "$SHOAL" bench loader ds --batch 64 --seed 6 --digests d3.txt
cmp -s d1.txt d3.txt && fail "another seed gave the same batches"
run 2 "$SHOAL" bench loader ds --rank 2 --world-size 2
run 2 "$SHOAL" bench loader ds --samples 10
# Out-of-range numbers: a readable range, not DBL_MAX; threads are capped.
run 2 "$SHOAL" bench loader ds --batch 0 && contains err "--batch: must be a whole number from 1 to 16777216, got 0"
run 2 "$SHOAL" bench loader ds --threads 100000 && contains err "from 0 to 256, got 100000"
run 2 "$SHOAL" bench loader ds --memory-budget 1 && contains err "--memory-budget: must be a size from 1MiB to 1TiB, got 1"
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds9 --commit-every -1 && contains err "--commit-every: must be a whole number from 0"
run 1 "$SHOAL" bench loader ds --tensors labels --transform train && contains err "needs an image tensor"
# The IDX images are pixels: a random crop reads each sample's box.
run 0 "$SHOAL" bench loader ds --transform crop --size 20 --batch 100 --json &&
  py '
import json
r = json.loads(open("out").read())
# The crops, and the labels (uint32) beside them.
assert r["samples"] == 1000 and r["bytes"] == 1000 * (20 * 20 * 3 + 4), r
'
run 1 "$SHOAL" bench loader ds --transform crop --size 29 && contains err "random crop needs an image at least that large, this one is 28x28"

# ---- verify, then corrupt one chunk ----
run 0 "$SHOAL" verify ds && contains out ": OK"
# shoal copy: to another place; the copy
# verifies and reads back the same samples; a second run keeps everything.
run 0 "$SHOAL" copy ds ds_copy --threads 3 && contains out "copied" &&
  run 0 "$SHOAL" verify ds_copy && contains out ": OK"
run 0 "$SHOAL" get ds images 17 -o a17.npy && run 0 "$SHOAL" get ds_copy images 17 -o b17.npy &&
  { cmp -s a17.npy b17.npy || fail "copy: sample 17 differs"; }
run 0 "$SHOAL" copy ds ds_copy && contains out "0 copied"
run 1 "$SHOAL" copy no_such_ds elsewhere && contains err "no_such_ds"

# Plain images, gzip labels, zstd with a level; overwrite rules.
run 0 "$SHOAL" ingest idx images.idx3-ubyte labels.idx1-ubyte.gz ds2 \
  --compression zstd --level 3 &&
  summary out 1000 ds2 "images zstd:3 chunks, labels zstd:3 chunks"
run 0 "$SHOAL" get ds2 images 7 -o z.npy &&
  py '
import numpy as np
assert np.array_equal(np.load("z.npy")[:, :, 0], np.load("src_images.npy")[7])
'
run 0 "$SHOAL" get ds2 images 7 --info && contains out "{}"
run 1 "$SHOAL" ingest idx images.idx3-ubyte ds2 && contains err "already exists"
run 0 "$SHOAL" ingest idx images.idx3-ubyte ds2 --overwrite &&
  summary out 1000 ds2 "images lz4 chunks"
run 0 "$SHOAL" info ds2 --json &&
  py '
import json
names = [x["name"] for x in json.load(open("out"))["tensors"]]
assert names == ["images"], names
'

# The largest chunk object is an images chunk; flip a byte in its middle.
chunk=$(cd ds && find chunks -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
"$PY" - "ds/$chunk" <<'EOF'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0x5A
open(path, "wb").write(data)
EOF
run 1 "$SHOAL" verify ds && {
  contains out "$chunk"
  contains out "problem"
}
# --quiet keeps the problems (only progress and summary go): the exit
# status alone would not say what is wrong.
run 1 "$SHOAL" verify ds --quiet && {
  contains out "$chunk"
  if grep -q "problem" out; then fail "verify --quiet printed its summary"; fi
}

# ---- input errors (exit 1) ----
run 1 "$SHOAL" ingest idx images.idx3-ubyte short_labels.idx1-ubyte ds3 &&
  contains err "1000 images"
[ ! -e ds3 ] || fail "a failed ingest left ds3 behind"
run 1 "$SHOAL" ingest idx labels.idx1-ubyte ds3 && contains err "images must"
run 1 "$SHOAL" ingest idx images.idx3-ubyte labels.idx1-ubyte ds3 \
  --class-names a,b,c && contains err "class name"
run 1 "$SHOAL" ingest idx no_such_file.gz ds3 && contains err "no_such_file"
run 1 "$SHOAL" info "$work/missing" && contains err "no dataset"
[ ! -e "$work/missing" ] || fail "info created the missing dataset's directory"
run 1 "$SHOAL" verify "$work/missing" && contains err "no dataset"
run 1 "$SHOAL" get "$work/missing" images 0 -o x.npy && contains err "no dataset"

# ---- usage errors (exit 2) ----
run 2 "$SHOAL"
run 2 "$SHOAL" frobnicate
run 2 "$SHOAL" ingest
run 2 "$SHOAL" ingest idx images.idx3-ubyte
run 2 "$SHOAL" ingest idx a b c d
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --compression brotli
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --compression lz4 --level 3
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --compression zstd --level 99
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --class-names mnist
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --chunk-bytes 12
# The write graph's flags, checked before anything is written.
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --overwrite --append && contains err "excludes"
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --append --resume && contains err "excludes"
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --overwrite --resume && contains err "excludes"
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --workers 0 && contains err "N or stage=N"
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --workers read=2,prepare && contains err "N or stage=N"
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --workers append=2 &&
  contains err "no parallel stage 'append' (stages: read, prepare, compress, write)"
run 2 "$SHOAL" ingest idx images.idx3-ubyte ds4 --memory-budget 1k
run 2 "$SHOAL" get ds images
run 2 "$SHOAL" get ds images 1
run 2 "$SHOAL" get ds images -1 -o x.npy
run 2 "$SHOAL" get ds images 1 --raw --info
run 2 "$SHOAL" bench read ds --order sideways
run 2 "$SHOAL" bench ds && contains err "not expected: ds"
run 2 "$SHOAL" bench && contains err "give a subcommand (loader, read) or --config"
run 2 "$SHOAL" ingest && contains err "give a source (images, videos, idx, npy) or --config"
run 2 "$SHOAL" info ds --no-such-flag && contains err "shoal: "
[ ! -e ds4 ] || fail "a usage error created ds4"

# ---- help and version (exit 0) ----
run 0 "$SHOAL" --version && contains out "shoal "
for cmd in "" ingest "ingest idx" "ingest images" info get verify bench; do
  # shellcheck disable=SC2086  # $cmd is meant to split
  run 0 "$SHOAL" $cmd --help && contains out "Usage:"
done

finish "cli_test"
