#include "install/install_env.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "support/subprocess.h"

namespace treaty::testing {

ToolRun RunTool(const std::vector<std::string>& argv, const std::string& log_path, int timeout_ms) {
  std::remove(log_path.c_str());  // Subprocess appends: start afresh
  Subprocess proc(argv, log_path);
  ToolRun run;
  if (!proc.Start().ok()) {
    run.output = "cannot start " + CommandLine(argv);
    return run;
  }
  run.exit_code = proc.Wait(timeout_ms);
  if (run.exit_code < 0) proc.Kill();
  run.output = proc.Log();
  return run;
}

std::string CommandLine(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& arg : argv) line += (line.empty() ? "" : " ") + arg;
  return line;
}

std::vector<std::string> Words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string BuildTree::SourceDir() { return TREATY_INSTALL_SOURCE_DIR; }
std::string BuildTree::BinaryDir() { return TREATY_INSTALL_BINARY_DIR; }
std::string BuildTree::Version() { return TREATY_INSTALL_VERSION; }
std::string BuildTree::LibDir() { return TREATY_INSTALL_LIBDIR; }
std::string BuildTree::Cmake() { return TREATY_INSTALL_CMAKE; }
std::string BuildTree::Cpack() { return TREATY_INSTALL_CPACK; }
std::string BuildTree::Cxx() { return TREATY_INSTALL_CXX; }
std::string BuildTree::PkgConfig() { return TREATY_INSTALL_PKG_CONFIG; }
std::string BuildTree::DpkgDeb() { return TREATY_INSTALL_DPKG_DEB; }
std::string BuildTree::Nm() { return TREATY_INSTALL_NM; }
std::string BuildTree::Readelf() { return TREATY_INSTALL_READELF; }
std::string BuildTree::Ldd() { return TREATY_INSTALL_LDD; }

}  // namespace treaty::testing
