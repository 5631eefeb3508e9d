#!/usr/bin/env bash
# The main job on a built-in default, run from the job files in configs/:
#  1. Fashion-MNIST (Debian's dataset-fashion-mnist): ingest its IDX files,
#     verify, and stream it through the loader (configs/fashion-mnist.yaml);
#  2. an ImageNet-like folder of JPEGs cropped from real photos (Debian
#     wallpaper packages): ingest it (configs/imagefolder-ingest.yaml, with a
#     profile), then load it decoding every image and with the training
#     transform, each against raw TurboJPEG on the same cores
#     (configs/bench-decode.yaml, configs/imagefolder-train.yaml);
#  3. charts of the ingestion and of the training loader (where the time
#     goes), and a summary table.
# Each step prints a line; the commands' own output goes to out/logs/.
set -euo pipefail
build=${1:-build}
shoal="$build/tools/shoal"
logs=${LOGS:-out/logs}
charts=out/charts
images=${SHOAL_DEMO_IMAGES:-2000}
fm_src=/usr/share/datasets/fashion-mnist
step() { bash scripts/step.sh "$@"; }
# to_json FILE CMD...: CMD's stdout (its --json report) into FILE; its
# stderr (notes, progress) stays in the step's log.
to_json() { local out=$1; shift; "$@" >"$out"; }
export -f to_json

[ -x "$shoal" ] || { echo "demo: $shoal is not built" >&2; exit 1; }
[ -f "$fm_src/train-images-idx3-ubyte.gz" ] || {
  echo "demo: $fm_src is missing; run scripts/install-deps.sh (package dataset-fashion-mnist)" >&2; exit 1; }
mkdir -p "$logs" "$charts"
start=$(date +%s)

step ingest "$logs/demo-fashion-mnist-ingest.log" to_json "$logs/demo-fashion-mnist-ingest.json" \
  "$shoal" ingest --config configs/fashion-mnist.yaml --json
step verify "$logs/demo-fashion-mnist-verify.log" "$shoal" verify out/fashion-mnist
step load "$logs/demo-fashion-mnist-bench.log" to_json "$logs/demo-fashion-mnist-bench.json" \
  "$shoal" bench --config configs/fashion-mnist.yaml --json

step images "$logs/demo-make-images.log" /usr/bin/python3 scripts/make-image-dataset.py \
  out/imagenet-like --count "$images" --jobs 2 --force
step ingest "$logs/demo-images-ingest.log" to_json "$logs/demo-images-ingest.json" \
  "$shoal" ingest --config configs/imagefolder-ingest.yaml --json \
  --profile "$charts/ingest-profile.json"
# The files just written are flushed first, so that the kernel's writeback
# does not take one of the cores from the loader and not from the reference
# that runs after it.
sync
step load "$logs/demo-images-decode.log" to_json "$logs/demo-images-decode.json" \
  "$shoal" bench --config configs/bench-decode.yaml --json
step load "$logs/demo-images-train.log" to_json "$logs/demo-images-train.json" \
  "$shoal" bench --config configs/imagefolder-train.yaml --json \
  --profile "$charts/train-profile.json"

drawn=()
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  for p in ingest-profile train-profile; do
    if step chart "$logs/demo-chart-$p.log" /usr/bin/python3 scripts/plot-profile.py \
      "$charts/$p.json" "$charts/$p.png"; then
      drawn+=("$charts/$p.png")
    fi
  done
else
  echo "chart      skipped: python3-matplotlib is not installed"
fi

/usr/bin/python3 - "$logs" "$(($(date +%s) - start))" "${drawn[@]}" <<'EOF'
import json, sys

logs, seconds, charts = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(name):
    with open(f"{logs}/{name}") as f:
        return json.load(f)

fm_in, fm_load = load("demo-fashion-mnist-ingest.json"), load("demo-fashion-mnist-bench.json")
im_in = load("demo-images-ingest.json")
dec, train = load("demo-images-decode.json"), load("demo-images-train.json")
mb = lambda b: f"{b / 1e6:,.0f} MB"
rows = [
    ("ingested", f"Fashion-MNIST: {fm_in['samples']:,} images in {fm_in['seconds']:.1f} s "
                 f"({fm_in['samples_per_second']:,.0f}/s), stored {mb(fm_in['stored_bytes'])} "
                 f"-> {fm_in['dataset']}"),
    ("", f"ImageNet-like JPEGs: {im_in['samples']:,} images ({mb(im_in['input_bytes'])}) in "
         f"{im_in['seconds']:.1f} s ({im_in['samples_per_second']:,.0f}/s), each decoded once "
         f"to check it -> {im_in['dataset']}"),
    ("loaded", f"Fashion-MNIST: {fm_load['samples_per_s']:,.0f} samples/s "
               f"(batches of 256, chunk shuffle, {fm_load['threads']} threads)"),
    ("", f"JPEG decode: {dec['samples_per_s']:,.0f} images/s = "
         f"{dec['ratio_to_reference']:.2f}x raw TurboJPEG on the same {dec['threads']} cores"),
    ("", f"training crops (RandomResizedCrop 224 + flip, full shuffle): "
         f"{train['samples_per_s']:,.0f} images/s = {train['ratio_to_reference']:.2f}x raw TurboJPEG"),
    ("charts", ", ".join(charts) if charts else "(none: install python3-matplotlib)"),
    ("logs", logs + "/"),
    ("try next", "shoal bench --config configs/imagefolder-eval.yaml"),
    ("", "shoal bench loader --config configs/imagefolder-train.yaml --threads 1 --epochs 1"),
    ("", "shoal ingest --config configs/imagefolder-ingest.yaml --workers 1 --print-config"),
]
print(f"\nshoal demo done in {seconds} s")
for k, v in rows:
    print(f"  {k:<9} {v}")
EOF
