#!/usr/bin/env bash
# Runs the libFuzzer targets of a fuzz build for SECONDS each (all of them,
# or those named in FUZZ_TARGETS, e.g. "format image"), one after another.
#
# Each target starts from its committed corpus (tests/fuzz/corpus/NAME) and
# the seeds made below from real files; what it finds new goes into the
# corpus, which is then minimized (-merge=1) and left for committing, and a
# crash's input into tests/fuzz/crashes/NAME (fix it, keep the file: `make
# test` replays both folders). Every run appends a line to
# tests/fuzz/runs.tsv: date, target, seconds, executions, coverage (cov: and
# ft: of libFuzzer's last line), corpus files; tests/fuzz/README.md totals
# them.
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-60}
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
# Seeds: the golden dataset's objects for the format decoders, the
# conformance images for the image decoders. Files share names across
# folders, so they are numbered.
seed() {  # seed DIR SOURCE...
  mkdir -p "$1"
  local i=0 f
  for f in $(find "${@:2}" -type f \( -name '*.jpg' -o -name '*.png' -o -path '*golden*' \)); do
    cp "$f" "$1/seed$i"; i=$((i+1))
  done
}
seed "$corpus/format" "$root/tests/data/golden"
seed "$corpus/image" "$root/tests/data/jpeg" "$root/tests/data/pngsuite"
# Tiny videos (32x32, 8-12 frames) in the containers and codecs the tests
# use: H.264 with B-frames, an open GOP and a B-pyramid, VP9, MJPEG, MPEG-4
# Part 2. The test videos in tests/data (which `make test` replays) take
# ~75 ms an input to probe and decode; these take ~2 ms, so a run reaches
# the million executions issue 18 asks for.
mkdir -p "$corpus/video"
tiny() {  # tiny NAME SIZE FRAMES ENCODER-ARGS...
  ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc=size=$2:rate=10" \
    -frames:v "$3" "${@:4}" "$corpus/video/$1"
}
tiny h264.mp4 32x32 12 -c:v libx264 -g 4 -bf 2 -pix_fmt yuv420p
tiny h264-open-gop.mkv 48x32 12 -c:v libx264 -g 6 -bf 3 -x264-params open-gop=1:b-pyramid=2
tiny faststart.mp4 32x32 12 -c:v libx264 -g 4 -bf 2 -movflags +faststart
tiny vp9.webm 32x32 10 -c:v libvpx-vp9 -g 5
tiny mjpeg.mov 32x32 8 -c:v mjpeg
tiny mpeg4.avi 32x32 12 -c:v mpeg4 -g 4 -bf 1
# Ingestion inputs: the first byte picks the parser (0 .npy, 1 IDX, 2 YAML
# job, 3 --workers spec), the rest is a real input of that kind.
mkdir -p "$corpus/ingest"
/usr/bin/python3 - "$corpus/ingest" <<'PY'
import gzip, io, struct, sys
import numpy as np
out = sys.argv[1]
def put(name, kind, data):
    open(f"{out}/{name}", "wb").write(bytes([kind]) + data)
for i, a in enumerate([np.arange(12, dtype=np.uint8).reshape(3, 4),
                       np.zeros((2, 3, 4), dtype=np.float32),
                       np.arange(5, dtype=">i4"), np.ones((2, 2), order="F")]):
    b = io.BytesIO(); np.save(b, a); put(f"npy{i}", 0, b.getvalue())
idx = struct.pack(">HBB", 0, 8, 3) + struct.pack(">III", 2, 3, 4) + bytes(24)
put("idx0", 1, idx)
put("idx1", 1, gzip.compress(idx))
put("idx2", 1, struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 5) + bytes(range(5)))
put("workers0", 3, b"read=2,prepare=3")
PY
i=0
for f in "$root"/configs/*.yaml; do
  { printf '\x02'; cat "$f"; } >"$corpus/ingest/yaml$i"; i=$((i+1))
done
# S3's answers as servers send them, and a request's fields to sign.
mkdir -p "$corpus/s3"
cat >"$corpus/s3/list" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>ds/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken><Contents><Key>ds/HEAD</Key><LastModified>2026-12-04T12:00:00.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>27</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>ds/chunks/0/a%20b</Key><Size>8388608</Size></Contents></ListBucketResult>
XML
cat >"$corpus/s3/error" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><Key>ds/HEAD</Key><RequestId>4442587FB7D0A2F9</RequestId><HostId>x</HostId></Error>
XML
cat >"$corpus/s3/upload" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>ds/big</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>
XML
printf 'ds/chunks/0/a b\nlist-type\n2\nx-amz-date\n20260101T000000Z\nsecret' >"$corpus/s3/request"
log="$root/tests/fuzz/runs.tsv"
[ -f "$log" ] || printf 'date\ttarget\tseconds\texecutions\tcov\tft\tcorpus_files\n' >"$log"
for fuzzer in "$build"/tests/fuzz/shoal_*_fuzz; do
  name=$(basename "$fuzzer" _fuzz); name=${name#shoal_}
  if [ -n "${FUZZ_TARGETS:-}" ] && ! grep -qw "$name" <<<"$FUZZ_TARGETS"; then
    continue
  fi
  keep="$root/tests/fuzz/corpus/$name"
  crashes="$root/tests/fuzz/crashes/$name"
  mkdir -p "$keep" "$crashes"
  echo "== $(basename "$fuzzer") for ${seconds}s"
  out=$(mktemp)
  status=0
  ASAN_OPTIONS=detect_leaks=1 "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$keep" "$corpus/$name" 2>&1 | tee "$out" | grep -E "DONE|ERROR|SUMMARY|stat::" || status=1
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$out" | grep -oE '[0-9]+$' || echo 0)
  cov=$(grep -oE 'cov: [0-9]+' "$out" | tail -1 | grep -oE '[0-9]+' || echo 0)
  ft=$(grep -oE 'ft: [0-9]+' "$out" | tail -1 | grep -oE '[0-9]+' || echo 0)
  rm -f "$out"
  # Keep the corpus small: only the inputs that add coverage.
  merged=$(mktemp -d)
  "$fuzzer" -merge=1 -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
    "$merged" "$keep" "$corpus/$name" >/dev/null 2>&1
  rm -rf "$keep" && mv "$merged" "$keep" && chmod 755 "$keep"
  # Inputs above 64 KiB stay out of git (the video target's mutated copies
  # of whole files): their seeds are in tests/data, which the replay runs.
  find "$keep" -type f -size +64k -delete
  files=$(find "$keep" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%F)" "$name" "$seconds" \
    "${execs:-0}" "${cov:-0}" "${ft:-0}" "$files" >>"$log"
  echo "   $name: ${execs:-0} executions, cov ${cov:-0}, ft ${ft:-0}, $files corpus files"
  [ "$status" -eq 0 ] || echo "   (the run stopped early: see $crashes)"
done
