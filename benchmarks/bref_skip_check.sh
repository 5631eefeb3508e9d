#!/usr/bin/env bash
# Which frames before a clip a decoder may skip and still give exact frames,
# checked with ffmpeg alone (independent of shoal). For each video, three
# decodes to per-frame MD5s (ffmpeg -f framemd5, frames keyed by pts):
#   full    every frame decoded: the truth
#   noref   -skip_frame noref: frames nothing references are not decoded
#           (what shoal skips before a clip's first frame)
#   bidir   -skip_frame bidir: every B-frame is skipped, the B-pyramid's
#           reference B-frames too
# and, for each skipping decode, how many of the frames it still outputs
# differ from the full decode. "noref" must show 0 (skipping non-reference
# frames is exact); a "bidir" count above 0 shows that P-frames predict from
# the reference B-frames, so skipping those before a clip would change the
# clip's frames (x264's default "--b-pyramid normal" allows it).
#
# Usage: bref_skip_check.sh VIDEO [VIDEO ...]
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 VIDEO [VIDEO ...]" >&2
  exit 2
fi
command -v ffmpeg >/dev/null || { echo "bref_skip_check: ffmpeg is missing" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# pts,md5 per output frame, sorted by pts.
frame_md5() {  # video skip_mode out
  local skip=()
  [ "$2" = none ] || skip=(-skip_frame "$2")
  ffmpeg -nostdin -v error -threads 1 "${skip[@]}" -i "$1" -map 0:v:0 \
    -fps_mode passthrough -f framemd5 - |
    awk -F, '!/^#/ { gsub(/ /, ""); print $3 "," $6 }' | sort -t, -k1,1n >"$3"
}

printf '%-28s %7s %13s %13s %13s\n' video frames "noref: kept" "bidir: kept" "bidir: wrong"
total_wrong=0
total_noref_wrong=0
for video in "$@"; do
  frame_md5 "$video" none "$tmp/full"
  frame_md5 "$video" noref "$tmp/noref"
  frame_md5 "$video" bidir "$tmp/bidir"
  frames=$(wc -l <"$tmp/full")
  noref_kept=$(wc -l <"$tmp/noref")
  bidir_kept=$(wc -l <"$tmp/bidir")
  # Output frames whose (pts, md5) is not in the full decode.
  noref_wrong=$(sort "$tmp/noref" | comm -13 <(sort "$tmp/full") - | wc -l)
  bidir_wrong=$(sort "$tmp/bidir" | comm -13 <(sort "$tmp/full") - | wc -l)
  if [ "$noref_wrong" -ne 0 ]; then
    echo "bref_skip_check: $video: $noref_wrong frames differ with -skip_frame noref" >&2
  fi
  total_wrong=$((total_wrong + bidir_wrong))
  total_noref_wrong=$((total_noref_wrong + noref_wrong))
  printf '%-28s %7d %13d %13d %13d\n' "$(basename "$video")" "$frames" \
    "$noref_kept" "$bidir_kept" "$bidir_wrong"
done
echo "frames differing: skipping non-reference frames $total_noref_wrong," \
  "skipping every B-frame $total_wrong"
