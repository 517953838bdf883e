#!/usr/bin/env bash
# hiredis1-check.sh -- build fairlock against hiredis 1.x and run a few
# tests, plain and over TLS.  Debian 12 ships hiredis 0.14 only, so the
# libhiredis-dev and libhiredis1.1.0 packages of the next Debian release
# (trixie) are downloaded with apt-get from the mirror this machine's apt
# already uses, through a private apt directory (the system's package lists
# and installed packages are left as they are), unpacked with dpkg -x, and
# the build is pointed at them with -DFAIRLOCK_HIREDIS_ROOT.
#
#   scripts/hiredis1-check.sh [BUILD_DIR]     (default: build-hiredis1)
#
# When the packages cannot be had (no network, no such suite on the mirror,
# an apt configuration this script does not read), it says why and exits 0:
# the check is optional, the 0.14 build is the one that must pass.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-build-hiredis1}
suite=${FAIRLOCK_HIREDIS1_SUITE:-trixie}
work=$root/$build-deps
apt=$work/apt
prefix=$work/prefix

skip() {
    echo "hiredis1-check: SKIPPED, hiredis 1.x not available: $*"
    exit 0
}

# The Debian mirror apt uses here (deb822 or one-line format), not a host
# named in this file.
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources \
    2>/dev/null | grep -v security | head -1 || true)
if [ -z "$mirror" ]; then
    mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' \
        /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 || true)
fi
[ -n "$mirror" ] || skip "no Debian mirror in /etc/apt's sources"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || skip "no $keyring"

rm -rf "$work"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$work/debs" "$prefix"
echo "deb [signed-by=$keyring] $mirror $suite main" >"$apt/sources.list"
aptopts=(-o "Dir::Etc::SourceList=$apt/sources.list"
    -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$apt/lists"
    -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root -q)
echo "== apt-get update ($suite, private lists in $apt)"
apt-get "${aptopts[@]}" update >"$work/apt-update.log" 2>&1 ||
    skip "apt-get update of $suite failed: $(tail -n 2 "$work/apt-update.log" | tr '\n' ' ')"
echo "== apt-get download libhiredis-dev libhiredis1.1.0"
(cd "$work/debs" &&
    apt-get "${aptopts[@]}" download libhiredis-dev libhiredis1.1.0) \
    >"$work/apt-download.log" 2>&1 ||
    skip "apt-get download failed: $(tail -n 2 "$work/apt-download.log" | tr '\n' ' ')"
for deb in "$work"/debs/*.deb; do
    echo "   $(basename "$deb")"
    dpkg -x "$deb" "$prefix"
done

echo "== build against $prefix"
cmake -S . -B "$build" -DFAIRLOCK_WERROR=ON -DFAIRLOCK_HIREDIS_ROOT="$prefix" \
    -DFAIRLOCK_BUILD_PYTHON=OFF -DFAIRLOCK_BUILD_BENCH=OFF |
    grep -E '^-- hiredis'
header=$(find "$prefix" -path '*/hiredis/hiredis.h' | head -1)
grep -q '^#define HIREDIS_MAJOR 1$' "$header" ||
    { echo "hiredis1-check: $header is not hiredis 1.x" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)"
# The library must run on the downloaded hiredis, not the system's.
ldd "$build/tests/test_basic" | grep -q "$prefix/.*libhiredis" ||
    { echo "hiredis1-check: test_basic does not load $prefix's hiredis" >&2; exit 1; }
(cd "$build" &&
    ctest -R '^(test_reply|test_engine|test_url|test_reference|test_basic|test_basic_tls|test_tls|cli_end_to_end)$' \
        --output-on-failure --no-tests=error -j2)
