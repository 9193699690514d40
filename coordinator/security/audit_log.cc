#include "security/audit_log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <chrono>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/text.h"

namespace treaty {

namespace {

constexpr size_t kMaxTextBytes = 1024;  // reason, detail
constexpr size_t kMaxFieldBytes = 256;  // every other string

int OpenForAppend(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// "2024-05-01T12:00:00.123Z".
std::string Rfc3339Now() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

// `s` when it fits in `max_bytes`; otherwise its first bytes, cut on a
// UTF-8 boundary, and a marker saying how long it was, `max_bytes` in all.
std::string Bounded(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  const std::string marker = " (cut from " + std::to_string(s.size()) + " bytes)";
  return Excerpt(s, max_bytes - marker.size()) + marker;
}

// One JSON object on one line: ensure_ascii escapes every control,
// non-ASCII and bidirectional character, and invalid UTF-8 is replaced, so
// no field can end the line or forge another record.
std::string ToJsonLine(const AuditRecord& r) {
  nlohmann::ordered_json j;
  j["ts"] = Rfc3339Now();
  j["actor"] = Bounded(r.actor, kMaxFieldBytes);
  j["method"] = Bounded(r.method, kMaxFieldBytes);
  j["peer"] = Bounded(r.peer, kMaxFieldBytes);
  j["action"] = Bounded(r.action, kMaxFieldBytes);
  j["gtid"] = Bounded(r.gtid, kMaxFieldBytes);
  j["branch"] = Bounded(r.branch, kMaxFieldBytes);
  j["detail"] = Bounded(r.detail, kMaxTextBytes);
  j["reason"] = Bounded(r.reason, kMaxTextBytes);
  j["result"] = r.result;
  return j.dump(-1, ' ', true, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

Result<std::shared_ptr<AuditLog>> AuditLog::Open(std::string path) {
  int fd = -1;
  if (!path.empty()) {
    fd = OpenForAppend(path);
    if (fd < 0) {
      return Status::InvalidArgument("--audit-log: cannot open '" + path + "': " + strerror(errno));
    }
  }
  return std::shared_ptr<AuditLog>(new AuditLog(std::move(path), fd));
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

void AuditLog::Record(const AuditRecord& record) {
  try {
    const std::string line = ToJsonLine(record);
    spdlog::info("audit: {}", line);
    if (path_.empty()) return;
    bool written;
    {
      MutexLock lock(&mu_);
      written = WriteLine(line + "\n");
    }
    if (!written) {
      int err = errno;
      if (auto r = write_failures_.Tick(); r.log) {
        spdlog::warn("audit log '{}' cannot be written: {}{}", path_, strerror(err), r.Suffix());
      }
    }
  } catch (...) {
    // Out of memory or a logging failure: the action's durable record is
    // the transaction log's event; never fail the caller.
  }
}

bool AuditLog::WriteLine(const std::string& line) {
  if (fd_ < 0) return false;
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

Status AuditLog::Reopen() {
  if (path_.empty()) return Status::Ok();
  int fd = OpenForAppend(path_);
  if (fd < 0) {
    return Status::InvalidArgument("--audit-log: cannot reopen '" + path_ +
                                   "': " + strerror(errno));
  }
  int old;
  {
    MutexLock lock(&mu_);
    old = fd_;
    fd_ = fd;
  }
  if (old >= 0) ::close(old);
  return Status::Ok();
}

}  // namespace treaty
