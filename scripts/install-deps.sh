#!/usr/bin/env bash
# install-deps.sh -- install the Debian 12 packages fairlock needs.
#
#   scripts/install-deps.sh          install whichever are missing (root)
#   scripts/install-deps.sh --ci     also the CI tools (clang and its
#                                    libFuzzer runtime, valgrind), and
#                                    always run apt-get
#
# Base: compiler, CMake, pkg-config, hiredis headers, redis-server with
# redis-cli, which the demo and the tests start privately (on a unix socket,
# or a free port; never 6379), and Python 3 with its headers and redis-py
# for the Python binding's tests and the benchmark's smoke test, and venv,
# pip, setuptools and wheel, with which the tests pip-install the Python
# package into a virtual environment, offline; jq, which an example of the
# man page uses (the documentation's snippets are tested); spin, the model
# checker of the protocol's model (model/, ctest -L model); OpenSSL's
# headers (TLS) and its command, which the TLS fixture makes certificates
# with; libuv and libevent, whose adapters (include/fairlock/) have
# examples and tests built when they are found.
set -euo pipefail

base="build-essential binutils cmake pkg-config libhiredis-dev
      redis-server redis-tools python3 python3-dev python3-redis
      python3-venv python3-pip python3-setuptools python3-wheel jq spin
      libssl-dev openssl libuv1-dev libevent-dev"
ci_extra="clang clang-format libclang-rt-dev valgrind"
base=$(echo $base) # one line

packages=$base
always=0
if [ "${1:-}" = "--ci" ]; then
    packages="$base $ci_extra"
    always=1
fi

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
        grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done
if [ "$always" = 0 ] && [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing Debian packages:$missing" >&2
    echo "install-deps: run as root, or: sudo apt-get install$missing" >&2
    exit 1
fi

# Installing redis-server may start Debian's own service (on a machine
# without policy-rc.d).  fairlock never uses it: if this install is what
# started it, it is stopped again, so that nothing is left running.
redis_was_installed=1
dpkg-query -W -f='${Status}\n' redis-server 2>/dev/null |
    grep -q '^install ok installed$' || redis_was_installed=0

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get update"
apt-get update -q
echo "install-deps: apt-get install$( [ "$always" = 1 ] && echo " $packages" || echo "$missing")"
# shellcheck disable=SC2086  # word lists
if [ "$always" = 1 ]; then
    apt-get install -y -q --no-install-recommends $packages
else
    apt-get install -y -q --no-install-recommends $missing
fi

pidfile=/run/redis/redis-server.pid
if [ "$redis_was_installed" = 0 ] && [ -s "$pidfile" ] &&
    kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "install-deps: stopping the redis-server service the package started"
    if [ -d /run/systemd/system ]; then
        systemctl stop redis-server || true
    else
        invoke-rc.d redis-server stop || kill "$(cat "$pidfile")" || true
    fi
fi
