#include "common/log_throttle.h"

#include <utility>

namespace treaty {

std::string LogThrottle::Report::Suffix() const {
  if (count <= 1) return "";
  const int64_t seconds = (span.count() + 999) / 1000;
  return " (" + std::to_string(count) + " times in the last " + std::to_string(seconds) + " s)";
}

LogThrottle::LogThrottle(std::chrono::milliseconds window, Clock now)
    : window_(window), now_(std::move(now)) {}

LogThrottle::Report LogThrottle::Tick() {
  const auto now = now_();
  MutexLock lock(&mu_);
  Report r;
  if (logged_once_ && now - last_log_ < window_) {
    ++held_back_;
    return r;
  }
  r.log = true;
  r.count = held_back_ + 1;
  if (logged_once_) {
    r.span = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_log_);
  }
  logged_once_ = true;
  last_log_ = now;
  held_back_ = 0;
  return r;
}

}  // namespace treaty
