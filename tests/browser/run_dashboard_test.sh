#!/usr/bin/env bash
# Runs the dashboard browser test (registered with ctest as
# dashboard_browser_test): copies the test and its package.json/lock into
# WORK_DIR (in the build folder), installs playwright-core there with
# `npm ci` (only when the lock file changed; node_modules is never in the
# source tree), then runs the test against TREATYD in Debian's Chromium.
# Screenshots land in WORK_DIR/artifacts/.
#   usage: run_dashboard_test.sh WORK_DIR TREATYD
set -euo pipefail
work="$1"
treatyd="$2"
src="$(cd "$(dirname "$0")" && pwd)"
chromium="${TREATY_CHROMIUM:-/usr/bin/chromium}"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "dashboard_browser_test: node/npm not found; run scripts/install-deps.sh" >&2
  exit 1
fi
if [ ! -x "$chromium" ]; then
  echo "dashboard_browser_test: $chromium not found; run scripts/install-deps.sh (Debian package chromium)" >&2
  exit 1
fi

mkdir -p "$work/artifacts"
cp "$src/package.json" "$src/package-lock.json" "$src/dashboard.test.mjs" "$work/"
cd "$work"
if ! cmp -s package-lock.json node_modules/.treaty-installed-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.treaty-installed-lock
fi
echo "node $(node --version), $("$chromium" --version 2>/dev/null || echo chromium)"
exec node dashboard.test.mjs "$treatyd" "$work/artifacts" "$chromium"
