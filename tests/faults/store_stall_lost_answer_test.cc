// A create whose COMMIT went through but whose answer was lost: the
// LogWriter retries the batch, meets its own row as a
// Conflict, recognizes it and reports OK, so the submission is answered as
// created and the saga is driven to COMMITTED by its own driver, without a
// re-submission. Real parts: TxnService on an Asio strand, LogWriter, a real
// SQLite file or PostgreSQL database under a wrapper that loses one COMMIT
// answer, a real HTTP participant.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/asio_task_runner.h"
#include "engine/states.h"
#include "engine/txn_service.h"
#include "http/http_participant_caller.h"
#include "store/log_writer.h"
#include "support/forwarding_log_store.h"
#include "support/store_env.h"
#include "support/subprocess.h"
#include "support/test_participant.h"

namespace treaty::testing {
namespace {

// A real store whose next `lose_answers` batches are committed and then
// answered Unavailable, as when the connection drops during COMMIT.
class LostAnswerStore : public ForwardingLogStore {
 public:
  explicit LostAnswerStore(std::unique_ptr<LogStore> inner)
      : ForwardingLogStore(inner.get()), owned_(std::move(inner)) {}
  std::atomic<int> lose_answers{0};

 protected:
  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& w) override {
    Result<std::vector<Status>> r = inner_->ApplyBatch(w);
    if (r.ok() && lose_answers > 0) {
      --lose_answers;
      return Status::Unavailable("injected: connection lost during COMMIT");
    }
    return r;
  }

 private:
  std::unique_ptr<LogStore> owned_;  // the inner store
};

class WriterLog : public TxnLog {
 public:
  explicit WriterLog(LogWriter* writer) : writer_(writer) {}
  void Write(TxnWrite write, Callback done) override {
    writer_->Submit(std::move(write), std::move(done));
  }

 private:
  LogWriter* writer_;
};

class LostAnswerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-lost-answer");
    auto opened = OpenLogStore(FreshStoreUri(GetParam(), dir_));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::make_unique<LostAnswerStore>(std::move(*opened));
    ASSERT_TRUE(store_->Migrate().ok());
    writer_ = std::make_unique<LogWriter>(store_.get(), LogWriterOptions{});
    log_ = std::make_unique<WriterLog>(writer_.get());
    caller_ = std::make_unique<HttpParticipantCaller>(io_, HttpCallerOptions{});
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
    TxnServiceDeps deps;
    deps.engine_runner = &engine_;
    deps.blocking_runner = &blocking_;
    deps.caller = caller_.get();
    deps.log = log_.get();
    deps.store = store_.get();
    deps.owner = "coord-1";
    service_ = std::make_unique<TxnService>(deps, TxnServiceOptions{});
  }
  void TearDown() override {
    writer_->Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    pool_.join();
    service_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  SagaSpec Spec(const std::string& gtid) {
    SagaSpec spec;
    spec.gtid = gtid;
    SagaStep s;
    s.name = "flight";
    s.action = participant_.Url("flight", "action");
    s.compensate = participant_.Url("flight", "compensate");
    spec.steps.push_back(s);
    return spec;
  }
  Result<SubmitResult> Submit(const std::string& gtid, bool wait) {
    std::promise<Result<SubmitResult>> p;
    service_->SubmitSaga(Spec(gtid), wait, 20000,
                         [&p](Result<SubmitResult> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
  std::string StoredState(const std::string& gtid, int timeout_ms) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::string state;
    while (std::chrono::steady_clock::now() < end) {
      auto d = store_->GetTransactionNoEvents(gtid);
      if (d.ok()) state = d->txn.state;
      if (state == states::kCommitted || state == states::kAborted) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return state;
  }

  std::string dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::vector<std::thread> threads_;
  boost::asio::thread_pool pool_{2};
  AsioTaskRunner engine_{boost::asio::make_strand(io_), "engine task"};
  AsioTaskRunner blocking_{pool_.get_executor(), "blocking task"};
  TestParticipant participant_;
  std::unique_ptr<LostAnswerStore> store_;
  std::unique_ptr<LogWriter> writer_;
  std::unique_ptr<WriterLog> log_;
  std::unique_ptr<HttpParticipantCaller> caller_;
  std::unique_ptr<TxnService> service_;
};

TEST_P(LostAnswerTest, SagaWhoseCreateAnswerWasLostRunsToCommitWithoutResubmission) {
  store_->lose_answers = 1;
  Result<SubmitResult> r = Submit("lost-nowait", false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->created) << "answered as this submission's create, not a duplicate";
  EXPECT_EQ(StoredState("lost-nowait", 20000), states::kCommitted);
  EXPECT_EQ(participant_.EffectCount("lost-nowait", "flight", "action"), 1);
}

TEST_P(LostAnswerTest, WaitingSubmissionIsAnsweredWithTheOutcome) {
  store_->lose_answers = 1;
  Result<SubmitResult> r = Submit("lost-wait", true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->created);
  EXPECT_EQ(r->state, states::kCommitted) << "the waiter is answered once the saga finished";
  auto d = store_->GetTransaction("lost-wait");
  ASSERT_TRUE(d.ok());
  int created_events = 0;
  for (const EventRow& e : d->events)
    created_events += e.type == "state" && e.detail.find("RUNNING") != std::string::npos;
  EXPECT_LE(created_events, 1) << "the create's history is logged once";
}

INSTANTIATE_TEST_SUITE_P(Engines, LostAnswerTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace treaty::testing
