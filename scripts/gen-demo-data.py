#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generate the demo sensor data in config/demo-data/.

  images/000.png .. 005.png, 006.jpg .. 011.jpg   96x72 test images
  clip.mjpeg                                       10 concatenated baseline JPEG frames
  tones.wav                                        16 kHz mono s16: silence, 250 Hz, 1 kHz, 3 kHz
  readings.csv                                     40 rows of temperature/humidity/vibration
  EXPECTED.md                                      what the demo models predict for each file

The output is deterministic (fixed seeds, no timestamps). EXPECTED.md is
computed by running the models in models/ with onnxruntime, so run
scripts/gen-demo-models.py first.

Usage: python3 scripts/gen-demo-data.py [--out-dir config/demo-data] [--models-dir models]
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import wave
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent

WIDTH, HEIGHT = 96, 72
SHAPE_W, SHAPE_H = 24, 18
COLOURS = {
    "red": (1, 0, 0),
    "green": (0, 1, 0),
    "blue": (0, 0, 1),
    "yellow": (1, 1, 0),
    "cyan": (0, 1, 1),
    "magenta": (1, 0, 1),
    "white": (1, 1, 1),
    "black": (0, 0, 0),
}
COLOUR_NAMES = list(COLOURS)
JPEG_QUALITY = 90

SAMPLE_RATE = 16_000
TONE_WINDOW = 1024
TONE_SEGMENTS = [("silence", 0.0), ("250 Hz", 250.0), ("1 kHz", 1000.0), ("3 kHz", 3000.0)]
TONE_AMPLITUDE = 0.5


def level(bit: int) -> int:
    # Slightly off the extremes so the noise is visible on both sides.
    return 225 if bit else 30


def make_image(rng: np.random.Generator, colour: str, shape_colour: str, corner: int, shape: str,
               offset: tuple[int, int] | None = None) -> Image.Image:
    """Solid colour with mild noise and a smaller shape of another colour.

    corner: 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left.
    shape: "rect" or "disc". offset overrides the corner position (x, y).
    """
    base = np.array([level(b) for b in COLOURS[colour]], dtype=np.float64)
    other = np.array([level(b) for b in COLOURS[shape_colour]], dtype=np.float64)
    img = np.broadcast_to(base, (HEIGHT, WIDTH, 3)).copy()

    margin = 4
    if offset is not None:
        x0, y0 = offset
    else:
        x0 = margin if corner in (0, 3) else WIDTH - SHAPE_W - margin
        y0 = margin if corner in (0, 1) else HEIGHT - SHAPE_H - margin
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    if shape == "disc":
        cx, cy = x0 + SHAPE_W / 2 - 0.5, y0 + SHAPE_H / 2 - 0.5
        r = min(SHAPE_W, SHAPE_H) / 2
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    else:
        mask = (xx >= x0) & (xx < x0 + SHAPE_W) & (yy >= y0) & (yy < y0 + SHAPE_H)
    img[mask] = other

    img += rng.normal(0.0, 6.0, img.shape)
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    data = buf.getvalue()
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", "unexpected JPEG framing"
    return data


def write_images(out: Path, rng: np.random.Generator) -> list[tuple[str, str]]:
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for stale in list(images_dir.glob("*.png")) + list(images_dir.glob("*.jpg")):
        stale.unlink()
    written = []
    for i in range(12):
        colour = COLOUR_NAMES[i % 8]
        shape_colour = COLOUR_NAMES[(i + 3) % 8]
        img = make_image(rng, colour, shape_colour, corner=i % 4, shape="disc" if i % 2 else "rect")
        if i < 6:
            name = f"{i:03d}.png"
            img.save(images_dir / name, format="PNG", optimize=True)
        else:
            name = f"{i:03d}.jpg"
            (images_dir / name).write_bytes(jpeg_bytes(img))
        written.append((f"images/{name}", colour))
    return written


def write_clip(out: Path, rng: np.random.Generator) -> list[str]:
    frames, colours = [], []
    for k in range(10):
        colour = COLOUR_NAMES[k % 8]
        shape_colour = COLOUR_NAMES[(k + 5) % 8]
        # The shape slides along the top edge from left to right.
        x = 4 + k * (WIDTH - SHAPE_W - 8) // 9
        img = make_image(rng, colour, shape_colour, corner=0, shape="rect", offset=(x, 4))
        frames.append(jpeg_bytes(img))
        colours.append(colour)
    (out / "clip.mjpeg").write_bytes(b"".join(frames))
    return colours


def tone_samples() -> np.ndarray:
    t = np.arange(SAMPLE_RATE, dtype=np.float64) / SAMPLE_RATE
    parts = []
    for _, freq in TONE_SEGMENTS:
        parts.append(np.zeros_like(t) if freq == 0 else TONE_AMPLITUDE * np.sin(2 * math.pi * freq * t))
    return np.concatenate(parts)


def write_wav(out: Path) -> np.ndarray:
    pcm = np.clip(np.rint(tone_samples() * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(out / "tones.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return pcm


def readings(rng: np.random.Generator) -> list[tuple[int, float, float, float]]:
    rows = []
    temp_excursion = {13: 49.0, 14: 61.5, 15: 64.2, 16: 66.0, 17: 62.8, 18: 52.0}
    vib_spikes = {27: 1.4, 28: 2.4, 29: 3.1, 30: 2.2}
    for s in range(40):
        temp = temp_excursion.get(s, 40.0 + rng.normal(0.0, 0.8))
        hum = 45.0 + rng.normal(0.0, 1.5)
        vib = vib_spikes.get(s, 0.5 + rng.normal(0.0, 0.08))
        rows.append((s, round(temp, 2), round(hum, 1), round(max(vib, 0.0), 3)))
    return rows


def write_csv(out: Path, rows) -> None:
    with open(out / "readings.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["seconds", "temperature", "humidity", "vibration"])
        for s, t, h, v in rows:
            writer.writerow([s, f"{t:.2f}", f"{h:.1f}", f"{v:.3f}"])


# --------------------------------------------------------------------------
# Expected predictions
# --------------------------------------------------------------------------


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def load_model(models: Path, name: str):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(models / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    labels = (models / f"{name}.labels").read_text().split()
    return sess, labels


def classify_image(sess, labels, img: Image.Image) -> tuple[str, float]:
    x = np.asarray(img.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    p = softmax(sess.run(["logits"], {"image": x})[0])[0]
    k = int(np.argmax(p))
    return labels[k], float(p[k])


def split_jpeg_stream(data: bytes) -> list[bytes]:
    frames, start = [], 0
    while True:
        soi = data.find(b"\xff\xd8", start)
        if soi < 0:
            return frames
        eoi = data.find(b"\xff\xd9", soi + 2)
        frames.append(data[soi : eoi + 2])
        start = eoi + 2


def runs(labels: list[str]) -> list[tuple[int, int, str]]:
    out = []
    for i, lab in enumerate(labels):
        if out and out[-1][2] == lab:
            out[-1] = (out[-1][0], i, lab)
        else:
            out.append((i, i, lab))
    return out


def write_expected(out: Path, models: Path, images, clip_colours, pcm, rows) -> list[str]:
    problems = []
    md = ["# Expected predictions for the demo data", ""]
    md.append("Generated by `scripts/gen-demo-data.py` with onnxruntime and the models in `models/`.")
    md.append("Images are fed at native size as RGB NCHW floats in [0,1]; probabilities are softmax of the logits.")
    md.append("")

    sess, labels = load_model(models, "colour")
    md += ["## images/ (colour.onnx)", "", "| file | top-1 | p |", "| --- | --- | --- |"]
    for rel, colour in images:
        got, p = classify_image(sess, labels, Image.open(out / rel))
        md.append(f"| {rel} | {got} | {p:.3f} |")
        if got != colour:
            problems.append(f"{rel}: expected {colour}, got {got}")
    md.append("")

    frames = split_jpeg_stream((out / "clip.mjpeg").read_bytes())
    md += ["## clip.mjpeg (colour.onnx)", "", f"{len(frames)} JPEG frames, {WIDTH}x{HEIGHT}.", ""]
    md += ["| frame | top-1 | p |", "| --- | --- | --- |"]
    if len(frames) != len(clip_colours):
        problems.append(f"clip.mjpeg: {len(frames)} frames, expected {len(clip_colours)}")
    for k, (frame, colour) in enumerate(zip(frames, clip_colours)):
        got, p = classify_image(sess, labels, Image.open(io.BytesIO(frame)))
        md.append(f"| {k} | {got} | {p:.3f} |")
        if got != colour:
            problems.append(f"clip.mjpeg frame {k}: expected {colour}, got {got}")
    md.append("")

    sess, labels = load_model(models, "tone")
    audio = pcm.astype(np.float32) / 32768.0
    n_windows = len(audio) // TONE_WINDOW
    window_labels = []
    for w in range(n_windows):
        x = audio[w * TONE_WINDOW : (w + 1) * TONE_WINDOW][None, :]
        window_labels.append(labels[int(np.argmax(sess.run(["logits"], {"audio": x})[0][0]))])
    md += ["## tones.wav (tone.onnx)", ""]
    md.append(
        f"{len(audio) / SAMPLE_RATE:g} s at {SAMPLE_RATE} Hz; {n_windows} non-overlapping windows of "
        f"{TONE_WINDOW} samples starting at sample 0 (samples scaled by 1/32768):"
    )
    md.append("")
    for a, b, lab in runs(window_labels):
        t0, t1 = a * TONE_WINDOW / SAMPLE_RATE, (b + 1) * TONE_WINDOW / SAMPLE_RATE
        md.append(f"- windows {a}-{b} ({t0:.3f}-{t1:.3f} s): {lab}")
    md.append("")
    expected_by_second = ["silence", "low", "mid", "high"]
    for w, lab in enumerate(window_labels):
        s0, s1 = (w * TONE_WINDOW) // SAMPLE_RATE, ((w + 1) * TONE_WINDOW - 1) // SAMPLE_RATE
        if s0 == s1 and lab != expected_by_second[s0]:
            problems.append(f"tones.wav window {w}: expected {expected_by_second[s0]}, got {lab}")

    sess, labels = load_model(models, "vibration")
    md += ["## readings.csv (vibration.onnx)", ""]
    alerts = []
    for s, t, h, v in rows:
        x = np.array([[t, h, v]], dtype=np.float32)
        got = labels[int(np.argmax(sess.run(["logits"], {"features": x})[0][0]))]
        want = "alert" if (t > 60.0 or v > 2.0) else "normal"
        if got != want:
            problems.append(f"readings.csv seconds={s}: expected {want}, got {got}")
        if got == "alert":
            alerts.append(f"{s} ({t:.2f} C, {v:.3f} g)")
    md.append(f"40 rows; `alert` at seconds {', '.join(alerts)}; every other row `normal`.")
    md.append("")

    (out / "EXPECTED.md").write_text("\n".join(md))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "config" / "demo-data")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    args = parser.parse_args()
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    images = write_images(out, np.random.default_rng(1))
    clip_colours = write_clip(out, np.random.default_rng(2))
    pcm = write_wav(out)
    rows = readings(np.random.default_rng(3))
    write_csv(out, rows)
    problems = write_expected(out, args.models_dir, images, clip_colours, pcm, rows)

    total = 0
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        size = path.stat().st_size
        total += size
        print(f"{size:8d}  {path.relative_to(out)}")
    print(f"{total:8d}  total")
    print((out / "EXPECTED.md").read_text())
    if problems:
        for p in problems:
            print(f"MISMATCH: {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
