#!/usr/bin/env bash
# valgrind.sh -- run test_options, test_url, test_reply, test_reference,
# test_basic, test_engine and test_tls (TLS, OpenSSL) under valgrind
# memcheck, with the same fixtures as the normal suite.  A memory error or
# a definite or indirect leak fails the
# test (valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect
# --error-exitcode=1).  The tests are the valgrind_* tests that
# -DFAIRLOCK_VALGRIND=ON registers (tests/CMakeLists.txt), label "valgrind".
#
#   scripts/valgrind.sh [BUILD_DIR]      (default: build-valgrind)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-build-valgrind}

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind.sh: valgrind is missing: apt-get install valgrind" >&2
    exit 1
fi

# No sanitizers: their runtimes and valgrind do not mix.  A Debug (-O0)
# build gives exact stacks, and keeps a pointer that a forked child of a
# test inherits on the stack, where valgrind finds it: at -O2 the child's
# copy of its parent's handle can be reported as "definitely lost".
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DFAIRLOCK_WERROR=ON \
    -DFAIRLOCK_VALGRIND=ON -DFAIRLOCK_SANITIZE=
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest -L valgrind --output-on-failure --no-tests=error -j2
