#!/usr/bin/env bash
# A fleet on one machine against one mosquitto on loopback: `edgeinfer bench-fleet` runs
# DEVICES whole daemons in one process (sensor, model, outbox, uplink, retained status,
# telemetry, signed commands, model updates), each predicting RATE times a second; its consumer
# measures what arrives. Meanwhile this script samples the broker's CPU and memory, times
# `fleet status` over the whole fleet, then rolls a 100 KiB model out to every device in waves
# with `fleet rollout` and times it.
#
#   scripts/bench-fleet.sh [DEVICES] [RATE] [SECONDS]      (default 1000 1 60)
#
# Needs mosquitto, python3 with onnx (scripts/requirements.txt), and a release build
# (cargo build --release). Prints one JSON object with every figure at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${1:-1000}
rate=${2:-1}
seconds=${3:-60}
bin=target/release/edgeinfer
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "missing: sudo apt-get install -y mosquitto" >&2; exit 1; }

work=$(mktemp -d /tmp/edgeinfer-bench-fleet.XXXXXX)
broker_pid='' fleet_pid=''
cleanup() {
  [ -n "$fleet_pid" ] && kill -INT "$fleet_pid" 2>/dev/null && wait "$fleet_pid" 2>/dev/null
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 10000
CONF
ulimit -n "$(ulimit -Hn)"
"$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker_pid=$!
sleep 0.5
url=mqtt://127.0.0.1:$port
"$bin" keygen --out "$work/operator.key" >/dev/null

# The candidate: the bundled model's second version with 100 KiB of unused weights, so that
# each device receives and verifies a 100 KiB file.
python3 - "$work/model-100k.onnx" <<'PY'
import sys, numpy as np, onnx
from onnx import numpy_helper
m = onnx.load("models/test/vibration-v2.onnx")
pad = np.random.default_rng(1).standard_normal(100 * 1024 // 4).astype(np.float32)
m.graph.initializer.append(numpy_helper.from_array(pad, "padding"))
onnx.save(m, sys.argv[1])
PY

# CPU seconds (user + system) and RSS of a process.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
rss_mib() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$1/status"; }

RUST_LOG="warn,edgeinfer::cli::bench_fleet=info" "$bin" bench-fleet --broker "$url" \
  --devices "$devices" --rate "$rate" --operator-key "$work/operator.key.pub" \
  --dir "$work/devices" --duration "${seconds}s" --keep-running \
  >"$work/fleet.json" 2>"$work/fleet.log" &
fleet_pid=$!
start=$(date +%s.%N)
until grep -q "Every device runs" "$work/fleet.log"; do
  kill -0 "$fleet_pid" 2>/dev/null || { cat "$work/fleet.log" >&2; exit 1; }
  sleep 0.2
done
ramp_s=$(echo "$(date +%s.%N) - $start" | bc)
cpu0=$(cpu_s "$broker_pid"); t0=$(date +%s.%N)
until grep -q '"devices"' "$work/fleet.json" && grep -q '^}' "$work/fleet.json"; do
  kill -0 "$fleet_pid" 2>/dev/null || { cat "$work/fleet.log" >&2; exit 1; }
  sleep 0.5
done
cpu1=$(cpu_s "$broker_pid"); t1=$(date +%s.%N)
broker_cpu=$(echo "scale=1; 100 * ($cpu1 - $cpu0) / ($t1 - $t0)" | bc)
broker_rss=$(rss_mib "$broker_pid")

t=$(date +%s.%N)
online=$("$bin" fleet status --broker "$url" --json --select bench=fleet |
  python3 -c 'import json,sys; print(sum(d["online"] for d in json.load(sys.stdin)))')
status_s=$(echo "$(date +%s.%N) - $t" | bc)

t=$(date +%s.%N)
"$bin" fleet rollout --broker "$url" --key "$work/operator.key" --select bench=fleet \
  --model vibration --file "$work/model-100k.onnx" --waves 1,5%,25%,100% \
  --max-failures 5% --parallel 64 --wait-mins 15 --state "$work/rollout.json" \
  >"$work/rollout-report.json" 2>"$work/rollout.log" || true
rollout_s=$(echo "$(date +%s.%N) - $t" | bc)
broker_rss_after=$(rss_mib "$broker_pid")

python3 - "$work" "$ramp_s" "$broker_cpu" "$broker_rss" "$online" "$status_s" "$rollout_s" \
  "$broker_rss_after" <<'PY'
import json, sys
work, ramp, cpu, rss, online, status_s, rollout_s, rss_after = sys.argv[1:]
fleet = json.load(open(f"{work}/fleet.json"))
report = json.load(open(f"{work}/rollout-report.json"))
print(json.dumps({
    "fleet": fleet,
    "start_all_devices_s": round(float(ramp), 1),
    "broker": {"cpu_percent_of_one_core": float(cpu), "rss_mib": int(rss),
               "rss_mib_after_rollout": int(rss_after)},
    "fleet_status": {"online": int(online), "seconds": round(float(status_s), 2)},
    "rollout": {"seconds": round(float(rollout_s), 1), "model_bytes": report.get("sha256") and
                __import__("os").path.getsize(f"{work}/model-100k.onnx"),
                "counts": report.get("counts"), "aborted": report.get("aborted"),
                "waves": [len(w) for w in report.get("waves", [])]},
}, indent=2))
PY
