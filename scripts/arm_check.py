#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Inputs, references and checks for the ARM tests (scripts/test-arm.sh).

  arm_check.py fixtures DIR MODEL...   inputs and onnxruntime (x86) reference outputs
  arm_check.py compare DIR RUNS...     every ARM run's outputs against the references

`fixtures` writes, for each model, DIR/<case>/ with one .npy per input (deterministic, uniform in
the model's usual range; recurrent state inputs are zeros) and DIR/<case>/ref/<output>.npy from
onnxruntime's CPU provider in Python, and DIR/cases.txt: one line per case, "<case> <model>
<NAME=file.npy>...", in the form `edgeinfer infer` takes.

`compare` reads DIR/cases.txt and, for each RUN folder (one per backend and thread count, holding
<case>/<output>.npy as `edgeinfer infer --output` writes them), prints the relative error of
every output — the infinity norm of the difference over that of the reference, as the
conformance suite measures it — and fails if any is above 1e-4 or any output is missing. It also
reports, per backend, how far the outputs of different thread counts are from each other.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

MAX_RELATIVE_ERROR = 1e-4


def fixed_shape(name: str, dims: list, model: str) -> list[int]:
    """Concrete shape for an input: the file's dims, with the dynamic ones set per model."""
    shape = []
    for i, d in enumerate(dims):
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif i == 0:
            shape.append(1)
        elif "det" in model:
            shape.append(96 if i == 2 else 160)
        else:
            shape.append(64)
    return shape


def fixtures(out: Path, models: list[str]) -> int:
    import onnxruntime as ort

    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for model in models:
        path = Path(model).resolve()
        case = path.stem
        folder = out / case
        (folder / "ref").mkdir(parents=True, exist_ok=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(len(case))
        feeds, args = {}, []
        for i in session.get_inputs():
            shape = fixed_shape(i.name, i.shape, case)
            if i.name == "state":
                value = np.zeros(shape, dtype=np.float32)
            elif case.startswith("silero"):
                value = (rng.random(shape, dtype=np.float32) - 0.5) * 0.2
            elif "_det_" in case:
                # On noise a text detector outputs all but zeros, which says nothing about
                # agreement: lines of glyph-like boxes make its output span [0, 1].
                value = text_like(shape)
            elif case.startswith("ch_"):
                value = (rng.random(shape, dtype=np.float32) - 0.5) / 0.5
            else:
                value = rng.random(shape, dtype=np.float32)
            file = folder / f"{i.name}.npy"
            np.save(file, value)
            feeds[i.name] = value
            args.append(f"{i.name}={file}")
        for o, value in zip(session.get_outputs(), session.run(None, feeds)):
            np.save(folder / "ref" / f"{sanitise(o.name)}.npy", value)
        lines.append(" ".join([case, str(path), *args]))
        print(f"fixture {case}: inputs {[a.split('=')[0] for a in args]}")
    (out / "cases.txt").write_text("\n".join(lines) + "\n")
    return 0


def text_like(shape: list[int]) -> np.ndarray:
    """Dark glyph-like boxes on white in rows, normalised with PP-OCR's mean and std (the input
    the conformance suite gives the PP-OCR detectors)."""
    _, _, h, w = shape
    img = np.ones((h, w), dtype=np.float32)
    for row in range(h // 5, max(h - 14, h // 5), max(40, h // 4)):
        for x0 in range(w // 10, max(w - 16, w // 10), 24):
            img[row : row + 14, x0 : x0 + 16] = 0.0
            img[row + 3 : row + 11, x0 + 3 : x0 + 13] = 1.0
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]
    return ((img[None] - mean) / std)[None].astype(np.float32)


def sanitise(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    if ours.shape != ref.shape:
        return float("inf")
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(ours.astype(np.float64) - ref).max()) / scale


def compare(out: Path, runs: list[str]) -> int:
    cases = [line.split()[0] for line in (out / "cases.txt").read_text().splitlines() if line]
    failures = 0
    by_backend: dict[str, list[Path]] = {}
    for run in runs:
        run_dir = Path(run)
        by_backend.setdefault(run_dir.name.rsplit("-t", 1)[0], []).append(run_dir)
        worst = 0.0
        for case in cases:
            for ref_file in sorted((out / case / "ref").glob("*.npy")):
                got = run_dir / case / ref_file.name
                if not got.exists():
                    print(f"FAIL {run_dir.name} {case}: no {ref_file.name}")
                    failures += 1
                    continue
                err = relative_error(np.load(got), np.load(ref_file))
                worst = max(worst, err)
                if err > MAX_RELATIVE_ERROR:
                    print(f"FAIL {run_dir.name} {case} {ref_file.stem}: relative error {err:.3g}")
                    failures += 1
        print(f"{run_dir.name}: {len(cases)} models, largest relative error to onnxruntime on x86 {worst:.2e}")
    for backend, dirs in by_backend.items():
        if len(dirs) < 2:
            continue
        spread = 0.0
        identical = True
        for case in cases:
            for ref_file in sorted((out / case / "ref").glob("*.npy")):
                values = [np.load(d / case / ref_file.name) for d in dirs if (d / case / ref_file.name).exists()]
                for v in values[1:]:
                    identical &= np.array_equal(v, values[0])
                    spread = max(spread, relative_error(v, values[0]))
        if spread > MAX_RELATIVE_ERROR:
            failures += 1
            print(f"FAIL {backend}: thread counts disagree by {spread:.3g}")
        what = "identical" if identical else f"within {spread:.2e} of each other"
        print(f"{backend}: outputs of {', '.join(d.name for d in dirs)} {what}")
    return 1 if failures else 0


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "fixtures":
        return fixtures(Path(sys.argv[2]), sys.argv[3:])
    if len(sys.argv) >= 3 and sys.argv[1] == "compare":
        return compare(Path(sys.argv[2]), sys.argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
