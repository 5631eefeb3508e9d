#!/usr/bin/env bash
# Installs the Debian packages the loader benchmarks need on top of
# scripts/install-deps.sh: the real photographs scripts/make-image-dataset.py
# crops its ImageNet-like JPEGs from, and PyTorch + torchvision for the
# reference loader benchmarks/torch_loader_bench.py.
# Only packages that are missing are installed, so a second run is a quick no-op.
# Must run as root (or with sudo available) on Debian 12.
set -euo pipefail

packages=(
  # photo sources of make-image-dataset.py (licences: see that script's header)
  #   /usr/share/backgrounds/*_by_*.jpg, Ubuntu 16.04 wallpaper-contest
  #   photos, CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0
  lomiri-wallpapers-16.04
  #   /usr/share/backgrounds/mate/nature/*.jpg, GPL-2+
  mate-backgrounds
  # make-image-dataset.py and the PyTorch reference loader (Debian's python3,
  # run them with /usr/bin/python3)
  python3-pil python3-numpy
  python3-torch python3-torchvision
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-bench-deps: all ${#packages[@]} Debian packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-bench-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-bench-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
