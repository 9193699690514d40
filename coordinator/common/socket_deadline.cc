#include "common/socket_deadline.h"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <map>
#include <thread>
#include <utility>

#include "common/mutex.h"

namespace treaty {

namespace {

using Clock = SocketDeadline::Clock;

// The one watchdog thread of the process and the sockets it watches.
class Watchdog {
 public:
  // Never destroyed: its detached thread may outlive static destruction.
  static Watchdog& Get() {
    static Watchdog* const watchdog = new Watchdog();
    return *watchdog;
  }

  uint64_t Arm(int fd, Clock::time_point deadline) {
    MutexLock l(&mu_);
    if (!started_) {
      std::thread([this] { Run(); }).detach();
      started_ = true;
    }
    const uint64_t id = ++last_id_;
    watched_[id] = Watched{fd, deadline, false};
    wake_.NotifyOne();
    return id;
  }

  // True when the socket was shut down.
  bool Disarm(uint64_t id) {
    MutexLock l(&mu_);
    auto it = watched_.find(id);
    if (it == watched_.end()) return false;
    const bool fired = it->second.fired;
    watched_.erase(it);
    return fired;
  }

  bool Fired(uint64_t id) {
    MutexLock l(&mu_);
    auto it = watched_.find(id);
    return it != watched_.end() && it->second.fired;
  }

 private:
  struct Watched {
    int fd;
    Clock::time_point deadline;
    bool fired;
  };

  Watchdog() = default;

  void Run() {
    // Signals meant for the process go to the application's threads.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    MutexLock l(&mu_);
    for (;;) {
      const auto now = Clock::now();
      auto next = Clock::time_point::max();
      for (auto& [id, w] : watched_) {
        if (w.fired) continue;
        if (w.deadline <= now) {
          // Under mu_: the owner cannot have disarmed (and closed) it yet.
          ::shutdown(w.fd, SHUT_RDWR);
          w.fired = true;
        } else {
          next = std::min(next, w.deadline);
        }
      }
      if (next == Clock::time_point::max()) {
        wake_.Wait(&mu_);
      } else {
        wake_.WaitUntil(&mu_, next);
      }
    }
  }

  Mutex mu_;
  CondVar wake_;
  bool started_ TREATY_GUARDED_BY(mu_) = false;
  uint64_t last_id_ TREATY_GUARDED_BY(mu_) = 0;
  // Few entries (one per call in flight): scanned on every wake-up.
  std::map<uint64_t, Watched> watched_ TREATY_GUARDED_BY(mu_);
};

}  // namespace

SocketDeadline::SocketDeadline(int fd, Clock::time_point deadline) : deadline_(deadline) {
  if (fd >= 0) id_ = Watchdog::Get().Arm(fd, deadline);
}

SocketDeadline::~SocketDeadline() { Release(); }

bool SocketDeadline::Release() {
  if (id_ == 0) return false;
  return Watchdog::Get().Disarm(std::exchange(id_, 0));
}

bool SocketDeadline::expired() const {
  return Clock::now() >= deadline_ || (id_ != 0 && Watchdog::Get().Fired(id_));
}

int SocketDeadline::remaining_ms() const { return MillisUntil(deadline_); }

int MillisUntil(Clock::time_point deadline) {
  const auto now = Clock::now();
  if (deadline <= now) return 1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::clamp<int64_t>(left, 1, INT_MAX));
}

}  // namespace treaty
