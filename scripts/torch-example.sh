#!/usr/bin/env bash
# Builds and runs examples/torch_train.cc, the libtorch zero-copy example:
# installs Debian's libtorch-dev if it is missing (as root), configures
# BUILD_DIR (Release, -DSHOAL_BUILD_TORCH_EXAMPLE=ON, no tests or
# benchmarks), builds the example and the shoal CLI, makes a small
# ImageNet-like JPEG dataset in a temporary folder and trains on it for two
# epochs. Fails unless the example succeeds and prints its zero-copy
# verification line.
# Usage: torch-example.sh BUILD_DIR; SHOAL_TORCH_IMAGES (default 300) and
# JOBS (default: nproc) change the dataset size and build parallelism.
set -euo pipefail
build=${1:?usage: torch-example.sh BUILD_DIR}
images=${SHOAL_TORCH_IMAGES:-300}
jobs=${JOBS:-$(nproc)}

if ! dpkg -s libtorch-dev >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "torch-example: libtorch-dev is not installed; run as root to install it" >&2
    exit 1
  fi
  echo "== apt-get install libtorch-dev"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libtorch-dev
fi

echo "== configure $build (Release, SHOAL_BUILD_TORCH_EXAMPLE=ON)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSHOAL_BUILD_EXAMPLES=ON -DSHOAL_BUILD_TORCH_EXAMPLE=ON \
  -DSHOAL_BUILD_TESTS=OFF -DSHOAL_BUILD_BENCHMARKS=OFF
echo "== build shoal_torch_train and the shoal CLI"
cmake --build "$build" -j "$jobs" --target shoal_torch_train shoal_cli

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo
echo "== make-image-dataset.py: $images ImageNet-like JPEGs -> $tmp/images"
/usr/bin/python3 scripts/make-image-dataset.py "$tmp/images" --count "$images" --jobs "$jobs"
echo "== shoal ingest images"
"$build/tools/shoal" ingest images "$tmp/images" "$tmp/images.shoal"

echo
echo "== torch_train $tmp/images.shoal --epochs 2"
status=0
"$build/examples/torch_train" "$tmp/images.shoal" --epochs 2 --batch 64 --size 224 \
  | tee "$tmp/torch_train.log" || status=$?
if [ "$status" != 0 ]; then
  echo "torch-example: torch_train failed (exit $status)" >&2
  exit 1
fi
if ! grep -q '^zero-copy: verified' "$tmp/torch_train.log"; then
  echo "torch-example: torch_train did not print 'zero-copy: verified'" >&2
  exit 1
fi
echo "torch-example: OK"
