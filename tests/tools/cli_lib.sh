# Shared by the CLI test scripts (sourced): a scratch directory, failure
# counting and checks of a command's exit code and output.
#
# Sourcing sets $work (the current directory from then on, removed at exit),
# $PY (the system Python, which has NumPy, Pillow and pypng; the first
# python3 on PATH may be another interpreter without them) and $failures.

PY=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/shoal_$(basename "$0" .sh).XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# run CODE CMD...: runs CMD with stdout in $work/out and stderr in $work/err
# and checks its exit status.
run() {
  local want=$1
  shift
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    fail "'$*' exited $got, expected $want; stdout: $(head -c 2000 "$work/out"); stderr: $(head -c 2000 "$work/err")"
    return 1
  fi
  return 0
}

# contains FILE TEXT: FILE has TEXT (a fixed string).
contains() {
  grep -qF -- "$2" "$1" || fail "$1 lacks '$2': $(head -c 2000 "$1")"
}

# finish NAME: the script's verdict and exit code.
finish() {
  if [ "$failures" -ne 0 ]; then
    # What the S3 test server said (its errors' stacks) outlives the
    # scratch directory.
    if [ -s "$work/proxy.err" ]; then
      local kept=${TMPDIR:-/tmp}/shoal-${1// /_}-s3server.$$.log
      cp "$work/proxy.err" "$kept" &&
        echo "the S3 test server's errors are in $kept; the last ones:" >&2 &&
        tail -n 30 "$kept" >&2
    fi
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  echo "$1: all checks passed"
}

# matches FILE REGEX: some line of FILE matches the extended regex REGEX.
matches() {
  grep -qE -- "$2" "$1" || fail "$1 has no line matching '$2': $(head -c 2000 "$1")"
}

# summary FILE N DS TENSORS: FILE (an ingest command's stdout) starts with
# the closing summary of an ingestion that added N samples into DS (a path
# under $work) whose tensors store samples as TENSORS ("images jpeg, labels
# lz4 chunks"), and that summary's numbers are well-formed.
summary() {
  local file=$1 n=$2 ds=$3 tensors=$4 noun=samples
  [ "$n" = 1 ] && noun=sample
  local num='[0-9]+(\.[0-9]+)?' where
  where=$(printf '%s' "file://$work/$ds" | sed 's/[][\.*^$(){}+?|]/\\&/g')
  local re="^ingest: $n $noun into $where in $num s \\($num samples/s, $num MB/s of input\\); $tensors; $num (B|kB|MB|GB) of samples stored in $num (B|kB|MB|GB) \\(ratio ($num|-)\\), commit [0-9]+\$"
  head -1 "$file" | grep -qE -- "$re" ||
    fail "$file does not start with the summary of $n $noun into $ds ($tensors): $(head -c 2000 "$file")"
}

# make_jpegs DIR N W H CLASSES SEED: an ImageFolder tree of N distinct WxH
# JPEGs (q90, smooth gradients plus noise, a line unique to each image) in
# CLASSES class folders c0..; image i is DIR/c<i % CLASSES>/<i>.jpg.
make_jpegs() {
  "$PY" - "$@" <<'EOF_PY' || { fail "cannot write JPEGs into $1"; return 1; }
import os, sys
import numpy as np
from PIL import Image
out, n, w, h, classes, seed = sys.argv[1], *map(int, sys.argv[2:])
rng = np.random.default_rng(seed)
y, x = np.mgrid[0:h, 0:w]
base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                 (x + y) * 127 // max(w + h - 2, 1)], axis=-1).astype(np.int16)
noise = rng.integers(-12, 13, size=(h, 2 * w, 3)).astype(np.int16)
for c in range(classes):
    os.makedirs(f"{out}/c{c}", exist_ok=True)
for i in range(n):
    off = (i * 37 + seed) % w
    img = base + noise[:, off:off + w]
    img[(i * 13) % h, :, :] = (i * 7 + seed) % 256
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
        f"{out}/c{i % classes}/{i:05d}.jpg", quality=90)
EOF_PY
}

# only_orphans DS: `shoal verify DS` finds nothing but orphan objects (left
# by an interrupted write): exit 0 with ": OK", or exit 1 with every
# problem line an orphan and the summary counting exactly those.
only_orphans() {
  "$SHOAL" verify "$1" >"$work/vout" 2>"$work/verr"
  local rc=$? orphans others
  orphans=$(grep -c '^orphan: ' "$work/vout")
  others=$(grep -vc -e '^orphan: ' -e '^verify: ' "$work/vout")
  if [ "$rc" -eq 0 ]; then
    grep -q ': OK$' "$work/vout" && [ "$orphans" -eq 0 ] ||
      fail "verify $1 exited 0 without OK: $(head -c 2000 "$work/vout")"
  elif [ "$rc" -ne 1 ] || [ "$others" -ne 0 ] || [ "$orphans" -eq 0 ] ||
    ! grep -qE "checked: $orphans problems?\$" "$work/vout"; then
    fail "verify $1 found more than orphans (exit $rc): $(head -c 2000 "$work/vout") $(head -c 500 "$work/verr")"
  fi
}

# verify_clean DS: `shoal verify DS` exits 0 and says OK.
verify_clean() {
  run 0 "$SHOAL" verify "$1" && contains out ": OK"
}

# dataset_digest DS: one line standing for the whole dataset's content,
# which two datasets made from the same input must share whatever their
# writing history (worker counts, commits, interruptions, resumes): the
# content hashes of its chunk objects, sorted (chunk bytes are a function of
# the input; only their random names differ; temporary files of writes
# excluded), and `info --json` without the URL and the commit number.
dataset_digest() {
  {
    (cd "$1" && find chunks -type f ! -name '.tmp.*' -exec sha256sum {} + |
      cut -d' ' -f1 | sort)
    "$SHOAL" info "$1" --json | grep -v -e '^  "url": ' -e '^  "commit": '
  } | sha256sum | cut -d' ' -f1
}

# start_s3 SOURCE_DIR [FAULT_PORT_SPEC]: starts s3rver behind
# tests/format/s3_proxy.js on a free loopback port, bucket shoal-test, and
# points the AWS_* variables at it. The proxy reads a fifo this shell holds
# open (fd 9), so it (and s3rver) stop when the script ends, however it
# ends. With a fault spec ("latency=20", "503=0.1,reset=0.1") the proxy's
# second port, $s3_fault_port, adds those faults.
start_s3() {
  local src=$1 spec=${2:-}
  local s3rver=${SHOAL_S3RVER:-/opt/shoal-s3rver/node_modules/.bin/s3rver}
  [ -x "$s3rver" ] || { echo "FAIL: $s3rver is missing (scripts/install-deps.sh installs it)" >&2; return 1; }
  command -v node >/dev/null || { echo "FAIL: node is missing (scripts/install-deps.sh)" >&2; return 1; }
  local free='import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  s3_port=$("$PY" -c "$free")
  s3_fault_port=
  local fault_args=()
  if [ -n "$spec" ]; then
    s3_fault_port=$("$PY" -c "$free")
    fault_args=("$s3_fault_port" "$spec")
  fi
  mkdir -p "$work/s3data"
  mkfifo "$work/s3keep"
  node "$src/tests/format/s3_proxy.js" "$s3_port" "$s3rver" "$work/s3data" shoal-test S3RVER S3RVER \
    "${fault_args[@]}" <"$work/s3keep" 2>"$work/proxy.err" &
  exec 9>"$work/s3keep"
  local _
  for _ in $(seq 600); do
    "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $s3_port), 1)" 2>/dev/null && break
    sleep 0.05
  done
  "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $s3_port), 1)" 2>/dev/null ||
    { echo "FAIL: the s3rver proxy did not listen on $s3_port: $(cat "$work/proxy.err")" >&2; return 1; }
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_ENDPOINT_URL_S3="http://127.0.0.1:$s3_port"
  unset AWS_SESSION_TOKEN AWS_ENDPOINT_URL
}
