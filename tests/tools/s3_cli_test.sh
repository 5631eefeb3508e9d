#!/bin/bash
# The CLI over s3://, against s3rver behind tests/format/s3_proxy.js (which
# checks every request's SigV4 signature): a folder of images is ingested
# into s3:// and into a directory; the loader's batches from both are the
# same bytes (digests); info and verify work on s3://; copy brings it back
# whole. (The server: start_s3 in cli_lib.sh.)
#
# Usage: s3_cli_test.sh PATH/TO/shoal SOURCE_DIR
set -u

SHOAL=${1:?usage: s3_cli_test.sh PATH/TO/shoal SOURCE_DIR}
SRC=${2:?usage: s3_cli_test.sh PATH/TO/shoal SOURCE_DIR}
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

start_s3 "$SRC" "latency=300" || exit 1

make_jpegs imgs 24 60 40 2 5 || finish s3_cli_test

run 0 "$SHOAL" ingest images imgs s3://shoal-test/ds --chunk-bytes 64k &&
  contains "$work/out" "24 samples into s3://shoal-test/ds"
run 0 "$SHOAL" ingest images imgs local_ds --chunk-bytes 64k
run 0 "$SHOAL" info s3://shoal-test/ds && contains "$work/out" "len:     24"
run 0 "$SHOAL" verify s3://shoal-test/ds && contains "$work/out" ": OK"
run 0 "$SHOAL" bench loader s3://shoal-test/ds --shuffle chunk --seed 3 --transform train \
  --size 32 --epochs 2 --batch 5 --digests s3.txt
run 0 "$SHOAL" bench loader local_ds --shuffle chunk --seed 3 --transform train \
  --size 32 --epochs 2 --batch 5 --digests local.txt
[ -s s3.txt ] && cmp -s s3.txt local.txt || fail "batches from s3:// differ from file://"
# A full shuffle whose chunks do not fit the budget reads sample by sample
# (ranged reads coalesced per chunk; 224x224 batches leave the 1 MiB budget
# no room for chunks): the same batches again.
run 0 "$SHOAL" bench loader s3://shoal-test/ds --shuffle full --memory-budget 1MiB --seed 3 \
  --transform train --size 224 --batch 5 --digests s3full.txt &&
  contains "$work/out" "sample by sample"
run 0 "$SHOAL" bench loader local_ds --shuffle full --seed 3 --transform train \
  --size 224 --batch 5 --digests localfull.txt
[ -s s3full.txt ] && cmp -s s3full.txt localfull.txt || fail "sample-by-sample batches from s3:// differ from file://"
run 0 "$SHOAL" copy s3://shoal-test/ds copied && run 0 "$SHOAL" verify copied &&
  contains "$work/out" ": OK"
# A second writer is refused by the lock (a conditional PUT on S3).
run 1 "$SHOAL" ingest images imgs s3://shoal-test/ds && contains "$work/err" "already"
# Wrong credentials: refused by the server's signature check, named.
AWS_SECRET_ACCESS_KEY=wrong run 1 "$SHOAL" info s3://shoal-test/ds &&
  contains "$work/err" "SignatureDoesNotMatch"

# Readers killed while their requests are under way (stopped training jobs)
# hold nothing up: the test proxy once kept an object's turn until an answer
# nobody read had ended, which an answer larger than the socket buffers
# never did, and the next reader of that object timed out. The kills land
# while requests wait out the fault port's 300 ms latency.
mkdir noise
"$PY" -c "
import numpy as np; from PIL import Image
rng = np.random.default_rng(5)
for i in range(2):
    Image.fromarray(rng.integers(0, 256, (1500, 1500, 3), dtype=np.uint8)).save(f'noise/{i}.png')
" || fail "cannot write noise images"
run 0 "$SHOAL" ingest images noise s3://shoal-test/noise --chunk-bytes 64m
for after in 0.15 0.45 0.75 1.05 1.35 1.65 1.95 2.25 2.55; do
  (AWS_ENDPOINT_URL_S3="http://127.0.0.1:$s3_fault_port" \
    timeout -s KILL "$after" "$SHOAL" get s3://shoal-test/noise images 1 -o killed.png) >/dev/null 2>&1
done
run 0 timeout 60 "$SHOAL" get s3://shoal-test/noise images 1 -o after.png

# Writers killed while a PUT is under way leave the whole object or none, as
# on S3: the test proxy once ended such a PUT upstream once its client had
# gone, and s3rver, which writes objects in place, kept a truncated one (the
# soak test read a 0-byte commit object after a kill). 50 MB PUTs (curl
# signs them), killed while the proxy hands them to s3rver.
head -c 50000000 /dev/urandom >big.bin
sum=$(sha256sum big.bin | cut -d' ' -f1)
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3curl() {
  curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER "$@"
}
for ms in 150 200 250 300 350 400 450 500 600 700; do
  curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER -o /dev/null \
    -H "x-amz-content-sha256: $sum" -T big.bin \
    "http://127.0.0.1:$s3_port/shoal-test/killed/o$ms" &  # curl's own pid
  pid=$!
  sleep "0.$(printf %03d "$ms")"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
done
sleep 3
for ms in 150 200 250 300 350 400 450 500 600 700; do
  head=$(s3curl -I -H "x-amz-content-sha256: $empty" \
    "http://127.0.0.1:$s3_port/shoal-test/killed/o$ms" | tr -d '\r')
  code=$(awk '/^HTTP/ { print $2 }' <<<"$head")
  size=$(awk 'tolower($1) == "content-length:" { print $2 }' <<<"$head")
  case "$code:$size" in
    404:* | 200:50000000) ;;
    *) fail "a PUT killed after $ms ms left object o$ms with HTTP $code, $size bytes of 50000000" ;;
  esac
done

finish s3_cli_test
