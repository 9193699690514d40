#!/usr/bin/env bash
# Runs openapi_schema_test: copies validate.mjs and its package.json/lock
# into WORK_DIR (in the build folder), installs the validator there with
# `npm ci` (only when the lock file changed; node_modules is never in the
# source tree), then validates DOCUMENT (docs/openapi.json).
#   usage: run_openapi_schema_test.sh WORK_DIR DOCUMENT
set -euo pipefail
work="$1"
document="$2"
src="$(cd "$(dirname "$0")" && pwd)"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "openapi_schema_test: node/npm not found; run scripts/install-deps.sh" >&2
  exit 1
fi

mkdir -p "$work"
cp "$src/package.json" "$src/package-lock.json" "$src/validate.mjs" "$work/"
cd "$work"
if ! cmp -s package-lock.json node_modules/.treaty-installed-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.treaty-installed-lock
fi
exec node validate.mjs "$document"
