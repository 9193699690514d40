#pragma once

// treatyctl's commands. Each one makes its requests through the
// CoordinatorClient, prints its result on stdout (errors on stderr) and
// returns the process exit status:
//   0 ok, 1 the coordinator refused (4xx/5xx; its message is printed),
//   2 usage error (bad arguments, unreadable file), 3 no coordinator reachable.

#include <optional>
#include <string>

#include "ctl/coordinator_client.h"

namespace treaty::ctl {

enum ExitCode { kExitOk = 0, kExitRefused = 1, kExitUsage = 2, kExitUnreachable = 3 };

struct ListOptions {
  std::string state, kind;
  bool needs_attention = false;
  bool paused = false;
  int limit = 50;
  bool json = false;
};

int SagaSubmit(CoordinatorClient& c, const std::string& file, bool wait);
int Begin2pc(CoordinatorClient& c, const std::string& gtid, int64_t timeout_ms, bool no_one_phase);
// one_phase: the participant supports one-phase commit (docs/2pc.md).
int Enlist2pc(CoordinatorClient& c, const std::string& gtid, const std::string& name,
              const std::string& prepare, const std::string& commit, const std::string& abort,
              const std::string& payload, bool one_phase);
// op: "commit" or "abort" of /v1/2pc/{gtid}/op.
int Decide2pc(CoordinatorClient& c, const std::string& gtid, const std::string& op);
int Get(CoordinatorClient& c, const std::string& gtid, bool json);
int List(CoordinatorClient& c, const ListOptions& options);
// action: "retry", "abort", "pause" or "resume" of
// POST /v1/transactions/{gtid}/action; `reason` ("" none) goes in the body.
// A refusal (e.g. 409: the action does not apply in this state) prints the
// server's message and returns kExitRefused.
int Operator(CoordinatorClient& c, const std::string& gtid, const std::string& action,
             const std::string& reason);
// POST /v1/transactions/{gtid}/branches/{branch}/resolve: outcome
// COMPENSATED, COMMITTED or ABORTED; reason required (usage error if empty).
int Resolve(CoordinatorClient& c, const std::string& gtid, const std::string& branch,
            const std::string& outcome, const std::string& reason);
int Cluster(CoordinatorClient& c, bool json);

}  // namespace treaty::ctl
