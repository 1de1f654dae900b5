#!/usr/bin/env python3
"""Summarises an Nsight Systems run of the GPU suite's step timeline (run.sh, phase timeline).

  nsys_summary.py GPU_TRACE_CSV API_SUM_CSV

GPU_TRACE_CSV is `nsys stats --report cuda_gpu_trace --format csv` (one row per kernel, copy
and memset: start, duration, stream), API_SUM_CSV is `--report cuda_api_sum` (calls per CUDA
API function). Prints, over the whole profiled run: per stream its operations and busy time;
the time two or more streams were busy at once (the overlap of communication and compute, once
they run on separate streams); the device's idle time inside the span of its work; and the
calls of the CUDA functions that make the host wait for the device.
"""
import csv
import sys

# CUDA runtime calls after which the host has waited for the device (cudaMemcpy and cudaMemset
# without Async are synchronous for pageable host memory and the legacy stream).
SYNCHRONISING = ("cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize",
                 "cudaMemcpy", "cudaMemset", "cudaStreamQuery", "cudaEventQuery")


def column(header, prefix, path):
    for i, name in enumerate(header):
        if name.strip().startswith(prefix):
            return i
    raise SystemExit(f"nsys_summary: {path} has no column starting with {prefix!r} (columns: {header})")


def rows(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise SystemExit(f"nsys_summary: {path} is empty")
        return header, [r for r in reader if r]


def busy(intervals):
    """Total length of the union of [start, end) intervals."""
    total, reach = 0, None
    for start, end in sorted(intervals):
        if reach is None or start >= reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def overlapped(intervals_by_stream):
    """Time during which operations of two or more streams ran at once."""
    events = []
    for intervals in intervals_by_stream.values():
        for start, end in intervals:
            events += [(start, 1), (end, -1)]
    events.sort(key=lambda e: (e[0], e[1]))
    total, running, last = 0, 0, None
    for t, delta in events:
        if running >= 2:
            total += t - last
        running += delta
        last = t
    return total


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    header, trace = rows(argv[1])
    start_c, dur_c = column(header, "Start", argv[1]), column(header, "Duration", argv[1])
    strm_c, name_c = column(header, "Strm", argv[1]), column(header, "Name", argv[1])
    by_stream, names = {}, {}
    for r in trace:
        start, dur = int(float(r[start_c])), int(float(r[dur_c]))
        by_stream.setdefault(r[strm_c], []).append((start, start + dur))
        names.setdefault(r[strm_c], set()).add(r[name_c])
    every = [i for v in by_stream.values() for i in v]
    if not every:
        print("nsys: no GPU operations in the trace")
    else:
        span = max(e for _, e in every) - min(s for s, _ in every)
        union = busy(every)
        print(f"nsys: {len(every)} GPU operations on {len(by_stream)} stream(s) over {span / 1e6:.3f} ms")
        for stream, intervals in sorted(by_stream.items(), key=lambda kv: -busy(kv[1])):
            print(f"  stream {stream}: {len(intervals)} operations, busy {busy(intervals) / 1e6:.3f} ms, "
                  f"{len(names[stream])} distinct kernels/copies")
        print(f"  two or more streams at once: {overlapped(by_stream) / 1e6:.3f} ms; device idle inside the span: "
              f"{(span - union) / 1e6:.3f} ms ({100 * (span - union) / span:.1f}%)")
    header, api = rows(argv[2])
    calls_c, name_c = column(header, "Num Calls", argv[2]), column(header, "Name", argv[2])
    waits = []
    for r in api:
        name = r[name_c].split("_v")[0]  # cudaMemcpy_v3020 and the like
        if name in SYNCHRONISING:
            waits.append((name, int(float(r[calls_c]))))
    print("nsys: calls that make the host wait: " +
          (", ".join(f"{n} {c}" for n, c in sorted(waits, key=lambda w: -w[1])) if waits else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
