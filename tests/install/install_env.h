#pragma once

// Helpers of the installation and packaging tests (tests/install/): running
// the build's own tools (cmake, cpack, the C++ compiler, pkg-config,
// dpkg-deb, nm) as child processes, and where this tree's source and build
// are. The tools' paths are those CMake found when it configured the tree
// (tests/install/CMakeLists.txt).
//
// Not thread-safe (RunTool changes nothing shared, but tests call it from
// the test thread only).

#include <string>
#include <vector>

namespace treaty::testing {

struct ToolRun {
  int exit_code = -1;  // -1: did not finish in time
  std::string output;  // stdout and stderr, interleaved
  bool ok() const { return exit_code == 0; }
};

// Runs argv (argv[0] an absolute path) with its output in `log_path`
// (replaced if it exists), and
// waits up to `timeout_ms`; a child still running then is killed.
ToolRun RunTool(const std::vector<std::string>& argv, const std::string& log_path,
                int timeout_ms = 120000);

// argv joined with spaces, for messages.
std::string CommandLine(const std::vector<std::string>& argv);

// Whitespace-separated words of `text` (pkg-config output).
std::vector<std::string> Words(const std::string& text);

// The whole content of a file ("" when it cannot be read).
std::string ReadFile(const std::string& path);

// The tree under test and the tools CMake found for it.
struct BuildTree {
  static std::string SourceDir();
  static std::string BinaryDir();
  static std::string Version();  // project(VERSION), e.g. "0.1.0"
  static std::string LibDir();   // CMAKE_INSTALL_LIBDIR, relative to a prefix: "lib"
  static std::string Cmake();
  static std::string Cpack();
  static std::string Cxx();
  static std::string PkgConfig();
  static std::string DpkgDeb();
  static std::string Nm();
  static std::string Readelf();
  static std::string Ldd();
};

}  // namespace treaty::testing
