#!/bin/bash
# `shoal ingest videos`, `info` and `get --frames` end to end, against
# ffprobe and ffmpeg: frame counts, rates and codecs as ffprobe reports
# them, and clips as ffmpeg decodes the same frames (to RGB24 with its own
# conversion, so pixels are compared with a small tolerance).
#
# Usage: ingest_videos_test.sh PATH/TO/shoal
set -u
SHOAL=${1:?usage: ingest_videos_test.sh PATH/TO/shoal}
DATA=$(cd "$(dirname "$0")/../data/video" && pwd)
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

for tool in ffprobe ffmpeg; do
  command -v $tool >/dev/null || { fail "$tool is missing (scripts/install-deps.sh installs it)"; finish "ingest videos"; }
done

mkdir -p in/walk in/screen
cp "$DATA/nasa_13013.mp4" "$DATA/video_90.mov" in/walk/
cp "$DATA/bbb_480p_vp9_opus_1second.webm" "$DATA/bt709_full_range.mp4" in/screen/
echo "not a video" > in/screen/README.txt
echo "not a video either" > in/screen/fake.mp4

# A file named like a video that is not one stops the ingestion...
run 1 "$SHOAL" ingest videos in ds && contains err "fake.mp4"
[ -e ds/HEAD ] && fail "a failed ingestion left a dataset behind"
# ...or with --skip-bad is named and counted.
run 0 "$SHOAL" ingest videos in ds --skip-bad
summary out 4 ds "videos mp4, labels lz4 chunks"
contains out "ingest: ignored 1 file of another kind"
contains out "ingest: skipped 1 bad file (--skip-bad)"
contains err "fake.mp4"

run 0 "$SHOAL" info ds --json
"$PY" - "$DATA" <<'EOF2' || fail "info disagrees with ffprobe"
import json, subprocess, sys
data = sys.argv[1]
info = json.load(open("out"))
videos = {t["name"]: t for t in info["tensors"]}["videos"]["videos"]
labels = {t["name"]: t for t in info["tensors"]}["labels"]
assert labels["class_names"] == ["screen", "walk"], labels["class_names"]
paths = [v["path"] for v in videos]
assert paths == ["screen/bbb_480p_vp9_opus_1second.webm", "screen/bt709_full_range.mp4",
                 "walk/nasa_13013.mp4", "walk/video_90.mov"], paths
for v in videos:
    name = v["path"].split("/")[1]
    # The stream shoal picked is FFmpeg's default ("best") video stream:
    # ask ffprobe about the same one by counting decoded frames.
    stream = {"nasa_13013.mp4": 3}.get(name, 0)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", str(stream),
         "-show_entries", "stream=codec_name,width,height,avg_frame_rate,nb_read_frames",
         "-of", "json", f"{data}/{name}"], check=True, capture_output=True, text=True).stdout
    s = json.loads(out)["streams"][0]
    num, den = map(int, s["avg_frame_rate"].split("/"))
    assert v["codec"] == s["codec_name"], (name, v["codec"], s["codec_name"])
    assert (v["width"], v["height"]) == (s["width"], s["height"]), name
    assert v["frames"] == int(s["nb_read_frames"]), (name, v["frames"], s["nb_read_frames"])
    assert abs(v["fps"] - num / den) < 1e-3, (name, v["fps"], num / den)
rot = [v["rotation"] for v in videos if v["path"].endswith(".mov")][0]
assert rot == -90, rot
print("info matches ffprobe for", len(videos), "videos")
EOF2
run 0 "$SHOAL" info ds && contains out "keyframe_spacing" && contains out "240.0 (max 240)"

# Clips against ffmpeg: nasa's stream 3 (index 2 of the dataset), frames
# 230..248 step 2 (across the keyframe at 240); and the full-range clip.
# shoal converts with the same swscale path as ffmpeg's default (the frame's
# matrix and range, no resize), so the pixels are identical; a frame off by
# one, or full range taken as limited, would differ by far more.
check_clip() {  # INDEX FILE STREAM A B STEP W H
  local index=$1 file=$2 stream=$3 a=$4 b=$5 step=$6 w=$7 h=$8
  run 0 "$SHOAL" get ds videos "$index" --frames "$a:$b:$step" -o clip.npy || return
  ffmpeg -y -v error -noautorotate -i "$DATA/$file" -map "0:$stream" \
    -vf "select='between(n\,$a\,$((b - 1)))*not(mod(n-$a\,$step))'" -fps_mode passthrough \
    -pix_fmt rgb24 -f rawvideo ref.rgb || { fail "ffmpeg failed on $file"; return; }
  "$PY" - "$w" "$h" <<'EOF2' || fail "clip $file $a:$b:$step differs from ffmpeg's decode"
import sys
import numpy as np
w, h = int(sys.argv[1]), int(sys.argv[2])
clip = np.load("clip.npy")
ref = np.fromfile("ref.rgb", dtype=np.uint8).reshape(-1, h, w, 3)
assert clip.shape == ref.shape, (clip.shape, ref.shape)
diff = np.abs(clip.astype(int) - ref.astype(int))
per_frame = diff.reshape(len(clip), -1).mean(axis=1)
print("mean abs diff per frame vs ffmpeg:", np.round(per_frame, 3))
assert per_frame.max() == 0, per_frame
EOF2
}
check_clip 2 nasa_13013.mp4 3 230 249 2 480 270
check_clip 1 bt709_full_range.mp4 0 0 30 7 1280 720

# Errors: frames past the end, a bad range, a whole video as one array.
run 1 "$SHOAL" get ds videos 2 --frames 380:391 -o clip.npy && contains err "390 frames"
run 2 "$SHOAL" get ds videos 2 --frames 5:3 -o clip.npy
run 2 "$SHOAL" get ds videos 2 --frames 1:2 -o clip.png
run 1 "$SHOAL" get ds videos 2 -o all.npy && contains err "--frames"
# The stored file is the ingested one, byte for byte.
run 0 "$SHOAL" get ds videos 3 --raw -o back.mov && cmp -s back.mov "$DATA/video_90.mov" || fail "raw video differs"

# A corrupt video: its good frames come out, the damaged ones are an error
# naming dataset, tensor, chunk, sample and frame.
mkdir -p bad && cp "$DATA/corrupted.mp4" bad/
run 0 "$SHOAL" ingest videos bad badds
run 0 "$SHOAL" get badds videos 0 --frames 0:29 -o good.npy
run 1 "$SHOAL" get badds videos 0 --frames 25:35 -o bad.npy
contains err "tensor 'videos': chunk '"
contains err "sample 0: frame 29"
run 0 "$SHOAL" verify badds

finish "ingest videos"
