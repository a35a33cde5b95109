#!/usr/bin/env bash
# Builds the Debian package from this tree (release build, no tests) with the Debian tools:
#   scripts/build-deb.sh [OUTDIR]       (default build/deb)
# The tree's files (committed or not, without build/) are copied to a scratch directory, because
# dpkg-buildpackage writes its results beside the source directory. OUTDIR receives
# vitalgate_<version>_<arch>.deb, the debug symbols package, .buildinfo and .changes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-build/deb}")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/vitalgate" "$out"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | grep -zv '^build/' |
    xargs -0 tar --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$scratch/vitalgate"
else
  tar --exclude=./build -cf - . | tar -xf - -C "$scratch/vitalgate"
fi
(cd "$scratch/vitalgate" && DEB_BUILD_OPTIONS="parallel=${JOBS:-2} ${DEB_BUILD_OPTIONS:-}" \
  dpkg-buildpackage -b -uc -us)
find "$scratch" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.ddeb' -o -name '*.buildinfo' \
  -o -name '*.changes' \) -exec cp {} "$out/" \;
ls "$out"/*.deb
