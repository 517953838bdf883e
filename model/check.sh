#!/bin/sh
# check.sh CC DIR EXPECT [TOP.pml] [SPIN_FLAG...] -- one exhaustive spin run.
#
# Generates the verifier from model/fairlock.pml (or TOP.pml, e.g. sem.pml
# for the semaphore and readers-writer lock) with the given -D flags
# into DIR, compiles it with CC and runs it.  EXPECT is "pass" (no error,
# search complete) or the name of the property a mutant must break (the
# always-0 variable in that property's assertion, e.g. P2_bound).  On a
# failure the counterexample is printed as the model's own log lines.
#
# Limits: MODEL_MEMLIM (MB, default 1536), MODEL_DEPTH (default 100000).
set -eu
cc=$1 dir=$2 expect=$3
shift 3
top=fairlock.pml
case "${1:-}" in *.pml) top=$1 && shift ;; esac
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
cp "$here"/*.pml .
echo "$*" >flags
echo "$top" >top
spin -a "$@" "$top" >spin.out
# COLLAPSE: lossless state compression, about a third of the memory.
# With -DLTL_SERVED the never claim is searched for acceptance cycles under
# weak fairness instead (pan -a -f).
safety=-DSAFETY liveness=
case " $* " in *" -DLTL_SERVED "*) safety=-DNFAIR=3 liveness="-a -f" ;; esac
"$cc" -O2 -w $safety -DCOLLAPSE -DMEMLIM="${MODEL_MEMLIM:-1536}" \
    -o pan pan.c
start=$(date +%s)
# shellcheck disable=SC2086  # flag list
./pan $liveness -m"${MODEL_DEPTH:-100000}" >pan.out 2>&1 || true
end=$(date +%s)
grep -E "violated|acceptance cycle \(|State-vector|states, stored|transitions|total actual|error:|depth reached" pan.out || true
echo "flags: $* -- $((end - start)) s"
if [ "$expect" = pass ]; then
    if grep -q "errors: 0" pan.out &&
        ! grep -qE "max search depth too small|out of memory|Search not completed" pan.out; then
        echo "PASS: no property violated, search complete"
        exit 0
    fi
    echo "FAIL: expected no violation"
    [ -f "$top.trail" ] && sh "$here/trail.sh" .
    exit 1
fi
if grep -E "violated|acceptance cycle \(" pan.out | grep -q "$expect"; then
    echo "PASS: the mutant breaks $expect, as expected; its counterexample:"
    sh "$here/trail.sh" . | tail -15
    exit 0
fi
echo "FAIL: expected a violation of $expect"
[ -f "$top.trail" ] && sh "$here/trail.sh" .
exit 1
