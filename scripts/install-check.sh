#!/usr/bin/env bash
# install-check.sh -- install a build into a scratch prefix and build the
# consumer in tests/install/ against it twice: with find_package(fairlock)
# (CMake package, shared and static) and with `pkg-config --cflags --libs
# fairlock` and plain cc.  Each consumer binary is run.
#
#   scripts/install-check.sh [BUILD_DIR]      (default: build, already built)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-build}
if [ ! -f "$build/CMakeCache.txt" ]; then
    echo "install-check: $build is not a configured build (run scripts/test.sh first)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fairlock-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

echo "== cmake --install $build --prefix $prefix"
cmake --build "$build" -j"$(nproc)" --target fairlock fairlock_static
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
sed 's/^/   /' "$work/install.log"

echo "== find_package(fairlock) consumer"
cmake -S tests/install -B "$work/cmake-consumer" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/cmake-consumer" -j"$(nproc)"
echo "   consumer (fairlock::fairlock):"
"$work/cmake-consumer/consumer"
echo "   consumer_static (fairlock::fairlock_static):"
"$work/cmake-consumer/consumer_static"

echo "== pkg-config consumer"
export PKG_CONFIG_PATH="$(dirname "$(find "$prefix" -name fairlock.pc)")"
flags=$(pkg-config --cflags --libs fairlock)
echo "   pkg-config --cflags --libs fairlock: $flags"
# shellcheck disable=SC2086  # the flags are words
cc -std=c11 -Wall -Wextra -Werror -o "$work/pc-consumer" \
    tests/install/consumer.c $flags
LD_LIBRARY_PATH="$(pkg-config --variable=libdir fairlock)" "$work/pc-consumer"

echo "install-check: OK"
