#include "coordinator_transport.h"

#include <utility>

#include "http_coordinator.h"
#include "thrift_coordinator.h"

namespace treaty_sdk_detail {

using nlohmann::json;

namespace {

// Every call answers kBadConfig: the address could not be used.
class UnusableCoordinator : public CoordinatorTransport {
 public:
  explicit UnusableCoordinator(std::string why) : why_(std::move(why)) {}
  CoordinatorReply SubmitSaga(const json&, int, int = 0,
                              const treaty::sdk::TraceContext& = {}) override {
    return Reply();
  }
  CoordinatorReply Begin(const json&, int, const treaty::sdk::TraceContext& = {}) override {
    return Reply();
  }
  CoordinatorReply Enlist(const std::string&, const json&, int) override { return Reply(); }
  CoordinatorReply Commit(const std::string&, int) override { return Reply(); }
  CoordinatorReply Abort(const std::string&, int) override { return Reply(); }
  CoordinatorReply Get(const std::string&, int) override { return Reply(); }
  int64_t connections_opened() const override { return 0; }

 private:
  CoordinatorReply Reply() const {
    CoordinatorReply r;
    r.delivery = Delivery::kBadConfig;
    r.message = why_;
    return r;
  }
  const std::string why_;
};

}  // namespace

std::unique_ptr<CoordinatorTransport> MakeCoordinatorTransport(const std::string& address,
                                                               const TransportOptions& options) {
  std::string why;
  std::unique_ptr<CoordinatorTransport> t;
  if (address.rfind("thrift://", 0) == 0 || address.rfind("thrifts://", 0) == 0) {
    t = MakeThriftCoordinator(address, options, &why);
  } else {
    t = MakeHttpCoordinator(address, options, &why);
  }
  if (t) return t;
  return std::make_unique<UnusableCoordinator>(std::move(why));
}

}  // namespace treaty_sdk_detail
