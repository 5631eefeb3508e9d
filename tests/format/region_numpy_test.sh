#!/bin/bash
# Whole and region reads of every dtype, tiled and untiled, every chunk
# codec, against NumPy slicing of the source arrays (tests/format/
# region_numpy.py makes the arrays and checks; format_region_fixture stores
# and reads them).
#
#   region_numpy_test.sh FIXTURE_BINARY SOURCE_DIR
set -euo pipefail

fixture=$1
src=$2
python=/usr/bin/python3
if ! "$python" -c 'import numpy' 2>/dev/null; then
  echo "region_numpy_test: FAIL: $python lacks numpy: run scripts/install-deps.sh" >&2
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-region-numpy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/out"
"$python" "$src/tests/format/region_numpy.py" make "$tmp"
"$fixture" "$tmp"
"$python" "$src/tests/format/region_numpy.py" check "$tmp"
