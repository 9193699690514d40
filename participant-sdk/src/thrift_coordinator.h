#pragma once

// Private to the SDK: ThriftCoordinator, the CoordinatorTransport of
// "thrift://host:port" and "thrifts://host:port" (Thrift over TLS)
// coordinators: Treaty's CoordinatorService (idl/coordinator.thrift; framed
// transport, binary protocol; treatyd's --thrift address, over TLS when
// treatyd has --tls-cert).
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
// fresh one); one reused from the pool that fails before any byte of its
// answer was read (closed while idle), not by a time-out, is retried once on
// a fresh connection within the same time-out, as HTTP does
// (http_coordinator.h). When the request had been completely written on
// the first connection, that copy may have acted: the reply is marked
// CoordinatorReply::resent. A failure once part of the answer was read is
// never retried (kNoAnswer).
//
// Every call ends within its timeout_ms however slowly the coordinator
// sends (lookup, connect, TLS handshake, authenticate, write and read
// together; both rounds): at the deadline the socket is shut down
// (SocketDeadline, coordinator/common/socket_deadline.h) and the call fails
// "timed out after N ms" (kNotSent while connecting or authenticating,
// kNoAnswer once the request was written). A lookup that outlives it is
// abandoned (it finishes on a thread of its own).
//
// Connections are opened with the Thrift client socket treatyd calls
// participants with (coordinator/thrift/thrift_client_tls.h). thrifts://:
// TLS 1.2 or newer, the coordinator's certificate verified against
// TransportOptions::ca_file (the system's trust store when empty) and the
// URL's host (ExpectPeerName); cert_file/key_file: a client certificate for
// coordinators that require one (--tls-client-ca). A certificate refused is
// kNotSent "the server's certificate was refused: REASON" (as over
// https://); a coordinator refusing the TLS connection (an alert, e.g. no
// client certificate under mTLS, also when TLS 1.3 makes it arrive on the
// first exchange) kNotSent "the coordinator refused TLS: REASON"; TLS files
// that cannot be used kBadConfig. SIGPIPE is blocked on the calling thread
// while a thrifts:// call (or the destructor) runs.
//
// Typed exceptions become StatusCodes (InvalidRequest kInvalidArgument,
// Unauthenticated, Forbidden kPermissionDenied, NotFound, Unavailable;
// Conflict kConflict, or kLostOwnership when its `code` is "not_owner"); a
// connection that cannot be opened, or a request not completely written,
// is kNotSent; a call that fails after being sent (time-out, reset) is
// kNoAnswer, one whose reply is not a coordinator's (TApplicationException,
// a reply beyond the limits of coordinator/thrift/thrift_limits.h)
// kBadAnswer. Results are
// shaped as the REST answers (gtid, state; a transaction's fields), their
// strings made valid UTF-8 and the spec parsed with the JSON depth limit.
// Thrift exceptions never leave thrift_coordinator.cc. Thread-safe.

#include <memory>
#include <string>

#include "coordinator_transport.h"

namespace treaty_sdk_detail {

// The transport for a thrift:// or thrifts:// `address`, or null with *why
// set (a bad URL, unusable TLS files). Blocks reading the TLS files.
std::unique_ptr<CoordinatorTransport> MakeThriftCoordinator(const std::string& address,
                                                            const TransportOptions& options,
                                                            std::string* why);

}  // namespace treaty_sdk_detail
