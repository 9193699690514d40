#pragma once

// Private to the SDK: the Client's Thrift transport. Speaks Treaty's
// CoordinatorService (idl/coordinator.thrift; framed transport, binary
// protocol) to a coordinator at "thrift://host:port", taking the same
// request the REST transport takes (method, path, JSON body) so that
// Client::Impl::Call keeps one fail-over loop for both:
//
//   POST /v1/sagas                    -> submitSaga
//   POST /v1/2pc                      -> begin2pc
//   POST /v1/2pc/{gtid}/branches      -> registerBranch
//   POST /v1/2pc/{gtid}/commit        -> commit2pc
//   POST /v1/2pc/{gtid}/abort         -> abort2pc
//   GET  /v1/transactions/{gtid}      -> getTransaction
//
// Authentication: with a non-empty `token` the connection first calls
// authenticate(token); a refused token answers 401 without the call being
// made.
//
// The answer is shaped as the REST answer would be: the typed exceptions
// become the status REST uses for them (InvalidRequest 400, Unauthenticated
// 401, Forbidden 403, NotFound 404, Conflict 409, Unavailable 503) with
// {"error":{"code":...,"message":...}} (code "unauthenticated" or
// "forbidden" for 401 and 403, as REST); a result becomes 200 with the REST
// body's fields. Transport errors are
// kUnavailable / kTimedOut. Thrift exceptions never leave
// thrift_coordinator.cc. Blocking, one fresh connection per call;
// thread-safe.
//
// The coordinator's answer is outside input (docs/input-rules.md): read
// under the Thrift limits of coordinator/thrift/thrift_limits.h (an answer
// beyond them fails the call with kUnavailable), its strings made valid
// UTF-8 and its spec parsed with the JSON depth limit.

#include <string>

#include "http_transport.h"

namespace treaty_sdk_detail {

bool IsThriftUrl(const std::string& url);

FetchReply ThriftFetch(const std::string& method, const std::string& url, const std::string& path,
                       const std::string& body, int timeout_ms, const std::string& token = "");

}  // namespace treaty_sdk_detail
