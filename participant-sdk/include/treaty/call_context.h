#pragma once

// CallContext: what a participant handler learns about one delivery from the
// coordinator (see docs/2pc.md, "What participants receive").

#include <string>

namespace treaty {
inline namespace sdk {

struct CallContext {
  std::string gtid;              // the global transaction
  std::string branch;            // the step's or branch's name
  std::string op;                // "action", "compensate", "prepare", "commit" or "abort"
  std::string payload = "null";  // JSON text of the payload given at submission
  std::string traceparent;       // W3C trace context ("" when absent)
  std::string idempotency_key;   // "{gtid}/{branch}/{op}"
};

}  // namespace sdk
}  // namespace treaty
