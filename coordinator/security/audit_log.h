#pragma once

// AuditLog: one record per operator or admin action, allowed or denied
// (docs/security.md "Audit log"): who (identity name, how authenticated,
// peer address), what (action, gtid, branch, outcome asked), why (reason),
// and the answer (HTTP status or Thrift result). Written
//   - as one JSON object per line to --audit-log FILE when given (opened
//     O_APPEND, each line written with one write(2) and flushed; reopened on
//     SIGHUP for log rotation), and
//   - always as one info line of the main log starting with "audit:".
// Every string is escaped (control and bidirectional characters) so a
// record cannot forge another, and bounded so a caller cannot flood the
// logs: reason and detail keep at most 1024 bytes, the other strings 256;
// a longer one is cut on a UTF-8 boundary and ends with
// "... (cut from N bytes)". A write that fails is logged (throttled) and
// never fails the action: the action's durable record is the transaction
// log's event. Thread-safe.

#include <cstdint>
#include <memory>
#include <string>

#include "common/log_throttle.h"
#include "common/mutex.h"
#include "treaty/status.h"

namespace treaty {

struct AuditRecord {
  std::string actor;   // identity name ("anonymous" with auth off)
  std::string method;  // "token", "session", "certificate", "none"
  std::string peer;    // "ip:port" or "thrift"
  std::string action;  // "retry", "abort", "pause", "resume", "resolve", "log-level", "drain", ...
  std::string gtid;    // "" when none
  std::string branch;  // "" when none
  std::string detail;  // e.g. the resolve outcome or the new log level
  std::string reason;
  int result = 0;  // the HTTP status answered (Thrift: the same mapping)
};

class AuditLog {
 public:
  // `path` empty: main log only. The file is created with mode 0600 when
  // missing and appended to. InvalidArgument naming --audit-log when it
  // cannot be opened.
  static Result<std::shared_ptr<AuditLog>> Open(std::string path);
  ~AuditLog();

  // Writes one record: a JSON object with the fields of AuditRecord plus
  // "ts" (RFC 3339 UTC with milliseconds). Never throws, never fails the
  // caller; blocks for one write(2).
  void Record(const AuditRecord& record);
  // Reopens the file (SIGHUP, after rotation). Keeps the old one on failure.
  Status Reopen();

 private:
  // `fd`: the open file, -1 when `path` is empty.
  AuditLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  // Writes `line` to fd_; false on failure.
  bool WriteLine(const std::string& line) TREATY_REQUIRES(mu_);

  const std::string path_;
  LogThrottle write_failures_;  // one warning per window when the file cannot be written
  Mutex mu_;
  int fd_ TREATY_GUARDED_BY(mu_) = -1;
};

}  // namespace treaty
