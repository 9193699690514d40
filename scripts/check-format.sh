#!/usr/bin/env bash
# Fails (listing the files) when a tracked C++ file differs from what
# clang-format makes of it with the checked-in .clang-format. Fix with:
#   git ls-files '*.h' '*.cc' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
  echo "clang-format is not installed (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
bad=()
while IFS= read -r f; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.h' '*.cc')
if [ "${#bad[@]}" -gt 0 ]; then
  echo "not clang-formatted (${#bad[@]} files):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "format check: every C++ file is clang-formatted"
