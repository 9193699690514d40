#pragma once

// Mutex and MutexLock: std::mutex and std::lock_guard with Clang's
// thread-safety annotations (common/thread_annotations.h), so members marked
// TREATY_GUARDED_BY(mu_) are checked at compile time under clang. CondVar
// waits on a Mutex (std::condition_variable_any over it).
//
//   mutable Mutex mu_;
//   int64_t count_ TREATY_GUARDED_BY(mu_) = 0;
//   ...
//   MutexLock lock(&mu_);
//   ++count_;
//
// Thread-safety: as std::mutex. Not recursive.

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common/thread_annotations.h"

namespace treaty {

class TREATY_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() TREATY_ACQUIRE() { mu_.lock(); }
  void Unlock() TREATY_RELEASE() { mu_.unlock(); }
  bool TryLock() TREATY_TRY_ACQUIRE(true) { return mu_.try_lock(); }

  // BasicLockable, for std::condition_variable_any (CondVar) only.
  void lock() TREATY_ACQUIRE() { mu_.lock(); }
  void unlock() TREATY_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds `mu` from construction to destruction.
class TREATY_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) TREATY_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() TREATY_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable used with a held Mutex. Wait* release `mu` while
// blocked and hold it again when they return (spurious wake-ups possible,
// so wait in a loop or with a predicate).
class CondVar {
 public:
  void Wait(Mutex* mu) TREATY_REQUIRES(mu) { cv_.wait(*mu); }
  template <typename Predicate>
  void Wait(Mutex* mu, Predicate pred) TREATY_REQUIRES(mu) {
    cv_.wait(*mu, pred);
  }
  // False when `timeout_ms` passed first.
  template <typename Predicate>
  bool WaitFor(Mutex* mu, int64_t timeout_ms, Predicate pred) TREATY_REQUIRES(mu) {
    return cv_.wait_for(*mu, std::chrono::milliseconds(timeout_ms), pred);
  }
  // False when `deadline` passed first (time_point::max(): no deadline).
  template <typename Clock, typename Duration, typename Predicate>
  bool WaitUntil(Mutex* mu, std::chrono::time_point<Clock, Duration> deadline, Predicate pred)
      TREATY_REQUIRES(mu) {
    return cv_.wait_until(*mu, deadline, pred);
  }
  // Returns on a notification, a spurious wake-up or at `deadline`.
  template <typename Clock, typename Duration>
  void WaitUntil(Mutex* mu, std::chrono::time_point<Clock, Duration> deadline) TREATY_REQUIRES(mu) {
    cv_.wait_until(*mu, deadline);
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable_any cv_;
};

}  // namespace treaty
