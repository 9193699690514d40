// The exception guards of the REST front end, end to end over loopback: a
// real HttpServer, RestApi, TxnService and AsioTaskRunners (engine strand,
// blocking pool), over a LogStore whose reads throw, as a database
// library's exception escaping a store would. Each throw must become a 500
// answer and a log line; the process must not terminate and the server must
// keep serving.

#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <stdexcept>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "api/rest_api.h"
#include "common/asio_task_runner.h"
#include "common/text.h"
#include "http/http_client.h"
#include "http/http_server.h"
#include "http/io_runner.h"

namespace treaty {
namespace {

using nlohmann::json;

// Reads that throw; everything else is refused or empty.
class ThrowingStore : public LogStore {
 public:
  std::string Engine() const override { return "throwing"; }
  Status Migrate() override { return Status::Ok(); }
  Status CheckReady() override { throw std::runtime_error("ready check exploded"); }
  Result<TxnDetail> GetTransaction(const std::string& gtid) override {
    if (gtid == "explode") throw std::runtime_error("driver exploded\nforged line");
    if (gtid == "explode-odd") throw 7;
    return Status::NotFound("transaction " + gtid + " not found");
  }
  Result<TxnDetail> GetTransactionNoEvents(const std::string& gtid) override {
    return GetTransaction(gtid);
  }
  Result<TxnPage> ListTransactions(const ListFilter&) override {
    throw std::logic_error("list exploded");
  }
  Result<std::vector<StateCount>> CountByState() override { return Unavailable(); }
  Status RegisterCoordinator(const CoordinatorRow&) override { return Unavailable(); }
  Status Heartbeat(const std::string&) override { return Unavailable(); }
  Status SetCoordinatorState(const std::string&, const std::string&) override {
    return Unavailable();
  }
  Result<std::vector<std::string>> MarkExpiredCoordinators(int64_t) override {
    return Unavailable();
  }
  Result<std::vector<CoordinatorRow>> ListCoordinators() override { throw std::bad_alloc(); }
  Status DeleteCoordinator(const std::string&) override { return Unavailable(); }
  Result<std::vector<TxnDetail>> ClaimOrphans(const std::string&, int) override {
    return Unavailable();
  }
  Result<OrphanCensus> CountOrphans(int64_t) override { return Unavailable(); }
  Result<int64_t> ReleaseOwned(const std::string&) override { return Unavailable(); }
  Result<int64_t> PurgeFinished(int64_t, int) override { return Unavailable(); }

 protected:
  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>&) override {
    return Unavailable();
  }

 private:
  static Status Unavailable() { return Status::Unavailable("not in this test"); }
};

// Readiness with only its read check (no write probe, no StoreHealth).
ReadinessDeps ReadinessFor(TxnQueries* queries, TaskRunner* blocking) {
  ReadinessDeps deps;
  deps.queries = queries;
  deps.blocking = blocking;
  return deps;
}

class RestApiGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_logger_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "captured", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_)));
    TxnServiceDeps deps;
    deps.engine_runner = &engine_;
    deps.blocking_runner = &blocking_;
    deps.store = &store_;
    deps.owner = "c1";
    service_ = std::make_unique<TxnService>(deps, TxnServiceOptions{});
    rest_ = std::make_unique<RestApi>(service_.get(), &queries_, &readiness_, &blocking_,
                                      RestApiOptions{});
    server_ = std::make_unique<HttpServer>(
        io_.io(), HttpServerOptions{},
        [this](HttpRequest req, HttpResponder respond) { rest_->Handle(req, respond); });
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    server_->Stop();
    pool_.join();
    spdlog::set_default_logger(previous_logger_);
  }

  HttpClientResponse Fetch(const std::string& target) {
    auto r = HttpFetch("GET", "http://127.0.0.1:" + std::to_string(server_->port()) + target, "",
                       {}, 10000);
    EXPECT_TRUE(r.ok()) << target << ": " << r.status().ToString();
    return r.ok() ? *r : HttpClientResponse{};
  }

  // 500 with a well-formed JSON error, then the server still serves.
  void Expect500ThenServing(const std::string& target) {
    SCOPED_TRACE(target);
    HttpClientResponse r = Fetch(target);
    EXPECT_EQ(r.status, 500) << r.body;
    EXPECT_TRUE(IsValidUtf8(r.body));
    json body = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << r.body;
    EXPECT_EQ(body["error"]["code"], "internal") << r.body;
    EXPECT_EQ(Fetch("/healthz").status, 200);
    EXPECT_EQ(Fetch("/v1/transactions/missing").status, 404);
  }

  std::string Log() {
    spdlog::default_logger()->flush();
    return log_.str();
  }

  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> previous_logger_;
  IoRunner io_{2};
  boost::asio::thread_pool pool_{2};
  AsioTaskRunner engine_{boost::asio::make_strand(io_.io()), "engine task"};
  AsioTaskRunner blocking_{pool_.get_executor(), "blocking task"};
  ThrowingStore store_;
  TxnQueries queries_{&store_, &blocking_};
  Readiness readiness_{ReadinessFor(&queries_, &blocking_)};
  std::unique_ptr<TxnService> service_;
  std::unique_ptr<RestApi> rest_;
  std::unique_ptr<HttpServer> server_;
};

// The store throws inside TxnQueries' task on the blocking pool: its guard
// logs it once and answers Internal, which REST answers 500. /readyz's read
// check goes through TxnQueries too (Readiness).
TEST_F(RestApiGuardTest, StoreThrowingOnBlockingPoolIs500AndLogged) {
  Expect500ThenServing("/v1/transactions/explode");
  Expect500ThenServing("/v1/transactions/explode-odd");
  Expect500ThenServing("/v1/transactions");
  Expect500ThenServing("/v1/cluster");
  HttpClientResponse ready = Fetch("/readyz");
  EXPECT_EQ(ready.status, 500);
  EXPECT_NE(ready.body.find("the transaction log is not ready: checking the log failed: ready "
                            "check exploded"),
            std::string::npos)
      << ready.body;
  Expect500ThenServing("/readyz");
  const std::string log = Log();
  EXPECT_NE(log.find("reading a transaction threw"), std::string::npos) << log;
  EXPECT_NE(log.find("listing transactions threw"), std::string::npos) << log;
  EXPECT_NE(log.find("listing coordinators threw"), std::string::npos) << log;
  EXPECT_NE(log.find("checking the log threw"), std::string::npos) << log;
  EXPECT_NE(log.find("driver exploded\\nforged line"), std::string::npos) << log;
  EXPECT_EQ(log.find("driver exploded\nforged"), std::string::npos) << "raw newline in the log";
  EXPECT_NE(log.find("list exploded"), std::string::npos) << log;
}

}  // namespace
}  // namespace treaty
