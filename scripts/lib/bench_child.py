"""One measurement by `edgeinfer bench --child`: a fresh process, one backend, one model."""
import json
import subprocess
import sys


def measure(binary, model, backend, runs, threads=None, warmup=None):
    """The child's JSON result (median_us, peak_rss_kb, ...); exits with its stderr if it fails."""
    cmd = [binary, "bench", "--child", "--model", model, "--backend", backend, "--runs", str(runs)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if warmup is not None:
        cmd += ["--warmup", str(warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{binary} bench on {model} with {backend}: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])
