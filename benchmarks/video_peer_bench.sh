#!/usr/bin/env bash
# shoal's video clip loader against its peers (the issue "Video clips at twice
# the speed of PyAV"): random 16-frame clips (step 1) resized to 112x112 RGB
# uint8, batches of 4, every video K times an epoch, for K = 1 and K = 4:
#   shoal       SHOAL_BIN bench loader DATASET --batch 4 --threads 2
#               --clip-frames 16 --clip-size 112x112 --clips-per-video K
#               --epochs E --seed R --json   (its samples_per_s = clips/s)
#   pyav        benchmarks/pyav_clip_bench.py VIDEO_DIR --mode pyav
#               --workers 2 --batch 4 --frames 16 --size 112
#               --clips-per-video K --epochs E --seed R --json
#               (PyAV seek + decode in a 2-worker DataLoader)
#   read_video  the same with --mode read_video (torchvision.io.read_video)
# Rounds are interleaved (each round runs shoal, pyav, read_video for K = 1,
# then for K = 4, each a fresh process) so that drifting load from other
# jobs hits every system alike; the table shows the medians over the rounds,
# and the ratios are the medians of the per-round ratios.
#
# Usage: video_peer_bench.sh SHOAL_BIN VIDEO_DIR DATASET [ROUNDS]
#   VIDEO_DIR: the videos (e.g. bash scripts/make-photo-videos.sh DIR
#   320x240 250 40); DATASET: `SHOAL_BIN ingest videos VIDEO_DIR DATASET`.
#   ROUNDS default 3.
# Environment:
#   CLIPS    clips timed per run at K = 1, default 640; CLIPS4 at K = 4,
#            default 2 x CLIPS (shoal shares one decode among a video's K
#            clips, so it runs faster there). A run is E = ceil(clips / (N x
#            K)) epochs of the N videos, the same E for shoal and the peers
#            (640 and 1280 are whole epochs for 8 or 40 videos); the defaults
#            make shoal's runs >= ~10 s on 2 cores, the peers' 2-4x longer.
#   THREADS  shoal --threads and the peers' --workers, default 2
#   MODES    peer modes, default "pyav read_video" (add pyav_nonref: PyAV
#            skipping non-reference frames before the clip, as shoal does)
#   OUT      folder for each run's JSON and the table (default: a new
#            folder under /tmp), kept
# Timing: shoal's clips/s is its whole run (pipeline fill included); the
# peers' is their timed epochs after 2 warm-up batches (worker start-up not
# counted). CPU ms/clip: shoal's is its process' user + system time (GNU
# time, start-up included) / clips; the peers' is the main process' and the
# workers' over the timed epochs. At K = 4 shoal decodes the K clips of a
# video in one pass when it can (video_frames.clips_shared in its JSON): the
# peers' Dataset decodes each clip on its own, as a clip-per-item Dataset
# does. "frames decoded per clip" shows the difference in work.
set -euo pipefail

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  echo "usage: $0 SHOAL_BIN VIDEO_DIR DATASET [ROUNDS]" >&2
  exit 2
fi
shoal=$1
videos=$2
dataset=$3
rounds=${4:-3}
clips=${CLIPS:-640}
clips4=${CLIPS4:-$((2 * clips))}
threads=${THREADS:-2}
read -r -a modes <<<"${MODES:-pyav read_video}"
here=$(cd "$(dirname "$0")" && pwd)
peer="$here/pyav_clip_bench.py"
py=/usr/bin/python3

case "$rounds$clips$clips4$threads" in
  *[!0-9]*) echo "video_peer_bench: ROUNDS, CLIPS, CLIPS4 and THREADS must be whole numbers" >&2; exit 2 ;;
esac
if [ "$rounds" -lt 1 ] || [ "$clips" -lt 1 ] || [ "$clips4" -lt 1 ] || [ "$threads" -lt 1 ]; then
  echo "video_peer_bench: ROUNDS, CLIPS, CLIPS4 and THREADS must be >= 1" >&2
  exit 2
fi
[ -x "$shoal" ] || { echo "video_peer_bench: $shoal is not an executable" >&2; exit 1; }
[ -d "$videos" ] || { echo "video_peer_bench: $videos is not a folder" >&2; exit 1; }
[ -e "$dataset" ] || { echo "video_peer_bench: no dataset at $dataset" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "video_peer_bench: /usr/bin/time (GNU time) is missing" >&2; exit 1; }
$py -c 'import av, torch, torchvision' 2>/dev/null || {
  echo "video_peer_bench: $py cannot import av, torch, torchvision" \
       "(apt-get install python3-av python3-torch python3-torchvision)" >&2
  exit 1
}
for m in "${modes[@]}"; do
  case $m in
    pyav|read_video|pyav_nonref) ;;
    *) echo "video_peer_bench: unknown mode '$m' in MODES" >&2; exit 2 ;;
  esac
done

# The videos the peer reads: the same walk as pyav_clip_bench.py.
n=$(find "$videos" \( -iname '*.mp4' -o -iname '*.m4v' -o -iname '*.mkv' -o -iname '*.mov' \
       -o -iname '*.avi' -o -iname '*.webm' \) -type f | wc -l)
if [ "$n" -lt 1 ]; then
  echo "video_peer_bench: no videos in $videos" >&2
  exit 1
fi
out=${OUT:-$(mktemp -d /tmp/video_peer_bench.XXXXXX)}
mkdir -p "$out"
results="$out/results.tsv"
printf 'round\tk\tsystem\tclips\tseconds\tclips_per_s\tcpu_ms_per_clip\tdecoded_per_clip\n' >"$results"

echo "video_peer_bench: $n videos in $videos, dataset $dataset, $rounds rounds," \
     "~$clips (K=1) / ~$clips4 (K=4) clips per run, $threads threads/workers; JSON in $out"

for r in $(seq 1 "$rounds"); do
  for k in 1 4; do
    want=$clips
    [ "$k" = 4 ] && want=$clips4
    epochs=$(( (want + n * k - 1) / (n * k) ))
    timed=$(( epochs * n * k ))
    echo "== round $r/$rounds, clips per video $k: $epochs epochs = $timed clips"

    json="$out/r${r}_k${k}_shoal.json"
    cmd=("$shoal" bench loader "$dataset" --batch 4 --threads "$threads" --clip-frames 16
         --clip-size 112x112 --clips-per-video "$k" --epochs "$epochs" --seed "$r" --json)
    echo "\$ ${cmd[*]}"
    /usr/bin/time -f '%U %S' -o "$out/r${r}_k${k}_shoal.time" "${cmd[@]}" >"$json" \
      2>"$out/r${r}_k${k}_shoal.err" || {
      echo "video_peer_bench: shoal failed:" >&2; cat "$out/r${r}_k${k}_shoal.err" >&2; exit 1; }
    $py - "$json" "$out/r${r}_k${k}_shoal.time" "$r" "$k" "$timed" >>"$results" <<'EOF'
import json, sys
path, tpath, r, k, timed = sys.argv[1:]
d = json.load(open(path))
u, s = map(float, open(tpath).read().split()[-2:])
clips = d["samples"]
if clips != int(timed):
    print(f"video_peer_bench: warning: shoal loaded {clips} clips, expected {timed} "
          f"(does the dataset hold the same videos?)", file=sys.stderr)
dec = d.get("video_frames", {}).get("decoded")
print(f"{r}\t{k}\tshoal\t{clips}\t{d['seconds']:.3f}\t{d['samples_per_s']:.2f}\t"
      f"{(u + s) / clips * 1e3:.2f}\t{dec / clips if dec is not None else float('nan'):.1f}")
EOF
    tail -n 1 "$results" | awk -F'\t' '{printf "   shoal      %8.2f clips/s  %7.2f CPU ms/clip  %.1f frames decoded/clip\n", $6, $7, $8}'

    for m in "${modes[@]}"; do
      json="$out/r${r}_k${k}_$m.json"
      cmd=("$peer" "$videos" --mode "$m" --workers "$threads" --batch 4 --frames 16
           --size 112 --clips-per-video "$k" --epochs "$epochs" --seed "$r" --json)
      echo "\$ $py ${cmd[*]}"
      $py "${cmd[@]}" >"$json" 2>"$out/r${r}_k${k}_$m.err" || {
        echo "video_peer_bench: $m failed:" >&2; cat "$out/r${r}_k${k}_$m.err" >&2; exit 1; }
      $py - "$json" "$r" "$k" "$m" >>"$results" <<'EOF'
import json, sys
path, r, k, m = sys.argv[1:]
x = json.load(open(path))["results"][0]
print(f"{r}\t{k}\t{m}\t{x['clips']}\t{x['seconds']:.3f}\t{x['clips_per_s']:.2f}\t"
      f"{x['cpu_ms_per_clip']:.2f}\t{x['decoded_frames_per_clip']:.1f}")
EOF
      tail -n 1 "$results" | awk -F'\t' '{printf "   %-10s %8.2f clips/s  %7.2f CPU ms/clip  %.1f frames decoded/clip\n", $3, $6, $7, $8}'
    done
  done
done

echo
$py - "$results" "$rounds" "${modes[@]}" <<'EOF' | tee "$out/table.txt"
import csv, statistics, sys
path, rounds, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = list(csv.DictReader(open(path), delimiter="\t"))
systems = ["shoal"] + modes
med = statistics.median
print(f"Medians over {rounds} round(s); clips/s (CPU ms/clip); ratio = shoal clips/s "
      f"/ peer clips/s, median of the rounds' ratios")
head = f"{'K':>2s} {'clips':>6s}" + "".join(f" {s + ' clips/s':>20s}" for s in systems) + \
       "".join(f" {'shoal/' + m:>17s}" for m in modes)
print(head)
for k in ("1", "4"):
    by = {s: [r for r in rows if r["k"] == k and r["system"] == s] for s in systems}
    if not by["shoal"]:
        continue
    line = f"{k:>2s} {by['shoal'][0]['clips']:>6s}"
    for s in systems:
        v = med(float(r["clips_per_s"]) for r in by[s])
        c = med(float(r["cpu_ms_per_clip"]) for r in by[s])
        line += f" {f'{v:.1f} ({c:.0f} ms)':>20s}"
    for m in modes:
        ratios = [float(a["clips_per_s"]) / float(b["clips_per_s"])
                  for a in by["shoal"] for b in by[m] if a["round"] == b["round"]]
        line += f" {med(ratios):>16.2f}x"
    print(line)
print("frames decoded per clip (median): " + ", ".join(
    f"{s} " + "/".join(f"{med(float(r['decoded_per_clip']) for r in rows if r['k'] == k and r['system'] == s):.0f}"
                       for k in ("1", "4")) for s in systems) + " (K=1/K=4; read_video's from its rules)")
EOF
echo "(per-run rows: $results)"
