#!/bin/bash
# usage: tps.sh PRECISION  (env passed through) -> median tokens/s over steps 11..60
f=$(mktemp -t m.XXXX.jsonl)
./panamoe train --preset small --precision $1 --steps 60 --batch 8 --eval-every 1000 --metrics $f > /dev/null 2>&1
python3 -c "
import json,statistics,sys
v=[json.loads(l)['tokens_per_s'] for l in open('$f')][10:]
print('%.0f' % statistics.median(v))"
rm -f $f
