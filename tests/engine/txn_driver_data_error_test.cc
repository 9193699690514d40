// TxnDriver when the log refuses a write for its own data (InvalidArgument,
// a data error): a create is answered to its creator and dropped; an update
// is never retried as it is but written again reduced, flagged with an
// "attention" event, and the work goes on; if even the reduced writes are
// refused, the transaction is dropped as if the log had failed (handed back).

#include <gtest/gtest.h>

#include "engine/engine_fakes.h"
#include "engine/saga.h"
#include "engine/states.h"

namespace treaty {
namespace {

using testing::FakeLog;
using testing::FakeTaskRunner;

// Refuses the writes `refuse` picks with a data error; forwards the rest to
// the in-memory log.
class RefusingLog : public TxnLog {
 public:
  RefusingLog(FakeTaskRunner* runner, FakeLog* inner) : runner_(runner), inner_(inner) {}
  void Write(TxnWrite write, Callback done) override {
    if (refuse && refuse(write)) {
      refused.push_back(write);
      runner_->Post([done = std::move(done)] {
        done(Status::InvalidArgument("data error: write: [22021] invalid byte sequence"));
      });
      return;
    }
    inner_->Write(std::move(write), std::move(done));
  }
  std::function<bool(const TxnWrite&)> refuse;
  std::vector<TxnWrite> refused;

 private:
  FakeTaskRunner* runner_;
  FakeLog* inner_;
};

bool HasBranchChange(const TxnWrite& w, const std::string& name) {
  for (const auto& u : w.branch_updates) {
    if (u.name == name) return true;
  }
  return false;
}

int AttentionEvents(const TxnDetail& d) {
  int n = 0;
  for (const auto& e : d.events) {
    if (e.type == "attention" && e.detail.find("refused a write for its data") != std::string::npos)
      ++n;
  }
  return n;
}

class DataErrorTest : public testing::DriverTest {
 protected:
  DataErrorTest() : DriverTest(7), refusing_(&runner_, &log_) { ctx_.log = &refusing_; }

  std::shared_ptr<Saga> Run(const std::string& gtid, std::vector<std::string> names) {
    auto saga = OnEngine([&] {
      return Saga::Create(&ctx_, SagaSpecOf(gtid, names, {3, 50, 200}));
    });
    saga->on_created = [this](Status s) { created_.push_back(s); };
    OnEngine([&] { saga->Start(); });
    alive_.push_back(saga);
    return saga;
  }

  std::string Finish(const std::string& gtid) {
    runner_.RunUntil(
        [&] { return recorder_.finished.count(gtid) > 0 || recorder_.dropped.count(gtid) > 0; });
    return recorder_.finished.count(gtid) ? recorder_.finished[gtid] : "(not finished)";
  }

  RefusingLog refusing_;
  std::vector<Status> created_;
  std::vector<std::shared_ptr<Saga>> alive_;
};

TEST_F(DataErrorTest, ARefusedCreateIsAnsweredToTheCreatorAndDropped) {
  refusing_.refuse = [](const TxnWrite& w) { return w.create.has_value(); };
  Run("g1", {"flight"});
  runner_.RunUntil([&] { return !created_.empty(); });
  ASSERT_EQ(created_.size(), 1u);
  EXPECT_EQ(created_[0].code(), StatusCode::kInvalidArgument);
  runner_.Advance(10000);
  EXPECT_EQ(recorder_.dropped["g1"].code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(caller_.calls.empty());
  EXPECT_EQ(refusing_.refused.size(), 1u);  // never retried
  EXPECT_EQ(log_.txns.count("g1"), 0u);
}

TEST_F(DataErrorTest, ARefusedUpdateIsWrittenWithItsTextCutFlaggedAndTheSagaGoesOn) {
  // Refuse, once, the write that starts "hotel".
  refusing_.refuse = [this](const TxnWrite& w) {
    return refusing_.refused.empty() && !w.create && HasBranchChange(w, "hotel");
  };
  Run("g1", {"flight", "hotel"});
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  ASSERT_EQ(refusing_.refused.size(), 1u);
  const TxnDetail& d = log_.txns["g1"];
  EXPECT_EQ(d.txn.state, states::kCommitted);
  EXPECT_EQ(AttentionEvents(d), 1);
  for (const auto& b : d.branches) EXPECT_EQ(b.state, states::kSucceeded) << b.name;
}

TEST_F(DataErrorTest, UpdatesRefusedEvenCutAreWrittenWithoutBranchChangesAndFlagged) {
  // Every write that touches "hotel" is refused, however reduced.
  refusing_.refuse = [](const TxnWrite& w) { return !w.create && HasBranchChange(w, "hotel"); };
  Run("g1", {"flight", "hotel"});
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  const TxnDetail& d = log_.txns["g1"];
  EXPECT_EQ(d.txn.state, states::kCommitted);  // the decision reached the log
  EXPECT_GE(AttentionEvents(d), 1);
  // Each refused change was tried as it was and cut, then left out: never
  // the same write over and over.
  EXPECT_LE(refusing_.refused.size(), 2u * 3u);
  EXPECT_EQ(recorder_.dropped.count("g1"), 0u);
}

TEST_F(DataErrorTest, WhenEveryUpdateIsRefusedTheTransactionIsHandedBack) {
  refusing_.refuse = [](const TxnWrite& w) { return !w.create; };
  Run("g1", {"flight"});
  runner_.RunUntil([&] { return recorder_.dropped.count("g1") > 0; });
  ASSERT_EQ(recorder_.dropped.count("g1"), 1u);
  EXPECT_EQ(recorder_.dropped["g1"].code(), StatusCode::kInternal);  // TxnService hands it back
  EXPECT_EQ(refusing_.refused.size(), 3u);  // as planned, cut, transaction-level only
  EXPECT_TRUE(refusing_.refused[2].branch_updates.empty());
  EXPECT_TRUE(refusing_.refused[2].needs_attention.value_or(false));
}

}  // namespace
}  // namespace treaty
