#!/bin/bash
# Same-sitting A/B of this session's change: "before" = main at d2b6123 (worktree /work/baseline),
# "after" = main at the commit in after-commit.txt; interleaved, both orders.
export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64 PATH=/usr/lib/jvm/temurin-25-jdk-amd64/bin:$PATH OMP_NUM_THREADS=2
cat /proc/loadavg > load-before.txt
for r in 1 2; do
  order="baseline main"; [ $r = 2 ] && order="main baseline"
  for w in $order; do
    java -jar /work/$w/jmh/target/benchmarks.jar 'TrainingStepBenchmark' -p preset=small -f 1 -wi 2 -i 5 -rf json -rff step-$w-r$r.json > step-$w-r$r.log 2>&1
    java -jar /work/$w/jmh/target/benchmarks.jar 'MoELayerBenchmark.trainingStep' -p shape=mixtral/4,deepseek/4 -p dtype=bf16 -p isa=avx512_bf16 -f 1 -wi 1 -w 4s -i 4 -r 4s -rf json -rff moe-$w-r$r.json > moe-$w-r$r.log 2>&1
    cat /proc/loadavg >> load-during.txt
  done
done
