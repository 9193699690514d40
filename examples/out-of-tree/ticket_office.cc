// ticket_office: a participant and a client in one program, built against
// the installed SDK only (see CMakeLists.txt, docs/install.md).
//
// It serves two saga steps, "seat" and "payment", on a treaty::ParticipantServer
// (loopback, a free port), then submits two sagas through treaty::Client:
//   1. a seat and a payment that succeed         -> COMMITTED
//   2. a payment that is declined (409 business) -> ABORTED, the seat is released
// and checks that the steps' effects match each outcome.
//
// Usage: ticket_office --coordinator http://127.0.0.1:7480[,http://...]
// Exit status: 0 when both sagas ended as expected, 1 otherwise, 2 on bad usage.

#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>

#include "treaty/client.h"
#include "treaty/participant_server.h"

namespace {

// The seats held, by gtid. Deliveries are at least once, may run
// concurrently, and a late duplicate of an action may come after its
// compensation: every change is idempotent and under the mutex, and a seat
// once released is never held again for the same saga.
class SeatMap {
 public:
  treaty::Status Hold(const treaty::CallContext& ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    if (released_.count(ctx.gtid) > 0) return treaty::Status::BusinessFailure("seat released");
    held_.insert(ctx.gtid);
    return treaty::Status::Ok();
  }
  treaty::Status Release(const treaty::CallContext& ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    held_.erase(ctx.gtid);
    released_.insert(ctx.gtid);
    return treaty::Status::Ok();
  }
  bool IsHeld(const std::string& gtid) {
    std::lock_guard<std::mutex> lock(mu_);
    return held_.count(gtid) > 0;
  }

 private:
  std::mutex mu_;
  std::set<std::string> held_;      // guarded by mu_
  std::set<std::string> released_;  // guarded by mu_
};

treaty::Status TakePayment(const treaty::CallContext& ctx) {
  if (ctx.payload.find("declined") != std::string::npos) {
    return treaty::Status::BusinessFailure("card declined");
  }
  return treaty::Status::Ok();
}

treaty::Status RefundPayment(const treaty::CallContext&) { return treaty::Status::Ok(); }

// Submits one saga (seat, then payment with `card`) and waits for its outcome.
treaty::Result<treaty::TxnStatus> Sell(treaty::Client& client, treaty::ParticipantServer& server,
                                       const std::string& card) {
  treaty::SagaSpec saga;
  saga.timeout_ms = 30000;
  saga.steps.push_back({.name = "seat",
                        .action = server.Url("seat", "action"),
                        .compensate = server.Url("seat", "compensate"),
                        .payload = R"({"row": 7, "seat": "C"})"});
  saga.steps.push_back({.name = "payment",
                        .action = server.Url("payment", "action"),
                        .compensate = server.Url("payment", "compensate"),
                        .payload = "{\"card\": \"" + card + "\"}"});
  return client.SubmitSaga(saga, /*wait=*/true, 30000);
}

}  // namespace

int main(int argc, char** argv) {
  treaty::ClientOptions options;
  if (argc != 3 || std::string(argv[1]) != "--coordinator") {
    std::cerr << "usage: ticket_office --coordinator URL[,URL...]\n";
    return 2;
  }
  options.coordinators.clear();
  std::stringstream list(argv[2]);
  for (std::string url; std::getline(list, url, ',');) options.coordinators.push_back(url);

  SeatMap seats;
  treaty::ParticipantServer server;
  server.AddSagaStep(
      "seat", [&](const treaty::CallContext& ctx) { return seats.Hold(ctx); },
      [&](const treaty::CallContext& ctx) { return seats.Release(ctx); });
  server.AddSagaStep("payment", TakePayment, RefundPayment);
  if (treaty::Status s = server.Start(); !s.ok()) {
    std::cerr << "ticket_office: cannot serve: " << s.ToString() << "\n";
    return 1;
  }
  std::cout << "serving saga steps on " << server.http_url() << "\n";

  treaty::Client client(options);
  auto sold = Sell(client, server, "valid");
  auto declined = Sell(client, server, "declined");
  server.Stop();
  if (!sold.ok() || !declined.ok()) {
    std::cerr << "ticket_office: " << (sold.ok() ? declined.status() : sold.status()).ToString()
              << "\n";
    return 1;
  }
  std::cout << "saga " << sold->gtid << ": " << sold->state << "\n"
            << "saga " << declined->gtid << ": " << declined->state << "\n";
  const bool ok = sold->state == "COMMITTED" && seats.IsHeld(sold->gtid) &&
                  declined->state == "ABORTED" && !seats.IsHeld(declined->gtid);
  std::cout << (ok ? "both sagas ended as expected" : "unexpected outcome") << "\n";
  return ok ? 0 : 1;
}
