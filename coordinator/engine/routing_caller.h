#pragma once

// RoutingCaller: the engine's one ParticipantCaller in treatyd; dispatches
// each call on its URL's scheme as ParseEndpoint (common/endpoint.h, the one
// URL parser) reads it: thrift:// and thrifts:// to the Thrift caller, everything else to
// the HTTP caller, which completes a URL ParseEndpoint refuses (or a scheme
// it does not serve) as kUncallable without sending anything. Holds raw
// pointers: both callers must outlive it. Thread-safe as its targets are.

#include "common/endpoint.h"
#include "engine/participant_caller.h"

namespace treaty {

class RoutingCaller : public ParticipantCaller {
 public:
  RoutingCaller(ParticipantCaller* http, ParticipantCaller* thrift)
      : http_(http), thrift_(thrift) {}

  void Call(ParticipantRequest request, Callback done) override {
    auto endpoint = ParseEndpoint(request.url);
    if (endpoint.ok() && !endpoint->http()) {
      thrift_->Call(std::move(request), std::move(done));
    } else {
      http_->Call(std::move(request), std::move(done));
    }
  }

 private:
  ParticipantCaller* http_;
  ParticipantCaller* thrift_;
};

}  // namespace treaty
