#!/usr/bin/env python3
"""PyTorch anchors for the GPU suite: the shapes of pmoe_gpu_bench, as PyTorch users write them.

First the grouped GEMM's reference shape, 16 experts of 512 rows (8192 rows), K 5120, N 8192
(model "grouped16", routing "balanced", op grouped_gemm_up_bf16), as pmoe_gpu_bench times
ours; then the MoE layer (layer_*, below) at the CPU benchmark's shapes, "mixtral/4" and
"deepseek/4" (the models at a quarter of their width, 4096 tokens, uniform routing), where issue
11 compares our bf16 layer with PyTorch's. Then for each MoE shape (Mixtral 8x7B, DeepSeek-V3,
Qwen3-30B-A3B), token count (4096, 16384) and routing (uniform, zipf) it times, with CUDA events
after warm-up (median of many calls, inputs rotated over several buffers when one set would fit
in L2):
  router           softmax, top-k, renormalisation (impl "torch")
  router_dispatch  the router, then the stable sort into expert order and the per-expert counts
  permute_bf16     x[token_of_row] gathered into expert order (index_select)
  combine_bf16     weighted sum of each token's k expert rows
  grouped_gemm_*   the two expert projections: torch._grouped_mm where present ("torch_grouped_mm"),
                   a loop of per-expert matmuls ("torch_loop"), and one dense matmul of the same
                   work ("torch_matmul", the ceiling)
  layer_*          the SwiGLU MoE layer, per-expert loop, forward and forward + backward, in bf16
                   (weights, activations and gradients bf16, the router in f32) and f32, as
                   pmoe_gpu_bench runs ours
The routing is the benchmark's, number for number: splitmix64 -> Gumbel noise on log popularity
-> top-k, so both sides see the same expert group sizes. Rates count real rows only.

Writes JSON (rewritten after every measurement). Without torch or a GPU it writes a JSON file
that says why, prints the reason, and exits 0: the suite goes on without the anchors.
"""
import argparse
import datetime
import json
import math
import os
import sys
import time

MODELS = {  # name: (hidden, ffn, experts, top_k)
    "mixtral": (4096, 14336, 8, 2),
    "deepseek": (7168, 2048, 256, 8),
    "qwen3": (2048, 768, 128, 8),
}
SMOKE = ("smoke", (256, 136, 16, 4), 300)
# The grouped GEMMs at issue 15's shape (16 experts, K 5120, N 8192, 8192 rows), as pmoe_gpu_bench's "grouped16".
GEMM_SHAPE = ("grouped16", (5120, 4096, 16, 1), 8192)
# The layer at jmh MoeShape's mixtral/4 and deepseek/4, as pmoe_gpu_bench's kLayerShapes.
LAYER_SHAPES = {"mixtral/4": (1024, 3584, 8, 2), "deepseek/4": (1792, 512, 64, 8)}
LAYER_TOKENS = 4096
ZIPF_EXPONENT = 1.2
MASK64 = (1 << 64) - 1


def splitmix64(x):
    """splitmix64 of a numpy uint64 array (wrapping arithmetic, as in pmoe_gpu_bench.cu)."""
    import numpy as np

    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def routing_logits(tokens, experts, kind, seed=1):
    """logits[t, e] = log popularity(e) + Gumbel noise; float32 [tokens, experts]. "balanced"
    (top-1): 1 at expert t mod experts, 0 elsewhere."""
    import numpy as np

    if kind == "balanced":
        t, e = np.divmod(np.arange(tokens * experts), experts)
        return (e == t % experts).astype(np.float32).reshape(tokens, experts)
    zipf = kind == "zipf"
    i = np.arange(tokens * experts, dtype=np.uint64) + np.uint64((seed << 32) & MASK64)
    u = ((splitmix64(i) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    e = np.arange(tokens * experts) % experts
    log_pop = -ZIPF_EXPONENT * np.log(e + 1.0) if zipf else np.zeros(tokens * experts)
    return (log_pop - np.log(-np.log(u))).astype(np.float32).reshape(tokens, experts)


class Anchors:
    def __init__(self, args):
        self.args = args
        self.deadline = time.monotonic() + args.budget_s
        self.doc = {"tool": "torch_anchors", "date": datetime.datetime.now(datetime.timezone.utc)
                    .strftime("%Y-%m-%dT%H:%M:%SZ"), "results": []}

    def write(self):
        tmp = self.args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.doc, f, indent=1)
        os.replace(tmp, self.args.out)

    def add(self, rec):
        self.doc["results"].append(rec)
        line = f"{rec['model']:9s} {rec['tokens']:6d} {rec['routing']:8s} {rec['op']:26s} {rec['impl']:17s} "
        if rec["status"] != "ok":
            line += f"{rec['status']}: {rec['reason']}"
        else:
            line += f"{rec['median_us']:10.1f} us"
            if rec.get("tflops"):
                line += f" {rec['tflops']:8.1f} TFLOP/s"
            elif rec.get("gbps"):
                line += f" {rec['gbps']:8.1f} GB/s"
        print(line, flush=True)
        self.write()

    def rotation(self, set_bytes):
        if self.args.smoke:
            return 1
        l2 = self.doc["device"]["l2_bytes"]
        return int(min(8, max(1, math.ceil(4 * l2 / max(set_bytes, 1)))))

    def time(self, fn, rotation):
        """Median, p10, p90 (us) and count of fn(i) timed with CUDA events after warm-up."""
        import torch

        a = self.args
        cuda = a.device == "cuda"
        for i in range(a.warmup):
            fn(i % rotation)
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(a.warmup % rotation)
        if cuda:
            torch.cuda.synchronize()
        estimate_ms = max((time.perf_counter() - start) * 1000, 1e-3)
        left_ms = max(0.0, self.deadline - time.monotonic()) * 1000 / 4
        reps = max(a.min_reps, min(a.max_reps, int(min(a.target_ms, left_ms) / estimate_ms)))
        calls = range(a.warmup + 1, a.warmup + 1 + reps)
        if cuda:
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in calls]
            for i, (s, e) in zip(calls, events):
                s.record()
                fn(i % rotation)
                e.record()
            events[-1][1].synchronize()
            us = sorted(1000.0 * s.elapsed_time(e) for s, e in events)
        else:  # --device cpu: checks this script's logic on a machine without a GPU
            us = []
            for i in calls:
                start = time.perf_counter()
                fn(i % rotation)
                us.append((time.perf_counter() - start) * 1e6)
            us.sort()
        median = us[reps // 2] if reps % 2 else 0.5 * (us[reps // 2 - 1] + us[reps // 2])
        return median, us[round(0.1 * (reps - 1))], us[round(0.9 * (reps - 1))], reps

    def measure(self, base, op, impl, body):
        """body() returns (fn, rotation, work dict); records the timing or why there is none."""
        import torch

        rec = dict(base, op=op, impl=impl)
        if time.monotonic() > self.deadline:
            rec.update(status="skipped", reason=f"time budget of {self.args.budget_s} s used up")
        else:
            try:
                fn, rotation, work = body()
                median, p10, p90, reps = self.time(fn, rotation)
                rec.update(status="ok", median_us=median, p10_us=p10, p90_us=p90, reps=reps,
                           rotation=rotation, **work)
                if work.get("flop"):
                    rec["tflops"] = work["flop"] / (median * 1e-6) * 1e-12
                if work.get("bytes"):
                    rec["gbps"] = work["bytes"] / (median * 1e-6) * 1e-9
            except Exception as e:  # recorded in the JSON, then the next measurement
                rec.update(status="error", reason=f"{type(e).__name__}: {e}".strip()[:500])
            finally:
                if self.args.device == "cuda":
                    torch.cuda.empty_cache()
        self.add(rec)


def make_case(an, model, shape, tokens, routing):
    """One case and its router logits on the device, as pmoe_gpu_bench generates them."""
    import torch

    logits = torch.from_numpy(routing_logits(tokens, shape[2], routing)).to(an.args.device)
    return {"base": {"model": model, "tokens": tokens, "routing": routing}, "logits": logits, "shape": shape}


def run_case(an, model, shape, tokens, routing, gemm_up_only=False):
    import torch

    d, f, E, K = shape
    dev = an.args.device
    case = make_case(an, model, shape, tokens, routing)
    base, logits = case["base"], case["logits"]
    weights, ids = torch.topk(torch.softmax(logits, -1), K, dim=-1)
    weights = weights / weights.sum(-1, keepdim=True)
    flat = ids.flatten()
    counts = torch.bincount(flat, minlength=E)
    order = torch.argsort(flat, stable=True)  # row r holds slot order[r]
    token_of_row = order // K
    R = tokens * K
    offs = torch.cumsum(counts, 0).to(torch.int32)
    sizes = counts.tolist()
    note = f"rows per expert: min {min(sizes)}, max {max(sizes)}, mean {R / E:g}"

    def router_fn(bufs):
        def fn(i):
            w, t = torch.topk(torch.softmax(bufs[i], -1), K, dim=-1)
            return w / w.sum(-1, keepdim=True), t
        return fn

    def router():
        rot = an.rotation(2 * tokens * E * 4)
        bufs = [logits.clone() for _ in range(rot)]
        return router_fn(bufs), rot, {"bytes": 2 * tokens * E * 4 + R * 8}

    def router_dispatch():
        rot = an.rotation(2 * tokens * E * 4)
        bufs = [logits.clone() for _ in range(rot)]
        route = router_fn(bufs)

        def fn(i):
            w, t = route(i)
            flat_ids = t.flatten()
            torch.bincount(flat_ids, minlength=E)
            torch.argsort(flat_ids, stable=True)
        return fn, rot, {"note": "router, torch.argsort(stable) and torch.bincount"}

    if not gemm_up_only:
        an.measure(base, "router", "torch", router)
        an.measure(base, "router_dispatch", "torch", router_dispatch)

    bf16 = torch.bfloat16

    def permute():
        rot = an.rotation(2 * d * (tokens + R))
        xs = [torch.randn(tokens, d, device=dev, dtype=bf16) for _ in range(rot)]
        outs = [torch.empty(R, d, device=dev, dtype=bf16) for _ in range(rot)]
        return (lambda i: torch.index_select(xs[i], 0, token_of_row, out=outs[i])), rot, \
            {"bytes": 2 * 2 * d * R + 4 * R, "note": "torch.index_select(x, 0, token_of_row, out=...)"}

    def combine():
        rot = an.rotation(2 * d * (tokens + R))
        slot_row = torch.empty_like(order)
        slot_row[order] = torch.arange(R, device=dev)
        eo = [torch.randn(R, d, device=dev, dtype=bf16) for _ in range(rot)]
        w = weights.to(bf16).unsqueeze(-1)
        return (lambda i: (eo[i][slot_row].view(tokens, K, d) * w).sum(1)), rot, \
            {"bytes": 2 * d * (R + tokens) + 8 * R, "note": "(expert_out[slot_row].view(T, K, d) * w).sum(1)"}

    if not gemm_up_only:
        an.measure(base, "permute_bf16", "torch", permute)
        an.measure(base, "combine_bf16", "torch", combine)

    projections = (("grouped_gemm_up_bf16", d, 2 * f), ("grouped_gemm_down_bf16", f, d))
    for op, k, n in projections[:1] if gemm_up_only else projections:
        flop = 2.0 * R * k * n

        def weights_3d(k=k, n=n):
            return torch.randn(E, k, n, device=dev, dtype=bf16) / math.sqrt(k)

        def inputs(k=k, n=n):
            rot = an.rotation(2 * R * (k + n))
            return rot, [torch.randn(R, k, device=dev, dtype=bf16) for _ in range(rot)]

        def grouped_mm(k=k, n=n):
            if not hasattr(torch, "_grouped_mm"):
                raise RuntimeError(f"torch {torch.__version__} has no torch._grouped_mm")
            w = weights_3d()
            rot, a = inputs()
            layout = "row-major weights"
            try:
                torch._grouped_mm(a[0], w, offs=offs)
            except RuntimeError:  # some versions want each expert's matrix column-major
                w = w.transpose(-2, -1).contiguous().transpose(-2, -1)
                layout = "column-major weights"
            return (lambda i: torch._grouped_mm(a[i], w, offs=offs)), rot, \
                {"flop": flop, "note": f"{note}; {layout}"}

        def loop(k=k, n=n):
            w = weights_3d()
            rot, a = inputs()
            bounds = [0] + torch.cumsum(counts, 0).tolist()
            outs = [torch.empty(R, n, device=dev, dtype=bf16) for _ in range(rot)]

            def fn(i):
                for e in range(E):
                    lo, hi = bounds[e], bounds[e + 1]
                    if hi > lo:
                        torch.matmul(a[i][lo:hi], w[e], out=outs[i][lo:hi])
            return fn, rot, {"flop": flop, "note": note}

        def dense(k=k, n=n):
            w = torch.randn(k, n, device=dev, dtype=bf16) / math.sqrt(k)
            rot, a = inputs()
            outs = [torch.empty(R, n, device=dev, dtype=bf16) for _ in range(rot)]
            return (lambda i: torch.matmul(a[i], w, out=outs[i])), rot, \
                {"flop": flop, "note": f"one [{R}, {k}] x [{k}, {n}] matmul: the dense ceiling"}

        an.measure(base, op, "torch_grouped_mm", grouped_mm)
        an.measure(base, op, "torch_loop", loop)
        an.measure(base, op, "torch_matmul", dense)
    return case


def run_layers(an, case):
    """The layer in bf16 (issue 11's comparison), then in f32, in pmoe_gpu_bench's order."""
    for dtype_name in ("bf16", "f32"):
        run_layer(an, case, dtype_name)


def run_layer(an, case, dtype_name):
    """The SwiGLU MoE layer as a per-expert loop (router logits given, as in pmoe_gpu_bench)."""
    import torch

    d, f, E, K = case["shape"]
    dev = an.args.device
    base, logits = case["base"], case["logits"]
    tokens = base["tokens"]
    dtype = torch.float32 if dtype_name == "f32" else torch.bfloat16
    flop = 2.0 * tokens * K * 3 * d * f
    state = {}

    def setup():
        if "x" in state:
            return
        free = torch.cuda.mem_get_info()[0] if dev == "cuda" else 8 << 30
        size = torch.finfo(dtype).bits // 8
        # As in pmoe_gpu_bench: as many distinct expert matrices as fit (weights and gradients).
        per_expert = 2 * 3 * d * f * size
        distinct = max(1, min(E, int(0.5 * free / per_expert)))
        w1 = (torch.randn(distinct, d, 2 * f, device=dev, dtype=dtype) / math.sqrt(d)).requires_grad_()
        w2 = (torch.randn(distinct, f, d, device=dev, dtype=dtype) / math.sqrt(f)).requires_grad_()
        x = torch.randn(tokens, d, device=dev, dtype=dtype, requires_grad=True)
        lg = logits.clone().requires_grad_()
        state.update(x=x, lg=lg, w1=w1, w2=w2, distinct=distinct,
                     gy=torch.randn(tokens, d, device=dev, dtype=dtype))

    def forward():
        x, lg, w1, w2, distinct = (state[k] for k in ("x", "lg", "w1", "w2", "distinct"))
        w, ids = torch.topk(torch.softmax(lg, -1), K, dim=-1)
        w = (w / w.sum(-1, keepdim=True)).to(dtype)
        y = torch.zeros_like(x)
        for e in range(E):
            tok, slot = torch.where(ids == e)
            if tok.numel() == 0:
                continue
            h = x[tok] @ w1[e % distinct]
            a = torch.nn.functional.silu(h[:, :f]) * h[:, f:]
            y = y.index_add(0, tok, (a @ w2[e % distinct]) * w[tok, slot, None])
        return y

    def note():
        shared = "" if state["distinct"] == E else \
            f"; memory holds {state['distinct']} distinct expert matrices, expert e uses e mod {state['distinct']}"
        return "per-expert loop (torch.where, index_add), router logits given" + shared

    def fwd():
        setup()
        with torch.no_grad():
            return (lambda i: forward()), 1, {"flop": flop, "note": note()}

    def fwd_bwd():
        setup()

        def fn(i):
            y = forward()
            y.backward(state["gy"])
            for k in ("x", "lg", "w1", "w2"):
                state[k].grad = None
        return fn, 1, {"flop": 3 * flop, "note": note()}

    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # f32 means f32, as our kernels compute it
    try:
        an.measure(base, f"layer_fwd_{dtype_name}", "torch_loop", fwd)
        an.measure(base, f"layer_fwd_bwd_{dtype_name}", "torch_loop", fwd_bwd)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        state.clear()
        if dev == "cuda":
            torch.cuda.empty_cache()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="torch_anchors.json")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--tokens", default="4096,16384")
    p.add_argument("--routing", default="uniform,zipf")
    p.add_argument("--budget-s", type=float, default=120)
    p.add_argument("--target-ms", type=float, default=150)
    p.add_argument("--no-layer", action="store_true")
    p.add_argument("--no-anchor", action="store_true",
                   help="leave out what is measured first: the grouped GEMM at 16 experts x 512 rows, K 5120, "
                        "N 8192, and the layer at mixtral/4 and deepseek/4")
    p.add_argument("--smoke", action="store_true", help="one small ragged shape, one call of everything")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cpu: wall-clock timing on the CPU, to check this script without a GPU")
    args = p.parse_args(argv)
    args.warmup, args.min_reps, args.max_reps = (0, 1, 1) if args.smoke else (3, 5, 200)
    an = Anchors(args)
    try:
        import numpy  # noqa: F401
        import torch
    except ImportError as e:
        an.doc.update(status="unavailable", reason=f"PyTorch or numpy is not installed here ({e})")
        print(f"torch_anchors: {an.doc['reason']}; no anchors measured", flush=True)
        an.write()
        return 0
    if args.device == "cpu":
        an.doc["device"] = {"name": "cpu (script check, not a measurement)", "l2_bytes": 32 << 20}
    elif not torch.cuda.is_available():
        an.doc.update(status="unavailable", reason=f"torch {torch.__version__} sees no CUDA device")
        print(f"torch_anchors: {an.doc['reason']}; no anchors measured", flush=True)
        an.write()
        return 0
    else:
        props = torch.cuda.get_device_properties(0)
        an.doc["device"] = {"name": props.name, "compute_capability": f"{props.major}.{props.minor}",
                            "multiprocessors": props.multi_processor_count,
                            "l2_bytes": getattr(props, "L2_cache_size", 50 << 20),
                            "memory_bytes": props.total_memory}
    an.doc["torch"] = torch.__version__
    print(f"torch_anchors: torch {torch.__version__} on {an.doc['device']['name']}", flush=True)
    an.write()
    if args.smoke:
        cases = [(SMOKE[0], SMOKE[1], SMOKE[2], r) for r in ("uniform", "zipf")]
    else:
        cases = [(m, MODELS[m], int(t), r) for m in args.models.split(",")
                 for t in args.tokens.split(",") for r in args.routing.split(",")]
    if not (args.smoke or args.no_anchor):
        run_case(an, *GEMM_SHAPE, "balanced", gemm_up_only=True)
        for model, shape in LAYER_SHAPES.items():
            run_layers(an, make_case(an, model, shape, LAYER_TOKENS, "uniform"))
    done = [run_case(an, *c) for c in cases]
    if not args.no_layer:
        done.sort(key=lambda c: c["base"]["tokens"] * c["shape"][3] * c["shape"][0] * c["shape"][1])
        for c in done:
            run_layers(an, c)
    failed = sum(r["status"] == "error" for r in an.doc["results"])
    print(f"torch_anchors: {len(an.doc['results'])} measurements, {failed} failed; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
