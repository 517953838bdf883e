#!/usr/bin/env bash
# setup-and-demo.sh -- from a fresh Debian 12 machine: install what is
# missing (apt-get, as root), build fairlock and its examples, and run the
# demo (examples/demo.c) against a throwaway redis-server that this script
# starts on a unix socket in a temporary directory, with TCP off, and stops
# again, whatever happens.  It builds everything a user touches (library,
# fairlock command, Python module, examples), runs the demo and the command,
# and ends by saying where each is and how to install them; with --prefix
# it installs them there itself (no root needed for a prefix you own).
#
#   scripts/setup-and-demo.sh [--prefix DIR] [BUILD_DIR]   (default: build)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
prefix=""
if [ "${1:-}" = --prefix ]; then
    [ $# -ge 2 ] || { echo "setup-and-demo: --prefix needs a directory" >&2; exit 64; }
    prefix=$(mkdir -p "$2" && cd "$2" && pwd)
    shift 2
fi
build=${1:-build}

scripts/install-deps.sh

# The same configuration as scripts/test.sh, which can then reuse the build.
cmake -S . -B "$build" -DFAIRLOCK_WERROR=ON
cmake --build "$build" -j"$(nproc)"

# In /tmp: a unix socket path must be short (108 bytes).
tmp=$(mktemp -d /tmp/fairlock-demo.XXXXXX)
sock=$tmp/redis.sock
cleanup() {
    status=$?
    if [ -S "$sock" ]; then
        redis-cli -s "$sock" shutdown nosave >/dev/null 2>&1 || true
    fi
    if [ -s "$tmp/redis.pid" ]; then
        pid=$(cat "$tmp/redis.pid")
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit "$status"
}
# Programs run in the background and are waited for, so that a signal
# stops them and cleans up at once.
child=""
run() {
    "$@" &
    child=$!
    wait "$child"
    child=""
}
on_signal() {
    [ -n "$child" ] && kill "$child" 2>/dev/null
    exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

echo "== starting a throwaway redis-server on $sock"
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 \
    --daemonize yes --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log" \
    --dir "$tmp" --save "" --appendonly no
for _ in $(seq 50); do
    redis-cli -s "$sock" ping >/dev/null 2>&1 && break
    sleep 0.1
done
if ! redis-cli -s "$sock" ping >/dev/null 2>&1; then
    echo "setup-and-demo: redis-server did not start:" >&2
    cat "$tmp/redis.log" >&2 || true
    exit 1
fi

echo "== $build/examples/demo unix://$sock"
run "$build/examples/demo" "unix://$sock"
echo "== $build/examples/minimal unix://$sock"
run "$build/examples/minimal" "unix://$sock"
echo "== $build/cli/fairlock run -u unix://$sock demo -- echo ..."
run "$build/cli/fairlock" run -u "unix://$sock" demo -- \
    sh -c 'echo "   the command runs under lock $FAIRLOCK_NAME (token $FAIRLOCK_TOKEN)"'
echo "== the Python package: pip install into $build/python/package/venv"
# As the Python tests do (they then reuse it): offline, Debian's python3.
python=/usr/bin/python3
[ -x "$python" ] || python=python3
"$python" -B python/tests/install_venv.py "$root" "$build/python/package" >/dev/null
venv=$build/python/package/venv
FAIRLOCK_URL="unix://$sock" run "$venv/bin/python" -c '
import fairlock
with fairlock.RedisLockFifo("demo", timeout=5) as lock:
    print("   Python: holding", lock.name, "with ticket", lock.ticket)'
echo "== done; stopping the throwaway redis-server"

echo
echo "== built:"
echo "   library        $build/libfairlock.so, $build/libfairlock.a, include/fairlock.h"
echo "   command        $build/cli/fairlock        (man page: man docs/fairlock.1)"
echo "   Python package $venv (a venv: $venv/bin/python -c 'import fairlock')"
if [ -n "$prefix" ]; then
    cmake --install "$build" --prefix "$prefix" >/dev/null
    "$python" -m venv --system-site-packages "$prefix/venv"
    # From the copy install_venv.py made: pip builds where it installs from.
    "$prefix/venv/bin/pip" install -q --no-build-isolation --no-index \
        "$build/python/package/checkout/python"
    echo "== installed into $prefix (the Python package into the venv $prefix/venv):"
    echo "   export PATH=$prefix/bin:\$PATH MANPATH=$prefix/share/man:"
else
    echo "== to install them: fairlock on the PATH, man fairlock, the library:"
    echo "   cmake --install $build && ldconfig"
    echo "   the Python package, into the environment of your choice:"
    echo "   pip install ./python     (offline: pip install --no-build-isolation ./python)"
    echo "   or all without root: scripts/setup-and-demo.sh --prefix ~/.local"
fi
