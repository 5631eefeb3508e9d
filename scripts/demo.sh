#!/usr/bin/env bash
# The main job on a built-in default: ingest Fashion-MNIST (Debian package
# dataset-fashion-mnist) into a shoal dataset, show it, verify it, and time a
# full sequential read of every sample.
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
echo "== shoal bench (every sample, sequential, through the format API)"
"$shoal" bench "$out" --mode sequential
