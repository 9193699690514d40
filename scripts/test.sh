#!/usr/bin/env bash
# Installs what is needed, builds everything and runs the whole test suite
# (unit, integration against real SQLite files and a throwaway PostgreSQL
# the tests start themselves, crash/kill -9 tests, fuzz tests). Between the
# build and the tests, Clang's thread-safety analysis runs over the sources
# of build-test (scripts/check-thread-safety.sh; any warning fails). When that
# passes, runs the unit and fuzz tests again under AddressSanitizer +
# UndefinedBehaviorSanitizer in a second tree, build-asan
# (scripts/test-sanitizers.sh; TREATY_SKIP_SANITIZE=1 skips it). Prints
# ctest's summary last; fails on any test failure or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-test -j2
scripts/check-thread-safety.sh build-test
(cd build-test && ctest --output-on-failure --timeout 600 -j2)

if [ "${TREATY_SKIP_SANITIZE:-0}" != "1" ]; then
  scripts/test-sanitizers.sh
fi
