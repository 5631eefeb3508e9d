#!/bin/bash
# The loader's memory budget seen from outside: the peak RSS of `shoal bench`
# (getrusage, in its --json) over a 64 MB dataset with a 16 MiB budget stays
# within that budget (plus slack) of the peak RSS of the same command on a
# one-chunk dataset; with a 1 GiB budget and deep prefetch the same run
# takes far more, which shows the measurement can tell them apart.
#
# Usage: bench_memory_test.sh PATH/TO/shoal
set -u
SHOAL=${1:?usage: bench_memory_test.sh PATH/TO/shoal}
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

"$PY" - <<'EOF2' || { echo "FAIL: cannot write IDX files" >&2; exit 1; }
import struct
import numpy as np
def idx(path, array):
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.tobytes())
rng = np.random.default_rng(1)
# Noise, so that lz4 keeps the chunks near their 8 MiB.
idx("big.idx", rng.integers(0, 256, size=(1000, 256, 256), dtype=np.uint8))
idx("small.idx", rng.integers(0, 256, size=(16, 256, 256), dtype=np.uint8))
EOF2
run 0 "$SHOAL" ingest idx big.idx big --chunk-bytes 8M
run 0 "$SHOAL" ingest idx small.idx small --chunk-bytes 8M

# A budget below one batch (64 x 64 KiB): the run goes on, each batch made
# alone, and says so.
run 0 "$SHOAL" bench loader big --batch 64 --shuffle none --memory-budget 1MiB &&
  contains err "more than --memory-budget" && contains out "1000 samples"

rss() { "$PY" -c 'import json; print(json.load(open("out"))["peak_rss_bytes"])'; }
run 0 "$SHOAL" bench loader small --batch 16 --shuffle none --memory-budget 16MiB --json && base=$(rss)
run 0 "$SHOAL" bench loader big --batch 16 --shuffle none --memory-budget 16MiB --json && small_budget=$(rss)
accounted=$("$PY" -c 'import json; print(json.load(open("out"))["memory_peak_bytes"])')
run 0 "$SHOAL" bench loader big --batch 256 --shuffle none --memory-budget 1GiB --json && large_budget=$(rss)
"$PY" - "$base" "$small_budget" "$large_budget" "$accounted" <<'EOF2' || fail "peak RSS does not follow the budget"
import sys
base, small, large, accounted = map(int, sys.argv[1:])
MiB = 1 << 20
print(f"peak RSS: one-chunk dataset {base / MiB:.1f} MiB, 16 MiB budget {small / MiB:.1f} MiB, "
      f"1 GiB budget {large / MiB:.1f} MiB; accounted peak {accounted / MiB:.1f} MiB")
assert accounted <= 16 * MiB, "accounted memory passed the budget"
# The budget, plus one 8 MiB chunk being read and allocator slack.
assert small - base <= 16 * MiB + 12 * MiB, "RSS grew past the budget"
assert large - base > 2 * (small - base), "the large budget did not take more memory"
EOF2
finish "bench memory"
