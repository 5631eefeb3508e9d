#!/usr/bin/env bash
# The folders are layers (README, "Layout"): a source file may include
# headers of its own folder and of the folders it is allowed to use, never
# of a folder that uses it, so that the library has no circle. Fails listing
# every include that breaks the order.
set -euo pipefail
root=${1:?usage: layers_test.sh SOURCE_DIR}
cd "$root"
# folder: the shoal folders it may include besides itself
declare -A allowed=(
  [base]=""
  [codecs]="base"
  [video]="base"
  [format]="base codecs"
  [loader]="base codecs format video"
  [tools]="base codecs format video loader"
)
bad=0
checked=0
for folder in "${!allowed[@]}"; do
  while IFS= read -r line; do
    file=${line%%:*}
    target=$(sed -E 's/.*#include "([^"/]+)\/.*/\1/' <<<"$line")
    checked=$((checked + 1))
    [ "$target" = "$folder" ] && continue
    [ -d "$target" ] || continue  # not a shoal folder (e.g. a system header)
    ok=0
    for a in ${allowed[$folder]}; do [ "$a" = "$target" ] && ok=1; done
    if [ $ok = 0 ]; then
      echo "layers: $file includes $target/ (a $folder file may use: ${allowed[$folder]:-nothing})"
      bad=1
    fi
  done < <(grep -rn --include='*.h' --include='*.cc' '#include "[^"/]*/' "$folder" || true)
done
# The check must have seen the includes it guards.
[ "$checked" -gt 100 ] || { echo "layers: only $checked includes found under $root"; exit 1; }
[ $bad = 0 ] && echo "layers: $checked includes in order"
exit $bad
