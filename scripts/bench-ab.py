#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Compare two edgeinfer binaries' inference latency, alternating them in one run.

Each round runs `BIN bench --child` (one backend, one model, a fresh process) for every
model x backend x thread count, once with the old binary and once with the new one, the order
swapped from round to round, so that both see the same machine load. Per case it prints the
median over rounds of each binary's median latency and their ratio new/old, with the lowest and
highest per-round ratio as the spread. Exits 1 when --max-ratio is given and a ratio exceeds it.

  python3 scripts/bench-ab.py --old /tmp/edgeinfer-old --new target/dist/edgeinfer \\
      --model models/bench/mobilenetv2.onnx --model models/bench/resnet18.onnx \\
      --backend tract --backend ort-cpu --threads 1 --threads 2 --rounds 7

The ort-cpu backend needs ORT_DYLIB_PATH (scripts/test.sh sets it from the test environment's
onnxruntime wheel). Models: python3 scripts/gen-bench-models.py.
"""
import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from bench_child import measure  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", required=True)
    p.add_argument("--new", required=True)
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--backend", action="append", default=None)
    p.add_argument("--threads", action="append", type=int, default=None)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--max-ratio", type=float, default=None)
    a = p.parse_args()
    backends = a.backend or ["tract", "ort-cpu"]
    threads = a.threads or [1, 2]
    cases = [(m, b, t) for m in a.model for b in backends for t in threads]
    medians = {(case, which): [] for case in cases for which in ("old", "new")}
    for r in range(a.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for case in cases:
            for which in order:
                binary = a.old if which == "old" else a.new
                model, backend, t = case
                m = measure(binary, model, backend, a.runs, t, a.warmup)
                medians[(case, which)].append(m["median_us"])
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)

    print("| model | backend | threads | old ms | new ms | new/old | per-round spread |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    worst = 0.0
    for case in cases:
        old, new = medians[(case, "old")], medians[(case, "new")]
        ratio = statistics.median(new) / statistics.median(old)
        rounds = [n / o for o, n in zip(old, new)]
        worst = max(worst, ratio)
        model, backend, t = case
        print(f"| {os.path.basename(model)} | {backend} | {t} | {statistics.median(old) / 1e3:.2f} "
              f"| {statistics.median(new) / 1e3:.2f} | {ratio:.3f} "
              f"| {min(rounds):.3f}–{max(rounds):.3f} |")
    print(f"largest ratio: {worst:.3f}")
    if a.max_ratio is not None and worst > a.max_ratio:
        sys.exit(1)


if __name__ == "__main__":
    main()
