#include "engine/states.h"

#include <array>
#include <utility>

namespace treaty {
namespace {

template <typename E, size_t N>
std::optional<E> Find(const std::array<std::pair<E, const char*>, N>& names,
                      std::string_view name) {
  for (const auto& [e, n] : names) {
    if (name == n) return e;
  }
  return std::nullopt;
}

template <typename E, size_t N>
const char* Name(const std::array<std::pair<E, const char*>, N>& names, E e) {
  for (const auto& [v, n] : names) {
    if (v == e) return n;
  }
  return "?";
}

constexpr std::array<std::pair<TxnKind, const char*>, 2> kKinds{{
    {TxnKind::kSaga, states::kSaga},
    {TxnKind::k2pc, states::k2pc},
}};

constexpr std::array<std::pair<TxnState, const char*>, 8> kTxnStates{{
    {TxnState::kRunning, states::kRunning},
    {TxnState::kCompensating, states::kCompensating},
    {TxnState::kActive, states::kActive},
    {TxnState::kPreparing, states::kPreparing},
    {TxnState::kCommitting, states::kCommitting},
    {TxnState::kAborting, states::kAborting},
    {TxnState::kCommitted, states::kCommitted},
    {TxnState::kAborted, states::kAborted},
}};

constexpr std::array<std::pair<BranchState, const char*>, 14> kBranchStates{{
    {BranchState::kPending, states::kPending},
    {BranchState::kRunning, states::kRunning},
    {BranchState::kSucceeded, states::kSucceeded},
    {BranchState::kFailed, states::kFailed},
    {BranchState::kCompensating, states::kCompensating},
    {BranchState::kCompensated, states::kCompensated},
    {BranchState::kEnlisted, states::kEnlisted},
    {BranchState::kPreparing, states::kPreparing},
    {BranchState::kPrepared, states::kPrepared},
    {BranchState::kReadOnly, states::kReadOnly},
    {BranchState::kCommitting, states::kCommitting},
    {BranchState::kCommitted, states::kCommitted},
    {BranchState::kAborting, states::kAborting},
    {BranchState::kAborted, states::kAborted},
}};

constexpr std::array<std::pair<BranchOp, const char*>, 5> kOps{{
    {BranchOp::kAction, "action"},
    {BranchOp::kCompensate, "compensate"},
    {BranchOp::kPrepare, "prepare"},
    {BranchOp::kCommit, "commit"},
    {BranchOp::kAbort, "abort"},
}};

}  // namespace

const char* ToString(TxnKind kind) { return Name(kKinds, kind); }
const char* ToString(TxnState state) { return Name(kTxnStates, state); }
const char* ToString(BranchState state) { return Name(kBranchStates, state); }
const char* ToString(BranchOp op) { return Name(kOps, op); }
std::optional<TxnKind> ParseTxnKind(std::string_view name) { return Find(kKinds, name); }
std::optional<TxnState> ParseTxnState(std::string_view name) { return Find(kTxnStates, name); }
std::optional<BranchState> ParseBranchState(std::string_view name) {
  return Find(kBranchStates, name);
}
std::optional<BranchOp> ParseBranchOp(std::string_view name) { return Find(kOps, name); }

}  // namespace treaty
