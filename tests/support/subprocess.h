#pragma once

// Subprocess: runs a program (treatyd, an example) as a child process for
// fault tests: start, SIGKILL/SIGTERM/SIGSTOP it, wait for it. Output goes to
// a log file so a failing test can show it. Also: a free loopback port and
// the path of a built binary.
//
// Not thread-safe; one owner. The destructor SIGKILLs a still-running child.

#include <sys/types.h>

#include <string>
#include <vector>

#include "treaty/status.h"

namespace treaty::testing {

class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, std::string log_path);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  [[nodiscard]] Status Start();
  // Sends `sig`; no wait.
  void Signal(int sig);
  // Waits for exit up to timeout_ms; returns the exit status (or 128+signal),
  // or -1 on time-out.
  int Wait(int timeout_ms);
  // SIGKILL and reap.
  void Kill();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::string Log() const;

 private:
  std::vector<std::string> argv_;
  std::string log_path_;
  pid_t pid_ = -1;
};

// A loopback TCP port that was free a moment ago.
int FreePort();
// Path of a binary built in this tree: $TREATY_BIN_DIR/name (set by ctest),
// else ../coordinator/name relative to the test's working directory.
std::string BinaryPath(const std::string& name);
// A fresh temporary folder (mkdtemp under /tmp).
std::string MakeTempDir(const std::string& prefix);

}  // namespace treaty::testing
