"""What a PyTorch user gets on this CPU, to compare PanaMoE's JMH numbers with (same machine, same sitting).

Measures, each as one untimed call then --reps timed calls (median and best):
  - GEMM ceilings at n^3 (n = 4096): torch fp32 matmul, torch bf16 matmul, numpy fp32 matmul (OpenBLAS);
  - the SwiGLU MoE layer forward + backward written as PyTorch users write it: a softmax top-k
    router renormalised over the k weights, then a loop over experts each holding its own gate, up
    and down weights, in fp32 and in bf16 (weights, activations and gradients bf16, router
    softmax in fp32), on mixtral/4 and deepseek/4.
Rates count real work only: GEMM 2*m*n*k; layer forward 2*T*k*3*d*f (no padded rows), forward +
backward 3x that, the rate jmh/README.md credits PanaMoE's MoELayerBenchmark with.

Run it through scripts/anchors/run-anchors.sh, which creates the virtual environment and unsets
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for this command only (set to Haswell they hold OpenBLAS to
its AVX2 kernels). Prints one line per measurement and, with --json FILE, writes them all.
--quick runs tiny shapes and checks the layer against a dense reference: for testing the script.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np
import threadpoolctl
import torch
import torch.nn.functional as F

# name: (tokens T, hidden d, expert ffn f, experts E, top-k)
SHAPES = {
    "mixtral/4": (4096, 1024, 3584, 8, 2),
    "deepseek/4": (4096, 1792, 512, 64, 8),
}
# --quick: "tiny" is the JMH MoeShape of the bench sitting's --quick; "tiny-e64" leaves some experts empty.
QUICK_SHAPES = {
    "tiny": (256, 64, 128, 8, 2),
    "tiny-e64": (64, 32, 16, 64, 8),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def timed(fn, reps):
    """Seconds of `reps` calls after one untimed call: (median, best)."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2], times[0]


def row(kind, impl, dtype, shape, flop, median, best):
    r = {"kind": kind, "impl": impl, "dtype": dtype, "shape": shape, "flop": flop,
         "median_s": median, "best_s": best,
         "median_gflops": flop / median * 1e-9, "best_gflops": flop / best * 1e-9}
    print(f"{kind:11s} {impl:10s} {dtype:5s} {shape:15s} median {median * 1e3:9.2f} ms "
          f"{r['median_gflops']:7.1f} GFLOP/s   best {r['best_gflops']:7.1f}", flush=True)
    return r


def gemm_rows(n, reps):
    g = torch.Generator().manual_seed(1)
    a32, b32 = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    c32 = torch.empty(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    c16 = torch.empty(n, n, dtype=torch.bfloat16)
    an, bn = a32.numpy(), b32.numpy()
    cn = np.empty((n, n), dtype=np.float32)
    shape, flop = f"{n}x{n}x{n}", 2.0 * n ** 3
    cases = (("torch", "fp32", lambda: torch.matmul(a32, b32, out=c32)),
             ("torch", "bf16", lambda: torch.matmul(a16, b16, out=c16)),
             ("numpy", "fp32", lambda: np.matmul(an, bn, out=cn)))
    return [row("gemm", impl, dtype, shape, flop, *timed(fn, reps)) for impl, dtype, fn in cases]


class LoopMoE:
    """The per-expert-loop SwiGLU MoE layer with its inputs, weights and output gradient."""

    def __init__(self, T, d, f, E, k, dtype, seed):
        g = torch.Generator().manual_seed(seed)

        def param(*size, fan_in):
            return (torch.randn(*size, generator=g) / fan_in ** 0.5).to(dtype).requires_grad_()

        self.k = k
        self.x = torch.randn(T, d, generator=g).to(dtype).requires_grad_()
        self.router = param(d, E, fan_in=d)
        self.gate = [param(d, f, fan_in=d) for _ in range(E)]
        self.up = [param(d, f, fan_in=d) for _ in range(E)]
        self.down = [param(f, d, fan_in=f) for _ in range(E)]
        self.grad_out = torch.randn(T, d, generator=g).to(dtype)
        self.params = [self.x, self.router, *self.gate, *self.up, *self.down]

    def routing(self):
        """Top-k experts per token and their weights renormalised over the k (softmax in fp32)."""
        probs = torch.softmax((self.x @ self.router).float(), dim=-1)
        weights, experts = torch.topk(probs, self.k, dim=-1)
        return (weights / weights.sum(dim=-1, keepdim=True)).to(self.x.dtype), experts

    def forward(self):
        weights, experts = self.routing()
        out = torch.zeros_like(self.x)
        for e in range(len(self.gate)):
            token, slot = torch.nonzero(experts == e, as_tuple=True)
            if token.numel() == 0:
                continue
            xe = self.x.index_select(0, token)
            h = F.silu(xe @ self.gate[e]) * (xe @ self.up[e])
            out = out.index_add(0, token, (h @ self.down[e]) * weights[token, slot].unsqueeze(-1))
        return out

    def forward_backward(self):
        for p in self.params:
            p.grad = None
        self.forward().backward(self.grad_out)

    def dense_reference(self):
        """Every expert on every token, masked by the routing weights: the same layer without the loop."""
        weights, experts = self.routing()
        out = torch.zeros_like(self.x)
        for e in range(len(self.gate)):
            w = (weights * (experts == e)).sum(dim=-1, keepdim=True)
            out = out + (F.silu(self.x @ self.gate[e]) * (self.x @ self.up[e])) @ self.down[e] * w
        return out


def moe_rows(shapes, reps, check):
    rows = []
    for name, (T, d, f, E, k) in shapes.items():
        flop = 3 * 2.0 * T * k * 3 * d * f
        for dtype_name, dtype in DTYPES.items():
            layer = LoopMoE(T, d, f, E, k, dtype, seed=2)
            if check and dtype == torch.float32:
                with torch.no_grad():
                    got, want = layer.forward(), layer.dense_reference()
                err = (got - want).abs().max().item()
                if not err <= 1e-4 * want.abs().max().item():
                    sys.exit(f"torch_cpu_anchors: the loop layer differs from its dense reference on {name}: {err}")
                print(f"check       the loop layer matches its dense reference on {name} (max error {err:.1e})")
            rows.append(row("moe_fwd_bwd", "torch_loop", dtype_name, name, flop,
                            *timed(layer.forward_backward, reps)))
    return rows


def environment(threads):
    blas = threadpoolctl.threadpool_info()
    numpy_blas = [b for b in blas if b.get("user_api") == "blas" and "numpy" in b.get("filepath", "")]
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_mkl": torch.backends.mkl.is_available(),
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "threads": threads,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "openblas_l2_size": os.environ.get("OPENBLAS_L2_SIZE"),
        "numpy_blas": [{k: b.get(k) for k in ("internal_api", "version", "architecture", "threading_layer",
                                              "num_threads", "filepath")} for b in numpy_blas],
        "threadpools": [{k: b.get(k) for k in ("user_api", "internal_api", "num_threads", "filepath")}
                        for b in blas],
    }
    print(f"torch {env['torch']} (CPU capability {env['torch_cpu_capability']}, MKL {env['torch_mkl']}, "
          f"oneDNN {env['torch_mkldnn']}), numpy {env['numpy']}, {threads} threads", flush=True)
    for b in env["numpy_blas"]:
        print(f"numpy BLAS: {b['internal_api']} {b['version']}, kernels {b['architecture']}, "
              f"{b['num_threads']} threads ({b['filepath']})", flush=True)
    if env["openblas_coretype"] or env["openblas_l2_size"]:
        print(f"warning: OPENBLAS_CORETYPE={env['openblas_coretype']} OPENBLAS_L2_SIZE={env['openblas_l2_size']} "
              "are set and may hold OpenBLAS to older kernels (run-anchors.sh unsets them)", flush=True)
    return env


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="threads for torch and OpenBLAS (default 2)")
    ap.add_argument("--reps", type=int, default=5, help="timed calls per measurement (default 5)")
    ap.add_argument("--gemm-size", type=int, default=4096, help="n of the n^3 GEMMs (default 4096)")
    ap.add_argument("--shapes", help="MoE shapes, comma-separated (default: all of the mode's)")
    ap.add_argument("--skip-gemm", action="store_true", help="MoE layer rows only")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, 2 reps, check the layer: tests the script")
    ap.add_argument("--json", metavar="FILE", help="also write every result to FILE")
    args = ap.parse_args()
    if args.threads < 1 or args.reps < 1 or args.gemm_size < 1:
        ap.error(f"--threads, --reps and --gemm-size must be positive: {args.threads}, {args.reps}, {args.gemm_size}")
    table = QUICK_SHAPES if args.quick else SHAPES
    names = args.shapes.split(",") if args.shapes else list(table)
    unknown = [s for s in names if s not in table]
    if unknown:
        ap.error(f"--shapes: unknown shape {unknown[0]!r}, expected some of {', '.join(table)}")
    shapes = {s: table[s] for s in names}
    reps, n = (2, 256) if args.quick else (args.reps, args.gemm_size)  # 256: the sitting's --quick GEMM size

    torch.set_num_threads(args.threads)
    with threadpoolctl.threadpool_limits(limits=args.threads, user_api="blas"):
        env = environment(args.threads)
        rows = [] if args.skip_gemm else gemm_rows(n, reps)
        rows += moe_rows(shapes, reps, check=args.quick)
    if args.json:
        doc = {"tool": "torch_cpu_anchors", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
               "quick": args.quick, "reps": reps, "environment": env, "results": rows}
        tmp = args.json + ".tmp"
        with open(tmp, "w") as out:
            json.dump(doc, out, indent=1)
        os.replace(tmp, args.json)  # never a half-written file


if __name__ == "__main__":
    main()
