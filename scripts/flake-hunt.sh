#!/usr/bin/env bash
# flake-hunt.sh -- run the tests that use servers many times in a row,
# optionally on a machine loaded with CPU hogs, to find flaky tests (ones
# that fail now and then without a change) before CI does.
#
#   scripts/flake-hunt.sh [--load] [BUILD_DIR [N [CMAKE_OPTION...]]]
#
#   --load        start a CPU hog (a shell busy loop) on every core for the
#                 whole run, as when other work shares the machine
#   BUILD_DIR     build directory (default build-flake-hunt), configured
#                 with -DFAIRLOCK_WERROR=ON and the CMAKE_OPTIONs, and built
#   N             runs of each test (default 5): ctest --repeat
#                 until-fail:N, so a test stops at its first failure
#
# The tests are those labelled server (the integration tests, the cluster
# and sentinel tests, the CLI's end-to-end test and their fixtures), faults
# (the fault-injection suite) and python, run with -j2 as CI does
# ($FLAKE_HUNT_JOBS to change it); $FLAKE_HUNT_TESTS, a regular
# expression, narrows them down (ctest -R), e.g. to hunt one flaky test
# again.  The log is BUILD_DIR/flake-hunt.log;
# the summary at the end gives the runs, the tests and the failed runs.
# Exit status: ctest's (0 when every run passed).
#
# Before submitting a change (it takes about N times as long as one run of
# those tests, more with --load):
#   scripts/flake-hunt.sh --load build-flake-hunt 3
#   scripts/flake-hunt.sh build-flake-asan 2 -DFAIRLOCK_SANITIZE=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/flake-hunt.sh [--load] [BUILD_DIR [N" \
        "[CMAKE_OPTION...]]] (see the comment at its top)" >&2
    exit 2
}

load=0
if [ "${1:-}" = "--load" ]; then
    load=1
    shift
fi
case "${1:-}" in -*) usage ;; esac
dir=${1:-build-flake-hunt}
runs=${2:-5}
shift $(($# < 2 ? $# : 2))
case "$runs" in '' | *[!0-9]* | 0) usage ;; esac
jobs=${FLAKE_HUNT_JOBS:-2}
labels='^(server|faults|python)$'
select=(-L "$labels")
if [ -n "${FLAKE_HUNT_TESTS:-}" ]; then
    select+=(-R "$FLAKE_HUNT_TESTS")
fi

# The hogs (and an interrupted ctest) die with this script, however it
# ends.
hogs=()
ctest_pid=
cleanup() {
    if [ -n "$ctest_pid" ] && kill -0 "$ctest_pid" 2>/dev/null; then
        # ctest and the tests it runs: its process group.
        kill -TERM -- "-$ctest_pid" 2>/dev/null || true
        wait "$ctest_pid" 2>/dev/null || true
    fi
    ctest_pid=
    if [ ${#hogs[@]} -gt 0 ]; then
        kill "${hogs[@]}" 2>/dev/null || true
        wait "${hogs[@]}" 2>/dev/null || true
        hogs=()
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "flake-hunt: configure and build $dir (-DFAIRLOCK_WERROR=ON $*)"
mkdir -p "$dir"
build_log=$dir/flake-hunt-build.log
if ! { cmake -S . -B "$dir" -DFAIRLOCK_WERROR=ON "$@" &&
    cmake --build "$dir" -j"$(nproc)"; } >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    echo "flake-hunt: the build failed (log: $build_log)" >&2
    exit 1
fi

if [ "$load" = 1 ]; then
    for _ in $(seq "$(nproc)"); do
        (while :; do :; done) &
        hogs+=($!)
    done
    echo "flake-hunt: ${#hogs[@]} CPU hogs running (pids ${hogs[*]})"
fi

log=$dir/flake-hunt.log
echo "flake-hunt: ctest ${select[*]} --repeat until-fail:$runs -j$jobs" \
    "(log: $log)"
t0=$(date +%s)
# In the background and in a process group of its own (set -m), so that a
# signal to this script is handled at once and ends the tests too.
set -m
(cd "$dir" && exec ctest "${select[@]}" --repeat until-fail:"$runs" \
    --output-on-failure --no-tests=error -j"$jobs") >"$log" 2>&1 &
ctest_pid=$!
set +m
rc=0
wait "$ctest_pid" || rc=$?
ctest_pid=
cleanup

# Every run of a test prints one "Test #K: NAME ....   Passed|***Failed"
# line (the last of them with an "I/T" prefix).
awk -v runs="$runs" -v load="$load" -v rc="$rc" -v secs="$(($(date +%s) - t0))" '
match($0, /Test +#[0-9]+: [^ ]+ /) {
    name = substr($0, RSTART, RLENGTH)
    sub(/^Test +#[0-9]+: /, "", name)
    sub(/ $/, "", name)
    if (!(name in seen)) {
        seen[name] = 1
        tests++
        if (name ~ /^(redis|cluster|sentinel)_(start|stop)$/)
            fixtures++
    }
    total++
    count[name]++
    if ($0 ~ / Passed /) next
    if ($0 ~ /Skipped/) { skipped++; next }
    failed++
    bad[name]++
}
END {
    printf "flake-hunt: %d tests (%d of them fixtures), up to %d runs each, " \
           "%s, %d s\n", tests, fixtures, runs,
           load ? "machine loaded" : "no extra load", secs
    printf "flake-hunt: %d runs, %d failed, %d skipped\n", total, failed,
           skipped
    for (n in bad)
        printf "flake-hunt:   %s failed in run %d\n", n, count[n]
    if (tests == 0)
        print "flake-hunt: no test ran: see the log"
    print (rc == 0 && failed == 0 && tests > 0) ? "flake-hunt: PASSED" \
                                                 : "flake-hunt: FAILED"
}
' "$log"
exit "$rc"
