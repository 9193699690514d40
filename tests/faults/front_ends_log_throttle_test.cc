// LogThrottle (common/log_throttle.h), the rate limit of the front ends'
// repeated log lines, on a fake clock: one line per window, with the count
// of what was held back.

#include <gtest/gtest.h>

#include <chrono>

#include "common/log_throttle.h"

namespace treaty {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(LogThrottleTest, OneLinePerWindowCountingWhatWasHeldBack) {
  std::chrono::steady_clock::time_point now{};
  LogThrottle throttle(seconds(10), [&] { return now; });

  auto first = throttle.Tick();
  EXPECT_TRUE(first.log);
  EXPECT_EQ(first.count, 1);
  EXPECT_EQ(first.Suffix(), "");

  int written = 0;
  for (int i = 0; i < 411; ++i) {
    now += milliseconds(10);
    written += throttle.Tick().log;
  }
  EXPECT_EQ(written, 0) << "lines written inside the window";

  now = std::chrono::steady_clock::time_point{} + seconds(10);
  auto next = throttle.Tick();
  EXPECT_TRUE(next.log);
  EXPECT_EQ(next.count, 412);
  EXPECT_EQ(next.Suffix(), " (412 times in the last 10 s)");

  now += seconds(30);  // quiet, then one more: a line of its own
  auto lone = throttle.Tick();
  EXPECT_TRUE(lone.log);
  EXPECT_EQ(lone.count, 1);
  EXPECT_EQ(lone.Suffix(), "");
}

}  // namespace
}  // namespace treaty
