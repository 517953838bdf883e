#!/bin/sh
# trail.sh DIR -- replays DIR/fairlock.pml.trail (made by pan in DIR, with
# the same -D flags in DIR/flags) as the model's own log lines.
dir=${1:-.}
cd "$dir" && spin -t $(cat flags 2>/dev/null) fairlock.pml | grep -E "MSC:|assert|violated" | sed 's/^ *MSC: //'
