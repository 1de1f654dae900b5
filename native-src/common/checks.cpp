// Argument checks of the entry points (checks.hpp), shared by the CPU and CUDA libraries.
#include "checks.hpp"

#include <cmath>
#include <initializer_list>

namespace pmoe {

namespace {

// tokens >= 1 and 1 <= top_k <= experts, with tokens * top_k slots indexable by int32.
int require_routing_shape(int32_t tokens, const char *experts_name, int32_t experts,
                          int32_t top_k) {
    PMOE_CHECK(require_positive("tokens", tokens));
    PMOE_CHECK(require_positive(experts_name, experts));
    if (top_k < 1 || top_k > experts)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "top_k = %d is out of range [1, %s = %d]", top_k,
                    experts_name, experts);
    if (int64_t(tokens) * top_k > INT32_MAX)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "tokens * top_k = %d * %d exceeds INT32_MAX slots",
                    tokens, top_k);
    return PMOE_OK;
}

int require_flag(const char *name, int32_t v) {
    return v == 0 || v == 1 ? PMOE_OK
                            : fail(PMOE_ERR_INVALID_ARGUMENT, "%s must be 0 or 1, got %d", name, v);
}

// A row stride must cover the row: ld >= row length.
int require_stride(const char *name, int32_t ld, int64_t row_length, const char *what) {
    return ld >= row_length
               ? PMOE_OK
               : fail(PMOE_ERR_INVALID_ARGUMENT,
                      "%s must be >= %lld (the row length of %s), got %d", name,
                      (long long)row_length, what, ld);
}

// Pointers that must all be non-NULL, checked in order: the first NULL one is named.
struct Named {
    const char *name;
    const void *p;
};
int require_all(std::initializer_list<Named> pointers) {
    for (const Named &x : pointers) PMOE_CHECK(require_non_null(x.name, x.p));
    return PMOE_OK;
}

// rows >= 0 and cols >= 1: the shape of the row-wise dense operators.
int require_rows_cols(int32_t dtype, int32_t rows, int32_t cols) {
    PMOE_CHECK(require_dtype("dtype", dtype));
    PMOE_CHECK(require_non_negative("rows", rows));
    return require_positive("cols", cols);
}

// Sizes of the embedding: seq <= max_seq; batch may be 0.
int require_embedding_shape(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                            int32_t vocab, int32_t max_seq) {
    PMOE_CHECK(require_dtype("dtype", dtype));
    PMOE_CHECK(require_non_negative("batch", batch));
    PMOE_CHECK(require_positive("seq", seq));
    PMOE_CHECK(require_positive("channels", channels));
    PMOE_CHECK(require_positive("vocab", vocab));
    PMOE_CHECK(require_positive("max_seq", max_seq));
    if (seq > max_seq)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "seq = %d exceeds max_seq = %d", seq, max_seq);
    return PMOE_OK;
}

int require_attention_shape(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                            int32_t heads) {
    PMOE_CHECK(require_dtype("dtype", dtype));
    PMOE_CHECK(require_non_negative("batch", batch));
    PMOE_CHECK(require_positive("seq", seq));
    PMOE_CHECK(require_positive("channels", channels));
    PMOE_CHECK(require_positive("heads", heads));
    if (channels % heads != 0)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "channels = %d is not divisible by heads = %d",
                    channels, heads);
    return PMOE_OK;
}

int require_cross_entropy_shape(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                                const int32_t *targets) {
    PMOE_CHECK(require_dtype("dtype", dtype));
    PMOE_CHECK(require_non_negative("rows", rows));
    PMOE_CHECK(require_positive("vocab", vocab));
    return rows == 0 ? PMOE_OK : require_all({{"logits", logits}, {"targets", targets}});
}

// Shape of a permute/combine call: rows within the tokens * top_k slots.
int require_permute_shape(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                          int32_t hidden) {
    PMOE_CHECK(require_dtype("dtype", dtype));
    PMOE_CHECK(require_positive("tokens", tokens));
    PMOE_CHECK(require_positive("top_k", top_k));
    const int64_t slots = int64_t(tokens) * top_k;
    if (slots > INT32_MAX)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "tokens * top_k = %d * %d exceeds INT32_MAX slots",
                    tokens, top_k);
    if (rows < 0 || rows > slots)
        return fail(PMOE_ERR_INVALID_ARGUMENT,
                    "rows = %d is out of range [0, tokens * top_k = %lld]", rows, (long long)slots);
    return require_positive("hidden", hidden);
}

// A buffer of `rows` rows may be NULL when there are none.
int require_rows(const char *name, const void *p, int32_t rows) {
    return rows > 0 ? require_non_null(name, p) : PMOE_OK;
}

int require_activation(int32_t dtype, int32_t act, int32_t rows, int32_t cols) {
    if (act != PMOE_ACT_GELU && act != PMOE_ACT_SILU && act != PMOE_ACT_SWIGLU)
        return fail(PMOE_ERR_INVALID_ARGUMENT,
                    "act must be PMOE_ACT_GELU (0), PMOE_ACT_SILU (1) or PMOE_ACT_SWIGLU (2), "
                    "got %d",
                    act);
    return require_rows_cols(dtype, rows, cols);
}

} // namespace

// ---- errors in array contents ----

int fail_out_of_range(const char *name, int64_t i, int32_t value, int64_t lo, int64_t hi) {
    return fail(PMOE_ERR_INVALID_ARGUMENT, "%s[%lld] = %d is out of range [%lld, %lld)", name,
                (long long)i, value, (long long)lo, (long long)hi);
}

int fail_not_finite(const char *name, int64_t row, int64_t col, float value, const char *row_name,
                    const char *col_name) {
    return fail(PMOE_ERR_NON_FINITE, "%s[%lld, %lld] = %g is not finite (%s %lld, %s %lld)", name,
                (long long)row, (long long)col, (double)value, row_name, (long long)row, col_name,
                (long long)col);
}

// ---- library ----

int check_find_nonfinite(int32_t dtype, int64_t n, const void *x, const int64_t *first_index) {
    PMOE_CHECK(require_dtype("dtype", dtype));
    PMOE_CHECK(require_non_negative("n", n));
    PMOE_CHECK(require_non_null("first_index", first_index));
    return n > 0 ? require_non_null("x", x) : PMOE_OK;
}

// ---- GEMM ----

int check_gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, const void *a,
               int32_t lda, const void *b, int32_t ldb, const void *c, int32_t ldc) {
    PMOE_CHECK(require_flag("trans_a", trans_a));
    PMOE_CHECK(require_flag("trans_b", trans_b));
    PMOE_CHECK(require_non_negative("m", m));
    PMOE_CHECK(require_non_negative("n", n));
    PMOE_CHECK(require_non_negative("k", k));
    PMOE_CHECK(require_stride("lda", lda, trans_a ? m : k, "A"));
    PMOE_CHECK(require_stride("ldb", ldb, trans_b ? k : n, "B"));
    PMOE_CHECK(require_stride("ldc", ldc, n, "C"));
    PMOE_CHECK(require_data("a", a, int64_t(m) * k));
    PMOE_CHECK(require_data("b", b, int64_t(k) * n));
    return require_data("c", c, int64_t(m) * n);
}

int check_gemm_bf16(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k,
                    const void *a, int32_t lda, const void *b, int32_t ldb, int32_t c_dtype,
                    const void *c, int32_t ldc) {
    PMOE_CHECK(require_dtype("c_dtype", c_dtype));
    return check_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
}

int check_grouped_sizes(int32_t groups, const int32_t *offsets, int32_t k, int32_t n) {
    PMOE_CHECK(require_non_negative("groups", groups));
    PMOE_CHECK(require_non_null("offsets", offsets));
    PMOE_CHECK(require_non_negative("k", k));
    return require_non_negative("n", n);
}

int fail_offsets_start(int32_t first) {
    return fail(PMOE_ERR_INVALID_ARGUMENT, "offsets[0] must be 0, got %d", first);
}

int fail_offsets_decrease(int64_t g, int32_t value, int32_t previous) {
    return fail(PMOE_ERR_INVALID_ARGUMENT,
                "offsets must not decrease: offsets[%lld] = %d is less than offsets[%lld] = %d",
                (long long)g, value, (long long)(g - 1), previous);
}

int fail_null_weight(int64_t g, int32_t rows) {
    return fail(PMOE_ERR_INVALID_ARGUMENT,
                "weights[%lld] must not be NULL (group %lld has %d rows)", (long long)g,
                (long long)g, rows);
}

int fail_null_out(int64_t g) {
    return fail(PMOE_ERR_INVALID_ARGUMENT, "out[%lld] must not be NULL", (long long)g);
}

// ---- router and load-balancing losses ----

int check_router_config(const pmoe_router_config *cfg) {
    PMOE_CHECK(require_non_null("cfg", cfg));
    PMOE_CHECK(require_routing_shape(cfg->tokens, "experts", cfg->experts, cfg->top_k));
    if (cfg->score_func != PMOE_SCORE_SOFTMAX && cfg->score_func != PMOE_SCORE_SIGMOID)
        return fail(PMOE_ERR_INVALID_ARGUMENT,
                    "score_func must be PMOE_SCORE_SOFTMAX (0) or PMOE_SCORE_SIGMOID (1), got %d",
                    cfg->score_func);
    if (cfg->renormalize != 0 && cfg->renormalize != 1)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "renormalize must be 0 or 1, got %d",
                    cfg->renormalize);
    if (cfg->reserved != 0)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "reserved must be 0, got %d", cfg->reserved);
    return PMOE_OK;
}

int check_router_forward(const pmoe_router_config *cfg, const float *logits, const float *scores,
                         const float *topk_weights, const int32_t *topk_ids) {
    PMOE_CHECK(check_router_config(cfg));
    return require_all({{"logits", logits},
                        {"scores", scores},
                        {"topk_weights", topk_weights},
                        {"topk_ids", topk_ids}});
}

int check_router_backward(const pmoe_router_config *cfg, const float *scores,
                          const int32_t *topk_ids, const float *grad_topk_weights,
                          const float *grad_logits) {
    PMOE_CHECK(check_router_config(cfg));
    return require_all({{"scores", scores},
                        {"topk_ids", topk_ids},
                        {"grad_topk_weights", grad_topk_weights},
                        {"grad_logits", grad_logits}});
}

int check_aux_loss_forward(int32_t tokens, int32_t experts, int32_t top_k, const float *scores,
                           const int32_t *topk_ids, const float *loss,
                           const int32_t *expert_counts) {
    PMOE_CHECK(require_routing_shape(tokens, "experts", experts, top_k));
    return require_all({{"scores", scores},
                        {"topk_ids", topk_ids},
                        {"loss", loss},
                        {"expert_counts", expert_counts}});
}

int check_aux_loss_backward(int32_t tokens, int32_t experts, int32_t top_k,
                            const int32_t *expert_counts, const float *grad_scores) {
    PMOE_CHECK(require_routing_shape(tokens, "experts", experts, top_k));
    return require_all({{"expert_counts", expert_counts}, {"grad_scores", grad_scores}});
}

int check_z_loss(int32_t tokens, int32_t experts, const float *logits, const char *out_name,
                 const float *out) {
    PMOE_CHECK(require_positive("tokens", tokens));
    PMOE_CHECK(require_positive("experts", experts));
    return require_all({{"logits", logits}, {out_name, out}});
}

// ---- dispatch, permute, combine ----

int check_dispatch_config(const pmoe_dispatch_config *cfg) {
    PMOE_CHECK(require_non_null("cfg", cfg));
    PMOE_CHECK(require_routing_shape(cfg->tokens, "logical_experts", cfg->logical_experts,
                                     cfg->top_k));
    PMOE_CHECK(require_positive("physical_experts", cfg->physical_experts));
    if (cfg->capacity < 0 && cfg->capacity != PMOE_CAPACITY_DROPLESS)
        return fail(PMOE_ERR_INVALID_ARGUMENT,
                    "capacity must be >= 0 or PMOE_CAPACITY_DROPLESS (-1), got %d", cfg->capacity);
    if (cfg->capacity != PMOE_CAPACITY_DROPLESS && cfg->drop_policy != PMOE_DROP_BY_POSITION &&
        cfg->drop_policy != PMOE_DROP_BY_PROBABILITY)
        return fail(PMOE_ERR_INVALID_ARGUMENT,
                    "drop_policy must be PMOE_DROP_BY_POSITION (0) or "
                    "PMOE_DROP_BY_PROBABILITY (1), got %d",
                    cfg->drop_policy);
    return PMOE_OK;
}

int check_dispatch_plan(const pmoe_dispatch_config *cfg, const int32_t *topk_ids,
                        const float *topk_weights, const int32_t *remap,
                        const int32_t *expert_counts, const int32_t *expert_offsets,
                        const int32_t *slot_position, const int32_t *sorted_slot) {
    PMOE_CHECK(check_dispatch_config(cfg));
    PMOE_CHECK(require_non_null("topk_ids", topk_ids));
    if (!remap && cfg->logical_experts != cfg->physical_experts)
        return fail(PMOE_ERR_INVALID_ARGUMENT,
                    "remap is NULL (identity) but logical_experts = %d != physical_experts = %d",
                    cfg->logical_experts, cfg->physical_experts);
    const bool by_weight = cfg->capacity != PMOE_CAPACITY_DROPLESS &&
                           cfg->drop_policy == PMOE_DROP_BY_PROBABILITY;
    if (by_weight) PMOE_CHECK(require_non_null("topk_weights", topk_weights));
    return require_all({{"expert_counts", expert_counts},
                        {"expert_offsets", expert_offsets},
                        {"slot_position", slot_position},
                        {"sorted_slot", sorted_slot}});
}

int check_permute(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                  const void *x, const int32_t *sorted_slot, const void *out) {
    PMOE_CHECK(require_permute_shape(dtype, tokens, top_k, rows, hidden));
    PMOE_CHECK(require_all({{"x", x}, {"sorted_slot", sorted_slot}}));
    return rows == 0 ? kNoWork : require_non_null("out", out);
}

int check_permute_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                           int32_t hidden, const void *grad_out, const int32_t *slot_position,
                           const void *grad_x) {
    PMOE_CHECK(require_permute_shape(dtype, tokens, top_k, rows, hidden));
    PMOE_CHECK(require_rows("grad_out", grad_out, rows));
    return require_all({{"slot_position", slot_position}, {"grad_x", grad_x}});
}

int check_combine(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                  const void *expert_out, const float *topk_weights, const int32_t *slot_position,
                  const void *y) {
    PMOE_CHECK(require_permute_shape(dtype, tokens, top_k, rows, hidden));
    PMOE_CHECK(require_rows("expert_out", expert_out, rows));
    return require_all(
        {{"topk_weights", topk_weights}, {"slot_position", slot_position}, {"y", y}});
}

int check_combine_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                           int32_t hidden, const void *grad_y, const void *expert_out,
                           const float *topk_weights, const int32_t *slot_position,
                           const void *grad_expert_out, const float *grad_weights) {
    PMOE_CHECK(require_permute_shape(dtype, tokens, top_k, rows, hidden));
    PMOE_CHECK(require_non_null("grad_y", grad_y));
    PMOE_CHECK(require_rows("expert_out", expert_out, rows));
    PMOE_CHECK(require_all({{"topk_weights", topk_weights}, {"slot_position", slot_position}}));
    PMOE_CHECK(require_rows("grad_expert_out", grad_expert_out, rows));
    return require_non_null("grad_weights", grad_weights);
}

int fail_repeated_row(int64_t slot, int32_t row, int64_t owner) {
    return fail(PMOE_ERR_INVALID_ARGUMENT, "slot_position[%lld] = %d repeats slot_position[%lld]",
                (long long)slot, row, (long long)owner);
}

// ---- activations and conversion ----

int check_activation_forward(int32_t dtype, int32_t act, int32_t rows, int32_t cols,
                             const void *in, const void *out) {
    PMOE_CHECK(require_activation(dtype, act, rows, cols));
    return rows == 0 ? kNoWork : require_all({{"in", in}, {"out", out}});
}

int check_activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols,
                              const void *in, const void *grad_out, const void *grad_in) {
    PMOE_CHECK(require_activation(dtype, act, rows, cols));
    return rows == 0 ? kNoWork
                     : require_all({{"in", in}, {"grad_out", grad_out}, {"grad_in", grad_in}});
}

int check_convert(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype,
                  const void *dst) {
    PMOE_CHECK(require_non_negative("n", n));
    PMOE_CHECK(require_dtype("src_dtype", src_dtype));
    PMOE_CHECK(require_dtype("dst_dtype", dst_dtype));
    return n == 0 ? kNoWork : require_all({{"src", src}, {"dst", dst}});
}

// ---- dense transformer operators ----

int check_embedding_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                            int32_t vocab, int32_t max_seq, const int32_t *ids, const void *wte,
                            const void *wpe, const void *out) {
    PMOE_CHECK(require_embedding_shape(dtype, batch, seq, channels, vocab, max_seq));
    return batch == 0 ? kNoWork
                      : require_all({{"ids", ids}, {"wte", wte}, {"wpe", wpe}, {"out", out}});
}

int check_embedding_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                             int32_t vocab, int32_t max_seq, const int32_t *ids, const void *dout,
                             const float *dwte, const float *dwpe) {
    PMOE_CHECK(require_embedding_shape(dtype, batch, seq, channels, vocab, max_seq));
    return batch == 0 ? kNoWork
                      : require_all({{"ids", ids}, {"dout", dout}, {"dwte", dwte}, {"dwpe", dwpe}});
}

int check_layernorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                            const void *weight, const void *bias, const void *out,
                            const float *mean, const float *rstd) {
    PMOE_CHECK(require_rows_cols(dtype, rows, cols));
    PMOE_CHECK(require_positive_float("eps", eps));
    return rows == 0 ? kNoWork
                     : require_all({{"x", x},
                                    {"weight", weight},
                                    {"bias", bias},
                                    {"out", out},
                                    {"mean", mean},
                                    {"rstd", rstd}});
}

int check_layernorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x,
                             const void *weight, const float *mean, const float *rstd,
                             const void *dout, const void *dx, const float *dweight,
                             const float *dbias) {
    PMOE_CHECK(require_rows_cols(dtype, rows, cols));
    if (rows == 0) return kNoWork;
    PMOE_CHECK(require_all({{"x", x}, {"weight", weight}, {"mean", mean}, {"rstd", rstd}}));
    return require_all({{"dout", dout}, {"dx", dx}, {"dweight", dweight}, {"dbias", dbias}});
}

int check_rmsnorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                          const void *weight, const void *out, const float *rstd) {
    PMOE_CHECK(require_rows_cols(dtype, rows, cols));
    PMOE_CHECK(require_positive_float("eps", eps));
    return rows == 0
               ? kNoWork
               : require_all({{"x", x}, {"weight", weight}, {"out", out}, {"rstd", rstd}});
}

int check_rmsnorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x,
                           const void *weight, const float *rstd, const void *dout,
                           const void *dx, const float *dweight) {
    PMOE_CHECK(require_rows_cols(dtype, rows, cols));
    if (rows == 0) return kNoWork;
    PMOE_CHECK(require_all({{"x", x}, {"weight", weight}, {"rstd", rstd}}));
    return require_all({{"dout", dout}, {"dx", dx}, {"dweight", dweight}});
}

int check_bias_add(int32_t dtype, int32_t rows, int32_t cols, const void *bias, const void *x) {
    PMOE_CHECK(require_rows_cols(dtype, rows, cols));
    return rows == 0 ? kNoWork : require_all({{"bias", bias}, {"x", x}});
}

int check_bias_backward(int32_t dtype, int32_t rows, int32_t cols, const void *dout,
                        const float *dbias) {
    PMOE_CHECK(require_rows_cols(dtype, rows, cols));
    return rows == 0 ? kNoWork : require_all({{"dout", dout}, {"dbias", dbias}});
}

int check_add(int32_t dtype, int64_t n, const void *a, const void *b, const void *out) {
    PMOE_CHECK(require_dtype("dtype", dtype));
    PMOE_CHECK(require_non_negative("n", n));
    return n == 0 ? kNoWork : require_all({{"a", a}, {"b", b}, {"out", out}});
}

int check_accumulate(int32_t dtype, int64_t n, const void *x, const void *y) {
    PMOE_CHECK(require_dtype("dtype", dtype));
    PMOE_CHECK(require_non_negative("n", n));
    return n == 0 ? kNoWork : require_all({{"x", x}, {"y", y}});
}

int check_scale(int32_t dtype, int64_t n, float alpha, const void *x) {
    PMOE_CHECK(require_dtype("dtype", dtype));
    PMOE_CHECK(require_non_negative("n", n));
    PMOE_CHECK(require_float_in("alpha", alpha, -INFINITY, INFINITY));
    return n == 0 ? kNoWork : require_non_null("x", x);
}

int check_attention_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                            int32_t heads, const void *qkv, const float *att, const void *out) {
    PMOE_CHECK(require_attention_shape(dtype, batch, seq, channels, heads));
    return batch == 0 ? kNoWork : require_all({{"qkv", qkv}, {"att", att}, {"out", out}});
}

int check_attention_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                             int32_t heads, const void *qkv, const float *att, const void *dout,
                             const void *dqkv) {
    PMOE_CHECK(require_attention_shape(dtype, batch, seq, channels, heads));
    return batch == 0
               ? kNoWork
               : require_all({{"qkv", qkv}, {"att", att}, {"dout", dout}, {"dqkv", dqkv}});
}

int check_cross_entropy_forward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                                const int32_t *targets, const float *losses) {
    PMOE_CHECK(require_cross_entropy_shape(dtype, rows, vocab, logits, targets));
    return rows == 0 ? PMOE_OK : require_non_null("losses", losses);
}

int check_cross_entropy_backward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                                 const int32_t *targets, float grad_scale, const void *dlogits) {
    PMOE_CHECK(require_cross_entropy_shape(dtype, rows, vocab, logits, targets));
    PMOE_CHECK(require_float_in("grad_scale", grad_scale, -INFINITY, INFINITY));
    return rows == 0 ? kNoWork : require_non_null("dlogits", dlogits);
}

int check_adamw_step(int64_t n, const float *params, const float *grads, float grad_scale,
                     const float *m, const float *v, float lr, float beta1, float beta2, float eps,
                     float weight_decay, int32_t step, int32_t working_dtype) {
    PMOE_CHECK(require_non_negative("n", n));
    PMOE_CHECK(require_float_in("grad_scale", grad_scale, 0, INFINITY));
    PMOE_CHECK(require_float_in("lr", lr, 0, INFINITY));
    PMOE_CHECK(require_float_in("beta1", beta1, 0, 1));
    PMOE_CHECK(require_float_in("beta2", beta2, 0, 1));
    PMOE_CHECK(require_positive_float("eps", eps));
    PMOE_CHECK(require_float_in("weight_decay", weight_decay, 0, INFINITY));
    PMOE_CHECK(require_positive("step", step));
    PMOE_CHECK(require_dtype("working_dtype", working_dtype));
    return n == 0 ? kNoWork
                  : require_all({{"params", params}, {"grads", grads}, {"m", m}, {"v", v}});
}

int check_sum_squares(int64_t n, const float *x, const double *sum_squares) {
    PMOE_CHECK(require_non_negative("n", n));
    PMOE_CHECK(require_non_null("sum_squares", sum_squares));
    return n > 0 ? require_non_null("x", x) : PMOE_OK;
}

} // namespace pmoe
