#!/bin/bash
# Same-sitting A/B of the fifth session's change through the CLI: "baseline" = main at 57ac924
# (the fourth session's end), "main" = the commit in after-commit.txt (runtime jars copied to
# /tmp first). Each run is a fresh JVM training `small` for 40 steps (batch 8 x 256 tokens, no
# evaluation) and reports the median tokens/s over its steps; versions alternate, the order
# flipping every round, fp32 and bf16 each round.
export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64 PATH=/usr/lib/jvm/temurin-25-jdk-amd64/bin:$PATH OMP_NUM_THREADS=2
cat /proc/loadavg > load-before.txt
echo "round version precision median_tokens_per_s" > results.txt
for r in $(seq 1 8); do
  order="baseline main"; [ $((r % 2)) = 0 ] && order="main baseline"
  for p in fp32 bf16; do
    for w in $order; do
      out=$(java -jar /tmp/ab-$w-rt.jar train --preset small --precision $p --batch 8 --steps 40 --eval-every 0 2>&1)
      tps=$(echo "$out" | sed -n 's/.*(median \([0-9]*\) tokens\/s).*/\1/p')
      echo "$r $w $p $tps" >> results.txt
    done
  done
  cat /proc/loadavg >> load-during.txt
done
echo done > done.txt
