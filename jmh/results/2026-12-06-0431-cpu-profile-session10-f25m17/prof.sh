#!/bin/bash
# usage: prof.sh PRECISION OUT -> per-symbol sample shares of `train --preset small` at steady state
# (perf on the running JVM, both threads, 20 s after 25 s of warm-up). Run from anywhere inside
# the repository on a quiet machine; scratch files go to a temporary folder.
# With JAVA_TOOL_OPTIONS="-XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit" the JVM writes
# /tmp/perf-PID.map at exit, which names the JIT's Java methods in the report (04:58Z run).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export OMP_NUM_THREADS=2
p=$1 out=$2 tmp=$(mktemp -d)
./panamoe train --preset small --precision "$p" --steps 400 --batch 8 --eval-every 100000 > "$tmp/train.log" 2>&1 &
sleep 25
pid=$(pgrep -f "precision $p" | while read -r q; do grep -q java /proc/$q/comm 2>/dev/null && echo $q; done | head -1)
perf record -o "$tmp/perf.data" -F 999 -p "$pid" -- sleep 20 > /dev/null 2>&1
kill "$pid"; sleep 3
perf report -i "$tmp/perf.data" --no-children --sort sym -g none 2>/dev/null | grep "%" \
    | sed -E 's/^ +([0-9.]+)% +\[.\] +/\1 /' | cut -c1-160 | head -40 > "$out"
grep -E "tok/s" "$tmp/train.log" | tail -1
