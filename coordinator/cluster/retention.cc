#include "cluster/retention.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

namespace treaty {

namespace {

RetentionOptions Sanitize(RetentionOptions options) {
  options.batch = std::max(1, options.batch);
  options.interval_ms = std::max<int64_t>(1, options.interval_ms);
  options.batch_pause_ms = std::max<int64_t>(0, options.batch_pause_ms);
  return options;
}

}  // namespace

Retention::Retention(ClusterStore* store, TaskRunner* runner, RetentionOptions options)
    : store_(store), runner_(runner), options_(Sanitize(std::move(options))), rounds_(runner) {}

Retention::~Retention() { Stop(); }

void Retention::Start() {
  if (options_.retention_ms <= 0) return;
  rounds_.Start([this] { return Round(); });
}

void Retention::Stop() {
  rounds_.Stop();
  if (run_) {
    (void)EndRun(*run_, Status::Ok());  // cut short: the next run resumes
    run_.reset();
  }
}

int64_t Retention::Round() {
  if (!run_) run_ = BeginRun();
  Status error;
  if (!Step(&*run_, &error)) return options_.batch_pause_ms;
  (void)EndRun(*run_, error);  // logs its own summary or error
  run_.reset();
  return options_.interval_ms;
}

Result<int64_t> Retention::RunOnce() {
  Run run = BeginRun();
  Status error;
  while (!Step(&run, &error)) {
    if (options_.batch_pause_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.batch_pause_ms));
    }
  }
  return EndRun(run, error);
}

Retention::Run Retention::BeginRun() {
  // One cut-off for the whole run: rows that age past it meanwhile wait for
  // the next run, so a run always ends.
  Run run;
  run.before_ms = runner_->NowMs() - options_.retention_ms;
  run.started_ms = runner_->MonotonicMs();
  return run;
}

bool Retention::Step(Run* run, Status* error) {
  Result<int64_t> n = store_->PurgeFinished(run->before_ms, options_.batch);
  if (!n.ok()) {
    *error = n.status();
    return true;
  }
  ++run->batches;
  run->purged += *n;
  purged_total_ += *n;
  if (options_.on_purged && *n > 0) options_.on_purged(*n);
  return *n < options_.batch;  // fewer than a batch: caught up
}

Result<int64_t> Retention::EndRun(const Run& run, const Status& error) {
  const int64_t took_ms = runner_->MonotonicMs() - run.started_ms;
  if (run.purged > 0) {
    spdlog::info(
        "retention: purged {} finished transactions older than {} h in {} batches, {} ms "
        "({} per second)",
        run.purged, options_.retention_ms / 3600000.0, run.batches, took_ms,
        took_ms > 0 ? run.purged * 1000 / took_ms : run.purged);
  }
  if (!error.ok()) {
    spdlog::warn("retention: purging finished transactions failed after {} deleted: {}", run.purged,
                 error.ToString());
    return error;
  }
  return run.purged;
}

}  // namespace treaty
