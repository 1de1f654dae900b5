#!/usr/bin/env bash
# The GPU suite, on a GPU machine, in under 9 minutes: run from the repository root with the
# bundle that scripts/gpu-suite/bundle.sh made on a build machine, .gpu-bundle/bundle.tar.gz,
# which it unpacks into a temporary folder (no JDK or Maven is needed here). Phases, each under its own time limit (LIMIT below); a failing phase does not
# stop the next:
#   device     nvidia-smi
#   parity     the GPU parity tests (JUnit tag "gpu") through the bundled JVM and the JUnit console
#              launcher: CUDA against the CPU op by op and the MoE layer in f32 and bf16, the model,
#              a short training run in bf16, NCCL
#   memcheck   compute-sanitizer --tool memcheck over the kernel-level GPU tests (bindings, moe-ops),
#   racecheck  then over pmoe_gpu_bench --smoke (one small ragged shape, every kernel once); the
#   synccheck  same for racecheck (shared-memory hazards), synccheck (barrier misuse) and initcheck
#   initcheck  (reads of uninitialised global memory): phases <tool>-tests and <tool>-bench
#   bench      pmoe_gpu_bench: CUDA-event benchmarks of our kernels and the MoE layer in bf16 and f32;
#              first the grouped GEMM at 16 experts x 512 rows, K 5120, N 8192, then the layer at
#              mixtral/4 and deepseek/4 (issue 11's bf16 comparison; bench.json)
#   torch      scripts/gpu-suite/torch_anchors.py: the same shapes through PyTorch, torch._grouped_mm
#              included, the layer in bf16 and f32 (torch.json)
#   timeline   dev.panamoe.jmh.GpuStepTimeline: training steps of the small preset on the GPU, host
#              and CUDA-event times and host syncs per step, operators' host time: in fp32
#              (timeline.json), under Nsight Systems when nsys is here, with per-stream busy time,
#              overlap, idle gaps and the synchronising CUDA calls (scripts/gpu-suite/nsys_summary.py);
#              then in bf16 with CUDA events alone (timeline-bf16.json)
#   merge      dev.panamoe.jmh.GpuSuiteReport: gpu-<card>-<date>.json and .md side by side
# Results go to $OUT (the device tool's folder that comes back) or else .gpu-bundle/out/: run.log,
# bench.json, torch.json, timeline.json, timeline-bf16.json, reports.tar.gz (JUnit reports, smoke
# outputs, nsys tables), gpu-<card>-<date>.{json,md}. Commit the last two to jmh/results/.
# SUITE_PHASES="bench merge" (say) runs some phases only.
# Without a GPU (no nvidia-smi, or it lists none) every GPU phase says so in one line and does
# nothing; merge still runs. Exit status: 0 when no phase that ran failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RESULTS=${OUT:-$ROOT/.gpu-bundle/out}
PHASES=${SUITE_PHASES:-device parity memcheck racecheck synccheck initcheck bench torch timeline merge}
SANITIZERS="memcheck racecheck synccheck initcheck"
# Seconds per phase, enforced by `timeout`: 520 in all, so that the suite ends within 9 minutes
# (SUITE_LIMIT; the device tool allows 600 s per command): 540 less WRAP_UP (the summary and the
# archive) and about 5 s for unpacking the bundle. A phase never gets more than what is left of
# SUITE_LIMIT less WRAP_UP; one left with under 5 s fails. The bf16 phase (issue 11) added 5 s to
# parity (the bf16 layer cases and a 4-step bf16 run of the tiny preset on both devices) and 5 s
# to timeline (its bf16 run: 5 steps, no nsys); bench and torch stay as they were, as both skip
# what their --budget-s leaves no time for, measuring the bf16 layer at mixtral/4 and deepseek/4
# (milliseconds a call) first.
declare -A LIMIT=([device]=10 [parity]=80
                  [memcheck-tests]=50 [memcheck-bench]=15 [racecheck-tests]=50 [racecheck-bench]=20
                  [synccheck-tests]=35 [synccheck-bench]=10 [initcheck-tests]=35 [initcheck-bench]=10
                  [bench]=80 [torch]=70 [timeline]=45 [merge]=10)
SUITE_LIMIT=540 WRAP_UP=15

# The unpacked bundle; the phases (this script again, below) inherit it.
if [ -z "${PMOE_GPU_BUNDLE:-}" ]; then
  archive=$ROOT/.gpu-bundle/bundle.tar.gz
  [ -f "$archive" ] || { echo "run: no bundle at $archive: run scripts/gpu-suite/bundle.sh on a build machine and carry .gpu-bundle"; exit 2; }
  PMOE_GPU_BUNDLE=$(mktemp -d)
  tar xzf "$archive" -C "$PMOE_GPU_BUNDLE" || { echo "run: cannot unpack $archive"; exit 2; }
  export PMOE_GPU_BUNDLE
fi
B=$PMOE_GPU_BUNDLE
JAVA=$B/jre/bin/java
export LD_LIBRARY_PATH=$B/native${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OMP_WAIT_POLICY=PASSIVE PMOE_PARALLEL_MIN_WORK=0 PYTHONUNBUFFERED=1
JVM_OPTS=(--enable-native-access=ALL-UNNAMED -Xss4m -Dpanamoe.native.dir="$B/native"
          -Dpanamoe.cudart.library="$B/native/libcudart.so.13")
TEST_JARS=$(ls "$B"/tests/*.jar | paste -sd: -)
CLASSPATH_ALL=$B/lib/panamoe.jar:$TEST_JARS

wanted() { [[ " $PHASES " == *" $1 "* ]]; }

# Why this machine has no GPU to test, or nothing when it has one.
no_gpu_reason() {
  command -v nvidia-smi >/dev/null || { echo "no nvidia-smi on PATH"; return; }
  local list
  list=$(nvidia-smi -L 2>&1) || { echo "nvidia-smi -L failed: $(head -1 <<<"$list")"; return; }
  grep -q '^GPU ' <<<"$list" || echo "nvidia-smi -L lists no GPU"
}

# phase NAME COMMAND...: runs COMMAND (a program or a function above) under `timeout`, with the
# phase's LIMIT, and records its outcome. Without a GPU it only says why it has nothing.
phase() {
  local name=$1 limit=${LIMIT[$1]} start rc verdict=ok
  shift
  echo
  if [ -n "$NO_GPU" ] && [ "$name" != merge ]; then
    echo "==== $name: nothing to do: no GPU here ($NO_GPU)"
    SUMMARY+=("$(printf '%-16s %-18s %4d s' "$name" "nothing (no GPU)" 0)")
    return 0
  fi
  local left=$((SUITE_LIMIT - WRAP_UP - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    echo "==== $name: not run: the suite's $SUITE_LIMIT s are used up"
    SUMMARY+=("$(printf '%-16s %-18s %4d s' "$name" "NOT RUN (no time)" 0)")
    FAILED=1
    return 0
  fi
  echo "==== $name (limit ${limit} s): $*"
  start=$SECONDS
  timeout --kill-after=5 "$limit" bash "$0" --in-phase "$@"
  rc=$?
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && verdict="TIMED OUT"
  [ $rc -ne 0 ] && [ "$verdict" = ok ] && verdict="FAILED (exit $rc)"
  [ "$verdict" = ok ] || FAILED=1
  SUMMARY+=("$(printf '%-16s %-18s %4d s' "$name" "$verdict" $((SECONDS - start)))")
  return 0
}

# junit REPORT_DIR TEST_JARS [PREFIX...]: the GPU tests through the console launcher (under PREFIX,
# e.g. compute-sanitizer): the classes and methods of TEST_JARS tagged "gpu".
# On a GPU machine a skipped GPU test is a failure: it means the tests could not reach the GPU.
junit() {
  local reports=$1 jars=$2 rc=0 out
  shift 2
  out=$(mktemp)
  local launch=("$@" "$JAVA" "${JVM_OPTS[@]}" -jar "$B/lib/junit-platform-console-standalone.jar" execute
                --class-path "$CLASSPATH_ALL" --disable-banner --disable-ansi-colors --details=tree
                --fail-if-no-tests)
  "${launch[@]}" --scan-class-path "$jars" --include-tag gpu --reports-dir "$reports/tagged" 2>&1 \
    | tee "$out" || rc=$?
  if command -v nvidia-smi >/dev/null && grep -q 'Assumption failed' "$out"; then
    echo "junit: $(grep -c 'Assumption failed' "$out") GPU test(s) skipped on a GPU machine (see above)"
    rc=4
  fi
  rm -f "$out"
  return $rc
}

sanitizer() {
  local s
  for s in "$(command -v compute-sanitizer)" /usr/local/cuda/bin/compute-sanitizer \
           /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    [ -n "$s" ] && [ -x "$s" ] && { echo "$s"; return; }
  done
}

# sanitize TOOL tests|bench: compute-sanitizer's TOOL (memcheck, racecheck, synccheck, initcheck)
# over the kernel-level GPU tests (bindings, moe-ops; the runtime's model and training runs would
# take minutes under a sanitizer) or over pmoe_gpu_bench --smoke; it fails (exit 9) on any error
# the tool reports.
sanitize() {
  local tool=$1 what=$2 s
  s=$(sanitizer) || true
  [ -n "$s" ] || { echo "$tool: compute-sanitizer not found (PATH, /usr/local/cuda)"; return 3; }
  local options=(--tool "$tool" --error-exitcode 9 --print-limit 20)
  if [ "$what" = tests ]; then
    junit "$WORK/$tool-reports" "$(ls "$B"/tests/panamoe-{bindings,moe-ops}-tests.jar | paste -sd: -)" \
          "$s" "${options[@]}" --target-processes all
  else
    "$s" "${options[@]}" "$B/native/pmoe_gpu_bench" --smoke --out "$WORK/bench-smoke-$tool.json"
  fi
}

# Nsight Systems' CLI, if this machine has one that works.
nsys_path() {
  local n
  for n in "$(command -v nsys)" /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys; do
    [ -n "$n" ] && [ -x "$n" ] && { echo "$n"; return; }
  done
}

# traced COMMAND...: under nsys when there is one that makes a report (then nsys_summary.py reads
# its kernel trace and CUDA API table); else with CUDA events alone.
traced() {
  local n report=$WORK/nsys/timeline
  n=$(nsys_path)
  if [ -z "$n" ]; then
    echo "timeline: no nsys (PATH, /usr/local/cuda/bin, /opt/nvidia/nsight-systems): CUDA events per step, no kernel-level timeline"
  elif "$n" profile --trace=cuda,nvtx --sample=none --cpuctxsw=none --force-overwrite=true --output "$report" \
         "$@" && [ -f "$report.nsys-rep" ]; then
    "$n" stats --report cuda_gpu_trace --report cuda_api_sum --format csv --force-export=true \
         --output "$report" "$report.nsys-rep" >/dev/null || return
    python3 "$ROOT/scripts/gpu-suite/nsys_summary.py" "${report}_cuda_gpu_trace.csv" "${report}_cuda_api_sum.csv"
    return
  else
    echo "timeline: $n made no report: again without it, CUDA events per step only"
  fi
  "$@"
}

# timeline: GpuStepTimeline on cuda:0, the small preset in fp32 (traced), then in bf16 with CUDA
# events alone (a second nsys run would not fit the phase); fails if either fails.
timeline() {
  local run=("$JAVA" "${JVM_OPTS[@]}" -cp "$B/lib/panamoe.jar:$B/lib/panamoe-jmh.jar" dev.panamoe.jmh.GpuStepTimeline
             --device cuda --preset small --warmup 2) rc=0
  traced "${run[@]}" --precision fp32 --steps 10 --out "$RESULTS/timeline.json" || rc=$?
  "${run[@]}" --precision bf16 --steps 5 --out "$RESULTS/timeline-bf16.json" || rc=$?
  return $rc
}

device() {
  echo "bundle: $(head -3 "$B/MANIFEST.txt" | tail -2 | paste -sd' ' -)"
  command -v nvidia-smi >/dev/null || { echo "device: no nvidia-smi here: not a GPU machine"; return 3; }
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
}

merge() {
  "$JAVA" -cp "$B/lib/panamoe.jar:$B/lib/panamoe-jmh.jar" dev.panamoe.jmh.GpuSuiteReport \
          "$RESULTS/bench.json" "$RESULTS/torch.json" "$RESULTS/timeline.json" "$RESULTS/timeline-bf16.json" \
          "$RESULTS" || return $?
  cat "$RESULTS"/gpu-*.md
}

# `timeout` runs programs, not shell functions: each phase is this script again, running one.
if [ "${1:-}" = "--in-phase" ]; then
  shift
  "$@"
  exit
fi

mkdir -p "$RESULTS"
LOG=$RESULTS/run.log
exec > >(tee -a "$LOG") 2>&1
TEE=$!
WORK=$(mktemp -d)
mkdir -p "$WORK/nsys"
export WORK
SUMMARY=()
FAILED=0
NO_GPU=$(no_gpu_reason)

total=0
for name in "${!LIMIT[@]}"; do total=$((total + LIMIT[$name])); done
echo "GPU suite: $(date -u +%Y-%m-%dT%H:%M:%SZ), phases: $PHASES (limits ${total} s in all, suite ${SUITE_LIMIT} s)"
wanted device && phase device device
wanted parity && phase parity junit "$WORK/parity-reports" "$TEST_JARS"
for tool in $SANITIZERS; do
  wanted "$tool" || continue
  phase "$tool-tests" sanitize "$tool" tests
  phase "$tool-bench" sanitize "$tool" bench
done
wanted bench && phase bench "$B/native/pmoe_gpu_bench" --out "$RESULTS/bench.json" --budget-s $((LIMIT[bench] - 25))
wanted torch && phase torch python3 "$ROOT/scripts/gpu-suite/torch_anchors.py" \
                                   --out "$RESULTS/torch.json" --budget-s $((LIMIT[torch] - 30))
wanted timeline && phase timeline timeline
wanted merge && phase merge merge

(cd "$WORK" && tar czf "$RESULTS/reports.tar.gz" --ignore-failed-read ./*-reports ./bench-smoke-*.json nsys 2>/dev/null)
echo
echo "==== summary"
printf '%s\n' "${SUMMARY[@]}"
echo "results in $RESULTS: $(cd "$RESULTS" && ls | paste -sd' ' -)"
rm -rf "$WORK" "$B"
exec >&- 2>&-
wait "$TEE" # the log's last lines are written before the call returns
exit $FAILED
