#pragma once

// TxnProtocol and TxnSubmission: what TxnService needs of one transaction
// protocol (saga, 2PC), so that its core (submission, answers for repeated
// submissions, adoption) has no protocol-specific branch. A protocol lives in
// its own file (engine/saga_protocol.h, engine/two_phase_protocol.h) and is
// registered by kind in TxnProtocols::Builtin(): adding one is that file, its
// driver, its entry point on TxnService, and one registration line.
//
//   new submission ─► TxnSubmission ─► Check ─► SameAs(live driver)? ─► Create ─► driver
//   repeated gtid  ─► TxnSubmission::SameAs(logged row)                  (blocking runner)
//   adoption       ─► TxnProtocols::Find(kind) ─► TxnProtocol::Restore ─► driver
//
// Threading: TxnProtocol and TxnProtocols are immutable once built and
// thread-safe. A TxnSubmission is used by one thread at a time: Check,
// SameAs(const TxnDriver&) and Create on the engine runner, SameAs(const
// TxnRow&) on the blocking runner.

#include <map>
#include <memory>
#include <string>

#include "engine/engine_context.h"
#include "engine/states.h"
#include "engine/txn_driver.h"
#include "security/participant_policy.h"
#include "store/records.h"
#include "treaty/status.h"

namespace treaty {

class TxnProtocol {
 public:
  virtual ~TxnProtocol() = default;
  // The kind it drives (the log's `kind` column).
  virtual TxnKind kind() const = 0;
  // Recovery and takeover: the driver of a transaction of this kind read
  // back from the log (branches in idx order), ready to Start() on
  // ctx->runner. Internal when the log holds what this release cannot read.
  virtual Result<std::shared_ptr<TxnDriver>> Restore(EngineContext* ctx,
                                                     const TxnDetail& detail) const = 0;
};

// One submission of a new transaction (a saga, a 2PC begin) with its gtid
// set, before it has a driver.
class TxnSubmission {
 public:
  virtual ~TxnSubmission() = default;
  virtual TxnKind kind() const = 0;
  virtual const std::string& gtid() const = 0;
  // How answers name it ("saga", "transaction").
  virtual const char* noun() const = 0;
  // Refusals of its own data before anything is logged: the participant
  // URLs it holds must pass `policy` (null: no guard; the checks of
  // engine/participant_urls.h); InvalidArgument naming the field.
  virtual Status Check(const ParticipantPolicy* policy) const = 0;
  // Whether it is the same submission as `live`, the driver in memory under
  // its gtid: OK if so; PermissionDenied when another client owns that one;
  // Conflict saying what differs otherwise.
  virtual Status SameAs(const TxnDriver& live) const = 0;
  // The same against `logged`, the row stored under its gtid.
  virtual Status SameAs(const TxnRow& logged) const = 0;
  // A new driver for it; its Start() sends the create.
  virtual std::shared_ptr<TxnDriver> Create(EngineContext* ctx) const = 0;
};

// The protocols by kind.
class TxnProtocols {
 public:
  // Every protocol of this release (saga, 2PC).
  static TxnProtocols Builtin();

  TxnProtocols() = default;
  TxnProtocols(TxnProtocols&&) = default;
  TxnProtocols& operator=(TxnProtocols&&) = default;

  // Adds `protocol`; InvalidArgument if its kind has one already.
  Status Add(std::unique_ptr<TxnProtocol> protocol);
  // The protocol of `kind`, or null.
  const TxnProtocol* Find(TxnKind kind) const;
  // The protocol of a stored kind name ("saga", "2pc"), or null (unknown).
  const TxnProtocol* Find(const std::string& stored_kind) const;

 private:
  std::map<TxnKind, std::unique_ptr<TxnProtocol>> by_kind_;
};

}  // namespace treaty
