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

const char* AnswerCodeName(AnswerCode code) {
  switch (code) {
    case AnswerCode::kOk:
      return "ok";
    case AnswerCode::kInvalidArgument:
      return "invalid_argument";
    case AnswerCode::kUnauthenticated:
      return "unauthenticated";
    case AnswerCode::kForbidden:
      return "forbidden";
    case AnswerCode::kNotFound:
      return "not_found";
    case AnswerCode::kConflict:
      return "conflict";
    case AnswerCode::kNotOwner:
      return "not_owner";
    case AnswerCode::kTooLarge:
      return "too_large";
    case AnswerCode::kUnavailable:
      return "unavailable";
    case AnswerCode::kTimedOut:
      return "timed_out";
    case AnswerCode::kInternal:
      return "internal";
  }
  return "internal";
}

AnswerCode AnswerCodeOf(int http_status, const json& body) {
  if (http_status >= 200 && http_status < 300) return AnswerCode::kOk;
  if (body.is_object()) {
    auto error = body.find("error");
    if (error != body.end() && error->is_object()) {
      auto code = error->find("code");
      if (code != error->end() && code->is_string()) {
        const std::string& c = code->get_ref<const std::string&>();
        for (AnswerCode known :
             {AnswerCode::kInvalidArgument, AnswerCode::kUnauthenticated, AnswerCode::kForbidden,
              AnswerCode::kNotFound, AnswerCode::kConflict, AnswerCode::kNotOwner,
              AnswerCode::kTooLarge, AnswerCode::kUnavailable, AnswerCode::kTimedOut,
              AnswerCode::kInternal}) {
          if (c == AnswerCodeName(known)) return known;
        }
      }
    }
  }
  switch (http_status) {
    case 400:
    case 422:
      return AnswerCode::kInvalidArgument;
    case 401:
      return AnswerCode::kUnauthenticated;
    case 403:
      return AnswerCode::kForbidden;
    case 404:
      return AnswerCode::kNotFound;
    case 409:
      return AnswerCode::kConflict;
    case 413:
      return AnswerCode::kTooLarge;
    case 502:
    case 503:
      return AnswerCode::kUnavailable;
    case 504:
      return AnswerCode::kTimedOut;
    default:
      return AnswerCode::kInternal;
  }
}

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
