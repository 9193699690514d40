#pragma once

// What this build of Treaty is: the release version (CMake's
// project(VERSION) in the top CMakeLists.txt), the git commit the tree was
// configured from, and the CMake build type. Printed by `treatyd --version`
// and `treatyctl --version`, exported as the treaty_build_info gauge of
// /metrics (docs/operations.md, "Versions").
//
// The values are fixed when CMake configures the tree (version.cc.in): the
// commit is `git rev-parse --short HEAD` then, or the cache variable
// TREATY_GIT_COMMIT when set (packagers building from a tarball), or
// "unknown" when neither is available.
//
// Constants only: thread-safe, never throw.

#include <string>
#include <string_view>

namespace treaty {

// "0.1.0": MAJOR.MINOR.PATCH.
std::string_view Version();
// Short git commit ("ed3acab"), or "unknown".
std::string_view GitCommit();
// CMAKE_BUILD_TYPE ("RelWithDebInfo", "Debug", ...), or "unknown".
std::string_view BuildType();
// "PROGRAM 0.1.0 (git ed3acab, built RelWithDebInfo)", without a newline.
std::string VersionLine(std::string_view program);

}  // namespace treaty
