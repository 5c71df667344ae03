#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generate standard-architecture ONNX models with random weights, for speed benchmarks.

  mobilenetv2.onnx  input  [1,3,224,224] -> logits [1,1000]     MobileNetV2, width 1.0
  resnet18.onnx     input  [1,3,224,224] -> logits [1,1000]     ResNet-18
  yolo_tiny.onnx    images [1,3,320,320] -> output [1,1200,85]  small single-scale YOLO-style detector

The architectures follow torchvision's MobileNetV2 and ResNet-18 layer for
layer; the detector is a small YOLOv5-flavoured network whose head decodes
boxes in-graph exactly like YOLOv5's ONNX export. Nothing is downloaded and
no framework other than numpy + onnx is used.

Weights are random (He-normal, fan-in), so the models are good for timing and
memory measurements and meaningless as predictors. Every BatchNormalization is
folded into the preceding Conv (weight scaled, bias added), as torch.onnx.export
does in eval mode. The BatchNorm running statistics used for folding are the
mean and variance each convolution output is expected to have, propagated
analytically channel by channel from a uniform [0, 1) input (plus a little
noise), so activations stay around unit scale through the whole network.

The output is deterministic: fixed numpy seeds, no timestamps; running the
script again writes byte-identical files.

After writing, each model is checked with onnx.checker (full check), run once
with onnxruntime (CPUExecutionProvider) on a uniform [0, 1) input, whose outputs
must be finite and in a sane range, and timed: the median of 10 runs with one
intra-op thread. The script exits non-zero if anything fails.

Usage: python3 scripts/gen-bench-models.py [OUT_DIR]     (default: models/bench)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
# IR version 8 is accepted by onnxruntime and by tract-onnx 0.23.
IR_VERSION = 8
PRODUCER = "edgeinfer gen-bench-models"
SEED = 20250101
TIMED_RUNS = 10

REPO_ROOT = Path(__file__).resolve().parent.parent

# Expected per-channel mean and variance are propagated through the network
# (see Builder.conv_bn). Nonlinearities and max pools are handled by quadrature
# over the pre-activation, which is taken to be Gaussian.
_Z = np.linspace(-12.0, 12.0, 4801)
_PHI = np.exp(-0.5 * _Z * _Z)
_CDF = 0.5 * (1.0 + np.vectorize(math.erf)(_Z / math.sqrt(2.0)))


def _moments(f, mean: np.ndarray, var: np.ndarray, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of f(max of n independent draws of N(mean, var)), per channel.

    f must be non-decreasing, so that max(f(x_i)) = f(max(x_i)).
    """
    density = _PHI * _CDF ** (n - 1)
    w = density / density.sum()
    y = f(mean[:, None] + np.sqrt(var)[:, None] * _Z[None, :])
    m1 = y @ w
    m2 = (y * y) @ w
    return m1, np.maximum(m2 - m1 * m1, 1e-12)


def _relu(x):
    return np.maximum(x, 0.0)


def _relu6(x):
    return np.clip(x, 0.0, 6.0)


def _silu(x):
    return x / (1.0 + np.exp(-x))


@dataclass
class Act:
    """A tensor in the graph, with the expected per-channel mean and variance of its values."""

    name: str
    mean: np.ndarray  # [C]
    var: np.ndarray  # [C]
    # For activation outputs: (pre-activation mean, variance, activation function),
    # and the side of the square window the values are a maximum over (1: no pooling).
    pre: tuple | None = None
    window: int = 1

    @property
    def channels(self) -> int:
        return len(self.mean)


class Builder:
    """Collects nodes and initializers; counts trainable parameters separately from constants."""

    def __init__(self, seed: int, bn_eps: float):
        self.rng = np.random.default_rng(seed)
        self.bn_eps = bn_eps
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names: set[str] = set()
        self.params = 0  # elements of trainable weights as stored (BatchNorm folded)
        self.folded_bn_channels = 0  # each folded BN had gamma+beta per channel; the conv bias keeps one

    def _claim(self, name: str) -> str:
        if name in self.names:
            raise ValueError(f"duplicate tensor name {name}")
        self.names.add(name)
        return name

    def param(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), self._claim(name)))
        self.params += value.size
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        if name in self.names:  # shared constants (clip bounds, shapes) are created once
            return name
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), self._claim(name)))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        return self.node_n(op, inputs, [output], **attrs)[0]

    def node_n(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> list[str]:
        """A node with several outputs; the node is named after its first output."""
        self.nodes.append(helper.make_node(op, inputs, [self._claim(o) for o in outputs], name=outputs[0], **attrs))
        return outputs

    # ---- layers ------------------------------------------------------------

    def conv_bn(self, x: Act, out_ch: int, k: int, stride: int, name: str, groups: int = 1, act: str | None = None) -> Act:
        """Conv (no bias) + BatchNorm folded into the Conv + optional activation."""
        in_ch = x.channels
        if groups not in (1, in_ch) or (groups == in_ch and out_ch != in_ch):
            raise ValueError("only plain and depthwise convolutions are supported")
        fan_in = in_ch // groups * k * k
        w = self.rng.standard_normal((out_ch, in_ch // groups, k, k)) * math.sqrt(2.0 / fan_in)

        # Expected per-channel statistics of the raw convolution output, assuming
        # independent inputs (zero padding at the borders is ignored).
        w_sum = w.sum(axis=(2, 3))
        w_sq = (w * w).sum(axis=(2, 3))
        if groups == 1:
            z_mean, z_var = w_sum @ x.mean, w_sq @ x.var
        else:
            z_mean, z_var = w_sum[:, 0] * x.mean, w_sq[:, 0] * x.var

        # BatchNorm as it could look after training: running stats close to the
        # real ones, gamma around 1, beta around 0.
        gamma = self.rng.uniform(0.8, 1.2, out_ch)
        beta = self.rng.normal(0.0, 0.1, out_ch)
        running_mean = z_mean + self.rng.normal(0.0, 0.1, out_ch) * np.sqrt(z_var)
        running_var = z_var * self.rng.uniform(0.8, 1.25, out_ch)
        scale = gamma / np.sqrt(running_var + self.bn_eps)
        weight = w * scale[:, None, None, None]
        bias = beta - running_mean * scale
        self.folded_bn_channels += out_ch

        pad = k // 2
        y = self.node(
            "Conv",
            [x.name, self.param(f"{name}.weight", weight), self.param(f"{name}.bias", bias)],
            f"{name}.out",
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
            dilations=[1, 1],
            group=groups,
        )
        out = Act(y, beta + (z_mean - running_mean) * scale, z_var * scale * scale)
        return self.activation(out, act, name) if act else out

    def activation(self, x: Act, act: str, name: str) -> Act:
        if act == "relu":
            y = self.node("Relu", [x.name], f"{name}.relu")
            f = _relu
        elif act == "relu6":
            lo = self.const("relu6.min", np.array(0.0, np.float32))
            hi = self.const("relu6.max", np.array(6.0, np.float32))
            y = self.node("Clip", [x.name, lo, hi], f"{name}.relu6")
            f = _relu6
        elif act == "silu":
            s = self.node("Sigmoid", [x.name], f"{name}.sigmoid")
            y = self.node("Mul", [x.name, s], f"{name}.silu")
            f = _silu
        else:
            raise ValueError(act)
        mean, var = _moments(f, x.mean, x.var)
        return Act(y, mean, var, pre=(x.mean, x.var, f))

    def max_pool(self, x: Act, k: int, stride: int, name: str) -> Act:
        """MaxPool with 'same' padding, applied to an activation output or to a stride-1 pool of one."""
        if x.pre is None:
            raise ValueError("max_pool expects an activation output")
        p = k // 2
        y = self.node("MaxPool", [x.name], name, kernel_shape=[k, k], strides=[stride, stride], pads=[p, p, p, p])
        window = x.window + k - 1  # chained stride-1 pools: 5x5 then 5x5 is a 9x9 window
        mean, var = _moments(x.pre[2], x.pre[0], x.pre[1], n=window * window)
        return Act(y, mean, var, pre=x.pre, window=window)

    def concat(self, xs: list[Act], name: str) -> Act:
        y = self.node("Concat", [x.name for x in xs], name, axis=1)
        return Act(y, np.concatenate([x.mean for x in xs]), np.concatenate([x.var for x in xs]))

    def add(self, a: Act, b: Act, name: str) -> Act:
        return Act(self.node("Add", [a.name, b.name], name), a.mean + b.mean, a.var + b.var)

    def classifier(self, x: Act, classes: int, output: str) -> None:
        """GlobalAveragePool -> Flatten -> Gemm (Linear, weight [classes, C] with transB=1)."""
        p = self.node("GlobalAveragePool", [x.name], "avgpool.out")
        f = self.node("Flatten", [p], "flatten.out", axis=1)
        w = self.rng.standard_normal((classes, x.channels)) * math.sqrt(2.0 / x.channels)
        self.node(
            "Gemm",
            [f, self.param("fc.weight", w), self.param("fc.bias", np.zeros(classes))],
            output,
            alpha=1.0,
            beta=1.0,
            transB=1,
        )

    def model(self, inputs, outputs, graph_name: str, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, initializer=self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name=PRODUCER,
            producer_version="1",
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        return model


def _uniform_input(name: str, channels: int) -> Act:
    # Uniform [0, 1): mean 1/2, variance 1/12.
    return Act(name, np.full(channels, 0.5), np.full(channels, 1.0 / 12.0))


def _float_info(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


# --------------------------------------------------------------------------
# MobileNetV2 (torchvision.models.mobilenet_v2, width_mult=1.0)
# --------------------------------------------------------------------------

MOBILENETV2_SETTINGS = [  # expansion t, output channels c, repeats n, first stride s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
TORCHVISION_MOBILENETV2_PARAMS = 3_504_872


def build_mobilenetv2(seed: int) -> tuple[onnx.ModelProto, Builder]:
    b = Builder(seed, bn_eps=1e-5)
    x = b.conv_bn(_uniform_input("input", 3), 32, 3, 2, "features.0", act="relu6")
    index = 1
    for t, c, n, s in MOBILENETV2_SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            inp = x
            hidden = inp.channels * t
            name = f"features.{index}.conv"
            y = inp
            j = 0
            if t != 1:
                y = b.conv_bn(y, hidden, 1, 1, f"{name}.{j}", act="relu6")
                j += 1
            y = b.conv_bn(y, hidden, 3, stride, f"{name}.{j}", groups=hidden, act="relu6")
            y = b.conv_bn(y, c, 1, 1, f"{name}.{j + 1}")  # linear bottleneck
            x = b.add(inp, y, f"features.{index}.add") if stride == 1 and inp.channels == c else y
            index += 1
    x = b.conv_bn(x, 1280, 1, 1, f"features.{index}", act="relu6")
    b.classifier(x, 1000, "logits")
    model = b.model(
        [_float_info("input", [1, 3, 224, 224])],
        [_float_info("logits", [1, 1000])],
        "mobilenetv2",
        "MobileNetV2 (width 1.0, 224x224, 1000 classes) with random weights, BatchNorm folded. "
        "For speed benchmarks only: its predictions are meaningless.",
    )
    return model, b


# --------------------------------------------------------------------------
# ResNet-18 (torchvision.models.resnet18)
# --------------------------------------------------------------------------

TORCHVISION_RESNET18_PARAMS = 11_689_512


def build_resnet18(seed: int) -> tuple[onnx.ModelProto, Builder]:
    b = Builder(seed, bn_eps=1e-5)
    x = b.conv_bn(_uniform_input("input", 3), 64, 7, 2, "conv1", act="relu")
    x = b.max_pool(x, 3, 2, "maxpool.out")
    for stage, channels in enumerate([64, 128, 256, 512], start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            name = f"layer{stage}.{block}"
            y = b.conv_bn(x, channels, 3, stride, f"{name}.conv1", act="relu")
            y = b.conv_bn(y, channels, 3, 1, f"{name}.conv2")
            shortcut = x
            if stride != 1 or x.channels != channels:
                shortcut = b.conv_bn(x, channels, 1, stride, f"{name}.downsample")
            x = b.activation(b.add(y, shortcut, f"{name}.add"), "relu", name)
    b.classifier(x, 1000, "logits")
    model = b.model(
        [_float_info("input", [1, 3, 224, 224])],
        [_float_info("logits", [1, 1000])],
        "resnet18",
        "ResNet-18 (224x224, 1000 classes) with random weights, BatchNorm folded. "
        "For speed benchmarks only: its predictions are meaningless.",
    )
    return model, b


# --------------------------------------------------------------------------
# yolo_tiny: small single-scale YOLOv5-style detector
# --------------------------------------------------------------------------

YOLO_INPUT = 320
YOLO_STRIDE = 16
YOLO_GRID = YOLO_INPUT // YOLO_STRIDE  # 20
YOLO_CLASSES = 80
YOLO_ANCHORS = np.array([[30, 61], [62, 45], [59, 119]], dtype=np.float32)  # YOLOv5 P4/16 anchors, pixels
YOLO_ROWS = len(YOLO_ANCHORS) * YOLO_GRID * YOLO_GRID  # 1200
YOLO_OUTPUTS = 5 + YOLO_CLASSES  # cx, cy, w, h, objectness, class scores


def build_yolo_tiny(seed: int) -> tuple[onnx.ModelProto, Builder]:
    b = Builder(seed, bn_eps=1e-3)  # YOLOv5's BatchNorm eps
    act = "silu"

    def bottleneck(x: Act, name: str) -> Act:
        y = b.conv_bn(x, x.channels, 1, 1, f"{name}.cv1", act=act)
        y = b.conv_bn(y, x.channels, 3, 1, f"{name}.cv2", act=act)
        return b.add(x, y, f"{name}.add")

    x = b.conv_bn(_uniform_input("images", 3), 16, 3, 2, "model.0", act=act)  # 160x160
    x = b.conv_bn(x, 32, 3, 2, "model.1", act=act)  # 80x80
    x = bottleneck(x, "model.2")
    x = b.conv_bn(x, 64, 3, 2, "model.3", act=act)  # 40x40
    x = bottleneck(x, "model.4")
    x = b.conv_bn(x, 128, 3, 2, "model.5", act=act)  # 20x20
    x = bottleneck(x, "model.6")
    x = b.conv_bn(x, 256, 3, 1, "model.7", act=act)
    x = bottleneck(x, "model.8")

    # SPPF: 1x1 conv, three chained 5x5 max pools, concat, 1x1 conv.
    pools = [b.conv_bn(x, 128, 1, 1, "model.9.cv1", act=act)]
    for i in range(3):
        pools.append(b.max_pool(pools[-1], 5, 1, f"model.9.m.{i}"))
    x = b.concat(pools, "model.9.cat")
    x = b.conv_bn(x, 256, 1, 1, "model.9.cv2", act=act)

    # Detect head: 1x1 conv to anchors * (5 + classes), biases initialised as YOLOv5 does.
    na, no = len(YOLO_ANCHORS), YOLO_OUTPUTS
    w = b.rng.standard_normal((na * no, x.channels, 1, 1)) * math.sqrt(2.0 / x.channels)
    bias = np.zeros((na, no))
    bias[:, 4] = math.log(8.0 / (YOLO_INPUT / YOLO_STRIDE) ** 2)  # objectness
    bias[:, 5:] = math.log(0.6 / (YOLO_CLASSES - 0.99))  # class scores
    head = b.node(
        "Conv",
        [x.name, b.param("model.10.m.0.weight", w), b.param("model.10.m.0.bias", bias.reshape(-1))],
        "model.10.m.0.out",
        kernel_shape=[1, 1],
        strides=[1, 1],
        pads=[0, 0, 0, 0],
    )

    # YOLOv5 export decoding: [1, na*no, ny, nx] -> [1, na, ny, nx, no], sigmoid,
    # xy = (s*2 - 0.5 + grid) * stride, wh = (s*2)^2 * anchor, rows = na*ny*nx.
    g = YOLO_GRID
    h = b.node("Reshape", [head, b.const("detect.shape5", np.array([1, na, no, g, g], np.int64))], "detect.reshape")
    h = b.node("Transpose", [h], "detect.transpose", perm=[0, 1, 3, 4, 2])
    h = b.node("Sigmoid", [h], "detect.sigmoid")
    xy, wh, conf = b.node_n(
        "Split",
        [h, b.const("detect.split", np.array([2, 2, no - 4], np.int64))],
        ["detect.xy", "detect.wh", "detect.conf"],
        axis=4,
    )
    yv, xv = np.meshgrid(np.arange(g, dtype=np.float32), np.arange(g, dtype=np.float32), indexing="ij")
    grid = (np.stack([xv, yv], axis=-1)[None, None] - 0.5).astype(np.float32)  # [1, 1, ny, nx, 2], (x, y)
    two = b.const("detect.two", np.array(2.0, np.float32))
    xy = b.node("Mul", [xy, two], "detect.xy2")
    xy = b.node("Add", [xy, b.const("detect.grid", grid)], "detect.xy_grid")
    xy = b.node("Mul", [xy, b.const("detect.stride", np.array(float(YOLO_STRIDE), np.float32))], "detect.xy_px")
    wh = b.node("Mul", [wh, two], "detect.wh2")
    wh = b.node("Pow", [wh, two], "detect.wh_sq")
    anchor_grid = YOLO_ANCHORS.reshape(1, na, 1, 1, 2)
    wh = b.node("Mul", [wh, b.const("detect.anchor_grid", anchor_grid)], "detect.wh_px")
    cat = b.node("Concat", [xy, wh, conf], "detect.cat", axis=4)
    b.node("Reshape", [cat, b.const("detect.shape3", np.array([1, na * g * g, no], np.int64))], "output")

    model = b.model(
        [_float_info("images", [1, 3, YOLO_INPUT, YOLO_INPUT])],
        [_float_info("output", [1, YOLO_ROWS, YOLO_OUTPUTS])],
        "yolo_tiny",
        f"Small single-scale YOLOv5-style detector ({YOLO_INPUT}x{YOLO_INPUT}, stride {YOLO_STRIDE}, "
        f"{len(YOLO_ANCHORS)} anchors, {YOLO_CLASSES} classes) with random weights. Output rows: "
        "cx, cy, w, h (input pixels), objectness, class scores (sigmoid applied). "
        "For speed benchmarks only: its predictions are meaningless.",
    )
    return model, b


# --------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------


def check_yolo_rows(out: np.ndarray) -> list[str]:
    """Decoded YOLO rows must respect the ranges the decoding formulas allow."""
    errors = []
    xy, wh, scores = out[..., 0:2], out[..., 2:4], out[..., 4:]
    lo, hi = -0.5 * YOLO_STRIDE, (YOLO_GRID + 0.5) * YOLO_STRIDE
    if xy.min() < lo - 1e-3 or xy.max() > hi + 1e-3:
        errors.append(f"box centres outside [{lo}, {hi}]: {xy.min():.3f}..{xy.max():.3f}")
    if wh.min() < 0 or wh.max() > 4 * YOLO_ANCHORS.max() + 1e-3:
        errors.append(f"box sizes outside [0, {4 * YOLO_ANCHORS.max()}]: {wh.min():.3f}..{wh.max():.3f}")
    if scores.min() < 0 or scores.max() > 1:
        errors.append(f"scores outside [0, 1]: {scores.min()}..{scores.max()}")
    return errors


def verify(path: Path, params: int, expected: dict[str, list[int]], extra_check=None) -> list[str]:
    import onnxruntime as ort

    onnx.checker.check_model(str(path), full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(SEED)
    feeds = {}
    print(f"{path}: {path.stat().st_size} bytes, {params} parameters")
    for i in sess.get_inputs():
        print(f"  input  {i.name} {i.type} {i.shape}")
        feeds[i.name] = rng.random(i.shape, dtype=np.float32)  # uniform [0, 1)
    errors = []
    outputs = sess.run(None, feeds)
    for o, value in zip(sess.get_outputs(), outputs):
        print(
            f"  output {o.name} {o.type} {list(value.shape)}: "
            f"min {value.min():.4g}, max {value.max():.4g}, mean {value.mean():.4g}, std {value.std():.4g}"
        )
        if o.name not in expected:
            errors.append(f"unexpected output {o.name}")
            continue
        if list(value.shape) != expected[o.name]:
            errors.append(f"output {o.name} has shape {list(value.shape)}, expected {expected[o.name]}")
        if value.dtype != np.float32:
            errors.append(f"output {o.name} is {value.dtype}, expected float32")
        if not np.all(np.isfinite(value)):
            errors.append(f"output {o.name} has {np.count_nonzero(~np.isfinite(value))} NaN/Inf values")
        elif np.abs(value).max() > 1e4:
            errors.append(f"output {o.name} out of a sane range (max |value| {np.abs(value).max():.4g})")
        elif extra_check:
            errors.extend(extra_check(value))
    if set(expected) != {o.name for o in sess.get_outputs()}:
        errors.append(f"outputs {[o.name for o in sess.get_outputs()]}, expected {sorted(expected)}")

    times = []
    for _ in range(TIMED_RUNS):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    print(
        f"  onnxruntime {ort.__version__} CPU, 1 intra-op thread: median {statistics.median(times) * 1e3:.2f} ms "
        f"of {TIMED_RUNS} runs (min {min(times) * 1e3:.2f}, max {max(times) * 1e3:.2f})"
    )
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", nargs="?", type=Path, default=REPO_ROOT / "models" / "bench", metavar="OUT_DIR")
    args = parser.parse_args()
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    specs = [
        ("mobilenetv2", build_mobilenetv2, {"logits": [1, 1000]}, TORCHVISION_MOBILENETV2_PARAMS, None),
        ("resnet18", build_resnet18, {"logits": [1, 1000]}, TORCHVISION_RESNET18_PARAMS, None),
        ("yolo_tiny", build_yolo_tiny, {"output": [1, YOLO_ROWS, YOLO_OUTPUTS]}, None, check_yolo_rows),
    ]
    failures = []
    for index, (name, build, expected, reference_params, extra_check) in enumerate(specs):
        path = out / f"{name}.onnx"
        try:
            model, builder = build(SEED + index)
            onnx.checker.check_model(model, full_check=True)
            path.write_bytes(model.SerializeToString())
            errors = verify(path, builder.params, expected, extra_check)
            # Before folding, each BatchNorm had gamma and beta per channel; folding
            # leaves one bias per channel. Un-folded, the count must equal torchvision's.
            unfolded = builder.params + builder.folded_bn_channels
            if reference_params is not None:
                match = "matches" if unfolded == reference_params else "DOES NOT MATCH"
                print(f"  {unfolded} parameters with BatchNorm unfolded: {match} torchvision ({reference_params})")
                if unfolded != reference_params:
                    errors.append(f"{unfolded} parameters unfolded, torchvision has {reference_params}")
        except Exception as e:  # noqa: BLE001 - report and keep going with the other models
            errors = [f"{type(e).__name__}: {e}"]
        for err in errors:
            print(f"  FAIL {name}: {err}", file=sys.stderr)
        failures.extend(errors)

    if failures:
        print(f"{len(failures)} failure(s)", file=sys.stderr)
        return 1
    print(f"all {len(specs)} models written to {out} and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
