#!/usr/bin/env bash
# Builds the libFuzzer targets (preset `fuzz`: clang, AddressSanitizer + UndefinedBehaviorSanitizer,
# library code instrumented) and runs each for FUZZ_SECONDS (default 20) starting from its seed
# corpus in tests/fuzz/corpus/<target>/. Exits 1 if any target finds a crash, leak, timeout or
# sanitizer report; the reproducer is left in build/fuzz/findings/.
#   scripts/fuzz.sh                      every tests/fuzz/fuzz_*.cc target
#   scripts/fuzz.sh fuzz_nonin fuzz_...  only these
#   FUZZ_SECONDS=300 scripts/fuzz.sh     longer runs
# Reproduce a finding: build/fuzz/tests/fuzz/<target> build/fuzz/findings/<target>-crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
jobs=${JOBS:-2}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for source in tests/fuzz/fuzz_*.cc; do targets+=("$(basename "$source" .cc)"); done
fi

echo "== build (preset fuzz): ${targets[*]}"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
findings=build/fuzz/findings
mkdir -p "$findings"

failed=()
for target in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/$target
  # New inputs go to a scratch corpus under build/, so the checked-in seeds stay small.
  work=build/fuzz/corpus/$target
  mkdir -p "$seeds" "$work"
  echo "== $target for ${seconds}s"
  if ! "build/fuzz/tests/fuzz/$target" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$findings/$target-" \
      "$work" "$seeds" 2>"build/fuzz/$target.log"; then
    tail -n 40 "build/fuzz/$target.log" >&2
    failed+=("$target")
    continue
  fi
  grep -E "^stat::number_of_executed_units|^Done [0-9]+ runs" "build/fuzz/$target.log" || true
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED: ${failed[*]} (reproducers in $findings/)" >&2
  exit 1
fi
echo "== all fuzz targets ran ${seconds}s without a finding"
