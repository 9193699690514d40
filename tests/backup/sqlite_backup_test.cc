// `treatyd backup` of a SQLite log (store/sqlite_backup.h,
// docs/operations.md "Backup and restore").
//
// Refusals and the copy itself are checked on real files through
// BackupSqliteLog and through the treatyd binary (exit codes 0/1/2).
//
// The restore test runs a real treatyd on SQLite with sagas held in flight by
// a participant that is down while load continues; `treatyd backup` during
// the writes is answered by the running coordinator itself (its control
// socket, api/control_socket.h); after kill -9 a fresh treatyd runs on the
// copy in another folder, the participant comes back, and every saga
// acknowledged before the backup started is present and finishes, with no
// step sent again for a saga that had finished. The control socket is
// checked against hostile input (garbage, an over-long line, an unknown
// verb, a relative path, an existing file, concurrent requests, a client
// that sends nothing) and a foreign file at its path.

#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backup/backup_scenario.h"
#include "store/log_store.h"
#include "store/sqlite_backup.h"
#include "store/sqlite_log_store.h"
#include "support/subprocess.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

namespace fs = std::filesystem;

class SqliteBackupTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("treaty-backup"); }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A migrated log with `n` rows in a scratch table (more than one page).
  std::string MakeLog(const std::string& name, int n = 2000) {
    const std::string path = dir_ + "/" + name;
    {
      auto store = OpenLogStore("sqlite:" + path);
      EXPECT_TRUE(store.ok()) << store.status().ToString();
      if (!store.ok()) return path;
      EXPECT_TRUE((*store)->Migrate().ok());
    }
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    std::string sql = "CREATE TABLE scratch(x TEXT); BEGIN;";
    for (int i = 0; i < n; ++i)
      sql += "INSERT INTO scratch VALUES ('row " + std::to_string(i) + "');";
    sql += "COMMIT;";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    return path;
  }

  static int64_t ScratchRows(const std::string& path) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return -1;
    sqlite3_stmt* stmt = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM scratch", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      n = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
  }

  // Files in dir_ whose name starts with `prefix`.
  int FilesStartingWith(const std::string& prefix) const {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().filename().string().rfind(prefix, 0) == 0) ++n;
    }
    return n;
  }

  // Runs `treatyd ARGS`; returns its exit status and output in `*out`.
  int RunTreatyd(const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> argv = {BinaryPath("treatyd")};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string log = dir_ + "/run-" + std::to_string(++runs_) + ".log";
    Subprocess p(argv, log);
    if (!p.Start().ok()) return -1;
    const int rc = p.Wait(60000);
    *out = p.Log();
    return rc;
  }

  std::string dir_;
  int runs_ = 0;
};

// A client of a control socket: connected at construction, Send() writes
// bytes, Answer() reads until the server closes (at most 10 s).
class ControlClient {
 public:
  explicit ControlClient(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~ControlClient() {
    if (fd_ >= 0) close(fd_);
  }
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  void Send(const std::string& bytes) {
    size_t sent = 0;
    while (fd_ >= 0 && sent < bytes.size()) {
      const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may close early (an over-long line)
      sent += static_cast<size_t>(n);
    }
  }
  std::string Answer() {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (fd_ >= 0 && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

 private:
  int fd_ = -1;
};

// One request on a fresh connection; the answer, or "(cannot connect)".
std::string Ask(const std::string& socket_path, const std::string& request) {
  ControlClient c(socket_path);
  if (!c.connected()) return "(cannot connect)";
  c.Send(request);
  return c.Answer();
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

TEST_F(SqliteBackupTest, CopiesTheLogAndChecksIt) {
  const std::string src = MakeLog("log.db");
  auto report = BackupSqliteLog(src, dir_ + "/copy.db");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(ScratchRows(dir_ + "/copy.db"), 2000);
  EXPECT_EQ(report->transactions, 0);
  EXPECT_GT(report->pages, 1);
  EXPECT_EQ(report->bytes, static_cast<int64_t>(fs::file_size(dir_ + "/copy.db")));
  EXPECT_EQ(FilesStartingWith("copy.db.tmp-"), 0);
  // A coordinator's store opens the copy as a log (the schema came along).
  auto store = OpenLogStore("sqlite:" + dir_ + "/copy.db");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_TRUE((*store)->CheckReady().ok());
}

TEST_F(SqliteBackupTest, RefusesToOverwriteWithoutForce) {
  const std::string src = MakeLog("log.db");
  { std::ofstream(dir_ + "/copy.db") << "precious"; }
  auto refused = BackupSqliteLog(src, dir_ + "/copy.db");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kConflict);
  EXPECT_NE(refused.status().message().find("--force"), std::string::npos);
  EXPECT_EQ(fs::file_size(dir_ + "/copy.db"), 8u);  // untouched
  EXPECT_EQ(FilesStartingWith("copy.db.tmp-"), 0);

  SqliteBackupOptions force;
  force.force = true;
  auto replaced = BackupSqliteLog(src, dir_ + "/copy.db", force);
  ASSERT_TRUE(replaced.ok()) << replaced.status().ToString();
  EXPECT_EQ(ScratchRows(dir_ + "/copy.db"), 2000);
}

TEST_F(SqliteBackupTest, RefusesBadPathsNamingThem) {
  const std::string src = MakeLog("log.db", 10);
  auto missing = BackupSqliteLog(dir_ + "/nope.db", dir_ + "/copy.db");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.db"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ + "/nope.db"));  // not created by the attempt

  auto no_folder = BackupSqliteLog(src, dir_ + "/no/such/copy.db");
  EXPECT_EQ(no_folder.status().code(), StatusCode::kNotFound);
  EXPECT_NE(no_folder.status().message().find("--to"), std::string::npos);

  SqliteBackupOptions force;
  force.force = true;
  auto itself = BackupSqliteLog(src, src, force);
  EXPECT_EQ(itself.status().code(), StatusCode::kInvalidArgument);

  auto pg = BackupStore("postgresql://treaty@db1/treaty", dir_ + "/copy.db");
  EXPECT_EQ(pg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(pg.status().message().find("pg_basebackup"), std::string::npos);
  auto conninfo = BackupStore("host=db1 dbname=treaty", dir_ + "/copy.db");
  EXPECT_EQ(conninfo.status().code(), StatusCode::kInvalidArgument);
  auto unknown = BackupStore("mysql://x", dir_ + "/copy.db");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ + "/copy.db"));
}

TEST_F(SqliteBackupTest, LockedLogFailsWithinTheBoundAndLeavesNothing) {
  const std::string src = MakeLog("log.db", 10);
  auto holder = OpenLogStore("sqlite:" + src);  // holds the file as treatyd does
  ASSERT_TRUE(holder.ok());
  ASSERT_TRUE((*holder)->CheckReady().ok());
  SqliteBackupOptions options;
  options.busy_wait_ms = 300;
  const auto start = std::chrono::steady_clock::now();
  auto locked = BackupSqliteLog(src, dir_ + "/copy.db", options);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(locked.status().message().find("locked"), std::string::npos)
      << locked.status().message();
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_FALSE(fs::exists(dir_ + "/copy.db"));
  EXPECT_EQ(FilesStartingWith("copy.db.tmp-"), 0);
}

TEST_F(SqliteBackupTest, CorruptLogFailsTheIntegrityCheck) {
  const std::string src = MakeLog("log.db");
  {
    // Overwrite a page in the middle of the scratch table's b-tree.
    std::fstream f(src, std::ios::in | std::ios::out | std::ios::binary);
    const auto size = fs::file_size(src);
    f.seekp(static_cast<std::streamoff>(size - 3 * 4096 + 100));
    const std::string junk(3000, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto bad = BackupSqliteLog(src, dir_ + "/copy.db");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInternal) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("integrity"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ + "/copy.db"));
  EXPECT_EQ(FilesStartingWith("copy.db.tmp-"), 0);
}

TEST_F(SqliteBackupTest, CommandExitCodes) {
  const std::string src = MakeLog("log.db", 10);
  std::string out;
  EXPECT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + src, "--to", dir_ + "/a.db"}, &out), 0)
      << out;
  EXPECT_NE(out.find("backup written to"), std::string::npos) << out;
  EXPECT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + src, "--to", dir_ + "/a.db"}, &out), 1)
      << out;
  EXPECT_NE(out.find("already exists"), std::string::npos) << out;
  EXPECT_EQ(
      RunTreatyd({"backup", "--store", "sqlite:" + src, "--to", dir_ + "/a.db", "--force"}, &out),
      0)
      << out;
  EXPECT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + src}, &out), 2) << out;
  EXPECT_NE(out.find("--to"), std::string::npos) << out;
  EXPECT_EQ(
      RunTreatyd({"backup", "--store", "postgresql://treaty@db1/treaty", "--to", dir_ + "/b.db"},
                 &out),
      2)
      << out;
  EXPECT_NE(out.find("pg_basebackup"), std::string::npos) << out;
  EXPECT_EQ(
      RunTreatyd({"backup", "--store", "sqlite:" + src, "--to", dir_ + "/b.db", "--bogus"}, &out),
      2)
      << out;
  EXPECT_FALSE(fs::exists(dir_ + "/b.db"));
}

TEST_F(SqliteBackupTest, LiveCopyStepsBetweenTheOwnersWrites) {
  const std::string src = MakeLog("log.db", 20000);
  auto opened = SqliteLogStore::Open(src);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  SqliteLogStore& store = **opened;
  SqliteConnectionLender lend = [&store](const std::function<Status(sqlite3*)>& use) {
    return store.LendConnection(use);
  };
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      CoordinatorRow row;
      row.id = "w-" + std::to_string(i);
      row.node_name = "writer";
      row.state = "alive";
      if (store.RegisterCoordinator(row).ok()) ++written;
    }
  });
  while (written < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  SqliteBackupOptions options;
  options.pages_per_step = 1;  // hundreds of steps, the writer between them
  options.step_pause_ms = 1;
  const int before = written;
  auto report = BackupLiveSqliteLog(src, lend, dir_ + "/copy.db", options);
  const int after = written;
  stop = true;
  writer.join();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_GT(report->pages, 50);
  EXPECT_GT(after, before) << "no write went on during the copy";
  EXPECT_EQ(ScratchRows(dir_ + "/copy.db"), 20000);
  // The copy is the log as of the end of the copy (the last step).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(std::string(dir_ + "/copy.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM coordinators WHERE node_name='writer'", -1,
                               &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  const int64_t copied = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  // Writes made during the copy are in it; none made after the check.
  EXPECT_GT(copied, before);
  EXPECT_LE(copied, after + 1);  // +1: a committed write not counted yet
  std::cerr << "live copy: " << report->pages << " pages in " << report->elapsed_ms << " ms, "
            << after - before << " writes meanwhile\n";

  // Cancelled (the process stops): Unavailable, nothing left.
  std::atomic<bool> cancel{true};
  options.cancel = &cancel;
  auto cancelled = BackupLiveSqliteLog(src, lend, dir_ + "/cancelled.db", options);
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(fs::exists(dir_ + "/cancelled.db"));
  EXPECT_EQ(FilesStartingWith("cancelled.db.tmp-"), 0);
}

TEST_F(SqliteBackupTest, OnlineBackupUnderLoadRestoresAndFinishes) {
  BackupScenario scenario;
  fs::create_directories(dir_ + "/live");
  fs::create_directories(dir_ + "/restored");
  const std::string live = dir_ + "/live/treaty.db";
  TreatydOptions o;
  o.store = "sqlite:" + live;
  auto node = std::make_unique<TreatydProcess>(dir_ + "/live", "live", o);
  ASSERT_TRUE(node->Start().ok()) << node->Log();

  scenario.SubmitMany(node->url(), "done", 10, false);
  scenario.SubmitMany(node->url(), "held", 10, true);
  ASSERT_TRUE(scenario.WaitSettled(node->url(), std::chrono::seconds(20)));

  std::atomic<bool> stop{false};
  std::thread load([&] { scenario.RunLoad(node->url(), "load", stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  // While it runs and writes, the running coordinator copies its own log,
  // asked by `treatyd backup` through its control socket.
  std::string out;
  const std::string copy = dir_ + "/restored/treaty.db";
  const std::set<std::string> acknowledged = scenario.Acknowledged();  // before the backup
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + live, "--to", copy}, &out), 0) << out;
  std::cerr << "online backup under load: " << out << " ("
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count()
            << " ms with process start)\n";
  EXPECT_NE(out.find("asked the running treatyd"), std::string::npos) << out;
  const size_t acknowledged_after = scenario.Acknowledged().size();

  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  node->proc().Kill();  // kill -9 with load going on
  stop = true;
  load.join();
  const size_t calls_before = scenario.participant().Calls().size();
  EXPECT_GT(scenario.Acknowledged().size(), acknowledged_after)
      << "the load went on after the copy";

  // The crashed log can be copied directly too (every acknowledged commit is
  // in its WAL); its socket is stale, so the command copies the file itself.
  EXPECT_TRUE(fs::exists(live + ".ctl"));
  EXPECT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + live, "--to", dir_ + "/crashed.db"}, &out),
            0)
      << out;
  EXPECT_EQ(out.find("asked the running treatyd"), std::string::npos) << out;
  fs::remove_all(dir_ + "/live");  // the original is gone: only the online copy is left

  std::map<std::string, std::string> restored;
  {
    auto store = OpenLogStore("sqlite:" + copy);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    restored = scenario.ReadRestored(**store, acknowledged);
  }
  ASSERT_GT(acknowledged.size(), 20u);
  int running = 0;
  for (const auto& [gtid, state] : restored) running += state == "RUNNING";
  EXPECT_GE(running, 10);

  TreatydOptions r = o;
  r.store = "sqlite:" + copy;
  TreatydProcess fresh(dir_ + "/restored", "restored", r);
  ASSERT_TRUE(fresh.Start().ok()) << fresh.Log();
  scenario.BringUp();
  scenario.CheckFinishedOnRestore(fresh.url(), restored, calls_before, std::chrono::seconds(20));
  if (HasFailure()) std::cerr << fresh.Log() << "\n";
  std::cerr << acknowledged.size() << " sagas acknowledged before the backup, " << running
            << " in flight in the copy, all COMMITTED after the restore\n";
}

TEST_F(SqliteBackupTest, ControlSocketAnswersHostileInputAndKeepsServing) {
  const std::string log = dir_ + "/treaty.db";
  const std::string ctl = log + ".ctl";
  TreatydOptions o;
  o.store = "sqlite:" + log;
  TreatydProcess node(dir_, "node", o);
  ASSERT_TRUE(node.Start().ok()) << node.Log();
  struct stat st {};
  ASSERT_EQ(lstat(ctl.c_str(), &st), 0) << node.Log();
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // A client that sends nothing does not hold the others up.
  ControlClient idle(ctl);
  ASSERT_TRUE(idle.connected());

  std::string a = Ask(ctl, "hello world\n");
  EXPECT_TRUE(StartsWith(a, "error InvalidArgument unknown verb 'hello'")) << a;
  a = Ask(ctl, std::string("\x01\xff\x00garbage\n", 11));
  EXPECT_TRUE(StartsWith(a, "error InvalidArgument unknown verb")) << a;
  a = Ask(ctl, std::string(100000, 'x'));
  EXPECT_TRUE(StartsWith(a, "error InvalidArgument request line longer than")) << a;
  a = Ask(ctl, "restore /tmp/x.db\n");
  EXPECT_TRUE(StartsWith(a, "error InvalidArgument unknown verb 'restore'")) << a;
  a = Ask(ctl, "backup relative.db\n");
  EXPECT_TRUE(StartsWith(a, "error InvalidArgument the backup path must be absolute")) << a;
  a = Ask(ctl, "backup\n");
  EXPECT_TRUE(StartsWith(a, "error InvalidArgument the backup path must be absolute")) << a;
  a = Ask(ctl, "backup " + dir_ + "/no/such/folder/x.db\n");
  EXPECT_TRUE(StartsWith(a, "error NotFound")) << a;
  std::ofstream(dir_ + "/exists.db") << "keep me";
  // The log's own files are never replaced, not even with --force.
  a = Ask(ctl, "backup --force " + log + "-wal\n");
  EXPECT_TRUE(StartsWith(a, "error InvalidArgument")) << a;
  EXPECT_NE(a.find("a file of the log itself"), std::string::npos) << a;
  a = Ask(ctl, "backup --force " + log + "\n");
  EXPECT_TRUE(StartsWith(a, "error InvalidArgument")) << a;
  a = Ask(ctl, "backup " + dir_ + "/exists.db\n");
  EXPECT_TRUE(StartsWith(a, "error Conflict")) << a;
  EXPECT_NE(a.find("--force"), std::string::npos) << a;
  EXPECT_EQ(fs::file_size(dir_ + "/exists.db"), 7u);

  // Concurrent requests, connected first and sent back to back: one copy
  // runs, the others are told one is running.
  std::vector<std::unique_ptr<ControlClient>> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(std::make_unique<ControlClient>(ctl));
  for (int i = 0; i < 4; ++i) {
    clients[i]->Send("backup " + dir_ + "/c" + std::to_string(i) + ".db\n");
  }
  int ok = 0;
  int busy = 0;
  for (auto& c : clients) {
    const std::string answer = c->Answer();
    ok += StartsWith(answer, "ok transactions=");
    busy += StartsWith(answer, "error Conflict a backup is already running");
    EXPECT_TRUE(StartsWith(answer, "ok ") || StartsWith(answer, "error Conflict")) << answer;
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 1);

  // Still up and serving; a good request works, --force replaces.
  ASSERT_TRUE(node.running()) << node.Log();
  BackupScenario scenario;
  scenario.SubmitMany(node.url(), "after", 3, false);
  a = Ask(ctl, "backup --force " + dir_ + "/exists.db\n");
  EXPECT_TRUE(StartsWith(a, "ok transactions=")) << a;
  EXPECT_GT(fs::file_size(dir_ + "/exists.db"), 7u);
  EXPECT_EQ(FilesStartingWith("exists.db.tmp-"), 0);
  EXPECT_EQ(idle.Answer(), "");  // closed after the request time-out, unanswered
  ASSERT_TRUE(node.running()) << node.Log();

  // A clean stop (SIGTERM) removes the socket.
  node.proc().Signal(SIGTERM);
  EXPECT_EQ(node.proc().Wait(20000), 0) << node.Log();
  EXPECT_FALSE(fs::exists(ctl));
}

TEST_F(SqliteBackupTest, ForeignFileAtTheSocketPathIsLeftAlone) {
  const std::string log = dir_ + "/treaty.db";
  std::ofstream(log + ".ctl") << "not a socket";
  TreatydOptions o;
  o.store = "sqlite:" + log;
  TreatydProcess node(dir_, "node", o);
  ASSERT_TRUE(node.Start().ok()) << node.Log();
  EXPECT_NE(node.Log().find("is not a socket of this user"), std::string::npos) << node.Log();
  EXPECT_EQ(fs::file_size(log + ".ctl"), 12u);
  // Nobody to ask: the command tries the file itself and says it is held.
  std::string out;
  EXPECT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + log, "--to", dir_ + "/copy.db",
                        "--busy-wait-ms", "300"},
                       &out),
            1)
      << out;
  EXPECT_NE(out.find("running treatyd"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir_ + "/copy.db"));
}

}  // namespace
}  // namespace treaty::testing
