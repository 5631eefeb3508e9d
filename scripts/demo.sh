#!/usr/bin/env bash
# The main job on a built-in default: ingest Fashion-MNIST (Debian package
# dataset-fashion-mnist) into a shoal dataset, show it, verify it and stream
# it through the loader; then make an ImageNet-like folder of JPEGs from real
# photos (Debian wallpaper packages), ingest it and stream it through the
# loader decoding and with the training transform, each against raw
# TurboJPEG on the same cores.
set -euo pipefail
build=${1:-build}
shoal="$build/tools/shoal"
src=/usr/share/datasets/fashion-mnist
out=${SHOAL_DEMO_DIR:-out/fashion-mnist}

[ -x "$shoal" ] || { echo "demo: $shoal is not built" >&2; exit 1; }
[ -f "$src/train-images-idx3-ubyte.gz" ] || {
  echo "demo: $src is missing; run scripts/install-deps.sh (package dataset-fashion-mnist)" >&2; exit 1; }

echo "== shoal ingest idx (Fashion-MNIST training set, lz4 chunks) -> $out"
"$shoal" ingest idx "$src/train-images-idx3-ubyte.gz" "$src/train-labels-idx1-ubyte.gz" "$out" \
  --compression lz4 --class-names fashion-mnist --overwrite
echo
echo "== shoal info"
"$shoal" info "$out"
echo
echo "== shoal verify"
"$shoal" verify "$out"
echo
echo "== shoal bench loader (the loader: 3 shuffled epochs, batches of 256, all cores)"
"$shoal" bench loader "$out" --batch 256 --epochs 3

images=${SHOAL_DEMO_IMAGES:-2000}
folder=${SHOAL_DEMO_DIR_IMAGES:-out/imagenet-like}
echo
echo "== make-image-dataset.py: $images ImageNet-like JPEGs (~500x400, q90) -> $folder"
/usr/bin/python3 scripts/make-image-dataset.py "$folder" --count "$images" --jobs 2 --force
echo
echo "== shoal ingest images (ImageFolder: class folders become labels)"
"$shoal" ingest images "$folder" "$folder.shoal" --overwrite
echo
echo "== shoal bench loader --transform decode --reference (full-size RGB decode)"
"$shoal" bench loader "$folder.shoal" --batch 128 --epochs 2 --reference
echo
echo "== shoal bench loader --transform train --size 224 --reference (random-resized-crop + flip)"
"$shoal" bench loader "$folder.shoal" --batch 128 --epochs 2 --transform train --size 224 --reference
