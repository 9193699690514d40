#pragma once

// RoutingCaller: the engine's one ParticipantCaller in treatyd; dispatches
// each call on its URL's scheme: thrift://host:port to the Thrift caller,
// everything else (http://) to the HTTP caller, which reports malformed URLs
// as transient failures. Holds raw pointers: both callers must outlive it.
// Thread-safe as its targets are.

#include "engine/participant_caller.h"

namespace treaty {

class RoutingCaller : public ParticipantCaller {
 public:
  RoutingCaller(ParticipantCaller* http, ParticipantCaller* thrift)
      : http_(http), thrift_(thrift) {}

  void Call(ParticipantRequest request, Callback done) override {
    if (request.url.rfind("thrift://", 0) == 0) {
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
