#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generate the models that the model-update (OTA) tests send to a device.

Each one stands in for models/vibration.onnx (input `features` float32 [1,3] =
temperature degC, humidity %, vibration g-rms; output `logits` float32 [1,2] for
normal, alert) and differs from it in one way a test needs:

  models/test/vibration-v2.onnx     same MLP, temperature limit 50 degC instead of
                                    60: a new version that disagrees with v1 on
                                    some frames only
  models/test/vibration-fails.onnx  v1's logits while temperature <= 45 degC; a
                                    run-time error (ScatterND index out of
                                    bounds) above: loads and passes a low golden
                                    input, then fails on trial
  models/test/vibration-slow.onnx   v1's logits exactly, plus a chain of 256x256
                                    matrix products whose result is subtracted
                                    from itself: slow (about 12 ms a run on
                                    tract, one thread), not wrong
  models/test/not-a-model.onnx      text, not ONNX: refused when loaded
  models/test/golden-low.npy        [[40, 50, 0.5]]: an input every model above
                                    runs on, with the same logits

After writing, each model is validated with onnx.checker and run through
onnxruntime on the frames that tests/support's `write_readings` produces; the
script exits non-zero if any model does not behave as described. The output is
byte-for-byte reproducible. models/test/README.md lists the files' sha256.

Usage: python3 scripts/gen-test-models.py [--out-dir models/test]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
# IR version 8 is accepted by onnxruntime and by tract-onnx 0.23.
IR_VERSION = 8
PRODUCER = "edgeinfer gen-test-models"

REPO_ROOT = Path(__file__).resolve().parent.parent

# v1 (models/vibration.onnx, scripts/gen-demo-models.py): alert when temperature > 60 or
# vibration > 2.0.
V1_TEMP_LIMIT_C = 60.0
V2_TEMP_LIMIT_C = 50.0
VIB_LIMIT_G = 2.0
# vibration-fails.onnx errors when the first feature (temperature) is above this.
FAIL_ABOVE_C = 45.0
# Out-of-bounds column written by ScatterND above FAIL_ABOVE_C (the logits have 2 columns).
FAIL_COLUMN = 7
SLOW_SIZE = 256
SLOW_STEPS = 32

GOLDEN_LOW = np.array([[40.0, 50.0, 0.5]], dtype=np.float32)
NOT_A_MODEL = (
    "This file is not an ONNX model.\n\n"
    "It is sent as a model update in tests to check that a device refuses a file that its\n"
    "backend cannot load, keeps serving the model it has, and says why.\n\n"
)


def c(name: str, arr) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name)


def mlp(temp_limit: float, logits: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """vibration.onnx's computation with another temperature limit, writing `logits`.

    hidden = relu([(temp - limit)/10, vib - 2.0]); alert = 10*(h0 + h1); normal = 0.01.
    """
    w1 = np.array([[0.1, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    b1 = np.array([-temp_limit / 10.0, -VIB_LIMIT_G], dtype=np.float32)
    w2 = np.array([[0.0, 10.0], [0.0, 10.0]], dtype=np.float32)
    b2 = np.array([0.01, 0.0], dtype=np.float32)
    nodes = [
        helper.make_node("Gemm", ["features", "w1", "b1"], ["hidden_pre"], name="dense1"),
        helper.make_node("Relu", ["hidden_pre"], ["hidden"], name="relu1"),
        helper.make_node("Gemm", ["hidden", "w2", "b2"], [logits], name="dense2"),
    ]
    init = [c("w1", w1), c("b1", b1), c("w2", w2), c("b2", b2)]
    return nodes, init


def graph(name: str, nodes, init, doc: str) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes,
        name,
        inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        initializer=init,
    )
    g.doc_string = doc
    model = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version="1",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    return model


def build_v2() -> onnx.ModelProto:
    nodes, init = mlp(V2_TEMP_LIMIT_C, "logits")
    return graph(
        "vibration_v2",
        nodes,
        init,
        f"vibration.onnx with a temperature limit of {V2_TEMP_LIMIT_C:g} degC instead of "
        f"{V1_TEMP_LIMIT_C:g}: 'alert' wins when temperature > {V2_TEMP_LIMIT_C:g} or "
        f"vibration > {VIB_LIMIT_G:g}.",
    )


def build_fails() -> onnx.ModelProto:
    """v1's logits written back onto themselves with ScatterND at column 0, or at column 7 (out of
    bounds: a run-time error on tract and onnxruntime alike) when temperature > FAIL_ABOVE_C.

    tract does not accept a Reshape whose shape comes from data, and its Gather panics on an
    out-of-range index; its ScatterND checks every index and returns an error.
    """
    nodes, init = mlp(V1_TEMP_LIMIT_C, "logits_v1")
    init += [
        c("first", np.array([0], np.int64)),
        c("second", np.array([1], np.int64)),
        c("limit", np.array(FAIL_ABOVE_C, np.float32)),
        c("far_column", np.array(FAIL_COLUMN, np.int64)),
        c("row0", np.array([[0]], np.int64)),
        c("one_value", np.array([1], np.int64)),
    ]
    nodes += [
        # features[:, 0:1]: temperature, [1, 1]
        helper.make_node("Slice", ["features", "first", "second", "second"], ["temperature"]),
        helper.make_node("Greater", ["temperature", "limit"], ["too_hot"]),
        helper.make_node("Cast", ["too_hot"], ["too_hot_i"], to=TensorProto.INT64),
        helper.make_node("Mul", ["too_hot_i", "far_column"], ["column"]),
        helper.make_node("Concat", ["row0", "column"], ["index"], axis=1),  # [[0, 0 or 7]]
        helper.make_node("Slice", ["logits_v1", "first", "second", "second"], ["normal_2d"]),
        helper.make_node("Reshape", ["normal_2d", "one_value"], ["normal"]),  # [1]
        helper.make_node("ScatterND", ["logits_v1", "index", "normal"], ["logits"], name="fail_when_hot"),
    ]
    return graph(
        "vibration_fails",
        nodes,
        init,
        f"vibration.onnx's logits while temperature <= {FAIL_ABOVE_C:g} degC; above, a ScatterND "
        f"writes to column {FAIL_COLUMN} of 2 and inference fails.",
    )


def build_slow() -> onnx.ModelProto:
    """v1's logits + (m - m), m the mean of a tanh chain of SLOW_STEPS 256x256 products seeded by
    the input.

    The chain's weights are computed in the graph (sin of a Range), as in busy.onnx, so the file
    stays small; the chain depends on the input, so no runtime can fold it away. tanh keeps m
    finite, so m - m is exactly 0 and the logits are exactly v1's.
    """
    n = SLOW_SIZE
    nodes, init = mlp(V1_TEMP_LIMIT_C, "logits_v1")
    init += [
        c("start", np.array(0.0, np.float32)),
        c("limit", np.array(float(n * n), np.float32)),
        c("delta", np.array(1.0, np.float32)),
        c("scale", np.array(1.0 / math.sqrt(n), np.float32)),
        c("square", np.array([n, n], np.int64)),
        c("spread", np.full((3, n), 0.01, np.float32)),
        c("column", np.linspace(-1.0, 1.0, n, dtype=np.float32).reshape(n, 1)),
    ]
    nodes += [
        helper.make_node("Range", ["start", "limit", "delta"], ["idx"]),
        helper.make_node("Sin", ["idx"], ["wave"]),
        helper.make_node("Mul", ["wave", "scale"], ["wave_scaled"]),
        helper.make_node("Reshape", ["wave_scaled", "square"], ["w"]),
        helper.make_node("MatMul", ["features", "spread"], ["x_row"]),  # [1, n]
        helper.make_node("Tanh", ["x_row"], ["x_bounded"]),
        helper.make_node("Mul", ["column", "x_bounded"], ["h0"]),  # [n, n]
    ]
    for i in range(SLOW_STEPS):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
    nodes += [
        helper.make_node("ReduceMean", [f"h{SLOW_STEPS}"], ["busy"], keepdims=1),  # [1, 1]
        # busy - busy rather than busy * 0: tract folds a product by a constant 0 away.
        helper.make_node("Sub", ["busy", "busy"], ["nothing"]),
        helper.make_node("Add", ["logits_v1", "nothing"], ["logits"]),
    ]
    return graph(
        "vibration_slow",
        nodes,
        init,
        f"vibration.onnx's logits, after {SLOW_STEPS} products of {n}x{n} matrices whose "
        "result is subtracted from itself.",
    )


def test_readings(rows: int = 60) -> np.ndarray:
    """The frames tests/support/mod.rs `write_readings` produces, as features rows."""
    rows_ = []
    for i in range(rows):
        rows_.append([40.0 + (i % 30), 50.0 + i % 10, 0.5 + (i % 7) * 0.4])
    return np.array(rows_, dtype=np.float32)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(out: Path) -> int:
    import onnxruntime as ort

    def session(name: str):
        return ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])

    v1 = ort.InferenceSession(str(REPO_ROOT / "models" / "vibration.onnx"), providers=["CPUExecutionProvider"])
    v2, fails, slow = session("vibration-v2.onnx"), session("vibration-fails.onnx"), session("vibration-slow.onnx")
    run = lambda s, x: s.run(["logits"], {"features": x[None, :]})[0]  # noqa: E731
    failures = 0

    def expect(ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")

    golden = GOLDEN_LOW[0]
    reference = run(v1, golden)
    for name, s in [("v2", v2), ("fails", fails), ("slow", slow)]:
        expect(np.array_equal(run(s, golden), reference), f"{name} gives v1's logits on golden-low {golden.tolist()}")

    readings = test_readings()
    agree = disagree = failed = passed = 0
    disagree_as_predicted = True
    for x in readings:
        a, b = np.argmax(run(v1, x)), np.argmax(run(v2, x))
        agree += a == b
        disagree += a != b
        predicted = V2_TEMP_LIMIT_C < x[0] <= V1_TEMP_LIMIT_C and x[2] <= VIB_LIMIT_G
        disagree_as_predicted &= (a != b) == predicted
        expect_fail = x[0] > FAIL_ABOVE_C
        try:
            got = run(fails, x)
            passed += 1
            if expect_fail or not np.array_equal(got, run(v1, x)):
                expect(False, f"fails on {x.tolist()}: ran, {got.tolist()}")
        except Exception:  # onnxruntime raises its own exception types
            failed += 1
            if not expect_fail:
                expect(False, f"fails on {x.tolist()}: error below the limit")
    expect(
        disagree > 0 and agree > 0 and disagree_as_predicted,
        f"v1 and v2 agree on {agree} of {len(readings)} test readings, disagree on {disagree} "
        f"(exactly those with {V2_TEMP_LIMIT_C:g} < temperature <= {V1_TEMP_LIMIT_C:g} and vibration <= {VIB_LIMIT_G:g})",
    )
    expect(
        failed > passed > 0,
        f"fails errors on {failed} of {len(readings)} test readings (temperature > {FAIL_ABOVE_C:g}), "
        f"runs on {passed}",
    )
    slow_same = all(np.array_equal(run(slow, x), run(v1, x)) for x in readings)
    expect(slow_same, f"slow gives v1's logits on all {len(readings)} test readings")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "models" / "test")
    args = parser.parse_args()
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    models = {
        "vibration-v2.onnx": build_v2(),
        "vibration-fails.onnx": build_fails(),
        "vibration-slow.onnx": build_slow(),
    }
    for name, model in models.items():
        onnx.checker.check_model(model, full_check=True)
        path = out / name
        path.write_bytes(model.SerializeToString())
        onnx.checker.check_model(str(path), full_check=True)
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    path = out / "not-a-model.onnx"
    path.write_text(NOT_A_MODEL * 24)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    path = out / "golden-low.npy"
    np.save(path, GOLDEN_LOW)
    print(f"wrote {path} ({path.stat().st_size} bytes)")

    print("checks (onnxruntime):")
    failures = check(out)
    for name in [*models, "not-a-model.onnx", "golden-low.npy"]:
        print(f"  sha256 {sha256(out / name)}  {name}")
    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
