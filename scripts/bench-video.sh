#!/usr/bin/env bash
# The video benchmark: random 16-frame clips from long-GOP H.264 videos read
# by shoal's seek-based VideoReader, against decoding from the start (a libav
# loop) and the ffmpeg CLI, plus sequential decoding of every frame
# (benchmarks/video_bench.cc). One thread per method.
#
# Usage: bench-video.sh BUILD_DIR [CLIPS]
#   SHOAL_BENCH_VIDEOS (default 6) videos of SHOAL_BENCH_VIDEO_SECONDS
#   (default 20) s, made once by scripts/make-video-dataset.sh into
#   SHOAL_BENCH_DIR/videos (default out/bench/videos) and reused;
#   CLIPS (default 200) clips drawn with SHOAL_BENCH_SEED (default 1).
#   SHOAL_BENCH_JSON=FILE also writes the results as JSON.
set -euo pipefail
build=${1:-build-release}
clips=${2:-200}
count=${SHOAL_BENCH_VIDEOS:-6}
seconds=${SHOAL_BENCH_VIDEO_SECONDS:-20}
seed=${SHOAL_BENCH_SEED:-1}
dir=${SHOAL_BENCH_DIR:-out/bench}/videos
bench="$build/benchmarks/shoal_video_bench"

if [ ! -x "$bench" ]; then
  echo "bench-video: $bench is missing; build it with" >&2
  echo "  cmake --build $build --target shoal_video_bench" >&2
  exit 1
fi
if ! command -v ffmpeg >/dev/null; then
  echo "bench-video: ffmpeg not found: sudo apt-get install ffmpeg (or bash scripts/install-deps.sh)" >&2
  exit 1
fi

bash "$(dirname "$0")/make-video-dataset.sh" "$dir" "$count" "$seconds"
args=("$dir" --clips "$clips" --frames 16 --seed "$seed")
if [ -n "${SHOAL_BENCH_JSON:-}" ]; then
  args+=(--json "$SHOAL_BENCH_JSON")
fi
echo "== $count videos x $seconds s, $clips random 16-frame clips, one thread"
echo "\$ $bench ${args[*]}"
"$bench" "${args[@]}"
