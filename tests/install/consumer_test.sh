#!/usr/bin/env bash
# Installs a shoal build into a fresh prefix, then builds and runs
# consumer/main.cc against the installed files only: once as a CMake project
# (find_package(shoal) + shoal::shoal) and once with the flags from
# pkg-config. Run by ctest (tests/install/CMakeLists.txt passes the arguments).
#
# Usage: consumer_test.sh BUILD_DIR CONSUMER_SOURCE_DIR CMAKE GENERATOR CC CXX
#                         LIBDIR [EXTRA_FLAGS]
set -euo pipefail

if [[ $# -lt 7 ]]; then
  echo "usage: $0 BUILD_DIR CONSUMER_SOURCE_DIR CMAKE GENERATOR CC CXX LIBDIR [EXTRA_FLAGS]" >&2
  exit 2
fi
build_dir=$1
consumer_src=$2
cmake=$3
generator=$4
cc=$5
cxx=$6
libdir=$7
extra_flags=${8:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

echo "== install into $prefix"
"$cmake" --install "$build_dir" --prefix "$prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log" >&2; exit 1; }

echo "== check the installed files"
test -f "$prefix/include/shoal/shoal.h"
test -f "$prefix/include/shoal/base/status.h"
test -f "$prefix/$libdir/cmake/shoal/shoalConfig.cmake"
test -f "$prefix/$libdir/cmake/shoal/shoalConfigVersion.cmake"
test -f "$prefix/$libdir/pkgconfig/shoal.pc"
# Private code stays private.
if find "$prefix/include" -path '*/internal/*' | grep .; then
  echo "FAIL: internal headers were installed" >&2
  exit 1
fi
# Third-party libraries are private: the export must not mention them, or
# consumers would need their find modules.
if grep -l 'PkgConfig::\|nlohmann_json::\|ZLIB::' "$prefix/$libdir/cmake/shoal/"*.cmake; then
  echo "FAIL: exported targets reference third-party targets" >&2
  exit 1
fi

echo "== each installed header compiles on its own"
# Catches a public header that includes a private (internal/) or third-party
# header, or that relies on being included after another one.
pc_cflags=$(PKG_CONFIG_LIBDIR="$prefix/$libdir/pkgconfig" pkg-config --cflags shoal)
count=0
while IFS= read -r header; do
  # shellcheck disable=SC2086  # the flags are meant to split into words
  echo "#include <shoal/${header#"$prefix/include/shoal/"}>" |
    "$cxx" -std=c++20 $pc_cflags -fsyntax-only -x c++ - ||
    { echo "FAIL: $header does not compile on its own" >&2; exit 1; }
  count=$((count + 1))
done < <(find "$prefix/include/shoal" -name '*.h' | sort)
echo "$count headers"

echo "== consumer through find_package(shoal)"
"$cmake" -S "$consumer_src" -B "$tmp/cmake-build" -G "$generator" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_FLAGS="$extra_flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$extra_flags" \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF >"$tmp/configure.log" ||
  { cat "$tmp/configure.log" >&2; exit 1; }
# The package must come from the scratch prefix, not from some other install.
found=$(sed -n 's/^shoal_DIR:PATH=//p' "$tmp/cmake-build/CMakeCache.txt")
if [[ $found != "$prefix"/* ]]; then
  echo "FAIL: found shoal in '$found', expected under $prefix" >&2
  exit 1
fi
"$cmake" --build "$tmp/cmake-build"
out=$("$tmp/cmake-build/consumer")
echo "$out"
[[ $out == "consumer ok" ]]

echo "== consumer through pkg-config"
# PKG_CONFIG_LIBDIR (not _PATH) so that only the scratch prefix is searched.
pc_flags=$(PKG_CONFIG_LIBDIR="$prefix/$libdir/pkgconfig" pkg-config --cflags --libs shoal)
echo "pkg-config: $pc_flags"
# shellcheck disable=SC2086  # the flags are meant to split into words
"$cxx" -std=c++20 $extra_flags "$consumer_src/main.cc" -o "$tmp/consumer-pc" \
  $pc_flags -Wl,-rpath,"$prefix/$libdir"
out=$("$tmp/consumer-pc")
echo "$out"
[[ $out == "consumer ok" ]]

echo "PASS"
