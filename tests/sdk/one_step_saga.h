#pragma once

// OneStepSaga: a saga of one step named "step" whose action and compensation
// are served by `participant` (support/test_participant.h), for SDK client
// tests that only need a saga to go through a coordinator. Header-only.

#include <string>

#include "support/test_participant.h"
#include "treaty/client.h"

namespace treaty::testing {

inline treaty::sdk::SagaSpec OneStepSaga(const TestParticipant& participant,
                                         const std::string& gtid) {
  treaty::sdk::SagaSpec saga;
  saga.gtid = gtid;
  treaty::sdk::SagaStepSpec step;
  step.name = "step";
  step.action = participant.Url("step", "action");
  step.compensate = participant.Url("step", "compensate");
  saga.steps.push_back(step);
  return saga;
}

}  // namespace treaty::testing
