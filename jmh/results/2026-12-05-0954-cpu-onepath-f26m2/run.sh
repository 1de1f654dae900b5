#!/usr/bin/env bash
set -u
export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64 PATH=/usr/lib/jvm/temurin-25-jdk-amd64/bin:$PATH OMP_NUM_THREADS=2
cd /work/sitting2
{ date -u; grep -m1 "cpu family" /proc/cpuinfo; grep -m1 "^model\s" /proc/cpuinfo; uptime; } > machine.txt
run() { local jar=$1 label=$2 round=$3; shift 3
  java -jar /work/$jar.jar "$@" -rf json -rff "$label-$jar-r$round.json" > "$label-$jar-r$round.log" 2>&1; }
step() { if [ $1 = bench-new2 ]; then run $1 step $2 TrainingStepBenchmark -p precision=fp32; else run $1 step $2 TrainingStepBenchmark; fi; }
layer() { run $1 layer $2 'MoELayerBenchmark.forwardBackward' -p isa=avx512_bf16; }
for round in 1 2; do
  if [ $round = 1 ]; then order="bench-baseline bench-new2"; else order="bench-new2 bench-baseline"; fi
  for j in $order; do step $j $round; done
  for j in $order; do layer $j $round; done
done
run bench-new2 stepbf16 1 TrainingStepBenchmark -p precision=bf16 -p preset=small
date -u >> machine.txt; uptime >> machine.txt
