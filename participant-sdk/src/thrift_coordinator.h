#pragma once

// Private to the SDK: ThriftCoordinator, the CoordinatorTransport of
// "thrift://host:port" coordinators: Treaty's CoordinatorService
// (idl/coordinator.thrift; framed transport, binary protocol; treatyd's
// --thrift address).
//
//   CoordinatorTransport   CoordinatorService
//   SubmitSaga             submitSaga
//   Begin                  begin2pc
//   Enlist                 registerBranch
//   Commit / Abort         commit2pc / abort2pc
//   Get                    getTransaction
//
// Connections stay open between calls: at most TransportOptions::pool_size
// idle ones per coordinator, reused most-recent-first after checking that
// the coordinator has not closed them (IdleSocketUsable), closed after
// TransportOptions::idle_ms idle. With a token, a connection calls
// authenticate(token) once, when it is opened; a refused token answers
// kUnauthenticated without the call being made. A connection that fails in
// any way other than a typed exception is closed (the next call opens a
// fresh one); one reused from the pool that fails before its answer is read
// is retried once on a fresh connection, as HTTP does (http_coordinator.h).
//
// Typed exceptions become StatusCodes (InvalidRequest kInvalidArgument,
// Unauthenticated, Forbidden kPermissionDenied, NotFound, Unavailable;
// Conflict kConflict, or kLostOwnership when its `code` is "not_owner"); a
// connection that cannot be opened is kNotSent, a call that fails after
// being sent (time-out, reset, TApplicationException, a reply beyond the
// limits of coordinator/thrift/thrift_limits.h) kNoAnswer. Results are
// shaped as the REST answers (gtid, state; a transaction's fields), their
// strings made valid UTF-8 and the spec parsed with the JSON depth limit.
// Thrift exceptions never leave thrift_coordinator.cc. Thread-safe.

#include <memory>
#include <string>

#include "coordinator_transport.h"

namespace treaty_sdk_detail {

// The transport for a thrift:// `address`, or null with *why set.
std::unique_ptr<CoordinatorTransport> MakeThriftCoordinator(const std::string& address,
                                                            const TransportOptions& options,
                                                            std::string* why);

}  // namespace treaty_sdk_detail
