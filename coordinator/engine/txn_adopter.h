#pragma once

// TxnAdopter: what cluster membership (cluster/membership.h) asks of the
// engine, so Membership depends on this interface and not on TxnService, and
// its unit tests give it a recording fake.
//
// Thread-safety: both methods are called from Membership's runner (a
// blocking-pool task) and must not block; implementations hand the work to
// their own strand.

#include <string>
#include <vector>

#include "store/records.h"

namespace treaty {

class TxnAdopter {
 public:
  virtual ~TxnAdopter() = default;
  // Starts driving transactions this coordinator just claimed in the log
  // (owner set to this coordinator's id, fenced).
  virtual void Adopt(std::vector<TxnDetail> claimed) = 0;
  // This coordinator was declared dead by a peer (a pause past its lease):
  // drops every in-memory transaction at once and fences its writes with
  // `new_owner` from now on.
  virtual void DropAllAndReown(const std::string& new_owner) = 0;
};

}  // namespace treaty
