#pragma once

// treatyctl's commands. Each one makes its requests through the
// CoordinatorClient, prints its result on stdout (errors on stderr) and
// returns the process exit status (ExitCode; `treatyctl --help` lists them).
// With `json` a command prints the coordinator's JSON answer as it came
// (times as milliseconds since the epoch) instead of text; text output
// shows times in UTC as "2026-12-01 09:30:12.345 UTC" (TimeText).

#include <cstdint>
#include <optional>
#include <string>

#include "ctl/coordinator_client.h"

namespace treaty::ctl {

enum ExitCode {
  kExitOk = 0,           // done (a waited saga or a 2PC commit: COMMITTED)
  kExitRefused = 1,      // the coordinator refused (4xx/5xx; its message is printed)
  kExitUsage = 2,        // usage error (bad arguments, unreadable file)
  kExitUnreachable = 3,  // no coordinator reachable
  kExitAborted = 4,      // saga submit --wait / 2pc commit: the transaction ended ABORTED
  kExitNotFinished = 5,  // saga submit --wait: the wait ran out before the saga finished
};

// The exit codes as `--help` and docs/operations.md list them.
extern const char kExitCodesHelp[];

struct ListOptions {
  std::string state, kind;
  bool needs_attention = false;
  bool paused = false;
  int limit = 50;
  std::string cursor;  // "" first page; else the "next" of the previous page
  bool json = false;
};

// `ms` milliseconds since the epoch as "YYYY-MM-DD HH:MM:SS.mmm UTC"; "-" for
// ms <= 0 (not set).
std::string TimeText(int64_t ms);

// With `wait`, the exit code tells the outcome: kExitOk (COMMITTED),
// kExitAborted (ABORTED), kExitNotFinished (still running when the wait ran out).
int SagaSubmit(CoordinatorClient& c, const std::string& file, bool wait, bool json);
int Begin2pc(CoordinatorClient& c, const std::string& gtid, int64_t timeout_ms, bool no_one_phase,
             bool json);
// one_phase: the participant supports one-phase commit (docs/2pc.md).
int Enlist2pc(CoordinatorClient& c, const std::string& gtid, const std::string& name,
              const std::string& prepare, const std::string& commit, const std::string& abort,
              const std::string& payload, bool one_phase, bool json);
// op: "commit" or "abort" of /v1/2pc/{gtid}/op. A commit whose decision is
// abort (ABORTING, ABORTED) returns kExitAborted.
int Decide2pc(CoordinatorClient& c, const std::string& gtid, const std::string& op, bool json);
int Get(CoordinatorClient& c, const std::string& gtid, bool json);
// Prints one page; when more follow, the cursor to pass as --cursor.
int List(CoordinatorClient& c, const ListOptions& options);
// action: "retry", "abort", "pause" or "resume" of
// POST /v1/transactions/{gtid}/action; `reason` ("" none) goes in the body.
// A refusal (e.g. 409: the action does not apply in this state) prints the
// server's message and returns kExitRefused.
int Operator(CoordinatorClient& c, const std::string& gtid, const std::string& action,
             const std::string& reason, bool json);
// POST /v1/transactions/{gtid}/branches/{branch}/resolve: outcome
// COMPENSATED, COMMITTED or ABORTED; reason required (usage error if empty).
int Resolve(CoordinatorClient& c, const std::string& gtid, const std::string& branch,
            const std::string& outcome, const std::string& reason, bool json);
int Cluster(CoordinatorClient& c, bool json);

}  // namespace treaty::ctl
