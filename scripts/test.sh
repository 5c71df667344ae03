#!/usr/bin/env bash
# Runs the whole test suite: fetches the pinned real models (cached), then unit and integration
# tests in release mode (tract is much slower unoptimised, and some of its debug-only graph checks
# reject models that release builds run correctly).
#
# Needs: mosquitto (the tests start their own on a free loopback port) and Python with the
# packages in scripts/requirements.txt (onnxruntime is the reference the tests compare against).
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] ||
  missing+=("mosquitto: sudo apt-get install -y mosquitto")
"${PYTHON:-python3}" -c "import onnxruntime, numpy" 2>/dev/null ||
  missing+=("onnxruntime, numpy: pip install -r scripts/requirements.txt")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'missing test prerequisite: %s\n' "${missing[@]}" >&2
  exit 1
fi

scripts/fetch-models.sh ch_PP-OCRv4_det_infer.onnx ch_ppocr_mobile_v2.0_cls_mobile.onnx \
  silero_vad_openvino_16k.onnx
cargo test --release "$@"
