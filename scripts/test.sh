#!/usr/bin/env bash
# test.sh -- configure, build with warnings as errors, and run the whole
# test suite (unit tests, and integration tests against a private
# redis-server that the CTest fixture starts and stops).
#
#   scripts/test.sh [BUILD_DIR [CMAKE_OPTION...]]      (default: build)
#
#   scripts/test.sh build-asan -DFAIRLOCK_SANITIZE=address,undefined
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-build}
[ $# -gt 0 ] && shift

for tool in cmake cc pkg-config redis-server redis-cli nm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "test.sh: $tool is missing; install the dependencies with" >&2
        echo "  scripts/install-deps.sh   (as root, Debian 12)" >&2
        exit 1
    fi
done

cmake -S . -B "$build" -DFAIRLOCK_WERROR=ON "$@"
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure --no-tests=error -j2
