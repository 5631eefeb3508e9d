#!/usr/bin/env bash
# Runs one step of `make demo` / `make test` quietly: one line saying what it
# does and where its log is, one line when it is done; the command's own
# output (compiler, package manager, ctest) goes to the log. On failure it
# prints the log's last lines and its path, and exits with the command's
# status. VERBOSE=1 shows the output as it comes instead.
#
# Usage: scripts/step.sh NAME LOG COMMAND [ARGS...]
set -uo pipefail
name=$1
log=$2
shift 2
mkdir -p "$(dirname "$log")"
if [ "${VERBOSE:-0}" != "0" ]; then
  echo "== $name"
  "$@" 2>&1 | tee "$log"
  exit "${PIPESTATUS[0]}"
fi
printf '%-10s %s\n' "$name" "(log: $log)"
start=$(date +%s)
"$@" >"$log" 2>&1
status=$?
seconds=$(($(date +%s) - start))
if [ "$status" -ne 0 ]; then
  echo "$name FAILED after ${seconds} s (exit $status); the end of $log:" >&2
  tail -n "${STEP_TAIL_LINES:-40}" "$log" | sed 's/^/  | /' >&2
  echo "full log: $log" >&2
  exit "$status"
fi
printf '%-10s done in %d s\n' "" "$seconds"
