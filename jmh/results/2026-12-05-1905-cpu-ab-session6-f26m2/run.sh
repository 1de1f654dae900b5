#!/bin/bash
# The sixth session's before/after (jmh/README.md, "bf16 mixed precision, sixth session"), all in
# one go on a quiet machine, 2 threads:
#   1. linears_ab.cpp: small's dense-linear GEMMs (N = 2048 tokens; x W, dOut W^T, x^T dOut into
#      f32) through pmoe_gemm(_bf16), the two builds loaded side by side (dlopen) and alternated;
#   2. elementwise_ab.cpp: GeLU, LayerNorm, bias add and gradient, add, accumulate, AdamW (9.5M
#      parameters), f32 and bf16, the same way;
#   3. the training step through the CLI (`train --preset small --batch 8 --steps 40`), fresh JVM
#      per run, the builds alternating (-Dpanamoe.native.dir), 3 rounds per precision: median
#      tokens/s and the trainer's operator table (--report) per round.
# Usage: run.sh BEFORE_NATIVE_DIR AFTER_NATIVE_DIR RUNTIME_JAR (with JDK 25 first on PATH)
#   the native dirs hold libpanamoe_cpu.so of the two commits (bindings/target/classes/native/
#   linux-x86_64 of a build of each); RUNTIME_JAR is runtime/target/panamoe.jar (the Java side of
#   these calls is the same in both).
set -euo pipefail
before=$1 after=$2 jar=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
export OMP_NUM_THREADS=2
g++ -O2 "$here/linears_ab.cpp" -o "$work/linears_ab" -ldl
g++ -O2 "$here/elementwise_ab.cpp" -o "$work/elementwise_ab" -ldl
echo "== dense linears, A = before, B = after"
"$work/linears_ab" "$before/libpanamoe_cpu.so" "$after/libpanamoe_cpu.so" bf16
"$work/linears_ab" "$before/libpanamoe_cpu.so" "$after/libpanamoe_cpu.so" f32
echo "== elementwise, A = before, B = after"
"$work/elementwise_ab" "$before/libpanamoe_cpu.so" "$after/libpanamoe_cpu.so"
echo "== training step through the CLI, A = before, B = after"
for prec in bf16 fp32; do
  for r in 1 2 3; do
    for v in before after; do
      dir=${!v}
      out=$(java -Dpanamoe.native.dir="$dir" -jar "$jar" train --preset small --precision $prec --batch 8 \
        --steps 40 --eval-every 0 --report "$work/rep-$prec-$v-$r" 2>&1 | grep -o "median [0-9]* tokens/s")
      echo "$prec round $r $v: $out"
    done
  done
  python3 - "$work" "$prec" <<'PY'
import re, statistics, sys
work, prec = sys.argv[1], sys.argv[2]
ops = {}
for v in ("before", "after"):
    for r in (1, 2, 3):
        page = open(f"{work}/rep-{prec}-{v}-{r}/index.html").read()
        for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
            c = [re.sub(r"<[^>]+>", "", x).strip() for x in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            if len(c) == 5 and c[2].isdigit():
                ops.setdefault(c[0], {}).setdefault(v, []).append(float(c[1]) / 40)
print(f"{prec}: operator ms per step (timer totals / 40 steps, warm-up included), median of 3 rounds")
total = {"before": 0.0, "after": 0.0}
for op, d in sorted(ops.items(), key=lambda kv: -statistics.median(kv[1]["before"])):
    b, a = statistics.median(d["before"]), statistics.median(d["after"])
    total["before"] += b; total["after"] += a
    print(f"  {op:24s} {b:7.2f} -> {a:7.2f}  ({a / b:.3f})")
print(f"  {'total':24s} {total['before']:7.2f} -> {total['after']:7.2f}  ({total['after'] / total['before']:.3f})")
PY
done
rm -rf "$work"
