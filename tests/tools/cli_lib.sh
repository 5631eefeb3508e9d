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
    fail "'$*' exited $got, expected $want; stdout: $(head -c 2000 out); stderr: $(head -c 2000 err)"
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
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  echo "$1: all checks passed"
}
