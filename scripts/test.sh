#!/usr/bin/env bash
# Installs what is needed, builds everything and runs the whole test suite
# (unit, integration against real SQLite files and a throwaway PostgreSQL
# the tests start themselves, crash/kill -9 tests). Prints ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-test -j2
cd build-test
ctest --output-on-failure --timeout 600 -j2
