#!/bin/bash
# TrainingStepBenchmark (small, fp32 and bf16) with two native builds, alternated: the same jar,
# each fork told where its libpanamoe_cpu.so is (-Dpanamoe.native.dir). Two rounds.
# Usage: step_ab.sh BEFORE_NATIVE_DIR AFTER_NATIVE_DIR (each with the native libraries of a build)
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
export OMP_NUM_THREADS=2
for round in 1 2; do
  for p in bf16 fp32; do
    for v in "$1" "$2"; do
      r=$(java -jar "$root/jmh/target/benchmarks.jar" TrainingStepBenchmark.step -p preset=small -p precision=$p \
            -f 1 -wi 1 -w 3s -i 4 -r 3s -jvmArgsAppend "-Dpanamoe.native.dir=$v" 2>&1 | grep -E "^TrainingStepBenchmark.step" | awk '{print $(NF-3), $NF}')
      echo "round $round $p $v: $r"
    done
  done
done
