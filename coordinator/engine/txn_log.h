#pragma once

// TxnLog: the engine's asynchronous view of the log. Production:
// WriterTxnLog over store/LogWriter (group commit). Tests: an in-memory fake.

#include <functional>

#include "store/records.h"
#include "treaty/status.h"

namespace treaty {

class TxnLog {
 public:
  using Callback = std::function<void(Status)>;
  virtual ~TxnLog() = default;
  // Makes `write` durable; `done` runs on any thread once it is (OK) or
  // failed (LostOwnership, NotFound, Conflict for a create, Unavailable).
  // Writes submitted by one caller are applied in submission order.
  virtual void Write(TxnWrite write, Callback done) = 0;
};

}  // namespace treaty
