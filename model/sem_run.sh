#!/bin/sh
# sem_run.sh [WORK_DIR] -- the larger checks of the semaphore and
# readers-writer lock model (sem.pml), beyond what CI runs; the figures of
# a run are in docs/protocol.md ("The semaphore and readers-writer lock").
# One pan at a time, each bounded by MODEL_MEMLIM MB (default 3500; the
# two big runs by BIG_MEMLIM, default 8000: 6.4 GB used).  About 35
# minutes on two cores shared with other work.
#
#   sem_faults2  "semaphore 2", 3 clients, 2 crashes, 1 pause, 2 lost
#                replies: exhaustive
#   rw_faults2   the same for the readers-writer lock (a writer, 2 readers)
#   rw_served    property 4 as <> (everyone finished), weak fairness
#                (pan -a -f), readers-writer lock, nobody gives up
#   sem_four_hc  "semaphore 2", 4 clients, 1 crash, 1 pause, 1 lost reply
#                (client 0's lease 5, client 3 gives up after 5 ticks): too
#                big for an exhaustive search in 7 GB (it stopped at 112
#                million states), so hash compaction (pan -DHC4)
#   rw_four_bit  the same for the readers-writer lock, writers 0 and 2,
#                readers 1 and 3: hash compaction too ran out of 8 GB (at
#                183 million states), so bitstate (2^33 bits, 1 GB)
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-${TMPDIR:-/tmp}/fairlock-sem-model}
cc=${CC:-cc}
status=0
export MODEL_MEMLIM="${MODEL_MEMLIM:-3500}"

for run in "sem_faults2 -DNCRASH=2 -DNLOST=2 -DTOL=5" \
    "rw_faults2 -DRW -DNCRASH=2 -DNLOST=2 -DTOL=5" \
    "rw_served -DRW -DLTL_SERVED"; do
    # shellcheck disable=SC2086  # name and flags
    set -- $run
    name=$1
    shift
    echo "== $name: $*"
    sh "$here/check.sh" "$cc" "$work/$name" pass sem.pml "$@" || status=1
done

# big NAME "CC_FLAGS" "PAN_FLAGS" SPIN_FLAG...: a search too big for an
# exhaustive one (hash compaction or bitstate), cut after BIG_SECONDS
# (default 1500)
big() {
    name=$1 ccflags=$2 panflags=$3
    shift 3
    echo "== $name: $* / cc $ccflags / pan $panflags"
    dir=$work/$name
    rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
    cp "$here"/*.pml .
    echo "$*" >flags
    echo sem.pml >top
    spin -a "$@" sem.pml >spin.out || exit 1
    # shellcheck disable=SC2086  # flag lists
    "$cc" -O2 -w -DSAFETY $ccflags -DMEMLIM="${BIG_MEMLIM:-8000}" -o pan pan.c ||
        exit 1
    start=$(date +%s)
    # shellcheck disable=SC2086
    timeout "${BIG_SECONDS:-1500}" ./pan -m200000 $panflags >pan.out 2>&1
    end=$(date +%s)
    echo "   $((end - start)) s"
    grep -E "violated|State-vector|states, stored|hash conflicts|hash factor|total actual|error:|MEMLIM|out of memory" pan.out
    if grep -q violated pan.out; then
        sh "$here/trail.sh" .
        status=1
    elif ! grep -q "errors: 0" pan.out ||
        grep -qE "Search not completed|out of memory" pan.out; then
        echo "   cut (time or memory), no violation so far:"
        grep "^Depth=" pan.out | tail -1
    fi
}

big sem_four_hc -DHC4 -w27 -DNC=4 -DTOL=5 -DLEASE0=5
big rw_four_bit -DBITSTATE -w33 -DRW -DNC=4 -DWRITERS=5 -DTOL=5 -DLEASE0=5
exit $status
