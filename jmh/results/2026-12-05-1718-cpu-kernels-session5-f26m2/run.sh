#!/bin/bash
# The fifth session's kernel before/after (jmh/README.md, "bf16 mixed precision, fifth session"):
# Mb.java times LayerNorm forward/backward (2048 x 256) and attention forward/backward (8 x T
# tokens, C 256, 8 heads; T = 256 unless given) through CpuBackend; Adam.java times AdamW over 96
# parameters with bf16 working copies, fused against update-then-convert, in one process.
# Usage: run.sh BEFORE_NATIVE_DIR AFTER_NATIVE_DIR RUNTIME_JAR
#   the native dirs hold libpanamoe_cpu.so of the two commits (bindings/target/classes/native/
#   linux-x86_64 of a build of each), RUNTIME_JAR is runtime/target/panamoe.jar of either (the
#   Java side of these calls is the same in both). Fresh JVM per run, the two alternating.
set -euo pipefail
before=$1 after=$2 jar=$3
cd "$(dirname "$0")"
export OMP_NUM_THREADS=2
javac -d /tmp/kernels-session5 -cp "$jar" Mb.java Adam.java
run() { java --enable-native-access=ALL-UNNAMED -cp "$jar:/tmp/kernels-session5" -Dpanamoe.native.dir="$1" "${@:2}" | tail -1; }
for dtype in bf16 f32; do
  for r in 1 2 3 4; do
    echo "before $(run "$before" Mb $dtype)"
    echo "after  $(run "$after" Mb $dtype)"
  done
done
for r in 1 2 3 4; do
  echo "before T=255 $(run "$before" Mb bf16 255)"
  echo "after  T=255 $(run "$after" Mb bf16 255)"
done
echo "after, AdamW: $(java --enable-native-access=ALL-UNNAMED -cp "$jar:/tmp/kernels-session5" -Dpanamoe.native.dir="$after" Adam | tail -3 | tr '\n' ' ')"
