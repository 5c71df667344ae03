#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Fetch the CPU onnxruntime library that edgeinfer's package bundles, out of the pinned PyPI
# wheel of an architecture (whatever this machine is), with its licence files.
#
# Usage: scripts/fetch-onnxruntime.sh DEB_ARCH DEST_DIR
#
#   DEB_ARCH   amd64 or arm64 (onnxruntime publishes no 32-bit ARM build, so armhf has none)
#   DEST_DIR   gets libonnxruntime.so.<version>, libonnxruntime_providers_shared.so, LICENSE and
#              ThirdPartyNotices.txt
#
# Environment: EDGEINFER_WHEEL_CACHE (default $HOME/.cache/edgeinfer/wheels), PYTHON.
#
# The version is pinned (and said in targets/README.md): 1.31.1, the first release with API
# version 31, which the `ort` crate edgeinfer builds against needs. Every file is checked against
# its pinned size and sha256.

set -euo pipefail

VERSION=1.31.1
# arch | wheel platform tag | member | bytes | sha256
FILES=(
  "arm64|manylinux_2_28_aarch64|onnxruntime/capi/libonnxruntime.so.$VERSION|25265040|8aa3b76b28c778a2b1dd660d34161adb1d508c9ccd04ff9dc80e26eca5df8467"
  "arm64|manylinux_2_28_aarch64|onnxruntime/capi/libonnxruntime_providers_shared.so|198792|3b6be288fbfb7dff8770d08a23defdde18e8f7e0f5a2b344a0e5e238c999ea88"
  "amd64|manylinux_2_28_x86_64|onnxruntime/capi/libonnxruntime.so.$VERSION|29352200|fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3"
  "amd64|manylinux_2_28_x86_64|onnxruntime/capi/libonnxruntime_providers_shared.so|14632|086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d"
  "any||onnxruntime/LICENSE|1073|2f07c72751aed99790b8a4869cf2311df85a860b22ded05fa22803587a48922c"
  "any||onnxruntime/ThirdPartyNotices.txt|338088|143764b952fdb1a7c69ce653bfba74a7744d6a8a573bfb73e235fba356c83de3"
)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${EDGEINFER_WHEEL_CACHE:-$HOME/.cache/edgeinfer/wheels}"
PYTHON="${PYTHON:-python3}"
WHEELS_TOOL=fetch-onnxruntime

die() {
  echo "fetch-onnxruntime: error: $*" >&2
  exit 1
}

[ $# -eq 2 ] || { sed -n '4,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
arch=$1
dest=$2
case "$arch" in
  amd64) platform=manylinux_2_28_x86_64 ;;
  arm64) platform=manylinux_2_28_aarch64 ;;
  armhf) die "onnxruntime publishes no 32-bit ARM build: armhf packages are tract only" ;;
  *) die "unknown architecture $arch (amd64 or arm64)" ;;
esac

# shellcheck source=lib/wheels.sh
. "$REPO_ROOT/scripts/lib/wheels.sh"

mkdir -p "$CACHE" "$dest"
for entry in "${FILES[@]}"; do
  IFS='|' read -r for_arch _ member bytes sha <<<"$entry"
  [ "$for_arch" = "$arch" ] || [ "$for_arch" = any ] || continue
  # The licence files are the same in every platform's wheel: take them from this one.
  fetch_member "onnxruntime==$VERSION" "$platform" "$member" "$bytes" "$sha" "$dest/$(basename "$member")"
done
