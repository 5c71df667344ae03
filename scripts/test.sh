#!/usr/bin/env bash
# Runs the whole test suite: checks the system packages it needs, sets up its own Python virtual
# environment, fetches the pinned real models (cached), then runs unit and integration tests in
# release mode (tract is much slower unoptimised, and some of its debug-only graph checks reject
# models that release builds run correctly).
#
# Usage: scripts/test.sh [--install-deps] [CARGO_TEST_ARGS ...]
#
# System packages: what is missing is printed as one `apt-get install -y ...` line to run, and the
# script stops. Run as root with --install-deps (the first argument) and it runs `apt-get update`
# and that install itself instead.
#
# Python: the packages of scripts/requirements.txt (onnxruntime is the reference the tests compare
# against, and its wheel's libonnxruntime.so is what the `ort` backend loads, via ORT_DYLIB_PATH)
# go into a virtual environment of its own, .venv in the repository root, created on first use and
# again only when scripts/requirements.txt changes (its sha256 is kept in
# .venv/.requirements.sha256) or the environment no longer imports them. Its bin/ goes first on
# PATH and PYTHON names its interpreter, so that the scripts below and the tests' `python3` use it.
# With PYTHON set beforehand, that interpreter is used instead (it must have those packages) and
# no .venv is made.
#
# Extra arguments go to `cargo test`. Without any, the device tests on real kernel drivers follow
# (scripts/vm-test.sh: vivid and snd-aloop in an emulated machine), then the ARM tests
# (scripts/test-arm.sh: cross builds, qemu-user and full-system emulation), each or a line saying
# why it was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

install_deps=false
if [ "${1:-}" = "--install-deps" ]; then
  install_deps=true
  shift
fi

venv=$PWD/.venv
want_sha=$(sha256sum scripts/requirements.txt | cut -d' ' -f1)
# Whether .venv is there, made from this scripts/requirements.txt, and still imports its packages.
venv_ok() {
  [ -x "$venv/bin/python" ] && [ -f "$venv/.requirements.sha256" ] &&
    [ "$(cat "$venv/.requirements.sha256")" = "$want_sha" ] &&
    "$venv/bin/python" -c 'import onnxruntime, numpy' 2>/dev/null
}

# --- System packages, each named once however many checks want it.
pkgs=()
want() {
  local p
  for p in "${pkgs[@]}"; do [ "$p" = "$1" ] && return 0; done
  pkgs+=("$1")
}
# mosquitto: the tests start their own broker on a free loopback port.
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || want mosquitto
# mosquitto-clients: scripts/ha-check.py watches Home Assistant's birth message with mosquitto_sub.
command -v mosquitto_sub >/dev/null || want mosquitto-clients
# socat: serial pty pairs. ffmpeg: camera decoder fixtures. sox, espeak-ng: audio fixtures.
for tool in socat ffmpeg sox espeak-ng; do
  command -v "$tool" >/dev/null || want "$tool"
done
# iproute2 (ip, tc) and iptables: network fault tests put a broker in a network namespace of its
# own, behind a link whose packets they drop, reject, lose or slow down (which also takes root).
for tool in ip tc; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || want iproute2
done
command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || want iptables
# ejabberd: a two-node clustered broker for the cluster tests (scripts/cluster-broker.sh).
command -v ejabberdctl >/dev/null || [ -x /usr/sbin/ejabberdctl ] || want ejabberd
# python3-venv (and python3 with it): to create .venv, unless PYTHON is given or .venv is fine.
if [ -z "${PYTHON:-}" ] && ! venv_ok; then
  python3 -c 'import ensurepip, venv' 2>/dev/null || want python3-venv
fi

if [ ${#pkgs[@]} -gt 0 ]; then
  if $install_deps && [ "$(id -u)" -eq 0 ]; then
    echo "test.sh: installing ${pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${pkgs[@]}" >/dev/null
    # The tests start their own ejabberd nodes; the service the package enables is not used.
    case " ${pkgs[*]} " in
      *" ejabberd "*) systemctl disable --now ejabberd >/dev/null 2>&1 || true ;;
    esac
  else
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo "
    if $install_deps; then
      echo "test.sh: --install-deps needs root; missing test prerequisites:" >&2
    else
      echo "test.sh: missing test prerequisites (or run ${sudo}scripts/test.sh --install-deps):" >&2
    fi
    echo "${sudo}apt-get install -y ${pkgs[*]}" >&2
    exit 1
  fi
fi

# --- Python.
if [ -n "${PYTHON:-}" ]; then
  "$PYTHON" -c 'import onnxruntime, numpy' 2>/dev/null || {
    echo "test.sh: PYTHON=$PYTHON lacks onnxruntime, numpy: $PYTHON -m pip install -r scripts/requirements.txt" >&2
    exit 1
  }
else
  if ! venv_ok; then
    echo "test.sh: creating the Python environment .venv from scripts/requirements.txt" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/requirements.txt
    echo "$want_sha" > "$venv/.requirements.sha256"
  fi
  PATH=$venv/bin:$PATH
  PYTHON=$venv/bin/python
  export PATH PYTHON
fi

# --- Home Assistant: a real core for the discovery test (tests/homeassistant.rs), in an
# environment of its own, .venv-ha, pinned in scripts/ha-check.py (a few minutes and about 700 MB
# on first use; kept while the pins stay). EDGEINFER_HA_VENV set beforehand names another.
if [ -z "${EDGEINFER_HA_VENV:-}" ]; then
  EDGEINFER_HA_VENV=$PWD/.venv-ha
  "$PYTHON" scripts/ha-check.py --setup --venv "$EDGEINFER_HA_VENV"
fi
export EDGEINFER_HA_VENV

scripts/fetch-models.sh

# The onnxruntime backend loads the library the onnxruntime wheel ships.
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$("$PYTHON" -c 'import glob, os, onnxruntime; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[0])')
  export ORT_DYLIB_PATH
fi
# ort-openvino: the OpenVINO plugin execution provider from the onnxruntime-ep-openvino wheel.
if [ -z "${ORT_OPENVINO_PLUGIN:-}" ]; then
  ORT_OPENVINO_PLUGIN=$("$PYTHON" -c 'import glob, os, onnxruntime_ep_openvino as p; print(os.path.join(os.path.dirname(p.__file__), "libonnxruntime_providers_openvino_plugin.so"))' 2>/dev/null || true)
  export ORT_OPENVINO_PLUGIN
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
  arm_missing=$(scripts/test-arm.sh --missing)
  if [ -n "$arm_missing" ]; then
    echo "skipped the ARM tests (scripts/test-arm.sh): missing" >&2
    while IFS= read -r line; do echo "  $line"; done <<<"$arm_missing" >&2
  else
    scripts/test-arm.sh
  fi
fi
