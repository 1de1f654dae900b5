#!/usr/bin/env bash
# The GPU suite, on a GPU machine, in under 9 minutes: run from the repository root with the
# bundle that scripts/gpu-suite/bundle.sh made on a build machine in .gpu-bundle/ (no JDK or Maven
# is needed here). Phases, each under its own time limit; a failing phase does not stop the next:
#   device    nvidia-smi
#   parity    the GPU parity tests (JUnit tag "gpu") through the bundled JVM and the JUnit console
#             launcher
#   memcheck  compute-sanitizer --tool memcheck over the same tests, then over pmoe_gpu_bench --smoke
#   bench     pmoe_gpu_bench: CUDA-event benchmarks of our kernels and layer (bench.json)
#   torch     scripts/gpu-suite/torch_anchors.py: the same shapes through PyTorch (torch.json)
#   merge     dev.panamoe.jmh.GpuSuiteReport: gpu-<card>-<date>.json and .md side by side
# Results go to $OUT (the device tool's folder that comes back) or else .gpu-bundle/out/: run.log,
# bench.json, torch.json, parity-reports.tar.gz, gpu-<card>-<date>.{json,md}. Commit the last two
# to jmh/results/. SUITE_PHASES="bench merge" (say) runs some phases only.
# Exit status: 0 when every phase that ran passed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=$ROOT/.gpu-bundle
RESULTS=${OUT:-$B/out}
PHASES=${SUITE_PHASES:-device parity memcheck bench torch merge}
# Seconds per phase (sum 530: the device tool allows 600 per command, the issue 540).
LIMIT_DEVICE=20 LIMIT_PARITY=90 LIMIT_MEMCHECK_TESTS=75 LIMIT_MEMCHECK_BENCH=35 LIMIT_BENCH=160
LIMIT_TORCH=130 LIMIT_MERGE=20

[ -x "$B/jre/bin/java" ] || { echo "run: no bundle at $B: run scripts/gpu-suite/bundle.sh on a build machine and carry .gpu-bundle"; exit 2; }
JAVA=$B/jre/bin/java
export LD_LIBRARY_PATH=$B/native${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OMP_WAIT_POLICY=PASSIVE PMOE_PARALLEL_MIN_WORK=0 PYTHONUNBUFFERED=1
JVM_OPTS=(--enable-native-access=ALL-UNNAMED -Xss4m -Dpanamoe.native.dir="$B/native"
          -Dpanamoe.cudart.library="$B/native/libcudart.so.13")
TEST_JARS=$(ls "$B"/tests/*.jar | paste -sd: -)
CLASSPATH_ALL=$B/lib/panamoe.jar:$TEST_JARS

wanted() { [[ " $PHASES " == *" $1 "* ]]; }

# phase NAME LIMIT COMMAND...: runs COMMAND (a program or a function above) under
# `timeout LIMIT`, and records its outcome.
phase() {
  local name=$1 limit=$2 start rc
  shift 2
  echo
  echo "==== $name (limit ${limit} s): $*"
  start=$SECONDS
  timeout --kill-after=10 "$limit" bash "$0" --in-phase "$@"
  rc=$?
  local verdict="ok"
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

# memcheck_tests / memcheck_bench: compute-sanitizer fails (exit 9) on any memory error.
memcheck_tests() {
  local s
  s=$(sanitizer) || true
  [ -n "$s" ] || { echo "memcheck: compute-sanitizer not found"; return 3; }
  # The kernel-level tests (bindings, moe-ops); the runtime's model and training runs would take
  # minutes under the sanitizer.
  junit "$WORK/memcheck-reports" "$(ls "$B"/tests/panamoe-{bindings,moe-ops}-tests.jar | paste -sd: -)" \
        "$s" --tool memcheck --error-exitcode 9 --target-processes all \
        --print-limit 20
}

memcheck_bench() {
  local s
  s=$(sanitizer) || true
  [ -n "$s" ] || { echo "memcheck: compute-sanitizer not found"; return 3; }
  "$s" --tool memcheck --error-exitcode 9 --print-limit 20 "$B/native/pmoe_gpu_bench" --smoke \
       --out "$WORK/bench-smoke.json"
}

device() {
  echo "bundle: $(head -3 "$B/MANIFEST.txt" | tail -2 | paste -sd' ' -)"
  command -v nvidia-smi >/dev/null || { echo "device: no nvidia-smi here: not a GPU machine"; return 3; }
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
}

merge() {
  "$JAVA" -cp "$B/lib/panamoe.jar:$B/lib/panamoe-jmh.jar" dev.panamoe.jmh.GpuSuiteReport \
          "$RESULTS/bench.json" "$RESULTS/torch.json" "$RESULTS" || return $?
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
export WORK
SUMMARY=()
FAILED=0

echo "GPU suite: $(date -u +%Y-%m-%dT%H:%M:%SZ), phases: $PHASES"
wanted device && phase device $LIMIT_DEVICE device
wanted parity && phase parity $LIMIT_PARITY junit "$WORK/parity-reports" "$TEST_JARS"
wanted memcheck && phase memcheck-tests $LIMIT_MEMCHECK_TESTS memcheck_tests
wanted memcheck && phase memcheck-bench $LIMIT_MEMCHECK_BENCH memcheck_bench
wanted bench && phase bench $LIMIT_BENCH "$B/native/pmoe_gpu_bench" --out "$RESULTS/bench.json" \
                                        --budget-s $((LIMIT_BENCH - 30))
wanted torch && phase torch $LIMIT_TORCH python3 "$ROOT/scripts/gpu-suite/torch_anchors.py" \
                                        --out "$RESULTS/torch.json" --budget-s $((LIMIT_TORCH - 35))
wanted merge && phase merge $LIMIT_MERGE merge

(cd "$WORK" && tar czf "$RESULTS/parity-reports.tar.gz" --ignore-failed-read ./*-reports bench-smoke.json 2>/dev/null)
echo
echo "==== summary"
printf '%s\n' "${SUMMARY[@]}"
echo "results in $RESULTS: $(cd "$RESULTS" && ls | paste -sd' ' -)"
rm -rf "$WORK"
exec >&- 2>&-
wait "$TEE" # the log's last lines are written before the call returns
exit $FAILED
