#!/usr/bin/env bash
# Checks systemd/edgeinfer.service with systemd's own tools: `systemd-analyze verify`, and the
# offline security score, which must be "OK" or better. Needs a built binary: verify checks that
# ExecStart exists, so the unit is checked in a copy pointing at target/release/edgeinfer.
set -euo pipefail
cd "$(dirname "$0")/.."

binary="$PWD/target/release/edgeinfer"
[ -x "$binary" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/usr/bin/edgeinfer|$binary|g" systemd/edgeinfer.service > "$work/edgeinfer.service"

systemd-analyze verify --recursive-errors=no "$work/edgeinfer.service"
echo "systemd-analyze verify: OK"

report=$(systemd-analyze security --offline=yes "$work/edgeinfer.service")
line=$(printf '%s\n' "$report" | grep 'Overall exposure level')
echo "$line"
score=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9.]+) .*/\1/')
# systemd's scale: below 2.0 is OK, below 5.0 MEDIUM, then EXPOSED and UNSAFE.
awk -v s="$score" 'BEGIN { exit !(s < 2.0) }' || {
  printf '%s\n' "$report" >&2
  echo "exposure $score is worse than OK" >&2
  exit 1
}
