// HttpServer's exception guards: a handler's asynchronous completion that
// throws still yields a 500 (AnswerGuarded), a responder dropped by a task
// that threw yields a 500 (OwedResponder), a response that cannot be written
// as given is made safe, and the server keeps serving throughout.

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/asio_task_runner.h"
#include "http/http_client.h"
#include "http/http_server.h"
#include "http/io_runner.h"

namespace treaty {
namespace {

class HttpServerGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<HttpServer>(
        io_.io(), HttpServerOptions{},
        [this](HttpRequest req, HttpResponder respond) { Handle(req, std::move(respond)); });
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    server_->Stop();
    pool_.join();
  }

  // Routes of the test, each answering later on the thread pool.
  void Handle(const HttpRequest& req, HttpResponder respond) {
    if (req.path == "/ok") {
      runner_.Post([respond] { respond({200, "text/plain", "ok", {}}); });
    } else if (req.path == "/completion-throws") {
      runner_.Post([respond] {
        AnswerGuarded(respond, "test completion",
                      [] { throw std::runtime_error("serializer exploded"); });
      });
    } else if (req.path == "/answers-then-throws") {
      runner_.Post([respond] {
        AnswerGuarded(respond, "test completion", [&] {
          respond({200, "text/plain", "first answer wins", {}});
          throw std::runtime_error("late");
        });
      });
    } else if (req.path == "/task-throws") {
      HttpResponder owed = OwedResponder(respond);
      runner_.Post([owed] { throw std::runtime_error("task exploded before answering"); });
    } else if (req.path == "/owed-answered") {
      HttpResponder owed = OwedResponder(respond);
      runner_.Post([owed] { owed({201, "text/plain", "answered once", {}}); });
    } else if (req.path == "/bad-headers") {
      respond({200,
               "text/plain\r\nX-Injected: 1",
               "body",
               {{"X-Value", "a\r\nX-Smuggled: 1"}, {"Bad Name:", "v"}, {"X-Ok", "fine"}}});
    } else if (req.path == "/bad-status") {
      respond({0, "text/plain", "no status", {}});
    } else {
      respond({404, "text/plain", "no route", {}});
    }
  }

  HttpClientResponse Fetch(const std::string& path) {
    auto r = HttpFetch("GET", "http://127.0.0.1:" + std::to_string(server_->port()) + path, "", {},
                       10000);
    EXPECT_TRUE(r.ok()) << path << ": " << r.status().ToString();
    return r.ok() ? *r : HttpClientResponse{};
  }

  void ExpectServing() {
    HttpClientResponse r = Fetch("/ok");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "ok");
  }

  IoRunner io_{2};
  boost::asio::thread_pool pool_{2};
  AsioTaskRunner runner_{pool_.get_executor(), "test task"};
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerGuardTest, AsyncCompletionThatThrowsIs500) {
  for (int i = 0; i < 3; ++i) {
    HttpClientResponse r = Fetch("/completion-throws");
    EXPECT_EQ(r.status, 500);
    EXPECT_NE(r.body.find("test completion failed: serializer exploded"), std::string::npos)
        << r.body;
    ExpectServing();
  }
  HttpClientResponse first = Fetch("/answers-then-throws");
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, "first answer wins");
  ExpectServing();
}

TEST_F(HttpServerGuardTest, ResponderDroppedByThrowingTaskIs500) {
  for (int i = 0; i < 3; ++i) {
    HttpClientResponse r = Fetch("/task-throws");
    EXPECT_EQ(r.status, 500);
    EXPECT_NE(r.body.find("dropped without an answer"), std::string::npos) << r.body;
    ExpectServing();
  }
  HttpClientResponse answered = Fetch("/owed-answered");
  EXPECT_EQ(answered.status, 201);
  EXPECT_EQ(answered.body, "answered once");
}

TEST_F(HttpServerGuardTest, ResponseHeadersCannotInjectOrBreakTheResponse) {
  HttpClientResponse r = Fetch("/bad-headers");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "body");
  EXPECT_EQ(r.headers.count("x-injected"), 0u);
  EXPECT_EQ(r.headers.count("x-smuggled"), 0u);
  EXPECT_EQ(r.headers["x-value"], "a\\r\\nX-Smuggled: 1");
  EXPECT_EQ(r.headers["x-ok"], "fine");
  HttpClientResponse bad = Fetch("/bad-status");
  EXPECT_EQ(bad.status, 500);
  ExpectServing();
}

}  // namespace
}  // namespace treaty
