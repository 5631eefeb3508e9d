#!/usr/bin/env bash
# Installs the Debian packages shoal needs to build, test and run its demo,
# plus any packages named as arguments (scripts/install-bench-deps.sh passes
# the benchmarks' own). Only packages that are missing are installed, so a
# second run is a quick no-op. Must run as root (or with sudo available) on
# Debian 12.
set -euo pipefail

packages=(
  # toolchain
  g++ make cmake ninja-build pkg-config git
  # clang and its sanitizer/fuzzer runtime (make fuzz, make test-asan's fuzz runs)
  clang libclang-rt-14-dev
  # libraries
  libtbb-dev liblz4-dev libzstd-dev libxxhash-dev zlib1g-dev
  libjpeg62-turbo-dev libturbojpeg0-dev libpng-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
  libcli11-dev nlohmann-json3-dev
  # job files (configs/*.yaml)
  libyaml-cpp-dev
  # the s3:// store: HTTP (libcurl) and S3's XML responses (libxml2)
  libcurl4-openssl-dev libxml2-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-numpy python3-png libjpeg-turbo-progs
  # signed requests straight to the test S3 server (curl --aws-sigv4)
  curl
  # profile charts (scripts/plot-profile.py: make demo, make test)
  python3-matplotlib
  # ffprobe/ffmpeg: frame counts in the video tests, the video benchmarks' reference
  ffmpeg
  # Pillow's CMYK->RGB conversion, the reference of the JPEG CMYK test
  python3-pil
  # the format spec reader (tests/format/spec_reader.py): chunk blocks, checksums
  python3-lz4 python3-zstandard python3-xxhash
  # SHA-256 of decoded pixels in the PngSuite test (OpenSSL libcrypto)
  libssl-dev
  # the demo's data set (Fashion-MNIST IDX files under /usr/share/datasets/fashion-mnist)
  dataset-fashion-mnist
  # real photos the demo's ImageNet-like JPEGs are cropped from
  # (scripts/make-image-dataset.py; CC-BY/CC-BY-SA/CC0 and GPL-2+)
  lomiri-wallpapers-16.04
  mate-backgrounds
  # c-blosc, the reference of the large-image benchmark (benchmarks/large_image_bench.cc)
  libblosc-dev
  "$@"
)

# Node.js and npm run the S3 test server (s3rver, below). A machine that
# already has them (e.g. from NodeSource) keeps its own: Debian's npm
# package would conflict with it.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# The S3-compatible server of the s3:// store's tests, from the npm
# registry, in a fixed place (tests/format/s3_store_test.cc looks there).
s3rver_dir=/opt/shoal-s3rver
install_s3rver() {
  if [ -x "$s3rver_dir/node_modules/.bin/s3rver" ]; then return 0; fi
  echo "install-deps: installing s3rver (npm) into $s3rver_dir"
  local sudo_npm=""
  if [ "$(id -u)" -ne 0 ]; then sudo_npm="sudo"; fi
  $sudo_npm npm install --no-audit --no-fund --prefix "$s3rver_dir" s3rver@3.7.1
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} Debian packages present"
  install_s3rver
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_s3rver
