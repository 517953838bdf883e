#!/bin/sh
# trail.sh DIR -- replays DIR/fairlock.pml.trail (or the trail of the model
# named in DIR/top; made by pan in DIR, with the same -D flags in DIR/flags)
# as the model's own log lines.
dir=${1:-.}
cd "$dir" && spin -t $(cat flags 2>/dev/null) "$(cat top 2>/dev/null || echo fairlock.pml)" | grep -E "MSC:|assert|violated" | sed 's/^ *MSC: //'
