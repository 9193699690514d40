#pragma once

// The state names (docs/schema.md), as stored in the log and shown by the API,
// and the enums the engine drives with. Strings appear only at the
// boundaries (log records, JSON, Thrift): a driver parses them once when it
// restores a transaction (Parse*: std::nullopt for an unknown name, which the
// driver reports as an error) and prints them with ToString when it writes.

#include <optional>
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

namespace treaty {

enum class TxnKind { kSaga, k2pc };

// Transaction states of both kinds (saga.h and two_phase.h draw which
// transitions each kind makes).
enum class TxnState {
  kRunning,       // saga
  kCompensating,  // saga
  kActive,        // 2PC
  kPreparing,     // 2PC
  kCommitting,    // 2PC
  kAborting,      // 2PC
  kCommitted,     // both, terminal
  kAborted,       // both, terminal
};

// Saga step and 2PC branch states (the diagrams are in saga.h and two_phase.h).
enum class BranchState {
  kPending,       // saga step
  kRunning,       // saga step
  kSucceeded,     // saga step
  kFailed,        // saga step
  kCompensating,  // saga step
  kCompensated,   // saga step
  kEnlisted,      // 2PC branch
  kPreparing,     // 2PC branch
  kPrepared,      // 2PC branch
  kReadOnly,      // 2PC branch
  kCommitting,    // 2PC branch
  kCommitted,     // 2PC branch
  kAborting,      // 2PC branch
  kAborted,       // 2PC branch
};

// The participant call a branch is sent (ParticipantRequest.op on the wire).
enum class BranchOp { kAction, kCompensate, kPrepare, kCommit, kAbort };

// The stored / wire names ("saga", "RUNNING", "compensate", ...).
const char* ToString(TxnKind kind);
const char* ToString(TxnState state);
const char* ToString(BranchState state);
const char* ToString(BranchOp op);
std::optional<TxnKind> ParseTxnKind(std::string_view name);
std::optional<TxnState> ParseTxnState(std::string_view name);
std::optional<BranchState> ParseBranchState(std::string_view name);
std::optional<BranchOp> ParseBranchOp(std::string_view name);

inline bool IsTerminal(TxnState s) { return s == TxnState::kCommitted || s == TxnState::kAborted; }

}  // namespace treaty
