#!/usr/bin/env bash
# Makes H.264 videos from real photos for the video benchmarks (issue 17):
# each of the first COUNT photos (JPEGs of /usr/share/backgrounds by name,
# then Debian's other wallpapers; see below)
# becomes a 10 s, 30 fps video of a slow zoom and pan over it (ffmpeg
# zoompan), encoded with x264's defaults (preset medium, CRF 23, 3 B-frames
# with B-pyramid) and a keyframe every GOP frames exactly (-g GOP
# -sc_threshold 0), one encoder thread so the bytes are reproducible.
#
# Usage: make-photo-videos.sh OUT_DIR SIZE GOP [COUNT]
#   SIZE e.g. 320x240 or 640x360; GOP e.g. 250 or 50; COUNT default 8.
# Files: OUT_DIR/v_NNN.mp4.
set -euo pipefail

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  echo "usage: $0 OUT_DIR SIZE GOP [COUNT]" >&2
  exit 2
fi
out=$1
size=$2
gop=$3
count=${4:-8}
if ! [[ $size =~ ^[0-9]+x[0-9]+$ ]]; then
  echo "make-photo-videos: SIZE must be WIDTHxHEIGHT, e.g. 320x240" >&2
  exit 2
fi
case "$gop$count" in
  *[!0-9]*) echo "make-photo-videos: GOP and COUNT must be whole numbers" >&2; exit 2 ;;
esac
command -v ffmpeg >/dev/null || {
  echo "make-photo-videos: ffmpeg not found (bash scripts/install-deps.sh)" >&2
  exit 1
}
# The photos of /usr/share/backgrounds by name, then those of its
# subfolders and of /usr/share/wallpapers (Debian's desktop wallpapers: 45
# JPEGs and PNGs with install-deps.sh's packages).
mapfile -t photos < <(
  {
    find /usr/share/backgrounds -maxdepth 1 -name '*.jpg' | sort
    find /usr/share/backgrounds /usr/share/wallpapers -mindepth 2 \
      \( -name '*.jpg' -o -name '*.png' \) 2>/dev/null | sort
    find /usr/share/wallpapers -maxdepth 1 \( -name '*.jpg' -o -name '*.png' \) \
      2>/dev/null | sort
  } | awk '!seen[$0]++' | head -n "$count")
if [ "${#photos[@]}" -lt "$count" ]; then
  echo "make-photo-videos: found ${#photos[@]} photos in /usr/share/backgrounds and /usr/share/wallpapers, want $count" >&2
  exit 1
fi
mkdir -p "$out"
for i in "${!photos[@]}"; do
  ffmpeg -v error -y -i "${photos[$i]}" \
    -vf "scale=1920:-2,zoompan=z='1.0+0.0008*on':x='iw/2-(iw/zoom/2)+on*1.5':y='ih/2-(ih/zoom/2)':d=300:s=$size:fps=30,format=yuv420p" \
    -frames:v 300 -c:v libx264 -g "$gop" -sc_threshold 0 -threads 1 \
    "$(printf '%s/v_%03d.mp4' "$out" "$i")"
done
echo "make-photo-videos: ${#photos[@]} videos ($size, GOP $gop) in $out"
