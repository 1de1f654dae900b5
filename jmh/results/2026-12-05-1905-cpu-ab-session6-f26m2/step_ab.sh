#!/bin/bash
# The training step before/after through JMH (TrainingStepBenchmark, small, as the sitting runs
# it: 1 x 3 s warm-up, 5 x 3 s measured, one fork), the two builds alternating
# (-Dpanamoe.native.dir in the fork), 4 rounds per precision; prints each run's score.
# Usage: step_ab.sh BEFORE_NATIVE_DIR AFTER_NATIVE_DIR BENCHMARKS_JAR (with JDK 25 first on PATH)
set -euo pipefail
before=$1 after=$2 jar=$3
export OMP_NUM_THREADS=2
for prec in bf16 fp32; do
  for r in 1 2 3 4; do
    for v in before after; do
      dir=${!v}
      score=$(java --enable-native-access=ALL-UNNAMED -jar "$jar" TrainingStepBenchmark -p preset=small \
        -p precision=$prec -f 1 -wi 1 -w 3s -i 5 -r 3s -jvmArgsAppend "-Dpanamoe.native.dir=$dir" 2>/dev/null \
        | awk '/^TrainingStepBenchmark.step/ {print $(NF-3), $(NF-2), $(NF-1), $NF}')
      echo "$prec round $r $v: $score"
    done
  done
done
