#!/bin/bash
# usage: tps_ab.sh PRECISION ROUNDS DIR... -> median tokens/s over steps 11..60 of small, each library dir in turn
cd /work/main
export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64 PATH=/usr/lib/jvm/temurin-25-jdk-amd64/bin:$PATH OMP_NUM_THREADS=2
p=$1; rounds=$2; shift 2
for r in $(seq $rounds); do
  for d in "$@"; do
    f=$(mktemp /tmp/exp/m.XXXX.jsonl)
    JAVA_TOOL_OPTIONS="-Dpanamoe.native.dir=$d" ./panamoe train --preset small --precision $p --steps 60 --batch 8 --eval-every 1000 --metrics $f > /dev/null 2>&1
    python3 -c "
import json,statistics
v=[json.loads(l)['tokens_per_s'] for l in open('$f')][10:]
print('round $r $d %.0f' % statistics.median(v))"
    rm -f $f
  done
done
