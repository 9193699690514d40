#include "engine/two_phase_protocol.h"

#include <utility>

#include "common/json_input.h"
#include "common/limits.h"
#include "engine/two_phase.h"

namespace treaty {
namespace {

// Whether two begins ask for the same options (the client and trace aside).
bool SameOptions(TwoPhaseSpec a, TwoPhaseSpec b) {
  a.client.clear();
  b.client.clear();
  a.trace = {};
  b.trace = {};
  return ToJson(a) == ToJson(b);
}

class TwoPhaseSubmission : public TxnSubmission {
 public:
  explicit TwoPhaseSubmission(TwoPhaseSpec spec) : spec_(std::move(spec)) {}

  TxnKind kind() const override { return TxnKind::k2pc; }
  const std::string& gtid() const override { return spec_.gtid; }
  const char* noun() const override { return "transaction"; }
  // A begin holds no participant URL (its branches do, checked at enlistment).
  Status Check(const ParticipantPolicy*) const override { return Status::Ok(); }

  Status SameAs(const TxnDriver& live) const override {
    if (live.kind() != TxnKind::k2pc) return DifferentOptions();
    const TwoPhaseSpec& existing = static_cast<const TwoPhase&>(live).spec();
    if (auto s = CheckTwoPhaseClient(spec_.gtid, existing.client, spec_.client); !s.ok()) return s;
    return SameOptions(existing, spec_) ? Status::Ok() : DifferentOptions();
  }

  Status SameAs(const TxnRow& logged) const override {
    if (ParseTxnKind(logged.kind) == TxnKind::k2pc) {
      if (auto stored = StoredTwoPhaseSpec(logged); stored.ok()) {
        if (auto s = CheckTwoPhaseClient(spec_.gtid, stored->client, spec_.client); !s.ok()) {
          return s;
        }
        if (SameOptions(*stored, spec_)) return Status::Ok();
      }
    }
    return Status::Conflict("gtid " + spec_.gtid + " already exists with a different body");
  }

  std::shared_ptr<TxnDriver> Create(EngineContext* ctx) const override {
    return TwoPhase::Create(ctx, spec_);
  }

 private:
  Status DifferentOptions() const {
    return Status::Conflict("gtid " + spec_.gtid + " already exists with different options");
  }

  TwoPhaseSpec spec_;
};

}  // namespace

Result<std::shared_ptr<TxnDriver>> TwoPhaseProtocol::Restore(EngineContext* ctx,
                                                             const TxnDetail& detail) const {
  auto txn = TwoPhase::Restore(ctx, detail);
  if (!txn.ok()) return txn.status();
  return std::shared_ptr<TxnDriver>(std::move(*txn));
}

std::unique_ptr<TxnSubmission> NewTwoPhaseSubmission(TwoPhaseSpec spec) {
  return std::make_unique<TwoPhaseSubmission>(std::move(spec));
}

Status CheckTwoPhaseClient(const std::string& gtid, const std::string& begun_by,
                           const std::string& caller) {
  if (begun_by.empty() || caller.empty() || begun_by == caller) return Status::Ok();
  return Status::PermissionDenied("2PC transaction '" + gtid + "' was begun by another client");
}

Result<TwoPhaseSpec> StoredTwoPhaseSpec(const TxnRow& row) {
  auto body = ParseJson(row.spec, "the stored spec", 2 * limits::kMaxJsonDepth);
  if (!body.ok()) return body.status();
  TwoPhaseLimits stored;
  stored.stored = true;
  return ParseTwoPhaseSpec(*body, stored);
}

}  // namespace treaty
