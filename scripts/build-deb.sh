#!/usr/bin/env bash
# Builds a Debian package of edgeinfer from a built binary, without extra tools (dpkg-deb only).
#
#   scripts/build-deb.sh [--binary PATH] [--arch DEB_ARCH] [--strip STRIP | --no-strip]
#                        [--onnxruntime DIR] [--glibc VERSION] [--out DIR] [--uncompressed]
#
# Defaults: target/release/edgeinfer, this machine's architecture, `strip`, target/debian/.
# The package installs the binary, the systemd unit (not enabled), the default config as a
# conffile under /etc/edgeinfer/ (kept on upgrade), and creates the `edgeinfer` system user in the
# video, audio and dialout groups. Nothing is started or enabled without the operator asking.
#
# --onnxruntime DIR bundles the onnxruntime library in DIR (libonnxruntime.so.<version>, with
# libonnxruntime_providers_shared.so, LICENSE and ThirdPartyNotices.txt beside it, as
# scripts/fetch-onnxruntime.sh writes them) under /usr/lib/edgeinfer/, where the daemon finds it
# without ORT_DYLIB_PATH. --glibc is the oldest glibc the binary (and that library) run on, for
# the package's Depends (default 2.34).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=target/release/edgeinfer
arch=$(dpkg --print-architecture)
strip_tool=strip
out=target/debian
compression=(-Zxz)
onnxruntime=
glibc=2.34
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --strip) strip_tool=$2; shift 2 ;;
    --no-strip) strip_tool=; shift ;;
    --onnxruntime) onnxruntime=$2; shift 2 ;;
    --glibc) glibc=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --uncompressed) compression=(-Znone); shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "no binary at $binary (cargo build --release first)" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

install -D -m 0755 "$binary" "$stage/usr/bin/edgeinfer"
[ -z "$strip_tool" ] || "$strip_tool" "$stage/usr/bin/edgeinfer"
depends="libc6 (>= $glibc), libasound2, adduser"
if [ -n "$onnxruntime" ]; then
  lib=$(find "$onnxruntime" -maxdepth 1 -name 'libonnxruntime.so.[0-9]*' | sort -V | tail -n 1)
  for f in "$lib" "$onnxruntime/LICENSE" "$onnxruntime/ThirdPartyNotices.txt"; do
    [ -n "$f" ] && [ -f "$f" ] || { echo "--onnxruntime $onnxruntime: needs libonnxruntime.so.<version>, LICENSE and ThirdPartyNotices.txt" >&2; exit 1; }
  done
  install -D -m 0644 "$lib" "$stage/usr/lib/edgeinfer/$(basename "$lib")"
  ln -s "$(basename "$lib")" "$stage/usr/lib/edgeinfer/libonnxruntime.so"
  if [ -f "$onnxruntime/libonnxruntime_providers_shared.so" ]; then
    install -m 0644 "$onnxruntime/libonnxruntime_providers_shared.so" "$stage/usr/lib/edgeinfer/"
  fi
  install -D -m 0644 "$onnxruntime/LICENSE" "$stage/usr/share/doc/edgeinfer/onnxruntime/LICENSE"
  install -m 0644 "$onnxruntime/ThirdPartyNotices.txt" "$stage/usr/share/doc/edgeinfer/onnxruntime/"
  # onnxruntime is C++.
  depends="$depends, libstdc++6"
fi
install -D -m 0644 systemd/edgeinfer.service "$stage/lib/systemd/system/edgeinfer.service"
install -D -m 0644 src/config/default.toml "$stage/etc/edgeinfer/edgeinfer.toml"
install -D -m 0644 README.md "$stage/usr/share/doc/edgeinfer/README.md"
install -D -m 0644 LICENSE "$stage/usr/share/doc/edgeinfer/copyright"

mkdir -p "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: edgeinfer
Version: $version
Architecture: $arch
Maintainer: edgeinfer developers <dev@edgeinfer.invalid>
Depends: $depends
Section: net
Priority: optional
Installed-Size: $(du -sk "$stage" | cut -f1)
Homepage: https://github.com/edgeinfer/edgeinfer
Description: edge inference daemon: sensors to ONNX models to MQTT
 Reads cameras (V4L2), microphones (ALSA) and serial sensors, runs ONNX models on
 the CPU (tract) or through onnxruntime, keeps every prediction in a durable
 on-disk outbox while offline and publishes it over MQTT.
CONTROL
echo /etc/edgeinfer/edgeinfer.toml > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd edgeinfer >/dev/null; then
    adduser --system --group --no-create-home --home /var/lib/edgeinfer edgeinfer
  fi
  for group in video audio dialout; do
    if getent group "$group" >/dev/null; then
      adduser edgeinfer "$group" >/dev/null
    fi
  done
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
  fi
fi
# Not enabled or started: edit /etc/edgeinfer/edgeinfer.toml, then
#   systemctl enable --now edgeinfer
exit 0
POSTINST
cat > "$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop edgeinfer.service || true
fi
exit 0
PRERM
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm"

mkdir -p "$out"
deb="$out/edgeinfer_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${compression[@]}" --build "$stage" "$deb" >/dev/null
echo "$deb"
