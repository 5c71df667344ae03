#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generate the small demo ONNX models shipped in models/.

The models are hand-built computations (no training, no random weights), so
their behaviour is easy to reason about and the output is byte-for-byte
reproducible:

  models/colour.onnx     image [N,3,H,W]  -> logits [N,8]  nearest-prototype colour
  models/tone.onnx       audio [1,1024]   -> logits [1,4]  band-energy tone detector
  models/vibration.onnx  features [1,3]   -> logits [1,2]  threshold MLP
  models/echo.onnx       x [1,n]          -> y [1,n]       identity: shows exactly what a
                                                           sensor handed to the model
  models/busy.onnx       x [1,3]          -> y [1,1]       deliberately slow (a chain of
                                                           256x256 matrix products), for
                                                           back-pressure tests

Each model is written together with a `.labels` file (one label per line, in
logit order). After writing, every model is validated with onnx.checker and
run through onnxruntime on a few known cases; the script exits non-zero if any
case is misclassified.

Usage: python3 scripts/gen-demo-models.py [--out-dir models]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
# IR version 8 is accepted by onnxruntime and by tract-onnx 0.23.
IR_VERSION = 8
PRODUCER = "edgeinfer gen-demo-models"

REPO_ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------
# colour.onnx
# --------------------------------------------------------------------------

COLOUR_LABELS = ["red", "green", "blue", "yellow", "cyan", "magenta", "white", "black"]
COLOUR_PROTOTYPES = np.array(
    [
        [1.0, 0.0, 0.0],  # red
        [0.0, 1.0, 0.0],  # green
        [0.0, 0.0, 1.0],  # blue
        [1.0, 1.0, 0.0],  # yellow
        [0.0, 1.0, 1.0],  # cyan
        [1.0, 0.0, 1.0],  # magenta
        [1.0, 1.0, 1.0],  # white
        [0.0, 0.0, 0.0],  # black
    ],
    dtype=np.float32,
)
COLOUR_TEMPERATURE = 10.0


def build_colour() -> onnx.ModelProto:
    """Mean colour -> nearest prototype.

    -T * |x - c_k|^2 = T * (2 x.c_k - |c_k|^2) - T |x|^2, and the last term is
    the same for every class, so the logits are an affine map of the mean
    colour x: logits = x @ (2T C^T) - T |C|^2.
    """
    c = COLOUR_PROTOTYPES
    t = COLOUR_TEMPERATURE
    weight = (2.0 * t * c.T).astype(np.float32)  # [3, 8]
    bias = (-t * np.sum(c * c, axis=1)).astype(np.float32)  # [8]

    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["mean_colour_4d"], name="mean_colour"),
        helper.make_node("Flatten", ["mean_colour_4d"], ["mean_colour"], name="flatten", axis=1),
        helper.make_node(
            "Gemm",
            ["mean_colour", "prototype_weight", "prototype_bias"],
            ["logits"],
            name="nearest_prototype",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "colour",
        inputs=[helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(COLOUR_LABELS)])],
        initializer=[
            numpy_helper.from_array(weight, "prototype_weight"),
            numpy_helper.from_array(bias, "prototype_bias"),
        ],
    )
    graph.doc_string = (
        "Nearest-prototype colour classifier. Input: RGB image, NCHW, values in [0,1]. "
        "Output: logits (apply softmax) for labels in colour.labels."
    )
    return _model(graph, "Demo colour classifier (mean colour, nearest prototype).")


# --------------------------------------------------------------------------
# tone.onnx
# --------------------------------------------------------------------------

TONE_LABELS = ["silence", "low", "mid", "high"]
TONE_SAMPLE_RATE = 16_000
TONE_WINDOW = 1024
# Band edges in Hz; each band is covered by four evenly spaced analysis
# frequencies (12 in total).
TONE_BANDS = [(150.0, 500.0), (700.0, 1500.0), (2000.0, 4000.0)]
TONE_FILTERS_PER_BAND = 4
# Band energies are scaled so that a sine of amplitude A centred on an
# analysis frequency has energy ~A^2. The "silence" logit is the log-energy of
# a -40 dBFS sine (amplitude 0.01): anything quieter classifies as silence.
TONE_SILENCE_AMPLITUDE = 0.01
TONE_EPS = 1e-10


def tone_filter_bank() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Return (cos_basis [1024,F], sin_basis [1024,F], band_matrix [F,3], freqs).

    Each analysis frequency f uses a Hann-windowed complex exponential whose
    window length is chosen so that neighbouring analysis frequencies overlap
    at about -6 dB (main-lobe half-width == spacing). That way any tone inside
    a band lands in some filter's main lobe, not just tones exactly on an
    analysis frequency. The windows are centred in the 1024-sample frame.
    """
    n = np.arange(TONE_WINDOW, dtype=np.float64)
    cos_cols, sin_cols, freqs, band_of = [], [], [], []
    for band_index, (lo, hi) in enumerate(TONE_BANDS):
        spacing = (hi - lo) / TONE_FILTERS_PER_BAND
        length = min(TONE_WINDOW, int(round(2.0 * TONE_SAMPLE_RATE / spacing)))
        start = (TONE_WINDOW - length) // 2
        window = np.zeros(TONE_WINDOW)
        window[start : start + length] = np.hanning(length + 2)[1:-1]
        gain = 2.0 / window.sum()
        for k in range(TONE_FILTERS_PER_BAND):
            f = lo + spacing * (k + 0.5)
            phase = 2.0 * math.pi * f / TONE_SAMPLE_RATE * n
            cos_cols.append(gain * window * np.cos(phase))
            sin_cols.append(-gain * window * np.sin(phase))
            freqs.append(f)
            band_of.append(band_index)
    cos_basis = np.stack(cos_cols, axis=1).astype(np.float32)
    sin_basis = np.stack(sin_cols, axis=1).astype(np.float32)
    band_matrix = np.zeros((len(freqs), len(TONE_BANDS)), dtype=np.float32)
    for i, b in enumerate(band_of):
        band_matrix[i, b] = 1.0
    return cos_basis, sin_basis, band_matrix, freqs


def build_tone() -> onnx.ModelProto:
    cos_basis, sin_basis, band_matrix, freqs = tone_filter_bank()
    silence_logit = np.array([[math.log(TONE_SILENCE_AMPLITUDE**2)]], dtype=np.float32)

    nodes = [
        helper.make_node("MatMul", ["audio", "dft_cos"], ["re"], name="dft_re"),
        helper.make_node("MatMul", ["audio", "dft_sin"], ["im"], name="dft_im"),
        helper.make_node("Mul", ["re", "re"], ["re2"], name="re_squared"),
        helper.make_node("Mul", ["im", "im"], ["im2"], name="im_squared"),
        helper.make_node("Add", ["re2", "im2"], ["power"], name="power"),
        helper.make_node("MatMul", ["power", "band_membership"], ["band_energy"], name="band_energy"),
        helper.make_node("Add", ["band_energy", "eps"], ["band_energy_eps"], name="add_eps"),
        helper.make_node("Log", ["band_energy_eps"], ["band_log_energy"], name="log_energy"),
        helper.make_node("Concat", ["silence_logit", "band_log_energy"], ["logits"], name="logits", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tone",
        inputs=[helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, TONE_WINDOW])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, len(TONE_LABELS)])],
        initializer=[
            numpy_helper.from_array(cos_basis, "dft_cos"),
            numpy_helper.from_array(sin_basis, "dft_sin"),
            numpy_helper.from_array(band_matrix, "band_membership"),
            numpy_helper.from_array(np.array([TONE_EPS], dtype=np.float32), "eps"),
            numpy_helper.from_array(silence_logit, "silence_logit"),
        ],
    )
    graph.doc_string = (
        f"Band-energy tone detector. Input: {TONE_WINDOW} mono samples at {TONE_SAMPLE_RATE} Hz in [-1,1]. "
        "Bands: low 150-500 Hz, mid 700-1500 Hz, high 2-4 kHz; analysis frequencies (Hz): "
        + ", ".join(f"{f:g}" for f in freqs)
        + f". Logits are log band energies; 'silence' is the constant log({TONE_SILENCE_AMPLITUDE}^2)."
    )
    return _model(graph, "Demo tone detector (windowed DFT band energies).")


# --------------------------------------------------------------------------
# vibration.onnx
# --------------------------------------------------------------------------

VIBRATION_LABELS = ["normal", "alert"]
TEMP_LIMIT_C = 60.0
VIB_LIMIT_G = 2.0


def build_vibration() -> onnx.ModelProto:
    """hidden = relu([(temp - 60)/10, vib - 2.0]); alert = 10*(h0 + h1); normal = 0.01."""
    w1 = np.array(
        [
            [0.1, 0.0],  # temperature
            [0.0, 0.0],  # humidity (unused)
            [0.0, 1.0],  # vibration
        ],
        dtype=np.float32,
    )
    b1 = np.array([-TEMP_LIMIT_C / 10.0, -VIB_LIMIT_G], dtype=np.float32)
    w2 = np.array([[0.0, 10.0], [0.0, 10.0]], dtype=np.float32)
    b2 = np.array([0.01, 0.0], dtype=np.float32)

    nodes = [
        helper.make_node("Gemm", ["features", "w1", "b1"], ["hidden_pre"], name="dense1"),
        helper.make_node("Relu", ["hidden_pre"], ["hidden"], name="relu1"),
        helper.make_node("Gemm", ["hidden", "w2", "b2"], ["logits"], name="dense2"),
    ]
    graph = helper.make_graph(
        nodes,
        "vibration",
        inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, len(VIBRATION_LABELS)])],
        initializer=[
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(b2, "b2"),
        ],
    )
    graph.doc_string = (
        "Threshold MLP. Input: (temperature degC, humidity %, vibration g-rms). "
        f"'alert' wins when temperature > {TEMP_LIMIT_C:g} or vibration > {VIB_LIMIT_G:g}."
    )
    return _model(graph, "Demo machine-health classifier (hand-set MLP).")


def build_echo() -> onnx.ModelProto:
    """y = x, for any length n: tests read back exactly what the pipeline fed the model."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"], name="echo")],
        "echo",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])],
    )
    graph.doc_string = "Identity on a [1, n] float vector; set n with input_shapes."
    return _model(graph, "Echo model for end-to-end tests of sensors and pre-processing.")


BUSY_SIZE = 256
BUSY_STEPS = 32


def build_busy() -> onnx.ModelProto:
    """A few hundred MFLOP of matrix products on a tiny input, so that inference is the bottleneck.

    The weight matrix is computed in the graph from a Range (sin of its index), so the file stays
    a few hundred bytes; runtimes fold it into a constant at load time.
    """
    n = BUSY_SIZE
    c = lambda name, arr: numpy_helper.from_array(np.asarray(arr), name)  # noqa: E731
    init = [
        c("start", np.array(0.0, np.float32)),
        c("limit", np.array(float(n * n), np.float32)),
        c("delta", np.array(1.0, np.float32)),
        c("scale", np.array(1.0 / math.sqrt(n), np.float32)),
        c("square", np.array([n, n], np.int64)),
        c("spread", np.ones((3, n), np.float32)),
        c("column", np.linspace(-1.0, 1.0, n, dtype=np.float32).reshape(n, 1)),
    ]
    nodes = [
        helper.make_node("Range", ["start", "limit", "delta"], ["idx"]),
        helper.make_node("Sin", ["idx"], ["wave"]),
        helper.make_node("Mul", ["wave", "scale"], ["wave_scaled"]),
        helper.make_node("Reshape", ["wave_scaled", "square"], ["w"]),
        helper.make_node("MatMul", ["x", "spread"], ["x_row"]),  # [1, n]
        helper.make_node("Mul", ["column", "x_row"], ["h0"]),  # [n, n]
    ]
    for i in range(BUSY_STEPS):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("ReduceMean", [f"h{BUSY_STEPS}"], ["y"], keepdims=1))
    graph = helper.make_graph(
        nodes,
        "busy",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        initializer=init,
    )
    graph.doc_string = f"{BUSY_STEPS} products of {n}x{n} matrices; output is a mean, of no meaning."
    return _model(graph, "Deliberately slow model for back-pressure tests.")


# --------------------------------------------------------------------------


def _model(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version="1",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    return model


def sine(freq: float, amplitude: float = 0.5, n: int = TONE_WINDOW, phase: float = 0.0) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) / TONE_SAMPLE_RATE
    return (amplitude * np.sin(2 * math.pi * freq * t + phase)).astype(np.float32)[None, :]


def solid_image(rgb, h: int = 8, w: int = 8) -> np.ndarray:
    img = np.empty((1, 3, h, w), dtype=np.float32)
    img[0] = np.asarray(rgb, dtype=np.float32)[:, None, None]
    return img


def check_cases(path: Path, labels: list[str], input_name: str, cases) -> int:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    failures = 0
    for desc, x, expected in cases:
        logits = sess.run(["logits"], {input_name: x})[0]
        for row, exp in zip(logits, expected if isinstance(expected, list) else [expected]):
            got = labels[int(np.argmax(row))]
            ok = got == exp
            failures += not ok
            values = " ".join(f"{v:8.3f}" for v in row)
            print(f"  {'ok  ' if ok else 'FAIL'} {desc:<34} -> {got:<8} (expected {exp:<8}) [{values}]")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "models")
    args = parser.parse_args()
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    models = {
        "colour": (build_colour(), COLOUR_LABELS),
        "tone": (build_tone(), TONE_LABELS),
        "vibration": (build_vibration(), VIBRATION_LABELS),
        "echo": (build_echo(), None),
        "busy": (build_busy(), None),
    }
    for name, (model, labels) in models.items():
        onnx.checker.check_model(model, full_check=True)
        path = out / f"{name}.onnx"
        path.write_bytes(model.SerializeToString())
        if labels is not None:
            (out / f"{name}.labels").write_text("\n".join(labels) + "\n")
        onnx.checker.check_model(str(path), full_check=True)
        print(f"wrote {path} ({path.stat().st_size} bytes)" + (f" + {name}.labels" if labels else ""))

    failures = 0

    print("colour.onnx:")
    rng = np.random.default_rng(0)
    colour_cases = []
    for label, proto in zip(COLOUR_LABELS, COLOUR_PROTOTYPES):
        colour_cases.append((f"solid {label}", solid_image(proto), label))
    for label, proto in zip(COLOUR_LABELS, COLOUR_PROTOTYPES):
        # Muted, noisy version of the colour with a small patch of another colour.
        base = 0.15 + 0.7 * proto
        img = solid_image(base, 72, 96) + rng.normal(0.0, 0.05, (1, 3, 72, 96)).astype(np.float32)
        other = COLOUR_PROTOTYPES[(COLOUR_LABELS.index(label) + 3) % 8]
        img[0, :, :18, :24] = other[:, None, None]
        colour_cases.append((f"noisy {label} + patch", np.clip(img, 0, 1).astype(np.float32), label))
    batch = np.concatenate([solid_image(COLOUR_PROTOTYPES[3], 5, 7), solid_image(COLOUR_PROTOTYPES[4], 5, 7)])
    colour_cases.append(("batch N=2 (yellow, cyan), 5x7", batch, ["yellow", "cyan"]))
    failures += check_cases(out / "colour.onnx", COLOUR_LABELS, "image", colour_cases)

    print("tone.onnx:")
    tone_cases = [
        ("zeros", np.zeros((1, TONE_WINDOW), np.float32), "silence"),
        ("sine 250 Hz, amplitude 0.5", sine(250), "low"),
        ("sine 1 kHz, amplitude 0.5", sine(1000), "mid"),
        ("sine 3 kHz, amplitude 0.5", sine(3000), "high"),
        ("sine 180 Hz, amplitude 0.5", sine(180, phase=1.0), "low"),
        ("sine 450 Hz, amplitude 0.1", sine(450, 0.1), "low"),
        ("sine 1.3 kHz, amplitude 0.1", sine(1300, 0.1), "mid"),
        ("sine 2.2 kHz, amplitude 0.1", sine(2200, 0.1), "high"),
        ("sine 3.8 kHz, amplitude 0.5", sine(3800, phase=2.0), "high"),
        ("sine 1 kHz, amplitude 0.002", sine(1000, 0.002), "silence"),
        ("white noise, rms 0.001", (rng.normal(0, 0.001, (1, TONE_WINDOW))).astype(np.float32), "silence"),
    ]
    failures += check_cases(out / "tone.onnx", TONE_LABELS, "audio", tone_cases)

    print("vibration.onnx:")
    f = lambda t, h, v: np.array([[t, h, v]], dtype=np.float32)  # noqa: E731
    vibration_cases = [
        ("40 C, 45 %, 0.5 g", f(40, 45, 0.5), "normal"),
        ("59.5 C, 45 %, 1.9 g", f(59.5, 45, 1.9), "normal"),
        ("65 C, 45 %, 0.5 g", f(65, 45, 0.5), "alert"),
        ("40 C, 45 %, 2.5 g", f(40, 45, 2.5), "alert"),
        ("70 C, 90 %, 3.0 g", f(70, 90, 3.0), "alert"),
        ("-10 C, 100 %, 0.0 g", f(-10, 100, 0.0), "normal"),
    ]
    failures += check_cases(out / "vibration.onnx", VIBRATION_LABELS, "features", vibration_cases)

    import onnxruntime as ort

    x = rng.normal(0.0, 1.0, (1, 777)).astype(np.float32)
    echoed = ort.InferenceSession(str(out / "echo.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    echo_ok = np.array_equal(echoed, x)
    failures += not echo_ok
    print(f"echo.onnx:\n  {'ok  ' if echo_ok else 'FAIL'} 777 random values come back unchanged")

    if failures:
        print(f"{failures} case(s) misclassified", file=sys.stderr)
        return 1
    print("all cases classified as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
