#!/usr/bin/env bash
# Packs everything the GPU suite needs on a GPU machine (no JDK, no Maven, nothing installable
# there) into .gpu-bundle/bundle.tar.gz (git-ignored; under 60 MiB, so that it and the working
# tree stay under the device tool's 64 MiB; run.sh unpacks it into a temporary folder):
#   jre/     a jlink'ed Java runtime: the modules jdeps finds in the jars, less java.desktop
#   lib/     panamoe.jar (the application, shaded), panamoe-jmh.jar (the merge tool),
#            junit-platform-console-standalone.jar (runs the tests without Maven)
#   tests/   the test classes of every module, one jar each (the GPU tests are selected by tag)
#   native/  libpanamoe_{cpu,cuda,cuda_host}.so, their non-system dependencies (libgomp,
#            libboost_context, libcudart.so.13 for the tests' cudart bindings) and pmoe_gpu_bench
# Usage (repository root, on the build machine):
#   scripts/gpu-suite/bundle.sh              build (mvn package, tests skipped), then pack
#   scripts/gpu-suite/bundle.sh --no-build   pack what target/ folders hold now
#   scripts/gpu-suite/bundle.sh --size-report  print the size of the existing bundle and check it
# Then, on a GPU machine: scripts/gpu-suite/run.sh (see README.md, "On a GPU").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUNDLE=$ROOT/.gpu-bundle
ARCHIVE=$BUNDLE/bundle.tar.gz
STAGE=$BUNDLE/stage
LIMIT_MIB=60
# java.desktop: only the report charts (XChart) use it, and the GPU suite draws none; it would
# cost about 15 MiB. java.sql: only a database helper of the CSV parser shaded into the JUnit
# console launcher refers to it. JUnit needs java.logging, jdk.zipfs to scan jars and java.xml
# for its XML reports (found by running it: jdeps cannot see these); Gson looks for
# sun.misc.Unsafe (jdk.unsupported).
DROP_MODULES=(java.desktop java.sql)
ADD_MODULES=(java.logging java.xml jdk.zipfs jdk.unsupported)

die() { echo "bundle: $*" >&2; exit 1; }

# Prints the archive's size; fails above the limit.
size_report() {
  [ -f "$ARCHIVE" ] || die "no bundle at $ARCHIVE (run scripts/gpu-suite/bundle.sh)"
  local total_kib
  total_kib=$(du -k "$ARCHIVE" | cut -f1)
  echo "bundle: $ARCHIVE: $((total_kib / 1024)) MiB ($total_kib KiB), limit $LIMIT_MIB MiB"
  [ "$total_kib" -lt $((LIMIT_MIB * 1024)) ] || die "the bundle is over $LIMIT_MIB MiB"
}

if [ "${1:-}" = "--size-report" ]; then size_report; exit 0; fi

for jdk in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64; do
  if [ -n "$jdk" ] && [ -x "$jdk/bin/jlink" ]; then export JAVA_HOME=$jdk; break; fi
done
[ -x "${JAVA_HOME:-}/bin/jlink" ] || die "no JDK with jlink found (set JAVA_HOME to a JDK 25)"
export PATH=$JAVA_HOME/bin:$PATH
cd "$ROOT"

if [ "${1:-}" != "--no-build" ]; then
  echo "bundle: building (mvn package, tests compiled but not run)..."
  mvn -B -ntp -q package -DskipTests
fi

NATIVE_SRC=bindings/target/classes/native/linux-x86_64
BENCH=bindings/target/native-build/pmoe_gpu_bench
APP_JAR=runtime/target/panamoe.jar
JMH_JAR=$(ls jmh/target/panamoe-jmh-*.jar 2>/dev/null | grep -v -- '-tests\|-sources' | head -1 || true)
for f in "$APP_JAR" "$JMH_JAR" "$NATIVE_SRC/libpanamoe_cpu.so" "$NATIVE_SRC/libpanamoe_cuda.so" \
         "$NATIVE_SRC/libpanamoe_cuda_host.so" "$BENCH"; do
  [ -n "$f" ] && [ -f "$f" ] || die "missing ${f:-jmh/target/panamoe-jmh-*.jar}: build first (without --no-build)"
done

rm -rf "$BUNDLE"
mkdir -p "$STAGE"/{lib,tests,native}

echo "bundle: jars"
cp "$APP_JAR" "$STAGE/lib/panamoe.jar"
cp "$JMH_JAR" "$STAGE/lib/panamoe-jmh.jar"
mvn -B -ntp -q -f scripts/gpu-suite/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$STAGE/lib" -DexcludeTransitive=true -Dmdep.stripVersion=true
[ -f "$STAGE/lib/junit-platform-console-standalone.jar" ] || die "the JUnit console launcher was not fetched"
rm -f "$STAGE/lib/gson.jar" # inside panamoe.jar already; the pom names it for the version only
for module in bindings moe-ops strategy runtime; do
  classes=$module/target/test-classes
  [ -d "$classes" ] && [ -n "$(ls -A "$classes")" ] || continue
  jar --create --file "$STAGE/tests/panamoe-$module-tests.jar" -C "$classes" .
done

echo "bundle: native libraries and pmoe_gpu_bench"
cp "$NATIVE_SRC"/libpanamoe_cpu.so "$NATIVE_SRC"/libpanamoe_cuda.so "$NATIVE_SRC"/libpanamoe_cuda_host.so \
   "$BENCH" "$STAGE/native/"
# Dependencies outside glibc and the C++ runtime, which the GPU machine may lack.
for dep in libgomp.so.1 libboost_context.so.1.74.0; do
  path=$(ldd "$NATIVE_SRC"/libpanamoe_*.so | awk -v d="$dep" '$1 == d { print $3; exit }')
  [ -n "$path" ] && cp -L "$path" "$STAGE/native/$dep"
done
cudart=""
for dir in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  if [ -e "$dir/libcudart.so.13" ]; then cudart=$dir/libcudart.so.13; break; fi
done
[ -n "$cudart" ] || die "libcudart.so.13 not found (looked in CUDA_HOME and /usr/local/cuda)"
cp -L "$cudart" "$STAGE/native/libcudart.so.13"
strip --strip-unneeded "$STAGE"/native/*.so* "$STAGE/native/pmoe_gpu_bench" 2>/dev/null || true

echo "bundle: Java runtime (jlink)"
cp_jars=$(ls "$STAGE"/lib/*.jar "$STAGE"/tests/*.jar | tr '\n' ' ')
# shellcheck disable=SC2086 # one argument per jar
found=$(jdeps --multi-release 25 --ignore-missing-deps --print-module-deps $cp_jars 2>/dev/null | tail -1)
[ -n "$found" ] || die "jdeps found no modules"
modules=$(printf '%s\n' ${found//,/ } "${ADD_MODULES[@]}" | grep -vxF -f <(printf '%s\n' "${DROP_MODULES[@]}") | sort -u | paste -sd, -)
jlink --add-modules "$modules" --strip-debug --no-header-files --no-man-pages --compress zip-9 \
      --output "$STAGE/jre"
strip --strip-unneeded "$STAGE/jre/lib/server/libjvm.so" # jlink keeps its symbol table
"$STAGE/jre/bin/java" -version 2>&1 | head -1 | sed 's/^/bundle: runtime: /'

{
  echo "PanaMoE GPU bundle"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "jdeps found: $found"
  echo "jlink modules: $modules"
  echo "cudart: $(readlink -f "$cudart")"
} > "$STAGE/MANIFEST.txt"
cat "$STAGE/MANIFEST.txt" | sed 's/^/bundle: /'
echo "bundle: unpacked sizes (KiB)"
(cd "$STAGE" && du -sk jre lib tests native/* ./*.txt | sort -rn | sed 's/^/  /')
# gzip: every Linux has it; xz saves another 10% at ten times the time.
tar czf "$ARCHIVE" -C "$STAGE" .
rm -rf "$STAGE"
size_report
