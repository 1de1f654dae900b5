# Sourced by ./panamoe and scripts/bench-sitting.sh: one definition of what the build is made from,
# for the launcher's "rebuild when a source is newer than the jars" and for a sitting's "were the
# sources those of the commit".

# build_sources ROOT [FIND-ACTIONS...]: runs FIND-ACTIONS (default -print) on every source, header,
# build file and resource of the build under ROOT. Left out: build outputs (target/), hidden
# folders, the benchmark drivers kept with their results (jmh/results/) and scripts/ (its
# gpu-suite is built on the GPU machine, not by the root pom).
build_sources() {
  local root=$1
  shift
  [ $# -gt 0 ] || set -- -print
  find "$root" -path "$root/.*" -prune -o -path '*/target' -prune -o -path "$root/jmh/results" -prune \
       -o -path "$root/scripts" -prune -o \
       \( -name '*.java' -o -name 'pom.xml' -o -name 'CMakeLists.txt' -o -name '*.cmake' -o -name '*.h' \
          -o -name '*.hpp' -o -name '*.inc' -o -name '*.c' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \
          -o -path '*/src/main/resources/*' \) "$@"
}
