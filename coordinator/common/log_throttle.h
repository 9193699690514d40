#pragma once

// LogThrottle: rate-limits one repeated log line. Under a fault that repeats
// thousands of times a second (accept failing with "Too many open files"),
// the first occurrence is logged at once and the rest are counted; the next
// occurrence after `window` has passed is logged with the count of what was
// held back:
//
//   static LogThrottle throttle;  // one per log site
//   if (auto r = throttle.Tick(); r.log) {
//     spdlog::warn("accept failed: {}{}", ec.message(), r.Suffix());
//   }
//   // -> "accept failed: Too many open files (412 times in the last 10 s)"
//
// So a site writes at most one line per window, whatever the rate. The
// occurrences after the last written line are reported only if the fault
// happens again (a burst that stops leaves at most one window untold).
//
// Thread-safe (a mutex); never throws except std::bad_alloc from Suffix().
// The clock is injected for tests; the default is steady_clock.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/mutex.h"

namespace treaty {

class LogThrottle {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // What Tick() decided.
  struct Report {
    bool log = false;                   // write the line now
    int64_t count = 0;                  // occurrences it stands for (this one and those held back)
    std::chrono::milliseconds span{0};  // time since the previous written line (0: first)
    // "" for a single occurrence, else " (N times in the last S s)".
    std::string Suffix() const;
  };

  explicit LogThrottle(std::chrono::milliseconds window = std::chrono::seconds(10),
                       Clock now = &std::chrono::steady_clock::now);

  // Counts one occurrence and says whether to write its line now.
  Report Tick();

 private:
  const std::chrono::milliseconds window_;
  const Clock now_;
  Mutex mu_;
  bool logged_once_ TREATY_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_log_ TREATY_GUARDED_BY(mu_){};
  int64_t held_back_ TREATY_GUARDED_BY(mu_) = 0;
};

}  // namespace treaty
