#pragma once

// The state names (docs/schema.md), as stored in the log and shown by the API.

#include <string_view>

namespace treaty::states {

// Transaction kinds.
inline constexpr char kSaga[] = "saga";
inline constexpr char k2pc[] = "2pc";

// Saga transaction states:  RUNNING -> COMMITTED
//                           RUNNING -> COMPENSATING -> ABORTED
inline constexpr char kRunning[] = "RUNNING";
inline constexpr char kCompensating[] = "COMPENSATING";

// 2PC transaction states: ACTIVE -> PREPARING -> COMMITTING -> COMMITTED
//                                             -> ABORTING  -> ABORTED
inline constexpr char kActive[] = "ACTIVE";
inline constexpr char kPreparing[] = "PREPARING";
inline constexpr char kCommitting[] = "COMMITTING";
inline constexpr char kAborting[] = "ABORTING";

// Terminal states (both kinds).
inline constexpr char kCommitted[] = "COMMITTED";
inline constexpr char kAborted[] = "ABORTED";

// Saga step states.
inline constexpr char kPending[] = "PENDING";
inline constexpr char kSucceeded[] = "SUCCEEDED";
inline constexpr char kFailed[] = "FAILED";
inline constexpr char kCompensated[] = "COMPENSATED";
// (kRunning and kCompensating are shared with the transaction states.)

// 2PC branch states (see two_phase.h for the diagram):
//   ENLISTED -> PREPARING -> PREPARED -> COMMITTING -> COMMITTED
//                         -> READONLY   (left out of phase 2)
//   any but READONLY/COMMITTED -> ABORTING -> ABORTED
// kPreparing, kCommitting, kAborting, kCommitted and kAborted are shared with
// the transaction states.
inline constexpr char kEnlisted[] = "ENLISTED";
inline constexpr char kPrepared[] = "PREPARED";
inline constexpr char kReadOnly[] = "READONLY";

inline bool IsTerminal(const std::string_view state) {
  return state == kCommitted || state == kAborted;
}

}  // namespace treaty::states
