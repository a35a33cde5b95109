#!/usr/bin/env bash
# Installs dependencies, builds vitalgate with AddressSanitizer and UndefinedBehaviorSanitizer,
# and runs every test: unit tests, integration tests against a real mosquitto with mutual TLS on
# loopback (pseudo-terminals, a private dbus-daemon with a fake BlueZ, fault injection), then
# the Debian package (tests/package), the ThreadSanitizer run of the lock-free paths and every
# fuzz target for a bounded time.
#   scripts/test.sh            everything
#   scripts/test.sh --quick    the sanitizer build's unit and integration tests only
# Environment: JOBS (default 2), FUZZ_SECONDS (default 20 per target).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1

scripts/install-deps.sh
jobs=${JOBS:-2}
start=$(date +%s)

echo "== build (asan: address + undefined behaviour sanitizers; the benchmarks are built, not run)"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"

echo "== unit and integration tests (asan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --preset asan --timeout 900
[ "$quick" = 1 ] && exit 0

echo "== Debian package: build, lintian, install, run as the unit does, upgrade, remove, purge"
timeout 1200 tests/package/test-package.sh

echo "== ThreadSanitizer: rings, engine thread and its hand-offs"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs" --target unit_core unit_engine unit_transport
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ctest --preset tsan -L tsan --timeout 600

echo "== fuzz targets (libFuzzer, ${FUZZ_SECONDS:-20}s each)"
scripts/fuzz.sh

echo "== all tests passed in $(( $(date +%s) - start ))s"
