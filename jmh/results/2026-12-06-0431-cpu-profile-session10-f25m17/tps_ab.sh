#!/bin/bash
# usage: tps_ab.sh PRECISION ROUNDS DIR... -> median tokens/s over steps 11..60 of small, each library dir in turn
# (a DIR holds a build's libraries, as bindings/target/classes/native/linux-x86_64; loaded through panamoe.native.dir)
cd "$(git rev-parse --show-toplevel)"
tmp=$(mktemp -d)
export OMP_NUM_THREADS=2  # the JDK 25 the launcher finds (JAVA_HOME or PATH)
p=$1; rounds=$2; shift 2
for r in $(seq $rounds); do
  for d in "$@"; do
    f=$(mktemp "$tmp/m.XXXX.jsonl")
    JAVA_TOOL_OPTIONS="-Dpanamoe.native.dir=$d" ./panamoe train --preset small --precision $p --steps 60 --batch 8 --eval-every 1000 --metrics $f > /dev/null 2>&1
    python3 -c "
import json,statistics
v=[json.loads(l)['tokens_per_s'] for l in open('$f')][10:]
print('round $r $d %.0f' % statistics.median(v))"
    rm -f $f
  done
done
