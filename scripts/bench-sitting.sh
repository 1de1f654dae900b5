#!/usr/bin/env bash
# One benchmark sitting: everything jmh/README.md's CPU table needs, measured on this machine in
# one go so that every ratio compares numbers taken minutes apart under the same conditions.
#   1. creates the anchors' environment and builds if needed, then waits for the machine to be quiet;
#   2. records the CPU (family, model, vector flags), the load, the commit built (and whether
#      sources differed from it) and the ISA levels the CPU runs;
#   3. the PyTorch / OpenBLAS anchors first (scripts/anchors/run-anchors.sh, 2 threads);
#   4. JMH: PeakRateBenchmark, DenseGemmBenchmark (4096^3 and mixtral/4's expert GEMM) and
#      MoELayerBenchmark.forwardBackward (mixtral/4, deepseek/4), f32 and bf16, at every ISA
#      level the CPU has; then, at the CPU's own level, MoELayerBenchmark.trainingStep in bf16
#      and TrainingStepBenchmark (small) in fp32 and bf16 (SittingReport plan), the kernels on 2
#      threads (OMP_NUM_THREADS=2);
#   5. SittingReport table: DIR/table.md, the Markdown tables with same-sitting ratios.
# Everything goes to DIR (default jmh/results/<date>-<time>-cpu-sitting-f<family>m<model>/): machine.txt,
# levels.txt, plan.txt, anchors.json/.log, jmh-<run>.json/.log, table.md.
# About 13 minutes on 2 idle cores (AVX-512 BF16 host) after the build; --quick (tiny sizes, one short
# iteration, results in a temporary folder) checks the scripts in about 2 minutes and measures nothing.
# Usage: scripts/bench-sitting.sh [--quick] [--out DIR] [--wait SECONDS (default 300)] [--force]
#   --force: go on when the machine does not become quiet (the table then says "not quiet").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "bench-sitting: $*" >&2; exit 1; }

quick=0 out="" wait_s=300 force=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --force) force=1 ;;
    --out) [ $# -ge 2 ] || die "--out: expected a folder"; out=$2; shift ;;
    --wait) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--wait: expected seconds, got '${2:-}'"; wait_s=$2; shift ;;
    *) die "unknown argument '$1' (usage: scripts/bench-sitting.sh [--quick] [--out DIR] [--wait SECONDS] [--force])" ;;
  esac
  shift
done

threads=2
export OMP_NUM_THREADS=$threads
start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }
cpuinfo() { awk -F': ' -v k="$1" '$1 ~ "^"k"[ \t]*$" {print $2; exit}' /proc/cpuinfo; }
. "$ROOT/scripts/build-sources.sh"
# The commit the build was made from, and whether the build's sources (build_sources: not docs,
# results or scripts) differed from it; "unknown" outside a git checkout.
code_state() {
  local head
  head=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
  if [ -n "$(build_sources "$ROOT" -print0 | xargs -0 git -C "$ROOT" status --porcelain -- 2>/dev/null)" ]; then
    echo "$head with uncommitted source changes"
  else
    echo "$head"
  fi
}
family=$(cpuinfo 'cpu family') model=$(cpuinfo model)
if [ -z "$out" ]; then
  if [ $quick = 1 ]; then out=$(mktemp -d -t bench-sitting-quick.XXXXXX)
  else out=$ROOT/jmh/results/$(date -u +%Y-%m-%d-%H%M)-cpu-sitting-f${family}m${model}; fi
fi
mkdir -p "$out"
[ -z "$(ls -A "$out")" ] || die "--out $out is not empty: pick a new folder"

# The anchors' environment first: its files are newer than the jars, and the launcher, which looks
# for changed sources, would otherwise rebuild in the middle of the sitting.
"$ROOT/scripts/anchors/run-anchors.sh" --install
echo "bench-sitting: building if needed (./panamoe bench -l)..."
PANAMOE_NO_BUILD= "$ROOT/panamoe" bench -l >/dev/null # built now even if the caller set it
# One sitting measures one build: this one. Without this, each later ./panamoe call would rebuild
# when a source changed meanwhile, and the tables would mix two builds under one header.
export PANAMOE_NO_BUILD=1
code=$(code_state)

# Quiet: the CPU under 10% busy over 5 s, and the 1-minute load average under the core count.
busy_percent() {
  local a b
  a=($(head -1 /proc/stat)); sleep 5; b=($(head -1 /proc/stat))
  local total=0 idle i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  idle=$(( b[4] - a[4] + b[5] - a[5] ))
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
cores=$(nproc) quiet=no deadline=$(( $(date +%s) + wait_s ))
while :; do
  busy=$(busy_percent) load=$(cut -d' ' -f1-3 /proc/loadavg)
  if [ "$busy" -le 10 ] && awk -v l="${load%% *}" -v c="$cores" 'BEGIN{exit !(l < c)}'; then quiet=yes; break; fi
  echo "bench-sitting: not quiet (CPU ${busy}% busy, load average $load); busiest processes:"
  ps -eo pcpu=,pid=,comm= --sort=-pcpu | head -3 || true
  [ "$(date +%s)" -lt "$deadline" ] || break
  sleep 10
done
if [ $quiet = no ] && [ $force = 0 ]; then
  die "the machine did not become quiet within ${wait_s} s: stop the other work and rerun (or --force)"
fi

flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' \
  | grep -x -E 'avx2|fma|avx512(f|bw|vl|dq|_bf16|_vnni|_fp16)|avx_vnni|amx_(bf16|tile|int8)' | tr '\n' ' ' | sed 's/ $//' || true)
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "cpu: $(cpuinfo 'model name')"
  echo "family: $family"
  echo "model: $model"
  echo "flags: $flags"
  echo "cores: $cores"
  echo "memory: $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "kernel: $(uname -r)"
  echo "threads: $threads"
  echo "load: $load"
  echo "busy: ${busy}%"
  echo "quiet: $quiet"
  echo "quick: $([ $quick = 1 ] && echo yes || echo no)"
  echo "code: $code"
} >"$out/machine.txt"
cat "$out/machine.txt"
"$ROOT/panamoe" bench-main CpuLevel >"$out/levels.txt"
cat "$out/levels.txt"
"$ROOT/panamoe" bench-main SittingReport plan $([ $quick = 1 ] && echo --quick) >"$out/plan.txt"

echo "bench-sitting: anchors ($(elapsed))"
if ! "$ROOT/scripts/anchors/run-anchors.sh" --threads $threads --json "$out/anchors.json" \
     $([ $quick = 1 ] && echo --quick) 2>&1 | tee "$out/anchors.log"; then
  echo "bench-sitting: the anchors failed (see $out/anchors.log); the table will have no anchor ratios" >&2
fi

while read -r name args; do
  echo "bench-sitting: JMH $name ($(elapsed))"
  # shellcheck disable=SC2086 # the plan's arguments are words
  if ! "$ROOT/panamoe" bench $args -rf json -rff "$out/jmh-$name.json" </dev/null >"$out/jmh-$name.log" 2>&1; then
    echo "bench-sitting: JMH $name exited with an error (see $out/jmh-$name.log)" >&2
  fi
  sed -n '/^Benchmark /,$p' "$out/jmh-$name.log" | grep -v '^Benchmark result is saved' || true
done <"$out/plan.txt"

echo "bench-sitting: table ($(elapsed))"
"$ROOT/panamoe" bench-main SittingReport table "$out"
echo "bench-sitting: done in $(elapsed); results in $out (paste table.md into jmh/README.md)"
