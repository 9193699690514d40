#include "coordinator_transport.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
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
  CoordinatorReply SubmitSaga(const json&, int, int = 0) override { return Reply(); }
  CoordinatorReply Begin(const json&, int) override { return Reply(); }
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

bool IdleSocketUsable(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  const int ready = ::poll(&p, 1, 0);
  if (ready == 0) return true;  // nothing to read: still open
  if (ready < 0) return false;
  // Readable while idle: EOF (the peer closed), an error, or unsolicited
  // bytes; none of these connections can carry the next request.
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::unique_ptr<CoordinatorTransport> MakeCoordinatorTransport(const std::string& address,
                                                               const TransportOptions& options) {
  std::string why;
  std::unique_ptr<CoordinatorTransport> t;
  if (address.rfind("thrift://", 0) == 0) {
    t = MakeThriftCoordinator(address, options, &why);
  } else {
    t = MakeHttpCoordinator(address, options, &why);
  }
  if (t) return t;
  return std::make_unique<UnusableCoordinator>(std::move(why));
}

}  // namespace treaty_sdk_detail
