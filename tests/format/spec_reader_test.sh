#!/bin/bash
# Checks format/FORMAT.md against the code: tests/format/spec_reader.py, a
# reader written from the spec alone, must read the golden datasets and a
# fresh dataset written by format_spec_fixture, sample for sample equal to
# the values the C++ side wrote, and must reject corrupted copies.
#
#   spec_reader_test.sh FIXTURE_BINARY SOURCE_DIR
#
# Missing Python modules fail the test (they are part of the test
# dependencies; scripts/install-deps.sh installs them), they do not skip it.
set -euo pipefail

fixture=$1
src=$2
python=/usr/bin/python3
reader="$src/tests/format/spec_reader.py"

fail() {
  echo "spec_reader_test: FAIL: $*" >&2
  exit 1
}

if ! "$python" -c 'import lz4.block, zstandard, xxhash, numpy' 2>/dev/null; then
  fail "$python lacks lz4, zstandard, xxhash or numpy: run scripts/install-deps.sh"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-spec-reader.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# 1. The golden datasets of every format version, against the recipe's values.
"$fixture" golden "$tmp/golden-expect"
goldens=("$src"/tests/data/golden/v*/)
[[ -e "${goldens[0]}" ]] || fail "no golden datasets under $src/tests/data/golden"
for dir in "${goldens[@]}"; do
  "$python" "$reader" "${dir%/}" --expect "$tmp/golden-expect" ||
    fail "the golden dataset ${dir%/} does not read as FORMAT.md says"
done

# 2. A fresh dataset with every dtype, compression, tiling and ragged shapes.
"$fixture" fresh "$tmp/fresh" "$tmp/fresh-expect"
"$python" "$reader" "$tmp/fresh" --expect "$tmp/fresh-expect" --list ||
  fail "the fresh dataset does not read as FORMAT.md says"

# 3. The reader must be able to fail. Each case runs on a copy and must be
# rejected with a message containing the given words.
expect_reject() {
  local what=$1 words=$2
  shift 2
  local out
  if out=$("$python" "$reader" "$@" 2>&1); then
    fail "$what: the reader accepted it"
  fi
  [[ "$out" == *"$words"* ]] || fail "$what: message lacks '$words': $out"
  echo "rejected as expected ($what): $out"
}

# Flips one bit of byte INDEX of FILE (a Python index: -1 is the last byte).
flip() {
  "$python" - "$1" "$2" <<'EOF'
import sys
path, index = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    data = bytearray(f.read())
    data[index] ^= 0x40
    f.seek(0)
    f.write(data)
EOF
}

# The largest chunk ends with block data, whatever its header size.
cp -r "$tmp/fresh" "$tmp/bad-block"
chunk=$(find "$tmp/bad-block/chunks" -type f -printf '%s %p\n' |
  sort -n | tail -1 | cut -d' ' -f2)
flip "$chunk" -1
expect_reject "one byte flipped in a block of ${chunk#"$tmp"/bad-block/}" \
  "block checksum mismatch" "$tmp/bad-block"

# Byte 13 of a chunk is its rank, inside the checksummed header. (sed, not
# head: head exits early, and under pipefail sort's SIGPIPE fails the test.)
cp -r "$tmp/fresh" "$tmp/bad-header"
chunk=$(find "$tmp/bad-header/chunks" -type f | sort | sed -n 1p)
flip "$chunk" 13
expect_reject "the rank byte flipped in the header of ${chunk#"$tmp"/bad-header/}" \
  "header checksum mismatch" "$tmp/bad-header"

# A byte of the metadata object (inside its JSON payload).
cp -r "$tmp/fresh" "$tmp/bad-meta"
flip "$(find "$tmp/bad-meta/meta" -type f | sed -n 1p)" -20
expect_reject "one byte flipped in the metadata" "checksum mismatch" "$tmp/bad-meta"

# Edits member KEY of the .npz FILE: "change" alters one byte of its data,
# "drop" removes it.
edit_npz() {
  "$python" - "$@" <<'EOF'
import sys
import numpy as np
path, key, action = sys.argv[1:]
members = dict(np.load(path))
if action == "drop":
    del members[key]
else:
    raw = bytearray(members[key].tobytes())
    raw[-1] ^= 0x40
    members[key] = np.frombuffer(bytes(raw), members[key].dtype).reshape(
        members[key].shape)
np.savez(path, **members)
EOF
}

# A reference that differs from the data must be reported by tensor and sample.
cp -r "$tmp/fresh-expect" "$tmp/bad-expect"
edit_npz "$tmp/bad-expect/zstd/i32.npz" 3 change
expect_reject "a changed reference value" "tensor 'zstd/i32': sample 3" \
  "$tmp/fresh" --expect "$tmp/bad-expect"

# A missing reference is an error too (the comparison is two-way).
cp "$tmp/fresh-expect/zstd/i32.npz" "$tmp/bad-expect/zstd/i32.npz"
edit_npz "$tmp/bad-expect/labels.npz" 7 drop
expect_reject "a missing reference" "tensor 'labels': sample 7: no reference" \
  "$tmp/fresh" --expect "$tmp/bad-expect"

echo "spec_reader_test: PASS"
