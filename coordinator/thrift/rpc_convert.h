#pragma once

// The Thrift front end's conversions (CoordinatorHandler): a Status to the
// IDL's typed exceptions (the one place that mapping lives), IDL requests to
// the REST JSON shapes the engine's parsers take, engine answers and log
// rows to IDL structs, and the wrappers that keep every other exception out
// of Thrift's processor. Stateless; every function is thread-safe.

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "CoordinatorService.h"
#include "common/text.h"
#include "engine/submit_result.h"
#include "store/log_store.h"
#include "treaty/status.h"

namespace treaty {

// Throws the IDL exception for `s`: InvalidArgument/TooLarge -> InvalidRequest,
// NotFound -> NotFound, Conflict/LostOwnership -> Conflict (its `code`
// "conflict" / "not_owner", REST's error code), Unauthenticated ->
// Unauthenticated, PermissionDenied -> Forbidden, anything else ->
// Unavailable. Messages are made valid UTF-8 (they name fields, never echo
// bad bytes; this is a net).
[[noreturn]] void ThrowStatus(const Status& s);

// A `payload` string must hold JSON (valid UTF-8, nesting at most
// limits::kMaxPayloadDepth, as over REST); it becomes the JSON value.
// Throws InvalidRequest naming `field` otherwise.
nlohmann::json PayloadJson(const std::string& text, const std::string& field);

// A SagaRequest as the body of POST /v1/sagas (only the fields that are set).
// Throws InvalidRequest for a payload that is not JSON.
nlohmann::json SagaJson(const rpc::SagaRequest& req);

void FillStatus(rpc::TxnStatus& out, const SubmitResult& r);
// An operator action's answer also says whether it is paused and finished.
void FillOperatorStatus(rpc::TxnStatus& out, const SubmitResult& r);
void FillRow(rpc::Transaction& out, const TxnRow& row);
// A row with its branches and history (first_at_ms defaults to at_ms, as
// over REST).
void FillDetail(rpc::Transaction& out, const TxnDetail& d);

// Runs one handler method's body. The typed exceptions of the IDL pass
// through; anything else (a bug) becomes Unavailable and one log line, so no
// exception of ours reaches Thrift's processor or a worker thread.
template <typename Body>
void Guarded(const char* method, Body body) {
  try {
    body();
  } catch (const rpc::InvalidRequest&) {
    throw;
  } catch (const rpc::NotFound&) {
    throw;
  } catch (const rpc::Conflict&) {
    throw;
  } catch (const rpc::Unavailable&) {
    throw;
  } catch (const rpc::Unauthenticated&) {
    throw;
  } catch (const rpc::Forbidden&) {
    throw;
  } catch (const std::exception& e) {
    spdlog::error("thrift {}: unexpected exception: {}", method,
                  EscapeControl(Excerpt(e.what(), 200)));
    ThrowStatus(Status::Unavailable(std::string("internal error in ") + method));
  } catch (...) {
    spdlog::error("thrift {}: unexpected exception", method);
    ThrowStatus(Status::Unavailable(std::string("internal error in ") + method));
  }
}

// Runs an asynchronous TxnService call and waits for its answer.
template <typename T, typename Start>
T Await(int64_t timeout_ms, Start start) {
  auto promise = std::make_shared<std::promise<Result<T>>>();
  auto future = promise->get_future();
  start([promise](Result<T> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
    ThrowStatus(Status::Unavailable("the coordinator did not answer within " +
                                    std::to_string(timeout_ms) + " ms"));
  }
  Result<T> r = future.get();
  if (!r.ok()) ThrowStatus(r.status());
  return std::move(r).value();
}

// Runs `body` and tells `answered` the status REST would have answered for
// what it did: 200, or the code of the exception it threw (which is then
// rethrown).
template <typename Body>
void WithResult(const std::function<void(int)>& answered, Body body) {
  try {
    body();
  } catch (const rpc::InvalidRequest&) {
    answered(400);
    throw;
  } catch (const rpc::Unauthenticated&) {
    answered(401);
    throw;
  } catch (const rpc::Forbidden&) {
    answered(403);
    throw;
  } catch (const rpc::NotFound&) {
    answered(404);
    throw;
  } catch (const rpc::Conflict&) {
    answered(409);
    throw;
  } catch (...) {
    answered(503);  // Unavailable, or a bug that Guarded turns into it
    throw;
  }
  answered(200);
}

}  // namespace treaty
