#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Run an ONNX model with onnxruntime and save its outputs as .npy files.

Usage: python3 scripts/ort_reference.py MODEL.onnx OUTDIR NAME=in.npy [NAME=in.npy ...]

Runs MODEL.onnx on the CPU execution provider (default graph optimisations)
with each input NAME taken from the given .npy file, and writes every model
output to OUTDIR/<name>.npy, where <name> is the output name with every
character outside [A-Za-z0-9._-] replaced by '_'. Prints one line per output:
name, shape, dtype. Used to produce reference results to compare the daemon's
inference against.

Exit status: 0 on success, 1 on any error (message on stderr).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

USAGE = "usage: ort_reference.py MODEL.onnx OUTDIR NAME=in.npy [NAME=in.npy ...]"


class Failure(Exception):
    pass


def sanitise(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def split_assignment(arg: str, known: set[str]) -> tuple[str, str]:
    """Split NAME=PATH. Input names may themselves contain '=', so prefer a
    split point whose left-hand side is one of the model's input names."""
    positions = [i for i, ch in enumerate(arg) if ch == "="]
    if not positions:
        raise Failure(f"bad argument {arg!r}: expected NAME=file.npy")
    for i in positions:
        if arg[:i] in known:
            return arg[:i], arg[i + 1 :]
    i = positions[0]
    return arg[:i], arg[i + 1 :]


def run(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    if len(argv) < 2:
        raise Failure(USAGE)

    import numpy as np
    import onnxruntime as ort

    model_path, out_dir, assignments = Path(argv[0]), Path(argv[1]), argv[2:]
    if not model_path.is_file():
        raise Failure(f"model not found: {model_path}")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; keep initializer-cleanup warnings quiet
        sess = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises several exception types
        raise Failure(f"cannot load model {model_path}: {e}") from e

    model_inputs = {i.name: i for i in sess.get_inputs()}
    feeds: dict[str, object] = {}
    for arg in assignments:
        name, path = split_assignment(arg, set(model_inputs))
        if name not in model_inputs:
            raise Failure(f"model has no input named {name!r} (inputs: {', '.join(model_inputs)})")
        if name in feeds:
            raise Failure(f"input {name!r} given more than once")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except Exception as e:
            raise Failure(f"cannot read {path!r} for input {name!r}: {e}") from e
        if not isinstance(feeds[name], np.ndarray):
            raise Failure(f"{path!r} for input {name!r} is not a single .npy array")

    missing = [n for n in model_inputs if n not in feeds]
    if missing:
        raise Failure(f"missing value for input(s): {', '.join(missing)}")

    output_names = [o.name for o in sess.get_outputs()]
    files = [sanitise(n) + ".npy" for n in output_names]
    clashes = {f for f in files if files.count(f) > 1}
    if clashes:
        raise Failure(f"output names collide after sanitising: {', '.join(sorted(clashes))}")

    try:
        results = sess.run(output_names, feeds)
    except Exception as e:
        raise Failure(f"inference failed: {e}") from e

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, fname, value in zip(output_names, files, results):
            value = np.asarray(value)
            np.save(out_dir / fname, value, allow_pickle=False)
            print(f"{name} {list(value.shape)} {value.dtype}")
    except OSError as e:
        raise Failure(f"cannot write outputs to {out_dir}: {e}") from e
    return 0


def main() -> int:
    try:
        return run(sys.argv[1:])
    except Failure as e:
        print(f"ort_reference: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
