#!/usr/bin/env bash
# A throwaway ARM machine under full-system emulation (qemu-system-aarch64 / qemu-system-arm, TCG),
# for running edgeinfer's ARM builds where qemu-user cannot: anything with threads.
#
#   scripts/arm-vm.sh prepare ARCH              kernel, root filesystem and initramfs, cached
#   scripts/arm-vm.sh run ARCH SCRIPT OUT_DIR   boots, runs SCRIPT (sh) in the guest, powers off
#
# ARCH is arm64 (Cortex-A72, as in a Raspberry Pi 4) or armhf (Cortex-A15, 32-bit). The guest is
# Debian's stock kernel for the architecture, with the whole root filesystem in an initramfs made
# from Debian packages (`mmdebstrap --variant=extract`: nothing is configured or executed on this
# machine): busybox, libc, libstdc++, libasound and mosquitto. The repository is mounted read-only
# at its own path (so test binaries find their files where they were built), OUT_DIR read-write at
# /out; SCRIPT runs with /out as its working directory, its output goes to OUT_DIR/guest.log and
# its exit status to OUT_DIR/rc, which is also this command's exit status.
#
# Environment: EDGEINFER_VM_CACHE (default $HOME/.cache/edgeinfer/vm), VM_SMP (default 2), VM_MEM
# (default 2G for arm64, 1G for armhf), VM_TIMEOUT (seconds, default 1800).
# Needs: qemu-system-arm, mmdebstrap, cpio, kmod, and the architecture enabled in dpkg
# (dpkg --add-architecture) so that apt can download its packages.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

cache_root="${EDGEINFER_VM_CACHE:-$HOME/.cache/edgeinfer/vm}"
suite=bookworm
packages=busybox-static,libc6,libstdc++6,libgcc-s1,libasound2,mosquitto,mosquitto-clients
modules="virtio_mmio 9pnet_virtio 9p"

log() { echo "arm-vm: $*" >&2; }
die() { echo "arm-vm: error: $*" >&2; exit 1; }

arch_settings() {
  case "$1" in
    arm64)
      flavour=arm64 qemu=qemu-system-aarch64 cpu=cortex-a72 mem=${VM_MEM:-2G} ;;
    armhf)
      flavour=armmp-lpae qemu=qemu-system-arm cpu=cortex-a15 mem=${VM_MEM:-1G} ;;
    *) die "unknown architecture $1 (arm64 or armhf)" ;;
  esac
  cache="$cache_root/$1"
}

missing() {
  local need=()
  for tool in qemu-system-aarch64:qemu-system-arm qemu-system-arm:qemu-system-arm \
    mmdebstrap:mmdebstrap cpio:cpio depmod:kmod; do
    command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || need+=("${tool#*:}")
  done
  [ ${#need[@]} -eq 0 ] || echo "sudo apt-get install -y $(printf '%s\n' "${need[@]}" | sort -u | xargs)"
}

# Debian's kernel package for the architecture, as the meta-package names it today.
kernel_package() {
  apt-cache depends "linux-image-$flavour:$1" 2>/dev/null |
    awk '/Depends: linux-image-/ { sub(":.*", "", $2); print $2; exit }'
}

prepare() {
  local arch=$1 pkg kver tree
  pkg=$(kernel_package "$arch")
  [ -n "$pkg" ] || die "apt knows no linux-image-$flavour:$arch (sudo dpkg --add-architecture $arch && sudo apt-get update)"
  if [ -f "$cache/ready" ] && [ "$(cat "$cache/ready")" = "$pkg $packages" ]; then
    return 0
  fi
  log "$arch: preparing $pkg and a root filesystem in $cache"
  rm -rf "$cache"
  mkdir -p "$cache/deb"
  (cd "$cache/deb" && apt-get download -q "$pkg:$arch" >/dev/null 2>&1) ||
    die "apt-get download $pkg:$arch failed"
  dpkg-deb -x "$cache"/deb/*.deb "$cache/kernel"
  kver=$(ls "$cache/kernel/lib/modules")
  depmod -b "$cache/kernel" "$kver"
  cp "$cache/kernel/boot/vmlinuz-$kver" "$cache/vmlinuz"

  tree="$cache/root"
  mmdebstrap --quiet --arch="$arch" --variant=extract --include="$packages" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "$suite" "$tree" >&2
  mkdir -p "$tree"/{proc,sys,dev,tmp,out,run,root,modules,var/lib/mosquitto}
  # Each module after those it needs, in the order insmod must load them.
  : > "$tree/modules/order"
  for m in $modules; do
    modprobe -d "$cache/kernel" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }' |
      while read -r ko; do
        name=$(basename "$ko")
        grep -qx "$name" "$tree/modules/order" && continue
        cp "$ko" "$tree/modules/"
        echo "$name" >> "$tree/modules/order"
      done
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nmosquitto:x:100:101::/var/lib/mosquitto:/bin/false\n' > "$tree/etc/passwd"
  printf 'root:x:0:\nmosquitto:x:101:\n' > "$tree/etc/group"
  cat > "$tree/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/shm /dev/pts && mount -t tmpfs tmpfs /dev/shm
for m in $(cat /modules/order); do insmod "/modules/$m" || echo "insmod $m failed"; done
repo=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^edgeinfer.repo=//p')
mkdir -p "$repo"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro repo "$repo"
ip link set lo up
hostname guest
export HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin
echo "guest up after $(cut -d' ' -f1 /proc/uptime) s: $(uname -m), $(nproc) CPUs"
cd /out && sh /out/run.sh > /out/guest.log 2>&1
echo $? > /out/rc
sync
poweroff -f
INIT
  chmod +x "$tree/init"
  (cd "$tree" && find . | cpio -o -H newc --quiet > "$cache/initrd.cpio")
  echo "$pkg $packages" > "$cache/ready"
  log "$arch: ready ($(du -sh "$cache/initrd.cpio" | cut -f1) initramfs)"
}

run() {
  local arch=$1 script=$2 out=$3 rc=0 started=$SECONDS
  prepare "$arch"
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  rm -f "$out/rc" "$out/guest.log"
  cp "$script" "$out/run.sh"
  log "$arch: booting ($cpu, ${VM_SMP:-2} CPUs, $mem, TCG)"
  timeout "${VM_TIMEOUT:-1800}" "$qemu" -M virt -cpu "$cpu" -smp "${VM_SMP:-2}" -m "$mem" \
    -accel tcg,thread=multi -nographic -monitor none -serial stdio -nic none -no-reboot \
    -kernel "$cache/vmlinuz" -initrd "$cache/initrd.cpio" \
    -append "console=ttyAMA0 rdinit=/init panic=5 quiet edgeinfer.repo=$repo" \
    -fsdev "local,id=out,path=$out,security_model=none" \
    -device virtio-9p-device,fsdev=out,mount_tag=out \
    -fsdev "local,id=repo,path=$repo,security_model=none,readonly=on" \
    -device virtio-9p-device,fsdev=repo,mount_tag=repo \
    < /dev/null > "$out/console.log" 2>&1 || rc=$?
  log "$arch: guest stopped after $((SECONDS - started)) s (qemu exit $rc)"
  [ "$rc" -eq 0 ] || die "qemu failed or timed out (124: VM_TIMEOUT); see $out/console.log"
  [ -f "$out/rc" ] || die "the guest did not finish its script; see $out/console.log"
  return "$(cat "$out/rc")"
}

case "${1:-}" in
  prepare)
    [ $# -eq 2 ] || die "usage: $0 prepare ARCH"
    arch_settings "$2"
    m=$(missing); [ -z "$m" ] || die "missing tools: $m"
    prepare "$2"
    ;;
  run)
    [ $# -eq 4 ] || die "usage: $0 run ARCH SCRIPT OUT_DIR"
    arch_settings "$2"
    m=$(missing); [ -z "$m" ] || die "missing tools: $m"
    run "$2" "$3" "$4"
    ;;
  missing) missing ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
