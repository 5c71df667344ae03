# Shared by scripts/build-release.sh and scripts/test-arm.sh: the release targets and how to
# cross-build them on a Debian machine without Docker. Source it; it defines functions only.
#
# Every release binary is linked by zig (through cargo-zigbuild) against an older glibc than the
# build machine's, so that it starts on the oldest distribution each architecture's boards run
# (JetPack 5 and Raspberry Pi OS bullseye have glibc 2.31).

# Debian architecture -> Rust target triple.
triple_of() {
  case "$1" in
    amd64) echo x86_64-unknown-linux-gnu ;;
    arm64) echo aarch64-unknown-linux-gnu ;;
    armhf) echo armv7-unknown-linux-gnueabihf ;;
    *) echo "unknown architecture $1 (amd64, arm64 or armhf)" >&2; return 2 ;;
  esac
}

# Debian architecture -> Debian's multiarch triple (library folders, pkg-config files).
multiarch_of() {
  case "$1" in
    amd64) echo x86_64-linux-gnu ;;
    arm64) echo aarch64-linux-gnu ;;
    armhf) echo arm-linux-gnueabihf ;;
  esac
}

# The oldest glibc each package must run on.
glibc_baseline() {
  echo 2.31
}

# Cargo features of each architecture's release build: onnxruntime publishes no 32-bit ARM
# build, so armhf is tract only.
features_of() {
  case "$1" in
    armhf) echo "" ;;
    *) echo ort ;;
  esac
}

# What is missing to cross-build for each of the given architectures; prints nothing when all is
# there.
cross_missing() {
  local arch triple multiarch pkgs=()
  for arch in "$@"; do
    triple=$(triple_of "$arch") || return 2
    multiarch=$(multiarch_of "$arch")
    rustup target list --installed 2>/dev/null | grep -qx "$triple" ||
      echo "Rust standard library for $triple: rustup target add $triple"
    if [ "$arch" != "$(dpkg --print-architecture)" ]; then
      dpkg --print-foreign-architectures | grep -qx "$arch" ||
        echo "foreign architecture $arch: sudo dpkg --add-architecture $arch && sudo apt-get update"
    fi
    [ -f "/usr/lib/$multiarch/pkgconfig/alsa.pc" ] || pkgs+=("libasound2-dev:$arch")
  done
  command -v pkg-config >/dev/null || pkgs+=(pkg-config)
  command -v objdump >/dev/null || pkgs+=(binutils)
  command -v file >/dev/null || pkgs+=(file)
  [ ${#pkgs[@]} -eq 0 ] || echo "packages: sudo apt-get install -y ${pkgs[*]}"
}

# Makes cargo-zigbuild and zig available (a Python virtual environment from
# scripts/release-requirements.txt, cached and rebuilt when the file changes) and puts them on PATH.
zig_tools() {
  local repo=$1 python=${PYTHON:-python3}
  local dir="${EDGEINFER_TOOLS:-$HOME/.cache/edgeinfer/tools}/release"
  local want have=""
  want=$(sha256sum "$repo/scripts/release-requirements.txt" | cut -d' ' -f1)
  [ -f "$dir/stamp" ] && have=$(cat "$dir/stamp")
  if [ "$want" != "$have" ] || [ ! -x "$dir/bin/cargo-zigbuild" ]; then
    echo "release tools: installing $(grep -v '^#' "$repo/scripts/release-requirements.txt" | xargs) into $dir" >&2
    rm -rf "$dir"
    "$python" -m venv "$dir" ||
      { echo "cannot create a Python virtual environment: sudo apt-get install -y python3-venv" >&2; return 1; }
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$repo/scripts/release-requirements.txt" || return 1
    echo "$want" > "$dir/stamp"
  fi
  export PATH="$dir/bin:$PATH"
}

# Environment of a cross build for a Debian architecture: pkg-config finds that architecture's
# ALSA headers; symbols Debian 12's own libasound needs from its newer glibc do not fail the
# link (the board's libasound is what runs; the binary's own needs are checked afterwards with
# `glibc_needed`); the linker drops the symbol table (the package ships it stripped).
cross_env() {
  local arch=$1 triple multiarch var
  triple=$(triple_of "$arch") || return 2
  multiarch=$(multiarch_of "$arch")
  var=$(echo "$triple" | tr 'a-z-' 'A-Z_')
  export PKG_CONFIG_ALLOW_CROSS=1
  export "PKG_CONFIG_LIBDIR_${triple//-/_}=/usr/lib/$multiarch/pkgconfig:/usr/share/pkgconfig"
  export "CARGO_TARGET_${var}_RUSTFLAGS=-C link-arg=-Wl,--allow-shlib-undefined"
  export CARGO_PROFILE_RELEASE_STRIP=symbols
}

# The highest GLIBC_ symbol version an ELF file needs (its own dynamic symbols only).
glibc_needed() {
  objdump -T "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1
}

# Whether version $1 is at most version $2.
version_le() {
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ]
}
