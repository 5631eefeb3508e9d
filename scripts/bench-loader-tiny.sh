#!/usr/bin/env bash
# Loader cost against the sample count (issue 13): datasets of N one-byte
# 1x1 "images" + uint8 labels (IDX, ingested with lz4 chunks), each shuffle
# mode, 2 threads, batch 1024, 1 GiB budget. Prints samples/s and the loader's
# peak RSS (getrusage in `shoal bench --json`, taken before the shuffle-quality
# report, which sorts every sample) next to the RSS of opening the dataset and
# the loader's budgeted peak (chunks and batches, bounded by the budget); what
# is left over, per sample, is the loader's state.
# Usage: bench-loader-tiny.sh BUILD_DIR [COUNTS] (default "1000000 20000000")
set -euo pipefail
build=${1:-build-release}
counts=${2:-"1000000 20000000"}
shoal="$build/tools/shoal"
dir=${SHOAL_BENCH_DIR:-out/bench}/tiny
mkdir -p "$dir"
echo "| samples | shuffle | samples/s | ÷ none | peak RSS MiB | RSS of open MiB | budgeted peak MiB | bytes/sample over open + budgeted |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|"
for n in $counts; do
  ds="$dir/ds-$n"
  if [ ! -d "$ds" ]; then
    /usr/bin/python3 - "$dir" "$n" <<'PY'
import struct, sys
import numpy as np
d, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(1)
def idx(path, a):
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, a.ndim))
        f.write(struct.pack(">" + "I" * a.ndim, *a.shape))
        f.write(a.tobytes())
idx(f"{d}/img.idx", rng.integers(0, 256, size=(n, 1, 1), dtype=np.uint8))
idx(f"{d}/lab.idx", rng.integers(0, 10, size=(n,), dtype=np.uint8))
PY
    "$shoal" ingest idx "$dir/img.idx" "$dir/lab.idx" "$ds" >/dev/null 2>&1
    rm -f "$dir/img.idx" "$dir/lab.idx"
  fi
  open=$(/usr/bin/time -f %M "$shoal" info "$ds" 2>&1 >/dev/null | tail -1)
  none=0
  for shuffle in none chunk full; do
    "$shoal" bench loader "$ds" --batch 1024 --threads 2 --shuffle "$shuffle" \
      --memory-budget 1GiB --json >"$dir/out.json" 2>/dev/null
    read -r sps rss held < <(/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(round(j["samples_per_s"]), j["peak_rss_bytes"], j["memory_peak_bytes"])' "$dir/out.json")
    [ "$shuffle" = none ] && none=$sps
    /usr/bin/python3 -c "
n, sps, none, rss, held, open_ = $n, $sps, $none, $rss, $held, $open * 1024
print(f'| {n:,} | $shuffle | {sps:,} | {sps / none:.2f} | {rss / 2**20:.0f} | {open_ / 2**20:.0f} | {held / 2**20:.0f} | {max(rss - open_ - held, 0) / n:.2f} |')"
  done
done
