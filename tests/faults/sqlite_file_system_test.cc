// The SQLite log's file system fills up, turns read-only, and recovers, under
// a running treatyd (docs/operations.md "What happens when ...",
// sqlite-faults).
//
// treatyd runs as a real child process with its log on a small tmpfs that
// the test mounts (mount(2); the test is skipped when mounting is refused,
// i.e. not root). Participants are real HTTP servers. Checked: new work is
// answered 503 while the file system is full or read-only (in bounded time,
// never a hang), treatyd keeps running, new work is accepted again once the
// file system is writable, and every saga acknowledged before ends
// COMMITTED. Nothing of the log is memory-mapped (no -shm file): a mapped
// page is what turned these faults into SIGBUS. Also: a second treatyd on
// the same SQLite file is refused (the price of the unmapped WAL index).

#include <sys/mount.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kFsSize = "size=4m";

class SqliteFileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-sqlite-fs");
    fs_ = dir_ + "/fs";
    std::filesystem::create_directories(fs_);
    if (mount("tmpfs", fs_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, kFsSize) != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs at " << fs_ << " (" << std::strerror(errno)
                   << "): this fault test needs root (CAP_SYS_ADMIN)";
    }
    mounted_ = true;
  }

  void TearDown() override {
    if (treatyd_) treatyd_->proc().Kill();  // closes its files first
    if (mounted_) umount2(fs_.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // mount -o remount,ro|rw; errno text on failure.
  std::string Remount(bool read_only) {
    const unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0);
    if (mount(nullptr, fs_.c_str(), nullptr, flags, kFsSize) == 0) return "";
    return std::strerror(errno);
  }

  // Writes a filler file until the file system is full; returns its size.
  int64_t Fill() {
    std::ofstream out(fs_ + "/filler", std::ios::binary);
    const std::string chunk(64 * 1024, 'x');
    int64_t written = 0;
    while (out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()))) {
      out.flush();
      if (!out) break;
      written += static_cast<int64_t>(chunk.size());
    }
    return written;
  }

  json Saga(const std::string& gtid, bool wait, const std::string& step) const {
    return {{"gtid", gtid},
            {"wait", wait},
            {"steps",
             {{{"name", step},
               {"action", participant_.Url(step, "action")},
               {"compensate", participant_.Url(step, "compensate")}}}}};
  }

  struct Answer {
    int status = 0;  // 0: no answer (transport error or time-out)
    std::string body;
    int64_t ms = 0;
  };
  Answer Submit(const std::string& gtid, bool wait, const std::string& step = "a",
                int timeout_ms = 20000) {
    const auto start = Clock::now();
    auto r = HttpFetch("POST", treatyd_->url() + "/v1/sagas", Saga(gtid, wait, step).dump(),
                       {{"Content-Type", "application/json"}}, timeout_ms);
    Answer a;
    a.ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    if (!r.ok()) {
      a.body = r.status().ToString();
      return a;
    }
    a.status = r->status;
    a.body = r->body;
    return a;
  }

  // Submits fresh sagas until one is accepted (201), up to `timeout_ms`.
  bool SubmitUntilAccepted(const std::string& prefix, int timeout_ms) {
    const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (int i = 0; Clock::now() < end; ++i) {
      const std::string gtid = prefix + "-" + std::to_string(i);
      Answer a = Submit(gtid, /*wait=*/false);
      if (a.status == 201 || a.status == 200) {
        acked_.push_back(gtid);
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }

  std::string State(const std::string& gtid) {
    auto r = HttpFetch("GET", treatyd_->url() + "/v1/transactions/" + gtid, "", {}, 5000);
    if (!r.ok() || r->status != 200) return "";
    return json::parse(r->body, nullptr, false).value("state", "");
  }

  // Every acknowledged saga ends COMMITTED (within `timeout_ms` in all).
  void ExpectAllAckedCommitted(int timeout_ms) {
    const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (const std::string& gtid : acked_) {
      std::string state;
      while ((state = State(gtid)) != "COMMITTED" && Clock::now() < end) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      EXPECT_EQ(state, "COMMITTED") << gtid << "\n" << treatyd_->Log();
    }
  }

  // While the fault lasts: new work is answered 503 in bounded time, the
  // process stays up and /healthz answers.
  void ExpectRefusedWhileBroken(const std::string& prefix) {
    for (int i = 0; i < 3; ++i) {
      Answer a = Submit(prefix + "-" + std::to_string(i), /*wait=*/true);
      EXPECT_EQ(a.status, 503) << "answer after " << a.ms << " ms: " << a.body;
      EXPECT_LT(a.ms, 15000) << "a submission waited " << a.ms << " ms";
    }
    ASSERT_TRUE(treatyd_->running() && treatyd_->proc().Wait(0) < 0) << "treatyd died:\n"
                                                                     << treatyd_->Log();
    auto health = HttpFetch("GET", treatyd_->url() + "/healthz", "", {}, 5000);
    EXPECT_TRUE(health.ok() && health->status == 200);
  }

  std::string dir_, fs_;
  bool mounted_ = false;
  TestParticipant participant_;
  std::unique_ptr<TreatydProcess> treatyd_;
  std::vector<std::string> acked_;  // sagas answered 200/201: must end COMMITTED
};

TEST_F(SqliteFileSystemTest, FullThenReadOnlyAnswers503AndResumesWithNothingLost) {
  TreatydOptions options;
  options.store = "sqlite:" + fs_ + "/t.db";
  options.heartbeat_ms = 1000;
  options.lease_ms = 5000;
  treatyd_ = std::make_unique<TreatydProcess>(dir_, "treatyd", options);
  ASSERT_TRUE(treatyd_->Start().ok()) << treatyd_->Log();

  for (int i = 0; i < 5; ++i) {
    const std::string gtid = "before-" + std::to_string(i);
    Answer a = Submit(gtid, /*wait=*/i % 2 == 0);
    ASSERT_EQ(a.status, 201) << a.body;
    acked_.push_back(gtid);
  }
  // In flight when the fault starts: acknowledged, its step answers late.
  participant_.SetRule("slow", "action", TestParticipant::Rule{{200}, 1500});
  for (int i = 0; i < 3; ++i) {
    const std::string gtid = "in-flight-" + std::to_string(i);
    Answer a = Submit(gtid, /*wait=*/false, "slow");
    ASSERT_EQ(a.status, 201) << a.body;
    acked_.push_back(gtid);
  }
  // Nothing of the log is memory-mapped: the WAL index is in heap memory.
  EXPECT_FALSE(std::filesystem::exists(fs_ + "/t.db-shm"))
      << "the WAL index is a memory-mapped -shm file: a full or read-only file system "
         "can kill treatyd with SIGBUS";

  // 1. The file system fills up.
  ASSERT_GT(Fill(), 0);
  ExpectRefusedWhileBroken("full");
  if (HasFatalFailure()) return;

  // 2. It turns read-only (while still full). Linux refuses to remount a
  // file system read-only while a process holds a file on it open for
  // writing (EBUSY): treatyd must have let go of its log while failing.
  std::string refused = "not tried";
  const auto end = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < end && !(refused = Remount(true)).empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(refused, "") << "mount -o remount,ro of the log's file system: treatyd still holds "
                            "its files open for writing while they fail";
  ExpectRefusedWhileBroken("readonly");
  if (HasFatalFailure()) return;

  // 3. Writable again, space freed: work resumes by itself.
  ASSERT_EQ(Remount(false), "");
  std::filesystem::remove(fs_ + "/filler");
  EXPECT_TRUE(SubmitUntilAccepted("after", 20000)) << treatyd_->Log();
  ExpectAllAckedCommitted(30000);
  ASSERT_TRUE(treatyd_->running() && treatyd_->proc().Wait(0) < 0) << treatyd_->Log();
}

// The exclusive lock that keeps the WAL index out of shared memory also
// keeps a second treatyd off the same SQLite file: it exits non-zero with a
// clear message instead of running two coordinators on one embedded log.
TEST(SqliteLockTest, SecondTreatydOnTheSameFileIsRefused) {
  const std::string dir = MakeTempDir("treaty-sqlite-lock");
  TreatydOptions options;
  options.store = "sqlite:" + dir + "/t.db";
  TreatydProcess first(dir, "first", options);
  ASSERT_TRUE(first.Start().ok()) << first.Log();

  Subprocess second({BinaryPath("treatyd"), "--store", options.store, "--http",
                     "127.0.0.1:" + std::to_string(FreePort()), "--thrift", "127.0.0.1:0"},
                    dir + "/second.log");
  ASSERT_TRUE(second.Start().ok());
  const int rc = second.Wait(30000);
  EXPECT_NE(rc, 0) << second.Log();
  EXPECT_NE(rc, -1) << "a second treatyd runs on the same SQLite file:\n" << second.Log();
  EXPECT_NE(second.Log().find("locked by another connection"), std::string::npos) << second.Log();
  EXPECT_TRUE(first.running() && first.proc().Wait(0) < 0) << first.Log();
  first.proc().Kill();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace treaty::testing
