#include "engine/readiness.h"

#include <string>
#include <utility>

#include "common/exception_guard.h"

namespace treaty {

Status Readiness::AdmitNewWork() const {
  if (draining()) return Status::Unavailable("this coordinator is draining; use another");
  if (deps_.health != nullptr && !deps_.health->AcceptsNewWork()) {
    // Nothing is accepted that cannot be logged: answer now rather than
    // after the log writer's retry window (the client retries; the gtid
    // makes that safe).
    std::string why = deps_.health->Problem();
    if (why.empty()) why = "the transaction log is unreachable";
    return Status::Unavailable(why + "; retry later");
  }
  return Status::Ok();
}

void Readiness::Check(std::function<void(Status)> done) {
  if (draining()) {
    done(Status::Unavailable("draining"));
    return;
  }
  StoreHealth* health = deps_.health;
  if (health != nullptr && (health->stalled() || !health->up())) {
    const std::string why = health->Problem();
    done(Status::Unavailable(why.empty() ? "the transaction log is unwell" : why));
    if (deps_.write_probe && !probing_.load()) {
      deps_.blocking->Post([this] { (void)ProbeWrites(); });
    }
    return;
  }
  deps_.blocking->Post([this, done = std::move(done)]() mutable {
    if (Status probe = ProbeWrites(); !probe.ok()) {
      done(std::move(probe));
      return;
    }
    deps_.queries->CheckReady([done = std::move(done)](Status s) {
      if (!s.ok()) s = Status(s.code(), "the transaction log is not ready: " + s.message());
      done(std::move(s));
    });
  });
}

Status Readiness::ProbeWrites() {
  if (!deps_.write_probe || probing_.exchange(true)) return Status::Ok();
  Status s;
  try {
    s = deps_.write_probe();
  } catch (...) {  // a store promises Status results: a bug, logged once
    LogCurrentException("the readiness write probe");
    s = Status::Internal("the write probe threw: " + CurrentExceptionMessage());
  }
  probing_ = false;
  // The membership row may be gone or taken (LostOwnership, NotFound): the
  // database answered, but nothing was written, which proves no commit
  // completes (a write that changes nothing need not wait for a standby):
  // tell StoreHealth nothing then.
  const bool failed = s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kInternal;
  if (deps_.health != nullptr && (failed || s.ok())) {
    deps_.health->Report(failed ? Status::Unavailable(s.message()) : Status::Ok());
  }
  return failed ? Status::Unavailable("writes to the transaction log fail: " + s.message())
                : Status::Ok();
}

}  // namespace treaty
