#!/bin/bash
# End-to-end test of `shoal ingest images` and `shoal get -o .png/.jpg`.
# Pillow (and pypng for 16-bit PNGs) write an ImageFolder tree of JPEG and
# PNG files in many color types, and are the independent reference: every
# sample read back from the dataset must equal Pillow's decode of its file,
# labels must follow the sorted class folders, info must carry the relative
# path, stored JPEGs must come back as the very same files, and bad files
# must be named (or skipped and counted with --skip-bad).
#
# Usage: ingest_images_test.sh PATH/TO/shoal
# Pillow, pypng and NumPy come from the system Python (/usr/bin/python3).
set -u

SHOAL=${1:?usage: ingest_images_test.sh PATH/TO/shoal}
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

"$PY" -c 'import numpy, PIL, png' ||
  { echo "FAIL: $PY lacks numpy, PIL or png (apt-get install python3-numpy python3-pil python3-png)" >&2; exit 1; }

# ---- Source tree: three classes, JPEG and PNG of many kinds ----
"$PY" - <<'EOF' || { echo "FAIL: cannot write the source images" >&2; exit 1; }
import os
import numpy as np
from PIL import Image

rng = np.random.default_rng(3)

def photo(h, w, c):
    # Smooth gradients plus noise: compresses like a photo, not like noise.
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)),
                     ((x + y) * 127 // max(h + w - 2, 1))], axis=-1)
    img = base[..., :c] + rng.integers(-20, 21, size=(h, w, c))
    return np.clip(img, 0, 255).astype(np.uint8)

def save_jpeg(path, h, w, gray=False, **kw):
    a = photo(h, w, 1 if gray else 3)
    Image.fromarray(a[..., 0] if gray else a).save(path, "JPEG", **kw)

os.makedirs("tree/b_dog/puppies", exist_ok=True)
os.makedirs("tree/a_cat", exist_ok=True)
os.makedirs("tree/c_bird", exist_ok=True)
os.makedirs("tree/.hidden", exist_ok=True)

save_jpeg("tree/a_cat/01.jpg", 61, 83, quality=90, subsampling=2)
save_jpeg("tree/a_cat/02.JPEG", 40, 33, quality=75, subsampling=0)
save_jpeg("tree/a_cat/03.jpg", 50, 70, gray=True, quality=85)
save_jpeg("tree/a_cat/04.jpg", 48, 64, quality=92, progressive=True)
save_jpeg("tree/b_dog/puppies/05.jpg", 17, 129, quality=60, subsampling=1)
Image.fromarray(photo(30, 40, 3)).save("tree/b_dog/06.png")
Image.fromarray(photo(31, 41, 3)).convert("RGBA").save("tree/b_dog/07.png")
Image.fromarray(photo(20, 25, 1)[..., 0]).save("tree/c_bird/08.png")
Image.fromarray(photo(22, 27, 3)).convert("P", palette=Image.ADAPTIVE).save(
    "tree/c_bird/09.png")
p = Image.fromarray(photo(23, 28, 3)).convert("P", palette=Image.ADAPTIVE)
p.save("tree/c_bird/10.png", transparency=5)
Image.fromarray(photo(24, 29, 3)).convert("LA").save("tree/c_bird/11.png")
# A PNG with a .jpg name: the format comes from the content.
Image.fromarray(photo(12, 13, 3)).save("tree/c_bird/12.jpg", "PNG")
save_jpeg("tree/.hidden/x.jpg", 8, 8)
save_jpeg("tree/c_bird/.also_hidden.jpg", 8, 8)
with open("tree/b_dog/notes.txt", "w") as f:
    f.write("not an image\n")
EOF

# The reference, in the order shoal must use: byte order of relative paths.
"$PY" - <<'EOF' || fail "cannot write the reference list"
import os
files = []
for root, dirs, names in os.walk("tree"):
    dirs[:] = [d for d in dirs if not d.startswith(".")]
    for n in names:
        if n.startswith(".") or n.endswith(".txt"):
            continue
        files.append(os.path.relpath(os.path.join(root, n), "tree"))
files.sort(key=lambda s: s.encode())
with open("expected.txt", "w") as f:
    f.write("\n".join(files) + "\n")
EOF

# compare DS N: `shoal get` of each sample equals Pillow's decode of the
# file its info names, and the labels follow the sorted class folders.
compare() {
  local ds=$1 n=$2 i
  for ((i = 0; i < n; i++)); do
    run 0 "$SHOAL" get "$ds" images "$i" -o "img$i.npy" --info || return
    cp out "info$i.json"
    if [ -n "${3:-}" ]; then
      run 0 "$SHOAL" get "$ds" labels "$i" -o "label$i.npy" || return
    fi
  done
  "$PY" - "$n" "${3:-}" <<'EOF' || fail "decoded samples of $ds differ from Pillow"
import json, sys
import numpy as np
from PIL import Image

n, labelled = int(sys.argv[1]), sys.argv[2] == "labels"
expected = open("expected.txt").read().split()
classes = sorted({p.split("/")[0] for p in expected})
bad = []
for i in range(n):
    path = json.load(open(f"info{i}.json"))["path"]
    if path != expected[i]:
        bad.append(f"sample {i}: info path {path}, expected {expected[i]}")
        continue
    im = Image.open("tree/" + path)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    ref = np.asarray(im)
    if ref.ndim == 2:
        ref = ref[..., None]
    got = np.load(f"img{i}.npy")
    if got.shape != ref.shape or not np.array_equal(got, ref):
        bad.append(f"sample {i} ({path}): shape {got.shape} vs {ref.shape}, "
                   f"max diff {np.abs(got.astype(int) - ref).max() if got.shape == ref.shape else '-'}")
    if labelled:
        label = int(np.load(f"label{i}.npy"))
        if classes[label] != path.split("/")[0]:
            bad.append(f"sample {i}: label {label}, folder {path.split('/')[0]}")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
}

count=$(wc -l <expected.txt)

# ---- keep: a mixed folder stores every file as it came ----
# The closing summary: samples added, and how each tensor stores them (a
# mix of JPEG and PNG kept as they came: sample_compression image); the
# class count is in `info` (below), the ignored notes.txt on a line of its own.
run 0 "$SHOAL" ingest images tree ds_keep && {
  summary out "$count" ds_keep "images image, labels lz4 chunks"
  contains out "ingest: ignored 1 file of another kind"
  [ "$(wc -l <out)" -eq 2 ] || fail "ingest printed more than the summary and the ignored line: $(cat out)"
}
run 0 "$SHOAL" info ds_keep --json && "$PY" - <<EOF || fail "info of ds_keep"
import json
d = json.load(open("out"))
t = {x["name"]: x for x in d["tensors"]}
assert t["images"]["sample_compression"] == "image", t["images"]
assert t["images"]["length"] == $count
assert t["labels"]["class_names"] == ["a_cat", "b_dog", "c_bird"], t["labels"]
EOF
compare ds_keep "$count" labels
# Stored files come back bit for bit; PNG stays PNG.
run 0 "$SHOAL" get ds_keep images 0 -o first.jpg && cmp -s first.jpg tree/a_cat/01.jpg ||
  fail "get -o .jpg of a stored JPEG is not the ingested file"
png_index=$(grep -n '^b_dog/06.png$' expected.txt | cut -d: -f1)
run 0 "$SHOAL" get ds_keep images $((png_index - 1)) -o six.png && cmp -s six.png tree/b_dog/06.png ||
  fail "get -o .png of a stored PNG is not the ingested file"
# A JPEG written as PNG is the decoded pixels, losslessly.
run 0 "$SHOAL" get ds_keep images 0 -o first.png && "$PY" - <<'EOF' || fail "JPEG sample written as PNG differs"
import numpy as np
from PIL import Image
assert np.array_equal(np.asarray(Image.open("first.png")), np.asarray(Image.open("tree/a_cat/01.jpg")))
EOF
run 0 "$SHOAL" get ds_keep images 0 -o q50.jpg --quality 50 && "$PY" - <<'EOF' || fail "re-encoded JPEG"
from PIL import Image
im = Image.open("q50.jpg")
assert im.size == (83, 61) and im.format == "JPEG", (im.size, im.format)
EOF
run 2 "$SHOAL" get ds_keep images 0 -o x.bin && contains err "must end in .npy, .png, .jpg or .jpeg"
run 1 "$SHOAL" get ds_keep labels 0 -o label.png && contains err "an image file needs [H, W] or [H, W, C]"
rgba_index=$(grep -n '^b_dog/07.png$' expected.txt | cut -d: -f1)
run 1 "$SHOAL" get ds_keep images $((rgba_index - 1)) -o rgba.jpg && contains err "as jpeg"
run 0 "$SHOAL" verify ds_keep --decode

# ---- png: JPEGs are converted losslessly ----
run 0 "$SHOAL" ingest images tree ds_png --compression png &&
  summary out "$count" ds_png "images png, labels lz4 chunks"
# The 5 JPEGs became PNGs: every stored sample is a PNG file.
for i in $(seq 0 $((count - 1))); do
  run 0 "$SHOAL" get ds_png images "$i" --raw -o "png_raw$i.bin" || break
  [ "$(head -c 8 "png_raw$i.bin" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
    fail "sample $i of ds_png is not stored as a PNG"
done
compare ds_png "$count" labels

# ---- jpeg: a PNG with alpha cannot become a JPEG ----
run 1 "$SHOAL" ingest images tree ds_jpeg --compression jpeg --quality 80 &&
  contains err "tree/b_dog/07.png" && contains err "converting png"
[ -e ds_jpeg/HEAD ] && fail "a failed ingestion left a dataset behind"
run 0 "$SHOAL" ingest images tree ds_jpeg --compression jpeg --quality 80 --skip-bad &&
  summary out $((count - 3)) ds_jpeg "images jpeg, labels lz4 chunks" &&
  contains out "ingest: skipped 3 bad files (--skip-bad)" && contains err "skipped tree/b_dog/07.png" &&
  contains err "skipped tree/c_bird/10.png" && contains err "skipped tree/c_bird/11.png"
run 0 "$SHOAL" info ds_jpeg --json && "$PY" - <<EOF || fail "info of ds_jpeg"
import json
t = {x["name"]: x for x in json.load(open("out"))["tensors"]}
assert t["images"]["sample_compression"] == "jpeg" and t["images"]["length"] == $count - 3, t["images"]
EOF

# ---- bad files ----
mkdir -p bad/x bad/y
cp tree/a_cat/01.jpg bad/x/good.jpg
head -c 400 tree/a_cat/04.jpg >bad/x/truncated.jpg
echo "plain text" >bad/y/fake.png
run 1 "$SHOAL" ingest images bad ds_bad && contains err "bad/y/fake.png: not a JPEG or PNG file despite its name"
run 0 "$SHOAL" ingest images bad ds_bad --skip-bad && summary out 1 ds_bad "images jpeg, labels lz4 chunks" &&
  contains out "ingest: skipped 2 bad files (--skip-bad)" && contains err "skipped bad/y/fake.png" &&
  contains err "skipped bad/x/truncated.jpg: jpeg: Premature end of JPEG file"
rm bad/y/fake.png
run 1 "$SHOAL" ingest images bad ds_bad2 && contains err "bad/x/truncated.jpg"
[ -e ds_bad2/HEAD ] && fail "a failed ingestion left a dataset behind"
# Without the decode check, a file whose header reads is stored, and
# `verify --decode` is what finds the damage.
run 0 "$SHOAL" ingest images bad ds_nocheck --no-check &&
  summary out 2 ds_nocheck "images jpeg, labels lz4 chunks"
run 1 "$SHOAL" verify ds_nocheck --decode && contains out "images"

# ---- flat folder: images only, no labels ----
mkdir flat
cp tree/a_cat/01.jpg tree/a_cat/03.jpg flat/
# No subfolders, no classes: the summary names no labels tensor.
run 0 "$SHOAL" ingest images flat ds_flat && summary out 2 ds_flat "images jpeg"
run 1 "$SHOAL" get ds_flat labels 0 -o l.npy && contains err "no tensor 'labels'"
# Images next to class folders would have no class.
mkdir flat/sub && cp tree/a_cat/02.JPEG flat/sub/
run 1 "$SHOAL" ingest images flat ds_flat2 && contains err "also images at its top level"
mkdir empty
run 1 "$SHOAL" ingest images empty ds_empty && contains err "no JPEG or PNG files under"
run 1 "$SHOAL" ingest images no_such_dir ds_none && contains err "is not a folder"
run 2 "$SHOAL" ingest images tree ds_q --quality 80 && contains err "needs --compression jpeg"
run 1 "$SHOAL" ingest images tree ds_keep && contains err "already exists"

# ---- 16-bit PNGs: a uint16 tensor, equal to pypng's decode ----
mkdir -p deep/a
"$PY" - <<'EOF' || fail "cannot write 16-bit PNGs"
import numpy as np, png
rng = np.random.default_rng(5)
for i, planes in enumerate([1, 3, 4]):
    a = rng.integers(0, 65536, size=(9, 11 * planes), dtype=np.uint16)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[planes]
    png.Writer(11, 9, bitdepth=16, greyscale=planes == 1, alpha=planes == 4).write(
        open(f"deep/a/{i}.png", "wb"), a.tolist())
    np.save(f"deep_ref{i}.npy", a.reshape(9, 11, planes))
EOF
run 0 "$SHOAL" ingest images deep ds_deep && summary out 3 ds_deep "images png, labels lz4 chunks"
for i in 0 1 2; do
  run 0 "$SHOAL" get ds_deep images $i -o deep$i.npy
done
"$PY" - <<'EOF' || fail "16-bit samples differ from pypng"
import numpy as np
for i in range(3):
    got, ref = np.load(f"deep{i}.npy"), np.load(f"deep_ref{i}.npy")
    assert got.dtype == np.uint16 and np.array_equal(got, ref), i
EOF
cp tree/a_cat/01.jpg deep/a/
run 1 "$SHOAL" ingest images deep ds_deep2 && contains err "mixes 8-bit images with 16-bit PNGs"

finish "ingest images"
