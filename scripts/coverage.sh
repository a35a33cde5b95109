#!/usr/bin/env bash
# Line coverage of vitalgate's own code (src/ and include/), measured with gcov and lcov from
# Debian packages, and written to docs/coverage.md as a table per module and per file.
#   scripts/coverage.sh            unit tests only (about 20 minutes here: build and run)
#   scripts/coverage.sh --all      unit and integration tests (the daemon's own runs count too)
# The HTML report goes to build/coverage/html (not committed). Environment: JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scope=unit
[ "${1:-}" = "--all" ] && scope=all

VITALGATE_EXTRA_PACKAGES="lcov" scripts/install-deps.sh
jobs=${JOBS:-2}
build=build/coverage

cmake --preset coverage >/dev/null
cmake --build --preset coverage -j "$jobs"

lcov --quiet --zerocounters --directory "$build"
# A baseline of every compiled line at zero, so that a file no test runs counts as 0 % instead
# of being left out.
lcov --quiet --capture --initial --directory "$build" --output-file "$build/base.info" \
  --ignore-errors gcov,source
if [ "$scope" = unit ]; then
  ctest --preset coverage -L unit -j "$jobs" --timeout 900
else
  ctest --preset coverage -j "$jobs" --timeout 900
fi

lcov --quiet --capture --directory "$build" --output-file "$build/tests.info" \
  --ignore-errors gcov,source
lcov --quiet -a "$build/base.info" -a "$build/tests.info" --output-file "$build/all.info"
lcov --quiet --extract "$build/all.info" "$PWD/src/*" "$PWD/include/*" \
  --output-file "$build/vitalgate.info"
genhtml --quiet --output-directory "$build/html" "$build/vitalgate.info" >/dev/null

python3 scripts/coverage_table.py "$build/vitalgate.info" --root "$PWD" --scope "$scope" \
  --command "scripts/coverage.sh${1:+ $1}" > docs/coverage.md
echo "coverage: docs/coverage.md; HTML in $build/html/index.html"
