#include "engine/saga_protocol.h"

#include <utility>

#include "common/json_input.h"
#include "common/limits.h"
#include "engine/participant_urls.h"
#include "engine/saga.h"

namespace treaty {
namespace {

Status DifferentBody(const std::string& gtid) {
  return Status::Conflict("gtid " + gtid + " already exists with a different body");
}

class SagaSubmission : public TxnSubmission {
 public:
  explicit SagaSubmission(SagaSpec spec)
      : spec_(std::move(spec)), json_(WithoutTrace(ToJson(spec_))) {}

  TxnKind kind() const override { return TxnKind::kSaga; }
  const std::string& gtid() const override { return spec_.gtid; }
  const char* noun() const override { return "saga"; }

  Status Check(const ParticipantPolicy* policy) const override {
    if (policy == nullptr) return Status::Ok();  // ParseSagaSpec parsed the URLs
    for (const SagaStep& step : spec_.steps) {
      if (auto s = CheckStepUrls(step, policy); !s.ok()) return s;
    }
    return Status::Ok();
  }

  Status SameAs(const TxnDriver& live) const override {
    Result<nlohmann::json> spec =
        ParseJson(live.spec_json(), "the live spec", 2 * limits::kMaxJsonDepth);
    const bool same =
        live.kind() == TxnKind::kSaga && spec.ok() && WithoutTrace(std::move(*spec)) == json_;
    return same ? Status::Ok() : DifferentBody(spec_.gtid);
  }

  Status SameAs(const TxnRow& logged) const override {
    Result<nlohmann::json> stored =
        ParseJson(logged.spec, "the stored spec", 2 * limits::kMaxJsonDepth);
    const bool same = ParseTxnKind(logged.kind) == TxnKind::kSaga && stored.ok() &&
                      WithoutTrace(*stored) == json_;
    return same ? Status::Ok() : DifferentBody(spec_.gtid);
  }

  std::shared_ptr<TxnDriver> Create(EngineContext* ctx) const override {
    return Saga::Create(ctx, spec_);
  }

 private:
  SagaSpec spec_;
  nlohmann::json json_;  // normalized, without the trace
};

}  // namespace

Result<std::shared_ptr<TxnDriver>> SagaProtocol::Restore(EngineContext* ctx,
                                                         const TxnDetail& detail) const {
  auto saga = Saga::Restore(ctx, detail);
  if (!saga.ok()) return saga.status();
  return std::shared_ptr<TxnDriver>(std::move(*saga));
}

std::unique_ptr<TxnSubmission> NewSagaSubmission(SagaSpec spec) {
  return std::make_unique<SagaSubmission>(std::move(spec));
}

}  // namespace treaty
