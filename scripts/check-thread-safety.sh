#!/usr/bin/env bash
# Clang's thread-safety analysis over Treaty's own sources: every .cc under
# coordinator/ and participant-sdk/ that the build tree's
# compile_commands.json lists is parsed by clang++ (-fsyntax-only: nothing is
# compiled or written) with -Wthread-safety and -Wthread-safety-beta as
# errors, so an access to a TREATY_GUARDED_BY member without its mutex, a
# call of a TREATY_REQUIRES function without the lock, or a lock not released
# fails the run (see coordinator/common/thread_annotations.h). Other clang
# warnings are not enabled: this is not a second compiler's lint.
#
#   scripts/check-thread-safety.sh [BUILD_DIR [FILE...]]
#
# BUILD_DIR defaults to build-test; FILEs (paths from the repository root)
# narrow the run to those sources, for checking one's own edits.
#
# BUILD_DIR must be configured (compile_commands.json) and built far enough
# that the generated Thrift headers exist: scripts/test.sh runs this right
# after building build-test. The g++ command lines are reused with the
# compiler replaced by clang++ (CLANGXX overrides), g++-only, output and
# warning flags dropped; two files at a time. Exit status: 0 when every file
# is clean, 1 otherwise (each failing file's diagnostics are printed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-build-test}
shift || true
clangxx=${CLANGXX:-clang++}

if ! command -v "$clangxx" >/dev/null 2>&1; then
  echo "$clangxx is not installed (scripts/install-deps.sh installs clang)" >&2
  exit 1
fi
if [ ! -f "$build/compile_commands.json" ]; then
  echo "$build/compile_commands.json missing: configure and build $build first" >&2
  exit 1
fi

# One NUL-terminated shell command per source file: cd to the entry's
# directory, run clang++ with the translated arguments.
commands=$(mktemp)
trap 'rm -f "$commands"' EXIT
python3 - "$build/compile_commands.json" "$root" "$clangxx" "$@" >"$commands" <<'EOF'
import json, os, shlex, sys

db_path, root, clangxx = sys.argv[1], sys.argv[2], sys.argv[3]
only = {os.path.realpath(os.path.join(root, f)) for f in sys.argv[4:]}
dirs = tuple(os.path.join(root, d) + os.sep for d in ("coordinator", "participant-sdk"))
# Flags g++ takes and clang++ rejects or that only matter when compiling.
drop_prefixes = ("-W", "-O", "-g", "-fdiagnostics-color", "-fconcepts-diagnostics-depth",
                 "-fmax-errors", "-flto", "-fno-fat-lto-objects", "-fuse-linker-plugin",
                 "-ftree-", "-fno-tree-", "-fipa-", "-fno-ipa-", "-MD", "-MMD")
drop_with_value = ("-o", "-MF", "-MT", "-MQ")
checks = ["-fsyntax-only", "-Qunused-arguments", "-Wthread-safety", "-Wthread-safety-beta",
          "-Werror=thread-safety", "-Werror=thread-safety-beta"]

seen = set()
for entry in json.load(open(db_path)):
    directory = entry["directory"]
    source = os.path.realpath(os.path.join(directory, entry["file"]))
    if not source.endswith(".cc") or not source.startswith(dirs) or source in seen:
        continue
    if only and source not in only:
        continue
    seen.add(source)
    args = entry.get("arguments") or shlex.split(entry["command"])
    out, skip = [clangxx], False
    for arg in args[1:]:
        if skip:
            skip = False
        elif arg in drop_with_value:
            skip = True
        elif arg == "-c" or arg.startswith(drop_prefixes):
            pass
        elif os.path.realpath(os.path.join(directory, arg)) == source:
            pass
        else:
            out.append(arg)
    out += checks + [source]
    line = "cd " + shlex.quote(directory) + " && " + " ".join(shlex.quote(a) for a in out)
    sys.stdout.write(line + "\0")
EOF

count=$(tr -cd '\0' <"$commands" | wc -c)
if [ "$count" -eq 0 ]; then
  echo "no coordinator/ or participant-sdk/ source in $build/compile_commands.json" >&2
  exit 1
fi

# Each job prints its diagnostics in one piece so parallel output does not mix.
job='out=$(eval "$1" 2>&1); rc=$?; [ -z "$out" ] || printf "%s\n" "$out"; exit $rc'
start=$SECONDS
if xargs -0 -P2 -n1 bash -c "$job" _ <"$commands"; then
  echo "thread-safety check: $count files clean ($((SECONDS - start)) s)"
else
  echo "thread-safety check FAILED (clang++ -Wthread-safety, see above)" >&2
  exit 1
fi
