#!/usr/bin/env bash
# Runs the offline checks of deploy/kubernetes (registered with ctest as
# deploy_manifests_test): copies the checks and their package.json/lock into
# WORK_DIR (in the build folder), installs the pinned schema packages there
# with `npm ci` (only when the lock file changed; node_modules is never in
# the source tree), then runs manifests.test.mjs with node's test runner.
# No cluster and no network beyond the npm registry (for `npm ci`) is used.
#   usage: run_deploy_test.sh WORK_DIR DEPLOY_DIR
set -euo pipefail
work="$1"
export DEPLOY_DIR="$2"
src="$(cd "$(dirname "$0")" && pwd)"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "deploy_manifests_test: node/npm not found; run scripts/install-deps.sh" >&2
  exit 1
fi

mkdir -p "$work"
cp "$src/package.json" "$src/package-lock.json" "$src"/*.mjs "$work/"
cd "$work"
if ! cmp -s package-lock.json node_modules/.treaty-installed-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.treaty-installed-lock
fi
echo "node $(node --version)"
exec node --test manifests.test.mjs
