#!/bin/sh
# run.sh [WORK_DIR] -- the larger checks of the model, beyond what CI runs
# (model/README.md; the figures of a run are in docs/protocol.md, "The
# model").  One pan at a time; each bounded by MODEL_MEMLIM MB (default
# 3500) and its own time limit.  Takes about 35 minutes on two cores.
#
#   served    property 4 as the LTL formula <> (everyone finished), weak
#             fairness: 2 fairlock clients without a timeout (each must be
#             served) + 1 reference client, 1 crash, 1 pause, 1 lost reply
#             (pan -a -f), exhaustive
#   renew     renewal and extend with 2 lost replies, a longer hold and
#             commands held up to 3 ticks: exhaustive
#   bitstate  3 fairlock + 1 reference client, 1 crash, 1 pause, 1 lost
#             reply: bitstate (supertrace) search with a 2^33-bit table
#             (1 GB), cut after BITSTATE_SECONDS (default 1500): too big to
#             finish on two cores, so it reports how far it got
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-${TMPDIR:-/tmp}/fairlock-model}
memlim=${MODEL_MEMLIM:-3500}
cc=${CC:-cc}
status=0

# one NAME SECONDS "CC_FLAGS" "PAN_FLAGS" SPIN_FLAG...
one() {
    name=$1 limit=$2 ccflags=$3 panflags=$4
    shift 4
    dir=$work/$name
    rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
    cp "$here"/*.pml .
    echo "$*" >flags
    spin -a "$@" fairlock.pml >spin.out || exit 1
    # shellcheck disable=SC2086  # flag lists
    "$cc" -O2 -w -DMEMLIM="$memlim" $ccflags -o pan pan.c || exit 1
    start=$(date +%s)
    # shellcheck disable=SC2086
    timeout "$limit" ./pan $panflags >pan.out 2>&1
    end=$(date +%s)
    echo "== $name: spin $* / cc $ccflags / pan $panflags: $((end - start)) s"
    grep -E "violated|acceptance cycle \(|State-vector|states, stored|hash factor|collision|total actual|error:|MEMLIM" pan.out
    if [ "$name" = bitstate ] && ! grep -q "errors:" pan.out &&
        ! grep -q violated pan.out; then
        echo "   cut at the time limit, no violation so far:"
        grep "^Depth=" pan.out | tail -1
        return
    fi
    if ! grep -q "errors: 0" pan.out ||
        grep -qE "max search depth too small|out of memory|MEMLIM|Search not completed" pan.out; then
        echo "   FAILED (work directory $dir)"
        [ -f fairlock.pml.trail ] && sh "$here/trail.sh" .
        status=1
    fi
}

one served 900 "-DCOLLAPSE -DNFAIR=3" "-a -f -m200000" -DLTL_SERVED
one renew 900 "-DSAFETY -DCOLLAPSE" "-m200000" -DRENEW -DNF=2 -DNR=0 \
    -DLEASE=6 -DLIVE=6 -DSTALL=3 -DNLOST=2 -DHOLD_R=6 -DTMAX=28
one bitstate "${BITSTATE_SECONDS:-1500}" "-DSAFETY -DBITSTATE" \
    "-w33 -m200000" -DNF=3 -DNR=1
exit $status
