#!/bin/bash
# The eighth session's before/after (jmh/README.md, "eighth session"), 2 threads, on a quiet
# machine, both builds loaded side by side (dlopen) and alternated:
#   1. ../2026-12-05-2030-cpu-ab-session7-f26m2/attn_ab.cpp: pmoe_attention_forward/backward at
#      small's shape (B 8, T 256, C 256, H 8), bf16 then f32, three rounds, at the CPU's own level
#      and at PMOE_CPU_ISA=avx2;
#   2. norm_ab.cpp: pmoe_layernorm_forward/backward at 2048 x 256 (small's), f32 and bf16, with
#      the two builds' outputs compared bit for bit.
# Usage: run.sh BEFORE_NATIVE_DIR AFTER_NATIVE_DIR (each holding a libpanamoe_cpu.so)
set -euo pipefail
before=$1 after=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
export OMP_NUM_THREADS=2
g++ -O2 "$here/../2026-12-05-2030-cpu-ab-session7-f26m2/attn_ab.cpp" -o "$work/attn_ab" -ldl
g++ -O2 "$here/norm_ab.cpp" -o "$work/norm_ab" -ldl
for isa in "" avx2; do
  for round in 1 2 3; do
    for dtype in 1 0; do
      echo "${isa:-own level} round $round: $(env ${isa:+PMOE_CPU_ISA=$isa} "$work/attn_ab" "$before/libpanamoe_cpu.so" "$after/libpanamoe_cpu.so" $dtype)"
    done
  done
  env ${isa:+PMOE_CPU_ISA=$isa} "$work/norm_ab" "$before/libpanamoe_cpu.so" "$after/libpanamoe_cpu.so" | sed "s/^/${isa:-own level}: /"
done
rm -rf "$work"
