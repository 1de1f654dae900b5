// Causal multi-head self-attention on a fused qkv buffer, with the probabilities [B, H, T, T]
// materialised (in f32) and kept for the backward. qkv, out and their gradients are f32 or
// bf16; scores, softmax and every sum run in f32 (the softmax's sums in double).
//
// The products are GEMMs of the GEMM engine (gemm_on_this_thread), q, k, v and dout addressed
// in place (row stride 3C or C, head h at column h * D). A GEMM's operands share one type: in
// bf16, the probabilities and the score gradients, computed and kept in f32, are rounded to
// bf16 (round to nearest even) into per-thread scratch where they meet v, dout, k or q, as
// FlashAttention rounds P before P v; this keeps those four products on the bf16 kernel. A
// bf16 out or dqkv is accumulated in f32 and rounded once.
//
// Causality: query rows are cut into blocks of ROWS; block [t0, t1) needs keys and values
// 0 .. t1 only, so tiles right of the block's diagonal are never computed. A key block's dk,
// dv likewise sum over query rows t >= its first key only (att and the score gradients are 0
// above the diagonal, so these are the same sums).
//
// Every block of a (batch, head) pair multiplies by the same k and v (the backward also by q
// and dout) as the GEMMs' B operand, so a thread takes a whole pair and packs each of them
// once (pack_b) for all its blocks' products, which read their columns and depth from there.
// Packed block by block they cost ~4.4x the packing at T 256 (perf: packing was ~26% of the
// bf16 forward and backward at small's shape, B 8, T 256, C 256, H 8). The products keep their
// shapes, so the results are the same bits. With fewer than PAIRS_PER_THREAD pairs a thread
// the forward's unit is one block again (packing what it reads), so that a many-core host is
// not left idle; the backward's unit is always a pair.
//
// The row math (softmax, its gradient, the rounding to bf16: attention_rows.inc) runs 8 lanes
// wide here and 16 in attention_avx512.cpp, by the level in use (the same bits either way).
//
// Determinism: every element of out and dqkv is computed by one GEMM whose shape depends only
// on (T, D), by the engine's fixed chain; every softmax row by a fixed-order loop. Threads only
// decide who computes what, so the result does not depend on the thread count.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "attention.hpp"
#include "common.hpp"
#include "dense.hpp"
#include "gemm.hpp"

namespace pmoe {
namespace avx2_attn {
#include "attention_rows.inc"
} // namespace avx2_attn

namespace {

// Query rows per block: a multiple of both micro-kernel heights (AVX2 6, AVX-512 14), so only
// a sequence's last block has a partial row tile; small enough that the causal blocks skip
// most of the upper triangle.
constexpr int64_t ROWS = 42;

// The fewest (batch, head) pairs per thread for the forward to hand out whole pairs: with
// fewer, the dynamic schedule's last pairs leave threads idle for a large share of the call.
constexpr int64_t PAIRS_PER_THREAD = 4;

// Row stride of the bf16 scratch for sequences of T: even, so that the vdpbf16ps engine packs
// its rows as 32-bit words of pairs (with an odd stride it packs element by element).
int64_t stride16(int64_t T) { return T + T % 2; }

// A row-major matrix in f32 or bf16: element (r, c) at p[r * ld + c].
struct Rows {
    const void *p;
    int64_t ld;
    bool bf16;
    Rows from(int64_t row, int64_t col = 0) const {
        return {static_cast<const char *>(p) + (row * ld + col) * (bf16 ? 2 : 4), ld, bf16};
    }
};

// op(x) = x, or x^T when trans: element (p, j) at x.p[p * row + j * col].
struct Op {
    int64_t row, col;
};

Op op(Rows x, bool trans) { return trans ? Op{1, x.ld} : Op{x.ld, 1}; }

// A product's B operand, op(x), packed once for all the blocks of a pair.
struct SharedB {
    Rows x;
    bool trans;
    PackedB packed;
};

// Packs op(x), k deep and n wide, into `into`; false when it cannot be grown.
bool share(Rows x, bool trans, int64_t k, int64_t n, ThreadBuffer &into, SharedB &b) {
    const Op x_op = op(x, trans);
    b.x = x;
    b.trans = trans;
    return pack_b(x.p, x_op.row, x_op.col, x.bf16, k, n, into, b.packed);
}

// c[m, n] = alpha * op(a) * (columns 0 .. n, depth depth0 .. depth0 + k of b's op(x)), a and b
// of one type; a bf16 c is rounded once. The engine reads b's packing. The problem also names
// op(x) itself, for the engine to pack from where the packing does not fit (a bf16 pair
// product whose depth ends half a pair before the packing's end); attention's depths start and
// end on multiples of ROWS (even) or on T, so here it always fits.
bool product(int64_t m, int64_t n, int64_t k, float alpha, Rows a, bool trans_a, const SharedB &b,
             int64_t depth0, Rows c) {
    const Rows bx = b.trans ? b.x.from(0, depth0) : b.x.from(depth0);
    const Op a_op = op(a, trans_a), b_op = op(bx, b.trans);
    const GemmProblem p{m, n, k, alpha, 0.0f,
                        a.p, a_op.row, a_op.col,
                        bx.p, b_op.row, b_op.col,
                        const_cast<void *>(c.p), c.ld, a.bf16, c.bf16, &b.packed, depth0};
    return gemm_on_this_thread(p);
}

// The row functions of the level in use.
struct RowMath {
    decltype(&avx2_attn::softmax_row) softmax;
    decltype(&avx2_attn::softmax_grad_row) softmax_grad;
};

const RowMath &row_math_in_use() {
    static const RowMath avx2{&avx2_attn::softmax_row, &avx2_attn::softmax_grad_row};
    static const RowMath avx512{&avx512_attn::softmax_row, &avx512_attn::softmax_grad_row};
    return *at_level_in_use(&avx2, &avx512);
}

// Each thread's scratch: the f32 score gradients and, in bf16, the rounded operands; and the
// two B operands of a pair's products that it has packed.
thread_local ThreadBuffer scratch32, scratch16, packed_b[2];

// One (batch, head) pair: q, k, v (T x D each) and its att (T x T).
struct Pair {
    Rows q, k, v;
    float *att;
};

Pair pair_of(bool bf16, const void *qkv, const float *att, int64_t b, int64_t h, int64_t T,
             int64_t C, int64_t H) {
    const Rows x = Rows{qkv, 3 * C, bf16}.from(b * T, h * (C / H));
    return {x, x.from(0, C), x.from(0, 2 * C), const_cast<float *>(att) + (b * H + h) * T * T};
}

// Query rows [t0, t1) of a pair: scores, softmax, out (T x D), with keys = k^T and values = v.
// With a bf16 v, p16 holds ROWS rows of stride16(T) bf16 for the block's rounded
// probabilities (null otherwise).
bool attend(const RowMath &math, const Pair &p, const SharedB &keys, const SharedB &values,
            Rows out, int64_t T, int64_t D, int64_t t0, int64_t t1, uint16_t *p16) {
    const float scale = 1.0f / std::sqrt(float(D));
    const Rows att{p.att, T, false}, att_op = p16 ? Rows{p16, stride16(T), true} : att.from(t0);
    if (!product(t1 - t0, t1, D, scale, p.q.from(t0), false, keys, 0, att.from(t0)))
        return false;
    for (int64_t t = t0; t < t1; t++)
        math.softmax(p.att + t * T, t, T, p16 ? p16 + (t - t0) * stride16(T) : nullptr, t1);
    return product(t1 - t0, D, t1, 1.0f, att_op, false, values, 0, out.from(t0));
}

// Query blocks [t0, t1) of a pair (attend), with k and v packed once up to t1, as far as
// these blocks read them.
bool attend_blocks(const RowMath &math, const Pair &p, Rows out, int64_t T, int64_t D, int64_t t0,
                   int64_t t1, uint16_t *p16) {
    SharedB keys, values;
    if (!share(p.k, true, D, t1, packed_b[0], keys) ||
        !share(p.v, false, t1, D, packed_b[1], values))
        return false;
    for (int64_t b0 = t0; b0 < t1; b0 += ROWS)
        if (!attend(math, p, keys, values, out, T, D, b0, std::min(t1, b0 + ROWS), p16))
            return false;
    return true;
}

// Rows [t0, t1) of a pair's att (T x T), keys 0 .. t each, into L2: the backward's first read
// of them, while the block's datt product runs (att comes from memory: B H T T floats a layer).
void prefetch_rows(const float *att, int64_t T, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++)
        for (int64_t s = 0; s <= t; s += 16)
            _mm_prefetch(reinterpret_cast<const char *>(att + t * T + s), _MM_HINT_T1);
}

// A pair's backward, with dS = att * (datt - rowsum(att * datt)) * scale and datt = dout v^T:
// dq = dS k, dk = dS^T q, dv = att^T dout. In f32, dS (T x T) lives in ds. With bf16 q, k, v,
// the products read dS and att rounded to bf16 from ds16 (T rows of stride16(T) each, then T
// more for att), and ds holds only a block's datt (ROWS x T).
struct Backward {
    const RowMath &math;
    const Pair &p;
    Rows dout, dqkv;
    int64_t T, C, D;
    float *ds;
    uint16_t *ds16;

    uint16_t *att16() const { return ds16 ? ds16 + T * stride16(T) : nullptr; }
    Rows ds_op() const { return ds16 ? Rows{ds16, stride16(T), true} : Rows{ds, T, false}; }
    Rows att_op() const { return ds16 ? Rows{att16(), stride16(T), true} : Rows{p.att, T, false}; }

    // datt, dS and dq, query block by query block; v^T and k packed once.
    bool query_gradients() const {
        const float scale = 1.0f / std::sqrt(float(D));
        const int64_t ld16 = stride16(T);
        SharedB values, keys;
        if (!share(p.v, true, D, T, packed_b[0], values) ||
            !share(p.k, false, T, D, packed_b[1], keys))
            return false;
        for (int64_t t0 = 0; t0 < T; t0 += ROWS) {
            const int64_t t1 = std::min(T, t0 + ROWS);
            float *datt = ds16 ? ds : ds + t0 * T; // row t0 of the block's datt
            prefetch_rows(p.att, T, t0, t1);
            const Rows datt_rows{datt, T, false};
            if (!product(t1 - t0, t1, D, 1.0f, dout.from(t0), false, values, 0, datt_rows))
                return false;
            // Columns 0 .. t1 of these rows: all that dq reads here, and dk and dv below.
            for (int64_t t = t0; t < t1; t++)
                math.softmax_grad(p.att + t * T, datt + (t - t0) * T, t, t1, scale,
                                  ds16 ? ds16 + t * ld16 : nullptr, ds16 ? att16() + t * ld16 : nullptr);
            if (!product(t1 - t0, D, t1, 1.0f, ds_op().from(t0), false, keys, 0, dqkv.from(t0)))
                return false;
        }
        return true;
    }

    // dk and dv, key block by key block, summed over query rows s0 .. T: q and dout packed
    // once, each block reading their depth from s0.
    bool key_value_gradients() const {
        const Rows dk = dqkv.from(0, C), dv = dqkv.from(0, 2 * C);
        SharedB queries, grads;
        if (!share(p.q, false, T, D, packed_b[0], queries) ||
            !share(dout, false, T, D, packed_b[1], grads))
            return false;
        for (int64_t s0 = 0; s0 < T; s0 += ROWS) {
            const int64_t s1 = std::min(T, s0 + ROWS);
            const int64_t rows = s1 - s0, depth = T - s0;
            if (!product(rows, D, depth, 1.0f, ds_op().from(s0, s0), true, queries, s0, dk.from(s0)) ||
                !product(rows, D, depth, 1.0f, att_op().from(s0, s0), true, grads, s0, dv.from(s0)))
                return false;
        }
        return true;
    }
};

int out_of_memory(const char *kernel) {
    return fail(PMOE_ERR_RUNTIME, "%s: out of memory for its scratch or the GEMM buffers", kernel);
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int attention_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t heads,
                      const void *qkv, float *att, void *out, void *) {
    return guarded("pmoe_attention_forward", [&] {
        const int64_t B = batch, T = seq, C = channels, H = heads, D = C / H;
        const bool bf16 = dtype == PMOE_DTYPE_BF16;
        const int threads = threads_for(B * T * T * C);
        const RowMath &math = row_math_in_use();
        // A thread takes a whole pair, packing its keys and values once, when there are pairs
        // enough to keep the team busy to the end; else (few sequences and heads, many cores)
        // a block, packing what that block reads.
        const int64_t blocks = (T + ROWS - 1) / ROWS;
        const bool per_block = B * H < PAIRS_PER_THREAD * threads;
        const int64_t units = per_block ? B * H * blocks : B * H;
        std::atomic<bool> failed{false};
#pragma omp parallel num_threads(threads)
        {
            // Contents not zeroed: every element is written before it is read.
            const bool ready = !bf16 || scratch16.grow(ROWS * stride16(T) * sizeof(uint16_t));
            if (!ready) failed = true;
#pragma omp for schedule(dynamic, 1)
            for (int64_t u = 0; u < units; u++) {
                const int64_t pair = u % (B * H), b = pair / H, h = pair % H;
                // A whole pair, or one block, the last blocks (which read the most keys) first.
                const int64_t t0 = per_block ? (blocks - 1 - u / (B * H)) * ROWS : 0;
                const int64_t t1 = per_block ? std::min(T, t0 + ROWS) : T;
                const Rows y = Rows{out, C, bf16}.from(b * T, h * D);
                uint16_t *p16 = bf16 ? scratch16.as<uint16_t>() : nullptr;
                const Pair p = pair_of(bf16, qkv, att, b, h, T, C, H);
                if (ready && !attend_blocks(math, p, y, T, D, t0, t1, p16))
                    failed = true;
            }
        }
        return failed ? out_of_memory("pmoe_attention_forward") : PMOE_OK;
    });
}

int attention_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t heads,
                       const void *qkv, const float *att, const void *dout, void *dqkv, void *) {
    return guarded("pmoe_attention_backward", [&] {
        const int64_t B = batch, T = seq, C = channels, H = heads, D = C / H;
        const bool bf16 = dtype == PMOE_DTYPE_BF16;
        const int threads = threads_for(B * T * T * C);
        const RowMath &math = row_math_in_use();
        std::atomic<bool> failed{false};
#pragma omp parallel num_threads(threads)
        {
            const bool ready = scratch32.grow((bf16 ? ROWS : T) * T * sizeof(float)) &&
                               (!bf16 || scratch16.grow(2 * T * stride16(T) * sizeof(uint16_t)));
            if (!ready) failed = true;
#pragma omp for schedule(dynamic, 1)
            for (int64_t pair = 0; pair < B * H; pair++) {
                const int64_t b = pair / H, h = pair % H;
                const Rows g = Rows{dout, C, bf16}.from(b * T, h * D);
                const Rows dx = Rows{dqkv, 3 * C, bf16}.from(b * T, h * D);
                const Pair p = pair_of(bf16, qkv, att, b, h, T, C, H);
                const Backward backward{math, p, g, dx, T, C, D, scratch32.as<float>(),
                                        bf16 ? scratch16.as<uint16_t>() : nullptr};
                if (ready && !(backward.query_gradients() && backward.key_value_gradients()))
                    failed = true;
            }
        }
        return failed ? out_of_memory("pmoe_attention_backward") : PMOE_OK;
    });
}

} // namespace pmoe_impl
