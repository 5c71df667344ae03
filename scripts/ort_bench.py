#!/usr/bin/env python3
"""Times standalone onnxruntime (Python, CPUExecutionProvider) on a model, as the reference that
`edgeinfer bench --reference-script scripts/ort_bench.py` compares backends against.

Usage: ort_bench.py MODEL --runs N --warmup W [--threads T] [--shape NAME=1,3,224,224 ...]
       [--value NAME=16000 ...]
Prints one JSON object: {"backend": "onnxruntime-python", "median_us": ..., "p90_us": ...,
"p99_us": ..., "min_us": ..., "peak_rss_kb": ...}.
"""
import argparse
import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort

TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int)
    p.add_argument("--shape", action="append", default=[])
    p.add_argument("--value", action="append", default=[])
    a = p.parse_args()
    shapes = {k: [int(d) for d in v.split(",") if d] for k, v in (s.split("=", 1) for s in a.shape)}
    values = {k: float(v) for k, v in (s.split("=", 1) for s in a.value)}
    so = ort.SessionOptions()
    if a.threads:
        so.intra_op_num_threads = a.threads
    s = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {}
    for i in s.get_inputs():
        shape = shapes.get(i.name, i.shape)
        if any(not isinstance(d, int) or d < 0 for d in shape):
            sys.exit(f"input {i.name} has dynamic shape {i.shape}; give --shape {i.name}=...")
        dt = TYPES[i.type]
        if i.name in values:
            feed[i.name] = np.full(shape, values[i.name], dtype=dt)
        else:
            feed[i.name] = rng.random(shape).astype(dt) if dt in (np.float32, np.float64) else np.zeros(shape, dt)
    for _ in range(a.warmup):
        s.run(None, feed)
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        s.run(None, feed)
        times.append((time.perf_counter() - t) * 1e6)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, max(0, int(np.ceil(q * len(times))) - 1))]
    print(json.dumps({
        "backend": "onnxruntime-python",
        "median_us": pick(0.5),
        "p90_us": pick(0.9),
        "p99_us": pick(0.99),
        "min_us": times[0],
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


if __name__ == "__main__":
    main()
