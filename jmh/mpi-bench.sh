#!/usr/bin/env bash
# MPI communicator benchmark: the FFM backend (MpiCommBenchmark, in benchmarks.jar) against the
# same collectives called from C (src/main/c/mpi_comm_bench.c, built here with CMake), both under
# mpirun with the same rank count. The two programs alternate for several rounds (the machines
# are shared: load changes between runs), and each case keeps its best median over the rounds;
# prints every case and the ratio time(Java) / time(C).
# Usage: jmh/mpi-bench.sh [ranks, default 2] [rounds, default 3]   (after ./panamoe build)
set -euo pipefail
cd "$(dirname "$0")"
ranks=${1:-2}
rounds=${2:-3}
classpath=${BENCH_CLASSPATH:-target/benchmarks.jar}
java=${JAVA_HOME:+$JAVA_HOME/bin/}java
build=target/mpi-c
cmake -S src/main/c -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" >/dev/null
[ -x "$build/mpi_comm_bench" ] || { echo "MPI not found: no C reference built" >&2; exit 1; }
mpi=(mpirun --allow-run-as-root --oversubscribe -np "$ranks")
out=$(mktemp)
for ((round = 0; round < rounds; round++)); do
  "${mpi[@]}" "$build/mpi_comm_bench" >>"$out"
  "${mpi[@]}" "$java" --enable-native-access=ALL-UNNAMED -cp "$classpath" dev.panamoe.jmh.MpiCommBenchmark >>"$out"
done
echo "ranks=$ranks rounds=$rounds: impl op bytes-per-rank best-median-us GB/s time(impl)/time(c)"
awk '{k=$1" "$2" "$3; if(!(k in t) || $4<t[k]) t[k]=$4}
     END{for(k in t){split(k,a," "); c=t["c "a[2]" "a[3]]; printf "%s %.2f %.3f %.2f\n", k, t[k], a[3]/t[k]/1e3, t[k]/c}}' "$out" \
  | sort -k2,2 -k3,3n -k1,1
rm -f "$out"
