#!/bin/bash
# usage: prof.sh PRECISION OUT -> per-function sample shares of a steady-state small training step
cd /work/main
./panamoe train --preset small --precision $1 --steps 400 --batch 8 --eval-every 100000 > /tmp/exp/train-$1.log 2>&1 &
sleep 25
pid=$(pgrep -f "precision $1" | xargs -n1 sh -c 'cat /proc/$0/comm 2>/dev/null | grep -q java && echo $0' | head -1)
perf record -o /tmp/exp/perf-$1.data -F 999 -p $pid -- sleep 20 > /dev/null 2>&1
pkill -f "precision $1"
perf report -i /tmp/exp/perf-$1.data --no-children --sort dso,sym -g none 2>/dev/null | grep "%" | awk '{gsub("%","",$1); print $1, $2, $4}' > /tmp/exp/prof-$1.txt
python3 - $1 > $2 <<'PY'
import subprocess, collections, sys
L="bindings/target/classes/native/linux-x86_64/libpanamoe_cpu.so"
rows=[l.split() for l in open('/tmp/exp/prof-%s.txt' % sys.argv[1]) if len(l.split())==3]
agg=collections.Counter(); addrs=[]
for p,dso,sym in rows:
    if dso=='libpanamoe_cpu.so' and sym.startswith('0x'): addrs.append((float(p),sym))
    else: agg[dso+' '+sym]+=float(p)
out=subprocess.run(['addr2line','-f','-C','-e',L]+[a for _,a in addrs],capture_output=True,text=True).stdout.split('\n')
for i,(p,a) in enumerate(addrs):
    agg[out[2*i][:150]]+=p
for k,v in agg.most_common(45): print(f"{v:6.2f} {k}")
PY
grep -E "tokens/s|step " /tmp/exp/train-$1.log | tail -2
