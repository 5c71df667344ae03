#!/usr/bin/env bash
# The ARM tests: builds the aarch64 and armv7 release binaries and packages
# (scripts/build-release.sh) and their unit tests, then runs, for each architecture:
#
#   under qemu-user (single-threaded only: threads do not run under qemu-user on every host):
#     --version, print-default-config and check-config (valid and broken) with the same output as
#     on x86, and `infer --threads 1` (tract) on every model below;
#   in a full-system VM (scripts/arm-vm.sh; everything with threads or onnxruntime):
#     the unit tests; `infer` on every model with tract at 1, 2, 4 threads and the default, and on
#     arm64 with the package's bundled onnxruntime (found without ORT_DYLIB_PATH) at 1, 2, 4;
#     `bench` from the unpacked package; the demo for 30 s against a mosquitto in the guest, with
#     the default thread counts and with 4 threads per model, stopped with SIGTERM; on arm64 the
#     demo again with ORT_DYLIB_PATH naming the x86-64 onnxruntime, which must be refused by name
#     while the models run on tract.
#
# Every `infer` output must match onnxruntime on x86 (Python) within the conformance suite's
# relative error of 1e-4, and outputs of different thread counts must agree.
#
# Models: the demo's colour model, MobileNetV2 (scripts/gen-bench-models.py), and the pinned real
# models silero_vad_openvino_16k, ch_ppocr_mobile_v2.0_cls_mobile and ch_PP-OCRv4_det_infer.
# Integration tests (tests/) are not run on ARM: they drive the daemon from the host with a broker,
# socat, ffmpeg and Python around it; the VM runs the daemon's whole path (sensors, inference,
# outbox, MQTT, shutdown) through the demo instead.
#
#   scripts/test-arm.sh [--arch arm64|armhf]...    (default: both)
#   scripts/test-arm.sh --missing                  what is missing to run them
#
# Results and logs: target/arm-tests/. Needs what scripts/build-release.sh and scripts/arm-vm.sh
# need, qemu-user-static, and the Python packages of scripts/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=lib/cross.sh
. scripts/lib/cross.sh
# The interpreter itself, not a name on PATH: the release tools' virtual environment goes first on
# PATH below, and its python has none of the test packages.
PYTHON=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)' 2>/dev/null || echo "${PYTHON:-python3}")
export PYTHON

# What is missing to run these tests, one line each (nothing when all is there).
missing() {
  cross_missing arm64 armhf
  command -v qemu-aarch64-static >/dev/null && command -v qemu-arm-static >/dev/null ||
    echo "qemu-user: sudo apt-get install -y qemu-user-static"
  local vm
  vm=$(scripts/arm-vm.sh missing)
  [ -z "$vm" ] || echo "full-system emulation: $vm"
  "$PYTHON" -c "import onnxruntime, numpy, onnx" 2>/dev/null ||
    echo "Python packages: pip install -r scripts/requirements.txt"
}

arches=()
while [ $# -gt 0 ]; do
  case "$1" in
    --missing) missing; exit 0 ;;
    --arch) case "$2" in arm64 | armhf) arches+=("$2") ;; *) echo "--arch arm64 or armhf" >&2; exit 2 ;; esac; shift 2 ;;
    -h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ ${#arches[@]} -gt 0 ] || arches=(arm64 armhf)

work=target/arm-tests
rm -rf "$work"
mkdir -p "$work"
started=$SECONDS
failures=()
fail() { failures+=("$1"); echo "FAIL $1" >&2; }
pass() { echo "ok   $1" >&2; }

# --- Build: binaries and packages, and the unit tests with the same profile and flags. The
# release profile, not the packages' dist one: its fat-LTO builds would add about 10 minutes per
# architecture to CI (the same code; scripts/build-release.sh builds dist).
args=()
for arch in "${arches[@]}"; do args+=(--arch "$arch"); done
scripts/build-release.sh "${args[@]}" --profile release --out "$work/dist"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
zig_tools "$repo"
declare -A unit_tests
for arch in "${arches[@]}"; do
  triple=$(triple_of "$arch")
  features=$(features_of "$arch")
  unit_tests[$arch]=$(
    cross_env "$arch"
    cargo-zigbuild test --release --locked --target "$triple.$(glibc_baseline "$arch")" \
      ${features:+--features "$features"} --lib --no-run --message-format=json 2>/dev/null |
      "$PYTHON" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])'
  )
  [ -n "${unit_tests[$arch]}" ] || { echo "no unit test binary for $arch" >&2; exit 1; }
done

# --- Models, inputs and x86 references.
scripts/fetch-models.sh silero_vad_openvino_16k.onnx ch_ppocr_mobile_v2.0_cls_mobile.onnx \
  ch_PP-OCRv4_det_infer.onnx >/dev/null
models_dir=${EDGEINFER_MODELS_DIR:-models/fetched}
"$PYTHON" scripts/gen-bench-models.py "$work/bench-models" > "$work/gen-bench-models.log"
fixtures="$repo/$work/fixtures"
"$PYTHON" scripts/arm_check.py fixtures "$fixtures" models/colour.onnx \
  "$work/bench-models/mobilenetv2.onnx" "$models_dir/silero_vad_openvino_16k.onnx" \
  "$models_dir/ch_ppocr_mobile_v2.0_cls_mobile.onnx" "$models_dir/ch_PP-OCRv4_det_infer.onnx" >&2

# An onnxruntime of the wrong architecture for the arm64 guest to refuse: the pinned x86-64 one.
scripts/fetch-onnxruntime.sh amd64 target/onnxruntime/amd64 >&2

host_bin=$work/host/edgeinfer
# The build scripts/test.sh has just made (so nothing is rebuilt), as the x86 reference.
cargo build --release --locked --quiet --features ort
mkdir -p "$work/host"
cp target/release/edgeinfer "$host_bin"
cat > "$work/broken.toml" <<'EOF'
[device]
id = "bad id"
[[models]]
id = "m"
path = "missing.onnx"
preprocess = { type = "record" }
postprocess = { type = "classify", top_k = 0 }
[[sensors]]
id = "s"
model = "nope"
type = "line_replay"
path = "missing.csv"
EOF

# The demo's config with absolute paths, state in the guest's /tmp, and `threads` per model.
demo_config() {
  local threads=$1 name=$2
  sed -e "s|\.\./models/|$repo/models/|; s|\"demo-data/|\"$repo/config/demo-data/|" \
    -e "s|^data_dir = .*|data_dir = \"/tmp/$name-state\"|" config/demo.toml |
    if [ -n "$threads" ]; then sed "/^\[\[models\]\]/a threads = $threads"; else cat; fi
}

# infer_cases BINARY_COMMAND OUT_DIR [infer options]: every case, outputs under OUT_DIR/<case>.
write_infer_function() {
  cat <<'EOF'
infer_cases() {
  out=$1; shift
  mkdir -p "$out"
  while read -r case model inputs; do
    ins=""
    for i in $inputs; do ins="$ins --input $i"; done
    # shellcheck disable=SC2086
    if ! timeout 600 $E infer "$@" --model "$model" $ins --output "$out/$case" > "$out/$case.log" 2>&1; then
      echo "RESULT FAIL infer $(basename "$out") $case: $(tail -n 1 "$out/$case.log")"
    fi
  done < "$CASES"
}
EOF
}

for arch in "${arches[@]}"; do
  triple=$(triple_of "$arch")
  dir="$repo/$work/$arch"
  mkdir -p "$dir"
  deb="$work/dist/edgeinfer_${version}_$arch.deb"
  dpkg-deb -x "$deb" "$dir/pkg"
  scripts/arm-vm.sh prepare "$arch"
  sysroot="${EDGEINFER_VM_CACHE:-$HOME/.cache/edgeinfer/vm}/$arch/root"
  qemu=$([ "$arch" = arm64 ] && echo qemu-aarch64-static || echo qemu-arm-static)
  user() { "$qemu" -L "$sysroot" "$dir/pkg/usr/bin/edgeinfer" "$@"; }

  # --- qemu-user: single-threaded commands.
  if user --version > "$dir/version.txt" 2>&1 && grep -q "^edgeinfer $version" "$dir/version.txt"; then
    pass "$arch qemu-user --version"
  else fail "$arch qemu-user --version: $(cat "$dir/version.txt")"; fi
  if cmp -s <(user print-default-config) <("$host_bin" print-default-config); then
    pass "$arch qemu-user print-default-config is byte-identical to x86"
  else fail "$arch qemu-user print-default-config differs from x86"; fi
  for config in config/demo.toml "$work/broken.toml"; do
    a=$(user check-config "$config" 2>&1; echo "exit $?")
    b=$("$host_bin" check-config "$config" 2>&1; echo "exit $?")
    if [ "$a" = "$b" ]; then pass "$arch qemu-user check-config $(basename "$config"): $(echo "$a" | tail -n 1)"
    else fail "$arch qemu-user check-config $config: $a (x86: $b)"; fi
  done
  (
    E="$qemu -L $sysroot $dir/pkg/usr/bin/edgeinfer" CASES="$fixtures/cases.txt"
    eval "$(write_infer_function)"
    infer_cases "$dir/user/tract-t1" --backend tract --threads 1
  ) | tee "$dir/user.log" | grep -q "RESULT FAIL" && fail "$arch qemu-user infer: $(grep 'RESULT FAIL' "$dir/user.log" | head -n 3)"
  if "$PYTHON" scripts/arm_check.py compare "$fixtures" "$dir/user/tract-t1" > "$dir/user-compare.txt"; then
    pass "$arch qemu-user infer --threads 1: $(head -n 1 "$dir/user-compare.txt")"
  else fail "$arch qemu-user infer: $(grep FAIL "$dir/user-compare.txt" | head -n 3)"; fi

  # --- The VM.
  demo_config "" demo-default > "$dir/demo-default.toml"
  demo_config 4 demo-t4 > "$dir/demo-t4.toml"
  demo_config "" demo-badlib > "$dir/demo-badlib.toml"
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n' > "$dir/mosquitto.conf"
  runs="tract-t1 tract-t2 tract-t4 tract-tdefault"
  [ "$arch" = arm64 ] && runs="$runs ort-cpu-t1 ort-cpu-t2 ort-cpu-t4"
  {
    echo "E=/out/pkg/usr/bin/edgeinfer CASES=$fixtures/cases.txt BENCH=$repo/$work/bench-models"
    echo "UNIT=${unit_tests[$arch]} REPO=$repo ARCH=$arch X86_ORT=$repo/target/onnxruntime/amd64/libonnxruntime.so.1.31.1"
    echo "RUNS='$runs'"
    write_infer_function
    cat <<'EOF'
unset ORT_DYLIB_PATH
echo "unit tests"
timeout 1500 "$UNIT" --test-threads 2 > /out/unit.log 2>&1
echo "RESULT unit rc=$? $(grep '^test result' /out/unit.log | tail -n 1)"
for run in $RUNS; do
  backend=${run%-t*}; threads=${run##*-t}
  echo "infer $run"
  if [ "$threads" = default ]; then infer_cases "/out/infer/$run" --backend "$backend"
  else infer_cases "/out/infer/$run" --backend "$backend" --threads "$threads"; fi
done
echo "bench"
if [ "$ARCH" = arm64 ]; then set -- --backend tract --backend ort-cpu; else set -- --backend tract; fi
timeout 900 $E bench --model "$BENCH/mobilenetv2.onnx" "$@" --runs 5 --warmup 1 > /out/bench.log 2>&1
echo "RESULT bench rc=$?"
mosquitto -c /out/mosquitto.conf -d
sleep 1
demo() {
  name=$1; shift
  mosquitto_sub -h 127.0.0.1 -p 1883 -t 'edgeinfer/#' -v > "/out/$name.sub" &
  sub=$!
  env "$@" $E run --config "/out/$name.toml" > "/out/$name.log" 2>&1 &
  pid=$!
  sleep 30
  kill -TERM $pid
  wait $pid
  echo "RESULT $name rc=$?"
  sleep 1
  kill $sub
}
echo "demo"
demo demo-default
demo demo-t4
[ "$ARCH" = arm64 ] && demo demo-badlib ORT_DYLIB_PATH="$X86_ORT"
exit 0
EOF
  } > "$dir/guest.sh"
  vm_started=$SECONDS
  if ! scripts/arm-vm.sh run "$arch" "$dir/guest.sh" "$dir"; then
    fail "$arch VM: the guest script failed; see $dir/guest.log"
  fi
  echo "$arch: VM ran for $((SECONDS - vm_started)) s" >&2
  grep "RESULT FAIL" "$dir/guest.log" && fail "$arch VM infer: $(grep 'RESULT FAIL' "$dir/guest.log" | head -n 3)"

  unit=$(grep "^RESULT unit" "$dir/guest.log" || true)
  if echo "$unit" | grep -q "rc=0 test result: ok"; then pass "$arch VM unit tests: ${unit#RESULT unit rc=0 test result: }"
  else fail "$arch VM unit tests: $unit; see $dir/unit.log"; fi

  run_dirs=()
  for run in $runs; do run_dirs+=("$dir/infer/$run"); done
  if "$PYTHON" scripts/arm_check.py compare "$fixtures" "${run_dirs[@]}" > "$dir/compare.txt"; then
    pass "$arch VM infer, every model and thread count, within 1e-4 of onnxruntime on x86"
  else fail "$arch VM infer: $(grep FAIL "$dir/compare.txt" | head -n 3)"; fi
  if [ "$arch" = arm64 ]; then
    if grep -q "onnxruntime loaded.*source=bundled" "$dir/infer/ort-cpu-t1/"*.log; then
      pass "arm64 VM ort-cpu used the package's bundled onnxruntime without ORT_DYLIB_PATH"
    else fail "arm64 VM ort-cpu: no 'onnxruntime loaded ... source=bundled' in its logs"; fi
  fi

  if grep -q "^RESULT bench rc=0" "$dir/guest.log" && grep -q "tract" "$dir/bench.log" &&
    { [ "$arch" != arm64 ] || grep -q "ort-cpu" "$dir/bench.log"; } &&
    { [ "$arch" != armhf ] || grep -q "onnxruntime.*32-bit ARM" "$dir/bench.log"; }; then
    pass "$arch VM bench on MobileNetV2 from the unpacked package"
  else fail "$arch VM bench: $(tail -n 3 "$dir/bench.log")"; fi

  demos="demo-default demo-t4"
  [ "$arch" = arm64 ] && demos="$demos demo-badlib"
  for name in $demos; do
    rc=$(sed -n "s/^RESULT $name rc=//p" "$dir/guest.log")
    topics=$(awk '{ print $1 }' "$dir/$name.sub" 2>/dev/null | grep -c "/predictions/" || true)
    sensors=$(awk '{ print $1 }' "$dir/$name.sub" 2>/dev/null | grep "/predictions/" | sort -u | wc -l)
    if [ "$rc" = 0 ] && [ "$sensors" -eq 4 ] && grep -q "Stopped" "$dir/$name.log"; then
      pass "$arch VM $name: $topics messages from all 4 sensors, clean stop"
    else fail "$arch VM $name: exit ${rc:-none}, $topics messages from $sensors sensors; see $dir/$name.log"; fi
  done
  if [ "$arch" = arm64 ]; then
    if grep "WARN" "$dir/demo-badlib.log" | grep -q "ORT_DYLIB_PATH: $repo/target/onnxruntime/amd64/libonnxruntime.so.1.31.1: built for x86-64, but this edgeinfer runs on aarch64" &&
      [ "$(grep -c 'Model loaded model=.*backend="tract"' "$dir/demo-badlib.log")" -eq 3 ]; then
      pass "arm64 VM: an x86-64 onnxruntime named by ORT_DYLIB_PATH is refused by name; the models run on tract"
    else fail "arm64 VM demo-badlib: refusal or tract fallback missing; see $dir/demo-badlib.log"; fi
  fi
done

echo
echo "ARM tests: ${arches[*]} in $((SECONDS - started)) s; results in $work/"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'FAIL %s\n' "${failures[@]}"
  exit 1
fi
echo "all passed"
