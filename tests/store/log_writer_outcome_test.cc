// LogWriter when a batch's outcome is unknown or the store stalls, on real
// stores (SQLite file, PostgreSQL):
//  - a create whose commit went through but whose answer was lost is
//    recognized as our own on retry and reported OK;
//    a row that is not exactly ours stays Conflict;
//  - a batch blocked in the store longer than stall_after_ms is reported as
//    a stall to StoreHealth (new work refused) without the writer thread,
//    and the stall ends when the batch commits;
//  - writes queued behind an unavailable store are answered within their
//    retry window, not one window per batch;
//  - a create the engine sends again flagged create_outcome_unknown, in a
//    batch of its own, is recognized the same way;
//  - a batch in which no write was applied neither ends a stall nor marks
//    the store up.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "store/log_writer.h"
#include "store/store_fixture.h"
#include "support/forwarding_log_store.h"

namespace treaty::testing {
namespace {

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// Forwards to a real store. `lose_answers`: that many batches are applied
// for real and then answered Unavailable (the commit's answer was lost).
// `unavailable`: that many batches fail with Unavailable without reaching
// the store. `block`: batches wait until `Release()` before they apply.
class FaultyStore : public ForwardingLogStore {
 public:
  explicit FaultyStore(LogStore* inner) : ForwardingLogStore(inner) {}
  std::atomic<int> lose_answers{0};
  std::atomic<int> unavailable{0};
  std::atomic<bool> always_unavailable{false};
  std::atomic<int> batches{0};

  void Block() {
    std::lock_guard lock(mu_);
    blocked_ = true;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      blocked_ = false;
    }
    cv_.notify_all();
  }

  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& w) override {
    ++batches;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !blocked_; });
    }
    if (always_unavailable) return Status::Unavailable("injected: store away");
    if (unavailable > 0) {
      --unavailable;
      return Status::Unavailable("injected: store away");
    }
    Result<std::vector<Status>> r = inner_->ApplyBatch(w);
    if (lose_answers > 0) {
      --lose_answers;
      return Status::Unavailable("injected: connection lost during COMMIT");
    }
    return r;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool blocked_ = false;
};

// Submits one write and waits for its Status.
Status Write(LogWriter& writer, TxnWrite w) {
  std::promise<Status> p;
  auto f = p.get_future();
  writer.Submit(std::move(w), [&p](Status s) { p.set_value(std::move(s)); });
  return f.get();
}

TxnWrite CreateWithHistory(const std::string& gtid, const std::string& owner) {
  TxnWrite w = CreateWrite(gtid, owner);
  BranchRow b;
  b.name = "step-1";
  b.idx = 0;
  b.state = "PENDING";
  b.spec = "{}";
  w.new_branches.push_back(b);
  w.events.push_back({0, gtid, "", "state", "created", 0});
  return w;
}

using LogWriterOutcomeTest = StoreTest;

TEST_P(LogWriterOutcomeTest, CreateWhoseAnswerWasLostIsReportedOk) {
  FaultyStore faulty(&store());
  LogWriter writer(&faulty, {.retry_for_ms = 5000});
  faulty.lose_answers = 1;
  // Alone, and in a batch with others (the set-based path on PostgreSQL).
  Status alone = Write(writer, CreateWithHistory("lost-1", "c1"));
  EXPECT_TRUE(alone.ok()) << alone.ToString();
  EXPECT_GE(faulty.batches.load(), 2);

  faulty.lose_answers = 1;
  std::vector<std::future<Status>> results;
  std::vector<std::promise<Status>> promises(3);
  faulty.Block();  // queue all three so they go as one batch
  for (int i = 0; i < 3; ++i) {
    results.push_back(promises[i].get_future());
    writer.Submit(CreateWithHistory("lost-b" + std::to_string(i), "c1"),
                  [&promises, i](Status s) { promises[i].set_value(std::move(s)); });
  }
  // The first submit may already be in a batch of its own: fine either way.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  faulty.Release();
  for (auto& r : results) {
    Status s = r.get();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  for (const char* gtid : {"lost-1", "lost-b0", "lost-b1", "lost-b2"}) {
    Result<TxnDetail> d = store().GetTransaction(gtid);
    ASSERT_TRUE(d.ok()) << gtid << ": " << d.status().ToString();
    EXPECT_EQ(d->txn.owner, "c1");
    EXPECT_EQ(d->branches.size(), 1u) << gtid;
    EXPECT_EQ(d->events.size(), 1u) << gtid << ": applied once, not twice";
  }
}

TEST_P(LogWriterOutcomeTest, RowThatIsNotExactlyOursStaysConflict) {
  FaultyStore faulty(&store());
  LogWriter writer(&faulty, {.retry_for_ms = 5000});
  // A peer's row under the gtid; our create's answer is lost, the retry
  // meets the peer's row: still a Conflict.
  ASSERT_TRUE(ApplyOne(store(), CreateWrite("theirs", "peer")).ok());
  faulty.unavailable = 1;
  EXPECT_EQ(Write(writer, CreateWrite("theirs", "c1")).code(), StatusCode::kConflict);

  // Our owner and spec, but updated since (version moved): not this create.
  ASSERT_TRUE(ApplyOne(store(), CreateWrite("moved", "c1")).ok());
  TxnWrite update;
  update.gtid = "moved";
  update.owner = "c1";
  update.state = "COMPENSATING";
  ASSERT_TRUE(ApplyOne(store(), update).ok());
  faulty.unavailable = 1;
  EXPECT_EQ(Write(writer, CreateWrite("moved", "c1")).code(), StatusCode::kConflict);

  // Exactly ours, but no attempt of this batch failed: a plain duplicate.
  ASSERT_TRUE(ApplyOne(store(), CreateWrite("dup", "c1")).ok());
  EXPECT_EQ(Write(writer, CreateWrite("dup", "c1")).code(), StatusCode::kConflict);
}

TEST_P(LogWriterOutcomeTest, BlockedBatchIsAStallUntilItCommits) {
  FaultyStore faulty(&store());
  StoreHealth health;
  LogWriter writer(&faulty, {.retry_for_ms = 60000, .stall_after_ms = 300, .health = &health});
  ASSERT_TRUE(Write(writer, CreateWrite("before", "c1")).ok());
  EXPECT_FALSE(writer.stalled());
  EXPECT_TRUE(health.AcceptsNewWork());

  faulty.Block();  // e.g. SQLite's commit stuck on its disk: no deadline below
  std::promise<Status> p;
  auto f = p.get_future();
  const auto submitted = Clock::now();
  writer.Submit(CreateWrite("during", "c1"), [&p](Status s) { p.set_value(std::move(s)); });
  while (!health.stalled() && MsSince(submitted) < 10000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int64_t detected_ms = MsSince(submitted);
  ASSERT_TRUE(health.stalled()) << "no stall after " << detected_ms << " ms";
  EXPECT_GE(detected_ms, 300);
  EXPECT_TRUE(writer.stalled());
  EXPECT_FALSE(health.AcceptsNewWork());
  EXPECT_NE(health.Problem().find("stalled"), std::string::npos) << health.Problem();
  // Still stalled a while later (reported once, not cleared by time).
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_TRUE(health.stalled());

  faulty.Release();
  EXPECT_TRUE(f.get().ok());
  EXPECT_FALSE(health.stalled());
  EXPECT_FALSE(writer.stalled());
  EXPECT_TRUE(health.AcceptsNewWork());
  EXPECT_TRUE(Write(writer, CreateWrite("after", "c1")).ok());
}

TEST_P(LogWriterOutcomeTest, QueuedWritesAreAnsweredWithinTheirRetryWindow) {
  FaultyStore faulty(&store());
  StoreHealth health;
  LogWriter writer(
      &faulty, {.max_batch = 1, .retry_for_ms = 1000, .stall_after_ms = 200, .health = &health});
  faulty.always_unavailable = true;
  const auto submitted = Clock::now();
  std::vector<std::promise<Status>> promises(5);
  std::vector<std::future<Status>> results;
  for (int i = 0; i < 5; ++i) {
    results.push_back(promises[i].get_future());
    writer.Submit(CreateWrite("q" + std::to_string(i), "c1"),
                  [&promises, i](Status s) { promises[i].set_value(std::move(s)); });
  }
  for (auto& r : results) {
    // Unavailable once attempted; TimedOut ("not written") if never attempted.
    const StatusCode code = r.get().code();
    EXPECT_TRUE(code == StatusCode::kUnavailable || code == StatusCode::kTimedOut);
  }
  // One window for all, not one per batch of one (that would be >= 5 s).
  EXPECT_LT(MsSince(submitted), 3500);
  EXPECT_TRUE(health.stalled());
  faulty.always_unavailable = false;
  EXPECT_TRUE(Write(writer, CreateWrite("back", "c1")).ok());
  EXPECT_FALSE(health.stalled());
}

// The engine sends a create again, in a batch of its own, after the earlier
// batch ended Unavailable (TxnDriver, create_outcome_unknown): the row that
// batch committed after all is recognized as its own; any other row is not.
TEST_P(LogWriterOutcomeTest, FlaggedCreateInAFreshBatchRecognizesOnlyItsOwnRow) {
  LogWriter writer(&store(), {.retry_for_ms = 5000});
  // The earlier batch's COMMIT went through (its answer did not).
  ASSERT_TRUE(ApplyOne(store(), CreateWithHistory("mine", "c1")).ok());
  TxnWrite again = CreateWithHistory("mine", "c1");
  again.create_outcome_unknown = true;
  Status s = Write(writer, again);
  EXPECT_TRUE(s.ok()) << s.ToString();
  Result<TxnDetail> d = store().GetTransaction("mine");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->events.size(), 1u) << "applied once, not twice";

  // A peer's row under the gtid: Conflict, flag or not.
  ASSERT_TRUE(ApplyOne(store(), CreateWrite("theirs", "peer")).ok());
  TxnWrite theirs = CreateWrite("theirs", "c1");
  theirs.create_outcome_unknown = true;
  EXPECT_EQ(Write(writer, theirs).code(), StatusCode::kConflict);

  // Ours, but updated since (version moved): not this create.
  ASSERT_TRUE(ApplyOne(store(), CreateWrite("moved", "c1")).ok());
  TxnWrite update;
  update.gtid = "moved";
  update.owner = "c1";
  update.state = "COMPENSATING";
  ASSERT_TRUE(ApplyOne(store(), update).ok());
  TxnWrite moved = CreateWrite("moved", "c1");
  moved.create_outcome_unknown = true;
  EXPECT_EQ(Write(writer, moved).code(), StatusCode::kConflict);

  // Not flagged, and no attempt of its batch failed: a plain duplicate.
  EXPECT_EQ(Write(writer, CreateWrite("mine", "c1")).code(), StatusCode::kConflict);

  // The gtid is free: the flagged create simply inserts it.
  TxnWrite fresh = CreateWrite("fresh", "c1");
  fresh.create_outcome_unknown = true;
  EXPECT_TRUE(Write(writer, fresh).ok());
}

// A batch whose writes change nothing (an update of a gtid that is not
// visible: NotFound) commits at once even while commits that write wait
// forever (PostgreSQL skips the synchronous standby then). It is no
// evidence that commits complete: the stall stays, the store stays down.
TEST_P(LogWriterOutcomeTest, BatchThatAppliedNothingDoesNotEndAStall) {
  FaultyStore faulty(&store());
  StoreHealth health;
  LogWriter writer(&faulty, {.retry_for_ms = 1000, .stall_after_ms = 200, .health = &health});
  faulty.always_unavailable = true;
  EXPECT_EQ(Write(writer, CreateWrite("stuck", "c1")).code(), StatusCode::kUnavailable);
  ASSERT_TRUE(health.stalled());
  ASSERT_TRUE(writer.stalled());
  EXPECT_FALSE(health.up());

  faulty.always_unavailable = false;
  TxnWrite ghost;
  ghost.gtid = "not-there";
  ghost.owner = "c1";
  ghost.release_owner = true;
  const Status s = Write(writer, ghost);
  EXPECT_TRUE(s.code() == StatusCode::kNotFound || s.code() == StatusCode::kLostOwnership)
      << s.ToString();
  EXPECT_TRUE(health.stalled()) << "a write that changed nothing ended the stall";
  EXPECT_TRUE(writer.stalled());
  EXPECT_FALSE(health.up());
  EXPECT_FALSE(health.AcceptsNewWork());

  // A write that is applied ends it.
  EXPECT_TRUE(Write(writer, CreateWrite("back", "c1")).ok());
  EXPECT_FALSE(health.stalled());
  EXPECT_FALSE(writer.stalled());
  EXPECT_TRUE(health.up());
}

INSTANTIATE_TEST_SUITE_P(Engines, LogWriterOutcomeTest, ::testing::Values("sqlite", "postgres"),
                         EngineName);

}  // namespace
}  // namespace treaty::testing
