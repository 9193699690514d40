#include "engine/txn_waiters.h"

#include <utility>
#include <vector>

namespace treaty {

TxnWaiters::TxnWaiters(TaskRunner* runner, StateOf state_of)
    : runner_(runner),
      state_of_(std::move(state_of)),
      alive_(std::make_shared<TxnWaiters*>(this)) {}

TxnWaiters::~TxnWaiters() = default;

void TxnWaiters::Add(const std::string& gtid, int64_t wait_ms, bool created, Done done) {
  TREATY_ASSERT_ON(*runner_);
  const uint64_t id = next_id_++;
  std::weak_ptr<TxnWaiters*> alive = alive_;
  auto timer = runner_->PostAfter(wait_ms, [alive, gtid, id] {
    if (auto self = alive.lock()) (*self)->Expire(gtid, id);
  });
  waiters_[gtid].emplace(id, Waiter{std::move(done), created, std::move(timer)});
}

void TxnWaiters::Expire(const std::string& gtid, uint64_t id) {
  TREATY_ASSERT_ON(*runner_);
  auto of = waiters_.find(gtid);
  if (of == waiters_.end()) return;
  auto it = of->second.find(id);
  if (it == of->second.end()) return;  // answered by Finished already
  Waiter w = std::move(it->second);
  of->second.erase(it);
  if (of->second.empty()) waiters_.erase(of);
  SubmitResult r{gtid, state_of_ ? state_of_(gtid) : "", w.created, false};
  r.wait_expired = true;
  w.done(std::move(r));
}

void TxnWaiters::ExpireAll() {
  TREATY_ASSERT_ON(*runner_);
  auto all = std::move(waiters_);
  waiters_.clear();
  for (auto& [gtid, of] : all) {
    const std::string state = state_of_ ? state_of_(gtid) : "";
    for (auto& [id, w] : of) {
      if (w.timer) w.timer->Cancel();
      SubmitResult r{gtid, state, w.created, false};
      r.wait_expired = true;
      w.done(std::move(r));
    }
  }
}

void TxnWaiters::Finished(const std::string& gtid, const std::string& state) {
  TREATY_ASSERT_ON(*runner_);
  auto of = waiters_.find(gtid);
  if (of == waiters_.end()) return;
  std::map<uint64_t, Waiter> ready = std::move(of->second);
  waiters_.erase(of);
  for (auto& [id, w] : ready) {
    if (w.timer) w.timer->Cancel();
    w.done(SubmitResult{gtid, state, w.created, true});
  }
}

size_t TxnWaiters::size() const {
  size_t n = 0;
  for (const auto& [gtid, of] : waiters_) n += of.size();
  return n;
}

}  // namespace treaty
