#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Resident memory and start-up time of the edgeinfer daemon, on configs this script writes.

  measure-footprint.py idle    BIN MODEL   RSS 10 s after start: MobileNetV2-style model loaded,
                                           its camera absent (the capture loop waiting for it)
  measure-footprint.py working BIN MODEL   RSS after 30 s of 640x480 JPEG frames at 15 fps
                                           through resize 256, crop 224, MODEL, classify
  measure-footprint.py bare    BIN MODEL [--threads N]
                                           the reference: peak RSS of `bench --child` (the model
                                           alone on tract, no daemon around it; the backend's
                                           default threads, as in the daemon, unless given)
  measure-footprint.py startup BIN MODEL [--cold] [--repeat N]
                                           time from exec to the first durable prediction (the
                                           outbox's "records durable" log line), with the time
                                           of each phase's first log line; --cold drops the page
                                           cache first (needs root)
  measure-footprint.py soak    BIN DEMO_DIR --seconds S
                                           the demo config (DEMO_DIR/config/demo.toml) with every
                                           `rate` removed (full speed), RSS sampled each minute;
                                           at the end the outbox's own share: peak RSS of
                                           `edgeinfer outbox stats` on the same outbox against
                                           `edgeinfer --version`

MODEL: models/bench/mobilenetv2.onnx (python3 scripts/gen-bench-models.py). Frames are made
with ffmpeg. Every run uses a fresh data directory under a temporary folder; no broker is needed
(predictions stay in the outbox). Prints one JSON object per measurement.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from bench_child import measure  # noqa: E402


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0])
    return {k: round(v / 1024, 1) for k, v in fields.items()}


def config(work, model, sensor):
    path = os.path.join(work, "edgeinfer.toml")
    with open(path, "w") as f:
        f.write(f"""[device]
id = "footprint"
data_dir = "{work}/state"

[[models]]
id = "mobilenet"
path = "{os.path.abspath(model)}"
preprocess = {{ type = "image", resize = [256, 256], crop = [224, 224] }}
postprocess = {{ type = "classify", top_k = 5 }}

[[sensors]]
id = "cam0"
model = "mobilenet"
{sensor}
""")
    return path


def frames(work, count=60):
    folder = os.path.join(work, "frames")
    os.makedirs(folder, exist_ok=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=640x480:rate=15", "-frames:v", str(count), "-q:v", "3",
                    os.path.join(folder, "f%04d.jpg")], check=True)
    return folder


def start(binary, config_path, log_spec="info", log=None):
    """Starts the daemon; its log goes to the file `log`, or to a pipe the caller must read
    (a pipe nobody reads stops the daemon once it is full)."""
    env = dict(os.environ, RUST_LOG=log_spec)
    stderr = open(log, "w") if log else subprocess.PIPE
    return subprocess.Popen([binary, "run", "--config", config_path], env=env,
                            stderr=stderr, stdout=subprocess.DEVNULL, text=True)


def log_of(config_path):
    return os.path.join(os.path.dirname(config_path), "daemon.log")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def check_alive(proc, config_path):
    """Exits with the daemon's log if it is no longer running."""
    if proc.poll() is not None:
        sys.exit(f"the daemon exited: {open(log_of(config_path)).read()}")


def rss_after(binary, config_path, seconds):
    proc = start(binary, config_path, log=log_of(config_path))
    time.sleep(seconds)
    check_alive(proc, config_path)
    figures = status(proc.pid)
    stop(proc)
    return figures


def idle(a):
    with tempfile.TemporaryDirectory() as work:
        sensor = 'type = "camera"\ndevice = "/dev/video-absent"\nwidth = 640\nheight = 480'
        print(json.dumps({"measure": "idle", "seconds": 10,
                          **rss_after(a.binary, config(work, a.model, sensor), 10)}))


def working(a):
    with tempfile.TemporaryDirectory() as work:
        sensor = f'type = "image_replay"\npath = "{frames(work)}"\nrate = 15.0\nloop = true'
        print(json.dumps({"measure": "working", "fps": 15, "seconds": 30,
                          **rss_after(a.binary, config(work, a.model, sensor), 30)}))


def bare(a):
    measured = measure(a.binary, a.model, "tract", 30, a.threads)
    print(json.dumps({"measure": "bare tract runner", "threads": a.threads,
                      "VmHWM": round(measured["peak_rss_kb"] / 1024, 1),
                      "median_ms": round(measured["median_us"] / 1e3, 2)}))


# The first log line of each phase, as (name, pattern).
PHASES = [("model loaded", re.compile(r"Model loaded")),
          ("first prediction stored", re.compile(r"Prediction stored")),
          ("first prediction durable", re.compile(r"Outbox records durable"))]


def startup_once(a, config_path, cold):
    if cold:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    started = time.monotonic()
    proc = start(a.binary, config_path, "info,edgeinfer::outbox::durable=debug")
    seen = {}
    for line in proc.stderr:
        now = round((time.monotonic() - started) * 1e3, 1)
        for name, pattern in PHASES:
            if name not in seen and pattern.search(line):
                seen[name] = now
        if "first prediction durable" in seen:
            break
    stop(proc)
    return seen


def startup(a):
    with tempfile.TemporaryDirectory() as work:
        sensor = f'type = "image_replay"\npath = "{frames(work, 5)}"\nrate = 15.0\nloop = true'
        config_path = config(work, a.model, sensor)
        # One untimed start when warm, so that binary, model and frames are in the page cache.
        if not a.cold:
            startup_once(a, config_path, False)
        runs = []
        for _ in range(a.repeat):
            subprocess.run(["rm", "-rf", os.path.join(work, "state")], check=True)
            runs.append(startup_once(a, config_path, a.cold))
        durable = sorted(r.get("first prediction durable", float("nan")) for r in runs)
        print(json.dumps({"measure": "startup", "cold": a.cold, "runs_ms": runs,
                          "median_durable_ms": durable[len(durable) // 2]}))


def soak(a):
    demo = os.path.abspath(a.demo_dir)
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(demo, "config", "demo.toml")) as f:
            text = f.read()
        text = re.sub(r"(?m)^rate = .*\n", "", text)
        text = text.replace('"../', f'"{demo}/').replace('"demo-data/', f'"{demo}/config/demo-data/')
        text = re.sub(r'(?m)^data_dir = .*$', f'data_dir = "{work}/state"', text)
        text = re.sub(r'(?m)^log_predictions = .*$', "log_predictions = false", text)
        path = os.path.join(work, "demo.toml")
        with open(path, "w") as f:
            f.write(text)
        proc = start(a.binary, path, "warn", log=log_of(path))
        began = time.monotonic()
        samples = []
        while time.monotonic() - began < a.seconds:
            time.sleep(min(60, a.seconds))
            check_alive(proc, path)
            samples.append({"s": round(time.monotonic() - began), **status(proc.pid)})
            print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
        stop(proc)
        outbox = subprocess.run(["/usr/bin/time", "-f", "%M", a.binary, "outbox", "--config", path,
                                 "stats"], capture_output=True, text=True, check=True)
        version = subprocess.run(["/usr/bin/time", "-f", "%M", a.binary, "--version"],
                                 capture_output=True, text=True, check=True)
        peak = lambda out: int(out.stderr.strip().splitlines()[-1]) / 1024
        print(json.dumps({"measure": "soak", "seconds": a.seconds, "samples": samples,
                          "outbox_stats": json.loads(outbox.stdout),
                          "outbox_open_peak_mib": round(peak(outbox), 1),
                          "version_peak_mib": round(peak(version), 1)}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    for name in ("idle", "working", "bare", "startup"):
        s = sub.add_parser(name)
        s.add_argument("binary")
        s.add_argument("model")
        if name == "bare":
            s.add_argument("--threads", type=int, default=None)
        if name == "startup":
            s.add_argument("--cold", action="store_true")
            s.add_argument("--repeat", type=int, default=5)
    s = sub.add_parser("soak")
    s.add_argument("binary")
    s.add_argument("demo_dir")
    s.add_argument("--seconds", type=int, default=3600)
    a = p.parse_args()
    {"idle": idle, "working": working, "bare": bare, "startup": startup, "soak": soak}[a.what](a)


if __name__ == "__main__":
    main()
