// ParticipantServer::Stop() and requests queued for a handler
// (participant_server.h: "Stops accepting and waits for the handlers already
// running"): with one handler thread and a slow step, several HTTP requests
// and several Thrift calls at once, then Stop() while the first of each
// runs. Stop() returns after about one handler time; the requests whose
// handler had not started never run (Thrift: answered RETRY; HTTP: 503 or
// their connection is closed, no 2xx), the running ones' answers reach
// their callers (HTTP and Thrift), and every client has its answer or a
// closed connection by the time Stop() returns. Before the fix Stop() ran
// every queued request after it began, one handler time each, and HTTP
// connections stayed open until the server was destroyed.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "ParticipantService.h"
#include "sdk/raw_http.h"
#include "treaty/participant_server.h"

namespace treaty::testing {
namespace {

namespace at = apache::thrift;

constexpr int kHandlerMs = 1500;
constexpr int kRequests = 4;  // per protocol

// One Thrift action on a fresh connection: its outcome, or 0 when the
// connection failed or was closed.
int ThriftAction(int port, const std::string& gtid) {
  try {
    auto socket = std::make_shared<at::transport::TSocket>("127.0.0.1", port);
    socket->setRecvTimeout(20000);
    auto transport = std::make_shared<at::transport::TFramedTransport>(socket);
    transport->open();
    rpc::ParticipantServiceClient client(
        std::make_shared<at::protocol::TBinaryProtocol>(transport));
    rpc::ParticipantCall call;
    call.gtid = gtid;
    call.branch = "book";
    call.op = "action";
    call.payload = "{}";
    call.idempotency_key = gtid + "/book/action";
    rpc::ParticipantReply reply;
    client.action(reply, call);
    transport->close();
    return reply.outcome;
  } catch (const at::TException&) {
    return 0;
  }
}

TEST(ParticipantServerStopTest, RequestsQueuedForAHandlerNeverRunAfterStop) {
  std::atomic<int> http_ran{0}, thrift_ran{0};
  ParticipantServerOptions options;
  options.thrift_port = 0;
  options.handler_threads = 1;
  options.io_threads = 1;
  ParticipantServer server(options);
  auto slow = [&](const CallContext& ctx) {
    ++(ctx.gtid.rfind("http-", 0) == 0 ? http_ran : thrift_ran);
    std::this_thread::sleep_for(std::chrono::milliseconds(kHandlerMs));
    return Status::Ok();
  };
  server.AddSagaStep("book", slow, slow);
  ASSERT_TRUE(server.Start().ok());
  const uint16_t http_port = server.http_port();
  const int thrift_port = server.thrift_port();

  std::atomic<int> http_2xx{0}, http_hung{0}, thrift_ok{0}, thrift_retry{0}, thrift_closed{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kRequests; ++i) {
    const std::string n = std::to_string(i);
    callers.emplace_back([&, n] {
      RawResponse r = RawExchange(
          http_port, RawPost("/book", "{\"gtid\":\"http-" + n + "\",\"op\":\"action\"}"),
          /*guard_ms=*/8000);
      if (r.status / 100 == 2) ++http_2xx;
      if (r.timed_out) ++http_hung;
    });
    callers.emplace_back([&, n] {
      const int outcome = ThriftAction(thrift_port, "thrift-" + n);
      if (outcome == rpc::Outcome::OK) ++thrift_ok;
      if (outcome == rpc::Outcome::RETRY) ++thrift_retry;
      if (outcome == 0) ++thrift_closed;
    });
  }
  for (int i = 0; i < 500 && (http_ran == 0 || thrift_ran == 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(http_ran, 1);
  ASSERT_EQ(thrift_ran, 1);
  // Let the other requests arrive and queue for the handler.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  const auto start = std::chrono::steady_clock::now();
  server.Stop();
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
  for (auto& t : callers) t.join();
  const auto answered = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
  EXPECT_LT(elapsed, kHandlerMs + 1000) << "Stop() ran requests queued for a handler";
  EXPECT_LT(answered, kHandlerMs + 2000) << "a client waited on past Stop()";
  EXPECT_EQ(http_hung, 0) << "HTTP connections left open after Stop()";
  EXPECT_EQ(http_ran, 1) << "an HTTP handler ran after Stop() began";
  EXPECT_EQ(thrift_ran, 1) << "a Thrift handler ran after Stop() began";
  // HTTP: the running handler's answer is written before Stop() closes the
  // connections (it was lost before: the caller saw an empty reply and
  // retried work that was done); the queued ones get no 2xx.
  EXPECT_EQ(http_2xx, 1) << "the answer of the handler running at Stop() was lost";
  EXPECT_EQ(thrift_ok, 1);
  // RETRY; or a closed connection for a call whose frame was not read in
  // full when Stop() began (rare: they were sent 300 ms before).
  EXPECT_EQ(thrift_retry + thrift_closed, kRequests - 1);
  EXPECT_GE(thrift_retry, 1) << thrift_closed << " calls saw a closed connection";
  server.Stop();  // idempotent
  // A stopped server is not started again (it used to answer OK and serve
  // nothing).
  const treaty::Status again = server.Start();
  EXPECT_EQ(again.code(), treaty::StatusCode::kInvalidArgument) << again.ToString();
}

}  // namespace
}  // namespace treaty::testing
