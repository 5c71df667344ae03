#!/usr/bin/env bash
# The device tests against real kernel drivers, in a throwaway x86-64 machine under emulation:
# vivid (a V4L2 test camera), v4l2loopback (a camera that sends what GStreamer feeds it, here JPEG
# frames) and snd-aloop (an ALSA loopback sound card) are loaded in the guest,
# and the integration tests of `tests/real_devices.rs` (ignored on the host, which has neither
# driver) run there. Each test's result is printed here; the exit status is the tests'.
#
#   scripts/vm-test.sh [FILTER]     FILTER selects tests by name (default: every device test)
#   scripts/vm-test.sh --missing    prints the apt-get line for what is missing, nothing if ready
#
# The guest is Debian's stock kernel (linux-image-amd64) booted by qemu with software emulation
# (TCG: nested virtualisation is not assumed), with this machine's root filesystem mounted
# read-only over virtio-9p, so it runs the test binary, the daemon, mosquitto and the tools that
# are installed here. A small initramfs (static busybox and the 9p modules) is built once and
# cached. The test binary must exist (scripts/test.sh builds it).
#
# Environment: EDGEINFER_VM_CACHE (default $HOME/.cache/edgeinfer/vm), VM_SMP (2), VM_MEM (2G),
# VM_TIMEOUT (seconds, default 900).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

cache="${EDGEINFER_VM_CACHE:-$HOME/.cache/edgeinfer/vm}/x86_64"
log() { echo "vm-test: $*" >&2; }
die() { echo "vm-test: error: $*" >&2; exit 1; }

kernel_version() {
  ls /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -n1
}

missing() {
  local need=()
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  [ -n "$(kernel_version)" ] || need+=(linux-image-amd64)
  command -v v4l2-ctl >/dev/null || need+=(v4l-utils)
  command -v aplay >/dev/null || need+=(alsa-utils)
  [ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
  command -v cpio >/dev/null || need+=(cpio)
  command -v modprobe >/dev/null || [ -x /usr/sbin/modprobe ] || need+=(kmod)
  # MJPEG: the out-of-tree v4l2loopback module, built by dkms for the guest's (this machine's)
  # kernel, fed by GStreamer.
  local k
  k=$(kernel_version)
  [ -n "$k" ] && { modinfo -k "$k" v4l2loopback >/dev/null 2>&1 ||
    /usr/sbin/modinfo -k "$k" v4l2loopback >/dev/null 2>&1; } ||
    need+=(linux-headers-amd64 v4l2loopback-dkms)
  command -v gst-launch-1.0 >/dev/null || need+=(gstreamer1.0-tools gstreamer1.0-plugins-good)
  [ ${#need[@]} -eq 0 ] || echo "sudo apt-get install -y --no-install-recommends ${need[*]}"
}

if [ "${1:-}" = "--missing" ]; then
  missing
  exit 0
fi
[ -z "$(missing)" ] || die "missing: $(missing)"
filter=${1:-real_devices::}
kver=$(kernel_version)
PATH=$PATH:/usr/sbin:/sbin

# --- The test binary scripts/test.sh built (the same features, so nothing is rebuilt).
tests=$(cargo test --release --locked --features ort --test integration --no-run \
  --message-format=json 2>/dev/null | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "integration":
        print(m["executable"])')
[ -x "$tests" ] || die "no integration test binary (run scripts/test.sh first)"

# --- The initramfs: busybox, the modules a virtio-9p root needs, and an /init that mounts this
# machine's / read-only, a tmpfs on /tmp, the writable share on /tmp/out and, when the repository
# is itself under /tmp, the repository at its own path again.
initramfs=$cache/initramfs-$kver.cpio.gz
if [ ! -f "$initramfs" ]; then
  log "building the initramfs for kernel $kver"
  tree=$cache/initramfs
  rm -rf "$tree"
  mkdir -p "$tree"/{bin,dev,proc,sys,newroot,mods}
  cp "$(command -v busybox || echo /bin/busybox)" "$tree/bin/busybox"
  : > "$tree/mods/order"
  for m in $(for x in virtio_pci 9pnet_virtio 9p; do modprobe -S "$kver" --show-depends "$x"; done |
    awk '$1 == "insmod" { print $2 }'); do
    grep -qx "$(basename "$m")" "$tree/mods/order" && continue
    cp "$m" "$tree/mods/"
    basename "$m" >> "$tree/mods/order"
  done
  cat > "$tree/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /mods/order); do insmod /mods/$m || echo "init: insmod $m failed"; done
o=trans=virtio,version=9p2000.L,msize=524288,cache=loose
mount -t 9p -o ro,$o root /newroot || { echo "init: cannot mount the root"; poweroff -f; }
mount -t tmpfs -o size=1g tmpfs /newroot/tmp
mkdir -p /newroot/tmp/out
mount -t 9p -o $o out /newroot/tmp/out || echo "init: cannot mount the share"
repo=$(cat /newroot/tmp/out/repo-path)
case "$repo" in
  /tmp/*) mkdir -p "/newroot$repo"; mount -t 9p -o ro,$o repo "/newroot$repo" ;;
esac
mount -t tmpfs tmpfs /newroot/run
for f in proc sys dev; do mount --move /$f /newroot/$f; done
exec switch_root /newroot /bin/sh /tmp/out/guest.sh
INIT
  chmod +x "$tree/init"
  (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) > "$initramfs.tmp"
  mv "$initramfs.tmp" "$initramfs"
fi

# --- The guest's script: loopback up, the drivers, the tests; output and status to the share.
share=$repo/target/vm-test
rm -rf "$share"
mkdir -p "$share"
echo "$repo" > "$share/repo-path"
cat > "$share/guest.sh" <<GUEST
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
ip link set lo up
{
  echo "guest: kernel \$(uname -r), \$(nproc) cpus, userspace at \$(cut -d' ' -f1 /proc/uptime) s"
  modprobe vivid && modprobe snd-aloop && echo "guest: vivid and snd-aloop loaded"
  # A second camera that sends JPEG frames (vivid sends none), the first free number after vivid's.
  modprobe v4l2loopback video_nr=5 card_label=loopcam exclusive_caps=1 &&
    echo "guest: v4l2loopback loaded as /dev/video5"
  ls /dev/video* /dev/snd 2>&1 | tr '\n' ' '; echo
  cd "$repo" && RUST_BACKTRACE=1 "$tests" --ignored --test-threads 1 "$filter"
  echo \$? > /tmp/out/rc
} > /tmp/out/guest.log 2>&1
sync
poweroff -f
GUEST

log "booting kernel $kver under emulation to run '$filter'"
started=$SECONDS
rc=0
timeout -k 10 "${VM_TIMEOUT:-900}" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -m "${VM_MEM:-2G}" -smp "${VM_SMP:-2}" \
  -nodefaults -no-reboot -display none -monitor none -serial file:"$share/console.log" \
  -kernel "/boot/vmlinuz-$kver" -initrd "$initramfs" \
  -append "console=ttyS0 rdinit=/init panic=-1 loglevel=4 no_timer_check" \
  -virtfs local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$share",mount_tag=out,security_model=none,multidevs=remap \
  -virtfs local,path="$repo",mount_tag=repo,security_model=none,readonly=on,multidevs=remap \
  < /dev/null || rc=$?
[ "$rc" -ne 124 ] || log "the guest ran past ${VM_TIMEOUT:-900} s and was stopped"

# --- Each test's result, as the guest's test harness printed it.
if [ -f "$share/guest.log" ]; then
  grep -E '^guest:|^test |^test result|panicked|^failures:' "$share/guest.log" >&2 || true
fi
status=$(cat "$share/rc" 2>/dev/null || echo "none")
log "guest finished in $((SECONDS - started)) s; tests' exit status: $status (log: $share/guest.log)"
[ "$status" = 0 ]
