#!/usr/bin/env bash
# Builds the release binaries and Debian packages of edgeinfer for x86_64, aarch64 and armv7 on
# this machine (Debian 12, no Docker), into target/packages/:
#
#   edgeinfer-<version>-<triple>        stripped binary (Cargo profile `dist`)
#   edgeinfer_<version>_<deb arch>.deb  package (amd64 and arm64 bundle onnxruntime)
#
#   scripts/build-release.sh [--arch amd64|arm64|armhf]... [--out DIR] [--profile dist|release]
#
# Default: all three architectures. Each binary is linked by zig (cargo-zigbuild, installed into
# a cached Python virtual environment from scripts/release-requirements.txt) against glibc 2.31,
# so that it runs on JetPack 5 and Raspberry Pi OS bullseye as well as on newer systems. For every
# binary, and for the onnxruntime library a package bundles, the script prints the highest
# GLIBC_ symbol version it needs (objdump -T) and fails if that is above the baseline.
#
# Packages ship the `dist` profile (fat LTO, size-optimised off the inference path; Cargo.toml).
# Its binaries must fit the size budget of $SIZE_BUDGET_MIB MiB (32 by default; 31.3 MiB on
# amd64 on 2026-12-07, the goal is 15): the script fails when one does not, as it does for glibc.
# `--profile release` builds quicker, larger binaries with the same code (the ARM tests use it to
# stay within the CI time) and skips the budget.
#
# amd64 and arm64 are built with the `ort` feature and bundle the CPU onnxruntime of the pinned
# PyPI wheel (scripts/fetch-onnxruntime.sh); armhf has no onnxruntime (none is published for
# 32-bit ARM) and runs tract only.
#
# Needs: rustup targets, the target architectures' ALSA headers (multiarch -dev packages),
# pkg-config, binutils, file, python3-venv; what is missing is printed as commands to run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=lib/cross.sh
. scripts/lib/cross.sh

arches=()
out=target/packages
profile=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) triple_of "$2" >/dev/null || exit 2; arches+=("$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64 armhf)
case "$profile" in dist | release) ;; *) echo "--profile: dist or release, not $profile" >&2; exit 2 ;; esac
# What a device downloads for an update of the daemon itself, often over cellular.
budget_mib=${SIZE_BUDGET_MIB:-32}
budget=$((budget_mib * 1048576))

missing=$(cross_missing "${arches[@]}")
if [ -n "$missing" ]; then
  echo "build-release: missing prerequisites:" >&2
  echo "$missing" | sed 's/^/  /' >&2
  exit 1
fi
zig_tools "$repo"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p "$out"
summary=()
failed=0
for arch in "${arches[@]}"; do
  triple=$(triple_of "$arch")
  baseline=$(glibc_baseline "$arch")
  features=$(features_of "$arch")
  echo "== $arch: cargo zigbuild --profile $profile --target $triple.$baseline ${features:+--features $features}" >&2
  started=$SECONDS
  (
    cross_env "$arch"
    cargo zigbuild --profile "$profile" --locked --target "$triple.$baseline" ${features:+--features "$features"}
  )
  built=$((SECONDS - started))
  binary="$out/edgeinfer-$version-$triple"
  install -m 0755 "target/$triple/$profile/edgeinfer" "$binary"

  ort_dir=
  deb_args=()
  if [ -n "$features" ]; then
    ort_dir="target/onnxruntime/$arch"
    scripts/fetch-onnxruntime.sh "$arch" "$ort_dir" >&2
    deb_args=(--onnxruntime "$ort_dir")
  fi

  # The glibc each file needs, against the baseline.
  needs=$(glibc_needed "$binary")
  check="ok"
  version_le "$needs" "$baseline" || { check="FAILS (above $baseline)"; failed=1; }
  lib_note=""
  if [ -n "$ort_dir" ]; then
    lib=$(find "$ort_dir" -maxdepth 1 -name 'libonnxruntime.so.[0-9]*' | sort -V | tail -n 1)
    lib_needs=$(glibc_needed "$lib")
    version_le "$lib_needs" "$baseline" || { check="FAILS (onnxruntime needs $lib_needs)"; failed=1; }
    lib_note=", bundled $(basename "$lib") needs GLIBC_$lib_needs"
    [ "$(printf '%s\n%s\n' "$needs" "$lib_needs" | sort -V | tail -n 1)" = "$needs" ] || needs=$lib_needs
  fi
  deb=$(scripts/build-deb.sh --binary "$binary" --arch "$arch" --no-strip --glibc "$needs" \
    --out "$out" ${deb_args[@]+"${deb_args[@]}"})
  machine=$(file -b "$binary" | cut -d, -f2 | sed 's/^ *//')
  size=$(stat -c %s "$binary")
  if [ "$profile" = dist ] && [ "$size" -gt "$budget" ]; then
    check="$check; size FAILS ($size bytes, over the $budget_mib MiB budget)"
    failed=1
  fi
  summary+=("$(printf '%-6s %-30s %-16s %6.1f MiB  GLIBC_%s%s, baseline %s: %s; built in %d s; %s' \
    "$arch" "$triple" "$machine" "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')" "$(glibc_needed "$binary")" \
    "$lib_note" "$baseline" "$check" "$built" "$deb")")
done

echo
echo "build-release: $out"
printf '  %s\n' "${summary[@]}"
exit "$failed"
