#pragma once

// SubmitResult: what TxnService answers for a submission, a 2PC call or an
// operator action: the transaction's state at answer time and how it got
// there.

#include <string>

namespace treaty {

struct SubmitResult {
  std::string gtid;
  std::string state;          // stored name ("RUNNING", "COMMITTED", ...)
  bool created = false;       // false: an identical earlier submission
  bool finished = false;      // terminal at answer time
  bool wait_expired = false;  // `wait` was asked and ran out first
  bool paused = false;        // an operator paused its calls (Pause/Resume)
};

}  // namespace treaty
