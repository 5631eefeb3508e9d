#!/usr/bin/env bash
# Makes long-GOP H.264 test videos for benchmarks/video_bench.cc with the
# Debian ffmpeg CLI (libx264), deterministically: the same ffmpeg/x264
# build gives the same bytes (one encoder thread, fixed seeds).
#
# Usage: make-video-dataset.sh OUT_DIR [COUNT] [SECONDS]
#   COUNT videos (default 6) of SECONDS seconds (default 20), 640x360 at
#   30 fps, yuv420p (limited range, unspecified matrix = BT.601), in mp4:
#   -g 250 -sc_threshold 0 (a keyframe every 250 frames exactly, no scene
#   cuts), -bf 2, CRF 23 (libx264's default), preset medium.
#
# Each video is a moving synthetic pattern (cycling testsrc2, mandelbrot,
# gradients) overlaid with a scrolling blurred noise texture and light
# temporal noise, so motion compensation, texture and bitrate are closer to
# camera footage (about 0.4-2 Mbit/s) than a bare test pattern. Video i
# uses seed i for its noise and its own scroll speeds.
#
# Files: OUT_DIR/video_NNN.mp4 and OUT_DIR/PARAMS (what made them: the
# videos are reused when PARAMS matches, so a second run is a no-op).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  echo "usage: $0 OUT_DIR [COUNT] [SECONDS]" >&2
  exit 2
fi
out=$1
count=${2:-6}
seconds=${3:-20}
case "$count$seconds" in
  *[!0-9]*) echo "make-video-dataset: COUNT and SECONDS must be whole numbers" >&2; exit 2 ;;
esac
if [ "$count" -lt 1 ] || [ "$seconds" -lt 1 ]; then
  echo "make-video-dataset: COUNT and SECONDS must be at least 1" >&2
  exit 2
fi

ffmpeg=${FFMPEG:-ffmpeg}
if ! command -v "$ffmpeg" >/dev/null; then
  echo "make-video-dataset: '$ffmpeg' not found; install it with" >&2
  echo "  sudo apt-get install ffmpeg      (or: bash scripts/install-deps.sh)" >&2
  exit 1
fi
encoders=$("$ffmpeg" -hide_banner -encoders 2>/dev/null || true)
if ! grep -q ' libx264 ' <<<"$encoders"; then
  echo "make-video-dataset: $ffmpeg has no libx264 encoder (Debian's ffmpeg package has it)" >&2
  exit 1
fi

version=$("$ffmpeg" -version | head -1)
params="v1 count=$count seconds=$seconds size=640x360 rate=30 g=250 bf=2 crf=23 $version"
if [ -f "$out/PARAMS" ] && [ "$(cat "$out/PARAMS")" = "$params" ]; then
  all=1
  for ((i = 0; i < count; i++)); do
    [ -f "$(printf '%s/video_%03d.mp4' "$out" "$i")" ] || all=0
  done
  if [ "$all" = 1 ]; then
    echo "make-video-dataset: $count videos already in $out"
    exit 0
  fi
fi

mkdir -p "$out"
rm -f "$out/PARAMS" "$out"/video_*.mp4
patterns=(testsrc2 mandelbrot gradients)
start=$SECONDS
for ((i = 0; i < count; i++)); do
  name=$(printf 'video_%03d.mp4' "$i")
  pattern=${patterns[$((i % ${#patterns[@]}))]}
  case $pattern in
    testsrc2) base="testsrc2=size=640x360:rate=30" ;;
    mandelbrot) base="mandelbrot=size=640x360:rate=30:start_scale=$((2 + i % 4))" ;;
    # Explicit colours: gradients' default colours are "random", drawn from
    # a non-deterministic seed whatever its seed option says.
    gradients) base="gradients=size=640x360:rate=30:seed=$i:speed=0.03:n=3:c0=0x2a4d8f:c1=0xe0b040:c2=0x8f2a4d" ;;
  esac
  # Scroll speeds (fractions of the frame per frame) differ per video.
  h=$(printf '0.00%d' $((1 + i % 4)))
  v=$(printf '0.00%d' $((1 + (i + 2) % 3)))
  texture="color=gray:size=640x360:rate=30,noise=alls=100:allf=u:all_seed=$((1000 + i)),gblur=sigma=1.5,scroll=h=$h:v=$v"
  mix="[0]format=yuv420p[a];[1]format=yuv420p[b];[a][b]blend=all_mode=overlay:all_opacity=0.6,noise=alls=6:allf=t+u:all_seed=$i"
  t0=$SECONDS
  "$ffmpeg" -hide_banner -loglevel error -nostdin -y \
    -f lavfi -i "$base" -f lavfi -i "$texture" -filter_complex "$mix" \
    -t "$seconds" -c:v libx264 -threads 1 -preset medium -crf 23 \
    -g 250 -sc_threshold 0 -bf 2 -pix_fmt yuv420p -movflags +faststart \
    "$out/$name.tmp.mp4"
  mv "$out/$name.tmp.mp4" "$out/$name"
  bytes=$(stat -c %s "$out/$name")
  printf 'make-video-dataset: [%d/%d] %s %s, %d s, %.2f Mbit/s (%d s to encode)\n' \
    $((i + 1)) "$count" "$out/$name" "$pattern" "$seconds" \
    "$(awk -v b="$bytes" -v s="$seconds" 'BEGIN { print b * 8 / s / 1e6 }')" $((SECONDS - t0))
done
echo "$params" >"$out/PARAMS"
echo "make-video-dataset: $count videos in $out ($((SECONDS - start)) s)"
