#!/usr/bin/env bash
# Installs the Debian packages the loader benchmarks need: those of
# scripts/install-deps.sh (which include the real photographs
# scripts/make-image-dataset.py crops its JPEGs from) plus PyTorch and
# torchvision for the reference loader benchmarks/torch_loader_bench.py, and
# PyAV for the video reference benchmarks/pyav_clip_bench.py.
# Only missing packages are installed. Root (or sudo) on Debian 12.
set -euo pipefail

exec bash "$(dirname "$0")/install-deps.sh" \
  python3-pil python3-numpy \
  python3-torch python3-torchvision python3-av
