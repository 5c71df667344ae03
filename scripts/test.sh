#!/usr/bin/env bash
# Runs the whole test suite: fetches the pinned real models (cached), then unit and integration
# tests in release mode (tract is much slower unoptimised, and some of its debug-only graph checks
# reject models that release builds run correctly).
#
# Needs: mosquitto (the tests start their own on a free loopback port), socat (serial pty pairs),
# ffmpeg (camera decoder fixtures), sox and espeak-ng (audio fixtures), ip, tc and iptables (network
# fault tests put a broker in a network namespace of its own, which also takes root), ejabberd (a
# two-node clustered broker for the cluster tests, scripts/cluster-broker.sh), and Python
# with the packages in scripts/requirements.txt (onnxruntime is the reference the tests compare
# against, and its wheel's libonnxruntime.so is what the `ort` backend loads, via ORT_DYLIB_PATH).
# Extra arguments go to `cargo test`. Without any, the device tests on real kernel drivers follow
# (scripts/vm-test.sh: vivid and snd-aloop in an emulated machine), then the ARM tests
# (scripts/test-arm.sh: cross builds, qemu-user and full-system emulation), each or a line saying
# why it was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] ||
  missing+=("mosquitto: sudo apt-get install -y mosquitto")
for tool in socat ffmpeg sox espeak-ng; do
  command -v "$tool" >/dev/null || missing+=("$tool: sudo apt-get install -y $tool")
done
for tool in ip tc; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    missing+=("$tool: sudo apt-get install -y iproute2")
done
command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] ||
  missing+=("iptables: sudo apt-get install -y iptables")
command -v ejabberdctl >/dev/null || [ -x /usr/sbin/ejabberdctl ] ||
  missing+=("ejabberd (the clustered broker of the cluster tests): sudo apt-get install -y ejabberd")
"${PYTHON:-python3}" -c "import onnxruntime, numpy" 2>/dev/null ||
  missing+=("onnxruntime, numpy: pip install -r scripts/requirements.txt")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'missing test prerequisite: %s\n' "${missing[@]}" >&2
  exit 1
fi

scripts/fetch-models.sh

# The onnxruntime backend loads the library the onnxruntime wheel ships.
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$("${PYTHON:-python3}" -c 'import glob, os, onnxruntime; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[0])')
  export ORT_DYLIB_PATH
fi
cargo test --release --features ort "$@"

# The whole suite (no arguments) also runs the device tests against real kernel drivers in an
# emulated machine, and the ARM builds under emulation, where this machine can.
if [ $# -eq 0 ]; then
  vm_missing=$(scripts/vm-test.sh --missing)
  if [ -n "$vm_missing" ]; then
    echo "skipped the device tests on real drivers (scripts/vm-test.sh): missing" >&2
    echo "  $vm_missing" >&2
  else
    scripts/vm-test.sh
  fi
  arm_missing=$(PYTHON=${PYTHON:-python3} scripts/test-arm.sh --missing)
  if [ -n "$arm_missing" ]; then
    echo "skipped the ARM tests (scripts/test-arm.sh): missing" >&2
    echo "$arm_missing" | sed 's/^/  /' >&2
  else
    PYTHON=${PYTHON:-python3} scripts/test-arm.sh
  fi
fi
