#!/bin/bash
# The training step again, later (the first A/B's machine had turned noisy): interleaved, both orders.
export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64 PATH=/usr/lib/jvm/temurin-25-jdk-amd64/bin:$PATH OMP_NUM_THREADS=2
for r in 3 4; do
  order="main baseline"; [ $r = 4 ] && order="baseline main"
  for w in $order; do
    java -jar /work/$w/jmh/target/benchmarks.jar 'TrainingStepBenchmark' -p preset=small -f 1 -wi 2 -i 5 -rf json -rff step-$w-r$r.json > step-$w-r$r.log 2>&1
    cat /proc/loadavg >> load-during.txt
  done
done
