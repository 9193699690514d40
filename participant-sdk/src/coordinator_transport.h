#pragma once

// Private to the SDK: CoordinatorTransport, the one typed interface the
// Client talks to a coordinator through, one instance per configured
// coordinator address. Two implementations:
//
//   "http://", "https://"      HttpCoordinator   (http_coordinator.h; REST)
//   "thrift://", "thrifts://"  ThriftCoordinator (thrift_coordinator.h; CoordinatorService)
//
// Both keep connections open between calls (a small pool per coordinator)
// and say what happened to every call in the same typed way, so that
// Client::Impl keeps one fail-over loop for both (client.h explains it):
//
//   Delivery       what the caller may conclude
//   kAnswered      the coordinator answered; `code` says how (kOk or an error)
//   kNotSent       no connection, TLS refused, or the request was never
//                  completely written: the coordinator cannot have acted;
//                  safe to send anywhere
//   kNoAnswer      the request was written but no complete answer came
//                  (time-out, reset, close): the outcome is unknown
//   kBadAnswer     an answer that is not a coordinator's (a 2xx whose body is
//                  not a JSON object, a broken Thrift reply): outcome unknown
//   kBadConfig     the address or the TLS files are unusable: never retried
//
// `code` is a treaty::StatusCode taken from the answer's typed error, never
// from its message text:
//
//   REST: the code string of {"error":{"code":CODE,...}} read back with
//     ErrorCodeFromName ("not_owner" kLostOwnership, "forbidden"
//     kPermissionDenied, ...; the table of coordinator/api/http_answers.h);
//     when the body carries no such code (a proxy's 502 page, a code newer
//     than this SDK) the HTTP status decides: 400/422 kInvalidArgument, 401
//     kUnauthenticated, 403 kPermissionDenied, 404 kNotFound, 409 kConflict,
//     413 kTooLarge, 502/503 kUnavailable, 504 kTimedOut, any other
//     kInternal.
//   Thrift: the IDL exception's type (InvalidRequest kInvalidArgument,
//     NotFound, Conflict, Unavailable, Unauthenticated, Forbidden
//     kPermissionDenied); a Conflict whose `code` is "not_owner" is
//     kLostOwnership, one without a code (an older coordinator) kConflict.
//
// Every call is blocking and bounded by its `timeout_ms` (connect, TLS,
// write and read together). Implementations are thread-safe: concurrent
// calls use different connections.

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "treaty/client.h"
#include "treaty/status.h"

namespace treaty_sdk_detail {

enum class Delivery { kAnswered, kNotSent, kNoAnswer, kBadAnswer, kBadConfig };

struct CoordinatorReply {
  Delivery delivery = Delivery::kNotSent;
  // With kAnswered: kOk, or the coordinator's typed error (above).
  treaty::StatusCode code = treaty::StatusCode::kOk;
  // With kAnswered and an error: the coordinator's message (at most 200
  // bytes of valid UTF-8). Otherwise why the call was not sent or not
  // answered. Control characters are left as they came: the Client escapes
  // this text wherever it shows it.
  std::string message;
  nlohmann::json body;  // with kAnswered and kOk: the answer, a JSON object (REST's shape)
  // The transport sent the call again within this attempt (a keep-alive
  // connection found closed) after an earlier send of it was written: that
  // earlier send may have acted, so the Client treats the outcome as unknown
  // whatever this reply says (a later "already COMMITTED" is then an answer,
  // not a conflict).
  bool resent = false;
};

// What every transport needs from ClientOptions.
struct TransportOptions {
  std::string token;                         // bearer token; "" for none
  std::string ca_file, cert_file, key_file;  // TLS (https:// and thrifts://)
  int pool_size = 4;                         // idle connections kept per coordinator
  int idle_ms = 30000;                       // an idle connection older than this is closed
};

class CoordinatorTransport {
 public:
  virtual ~CoordinatorTransport() = default;

  // The calls of Client, one each (REST route / Thrift method). `request` is
  // the REST body; the Thrift transport converts it.
  // POST /v1/sagas. `wait_timeout_ms` > 0 with `"wait": true` bounds the
  // coordinator's hold (REST: the `wait_timeout_ms` query parameter; Thrift
  // has no such field, so it is not sent and the coordinator holds up to its
  // default of 30 s); 0 leaves the coordinator's default. `trace` (checked
  // by the Client) goes as REST headers or as the Thrift request's fields;
  // empty values are not sent.
  virtual CoordinatorReply SubmitSaga(const nlohmann::json& request, int timeout_ms,
                                      int wait_timeout_ms = 0,
                                      const treaty::sdk::TraceContext& trace = {}) = 0;
  // How long the coordinator may hold a waiting submit asked to wait
  // `wait_ms`: `wait_ms` where the bound is sent, else its default hold.
  virtual int SagaWaitHoldMs(int wait_ms) const { return wait_ms; }
  virtual CoordinatorReply Begin(const nlohmann::json& request, int timeout_ms,
                                 const treaty::sdk::TraceContext& trace = {}) = 0;  // POST /v1/2pc
  virtual CoordinatorReply Enlist(const std::string& gtid, const nlohmann::json& branch,
                                  int timeout_ms) = 0;  // POST /v1/2pc/{gtid}/branches
  virtual CoordinatorReply Commit(const std::string& gtid, int timeout_ms) = 0;
  virtual CoordinatorReply Abort(const std::string& gtid, int timeout_ms) = 0;
  virtual CoordinatorReply Get(const std::string& gtid,
                               int timeout_ms) = 0;  // GET /v1/transactions/{gtid}

  // TCP connections opened so far (a test and diagnostics figure).
  virtual int64_t connections_opened() const = 0;
};

// The transport for `address` (trailing '/' removed), or one whose every
// call answers kBadConfig naming the problem (unknown scheme, bad URL,
// unusable TLS files).
std::unique_ptr<CoordinatorTransport> MakeCoordinatorTransport(const std::string& address,
                                                               const TransportOptions& options);

}  // namespace treaty_sdk_detail
