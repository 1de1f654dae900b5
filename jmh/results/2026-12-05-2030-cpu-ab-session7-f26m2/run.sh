#!/bin/bash
# The seventh session's before/after of the per-thread scratch (jmh/README.md, "bf16 mixed
# precision, seventh session"), 2 threads, on a quiet machine:
#   1. attn_ab.cpp: pmoe_attention_forward/backward at small's shape (B 8, T 256, C 256, H 8),
#      bf16 then f32, the two builds loaded side by side (dlopen) and alternated; once with
#      glibc's defaults (a freed block above its trim threshold goes back to the system) and once
#      with it told to keep memory (MALLOC_TRIM_THRESHOLD_ etc.: no page faults for either build);
#   2. ../2026-12-05-1905-cpu-ab-session6-f26m2/ce_ab.cpp: cross-entropy backward, vocab 256 and
#      50257;
#   3. small_ops.cpp: the MoE layer's per-token router and loss kernels (2048 tokens, 8 experts),
#      and the finiteness check of its input, each build on its own (best of 30 rounds of 10 calls).
# Usage: run.sh BEFORE_NATIVE_DIR AFTER_NATIVE_DIR (each holding a libpanamoe_cpu.so)
set -euo pipefail
before=$1 after=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
export OMP_NUM_THREADS=2
g++ -O2 "$here/attn_ab.cpp" -o "$work/attn_ab" -ldl
g++ -O2 "$here/../2026-12-05-1905-cpu-ab-session6-f26m2/ce_ab.cpp" -o "$work/ce_ab" -ldl
for round in 1 2 3; do
  for dtype in 1 0; do
    "$work/attn_ab" "$before/libpanamoe_cpu.so" "$after/libpanamoe_cpu.so" $dtype
    MALLOC_TRIM_THRESHOLD_=1000000000 MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TOP_PAD_=100000000 \
      "$work/attn_ab" "$before/libpanamoe_cpu.so" "$after/libpanamoe_cpu.so" $dtype | sed 's/^/no trim: /'
  done
done
for vocab in 256 50257; do "$work/ce_ab" "$before/libpanamoe_cpu.so" "$after/libpanamoe_cpu.so" $vocab; done
g++ -O2 "$here/small_ops.cpp" -o "$work/small_ops" -ldl
for round in 1 2; do
  for v in before after; do dir=${!v}; echo "small ops, $v:"; "$work/small_ops" "$dir/libpanamoe_cpu.so"; done
done
rm -rf "$work"
