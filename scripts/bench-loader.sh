#!/usr/bin/env bash
# The loader benchmarks of issue 4 (results in benchmarks/RESULTS.md):
#  - Fashion-MNIST (raw uint8 28x28, lz4 chunks) through the loader;
#  - an ImageNet-like JPEG folder (scripts/make-image-dataset.py, real photos
#    from Debian packages) through the loader with --transform decode and
#    --transform train --size 224, each with --reference (raw TurboJPEG on
#    the same threads, same JPEGs);
#  - PyTorch's DataLoader on the same folder (benchmarks/torch_loader_bench.py).
# Usage: bench-loader.sh BUILD_DIR [THREADS]; SHOAL_BENCH_IMAGES (default
# 5000) and SHOAL_BENCH_DIR (default out/bench) change the data set.
set -euo pipefail
build=${1:-build-release}
threads=${2:-2}
shoal="$build/tools/shoal"
images=${SHOAL_BENCH_IMAGES:-5000}
dir=${SHOAL_BENCH_DIR:-out/bench}
mkdir -p "$dir"

bash scripts/install-bench-deps.sh

src=/usr/share/datasets/fashion-mnist
"$shoal" ingest idx "$src/train-images-idx3-ubyte.gz" "$src/train-labels-idx1-ubyte.gz" \
  "$dir/fashion-mnist" --overwrite >/dev/null
echo "== Fashion-MNIST, raw uint8, $threads threads"
echo "\$ shoal bench loader $dir/fashion-mnist --batch 256 --epochs 5 --threads $threads"
"$shoal" bench loader "$dir/fashion-mnist" --batch 256 --epochs 5 --threads "$threads"

if [ ! -f "$dir/images.count" ] || [ "$(cat "$dir/images.count")" != "$images" ]; then
  /usr/bin/python3 scripts/make-image-dataset.py "$dir/images" --count "$images" --jobs "$threads" --force
  echo "$images" >"$dir/images.count"
fi
"$shoal" ingest images "$dir/images" "$dir/images.shoal" --overwrite --no-check
for transform in decode train; do
  echo
  echo "== $images ImageNet-like JPEGs, --transform $transform, $threads threads"
  echo "\$ shoal bench loader $dir/images.shoal --batch 128 --epochs 4 --threads $threads --transform $transform --size 224 --reference"
  "$shoal" bench loader "$dir/images.shoal" --batch 128 --epochs 4 --threads "$threads" \
    --transform "$transform" --size 224 --reference
done

echo
echo "== PyTorch DataLoader on the same JPEG files (workers 0, 1, 2)"
echo "\$ /usr/bin/python3 benchmarks/torch_loader_bench.py $dir/images --workers 0,1,2 --transform decode,train --batch 128 --epochs 2 --raw-decode"
/usr/bin/python3 benchmarks/torch_loader_bench.py "$dir/images" --workers 0,1,2 \
  --transform decode,train --batch 128 --epochs 2 --raw-decode
