#!/usr/bin/env bash
# The sanitizer run: builds a second tree, build-asan, with AddressSanitizer +
# UndefinedBehaviorSanitizer (-DTREATY_SANITIZE=ON, -O1 -g) and runs the tests
# labelled `sanitize` in it: the unit tests and the fuzz tests (tests/fuzz/),
# which start a sanitized treatyd. Only those test binaries and treatyd are
# built, to keep CI time down. scripts/test.sh runs this after the normal
# suite; run it alone after scripts/install-deps.sh.
#
# Every sanitized process, test binaries and the treatyd children alike,
# writes its AddressSanitizer / LeakSanitizer reports to
# build-asan/sanitizer-reports/ (log_path). Any such report fails the run,
# even one from a child whose test passed; the reports are printed, then
# ctest's summary again. UndefinedBehaviorSanitizer (combined with ASan) writes
# to stderr whatever log_path says, and aborts the process: the failing test
# shows it (the fuzz tests print treatyd's log when it dies). Exit status:
# ctest's, or 1 when there was a report.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${TREATY_ASAN_BUILD_DIR:-build-asan}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DTREATY_SANITIZE=ON

# Test names are target names (treaty_add_test); tests/fuzz needs treatyd.
mapfile -t targets < <(cd "$build" && ctest -N -L sanitize | sed -n 's/^ *Test *#[0-9]*: *//p')
if [ "${#targets[@]}" -eq 0 ]; then
  echo "no test is labelled sanitize" >&2
  exit 1
fi
echo "sanitizer run: ${targets[*]}"
cmake --build "$build" -j2 --target treatyd "${targets[@]}"

reports="$(pwd)/$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
# Leak checking is on (LeakSanitizer works in our CI container); treatyd
# children are stopped with SIGKILL by the tests, so only the test binaries'
# own exits are leak-checked. Leaks inside libpq/libpqxx (third-party, not
# built here) are suppressed: scripts/lsan-suppressions.txt.
export ASAN_OPTIONS="log_path=$reports/asan:abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$(pwd)/scripts/lsan-suppressions.txt:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"

cd "$build"
set +e
ctest --output-on-failure --timeout 900 -j2 -L sanitize 2>&1 | tee ctest-sanitize.log
status=${PIPESTATUS[0]}
set -e
shopt -s nullglob
found=("$reports"/*)
if [ "${#found[@]}" -gt 0 ]; then
  echo
  echo "=== ${#found[@]} sanitizer report(s) ==="
  for f in "${found[@]}"; do
    echo "--- $f"
    head -c 20000 "$f"
  done
  echo
  echo "=== ctest summary (again) ==="
  sed -n '/tests passed/,$p' ctest-sanitize.log
  echo "FAILED: sanitizer reports in $reports"
  exit 1
fi
exit "$status"
