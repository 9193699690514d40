#include "support/mini_postgres.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace treaty::testing {

namespace {

constexpr const char* kDefaultBinDir = "/usr/lib/postgresql/15/bin";

// A port the kernel considers free on 127.0.0.1 right now.
int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// Waits for `pid`; returns its exit code, or -1 when it did not exit normally.
int WaitExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
}

}  // namespace

MiniPostgres::~MiniPostgres() {
  if (running()) (void)Stop();
  if (!root_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
}

pid_t MiniPostgres::Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls until exec.
  int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  if (run_uid_ != 0) {
    if (setgroups(0, nullptr) != 0 || setgid(run_gid_) != 0 || setuid(run_uid_) != 0) _exit(126);
  }
  if (chdir(root_.c_str()) != 0) _exit(126);
  execv(args[0], args.data());
  _exit(127);
}

Status MiniPostgres::MakeRoot() {
  const char* env_bin = std::getenv("TREATY_PG_BIN");
  bin_dir_ = env_bin && *env_bin ? env_bin : kDefaultBinDir;
  if (access((bin_dir_ + "/initdb").c_str(), X_OK) != 0) {
    return Status::Unavailable("no initdb in " + bin_dir_ + " (set TREATY_PG_BIN)");
  }
  char tmpl[] = "/tmp/treaty-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Status::Internal("mkdtemp failed");
  root_ = tmpl;
  data_dir_ = root_ + "/data";
  chmod(root_.c_str(), 0755);
  if (geteuid() == 0) {
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr) return Status::Unavailable("running as root and no `postgres` user");
    run_uid_ = pw->pw_uid;
    run_gid_ = pw->pw_gid;
    if (chown(root_.c_str(), run_uid_, run_gid_) != 0) return Status::Internal("chown failed");
  }
  return Status::Ok();
}

Status MiniPostgres::Start() {
  if (Status s = MakeRoot(); !s.ok()) return s;
  const std::string log = root_ + "/initdb.log";
  const pid_t pid = Spawn({bin_dir_ + "/initdb", "-D", data_dir_, "-A", "trust", "-U", "postgres",
                           "-E", "UTF8", "--no-sync"},
                          log);
  if (pid < 0 || WaitExit(pid) != 0) return Status::Internal("initdb failed: " + Tail(log));
  port_ = PickFreePort();
  if (port_ == 0) return Status::Unavailable("no free port");
  return StartServer();
}

Status MiniPostgres::StartStandbyOf(const MiniPostgres& primary, const std::string& name) {
  if (Status s = MakeRoot(); !s.ok()) return s;
  const std::string log = root_ + "/basebackup.log";
  // -R writes standby.signal and primary_conninfo; -X stream copies the WAL
  // written meanwhile; -c fast does not wait for a scheduled checkpoint.
  const pid_t pid =
      Spawn({bin_dir_ + "/pg_basebackup", "-h", "127.0.0.1", "-p", std::to_string(primary.port()),
             "-U", "postgres", "-D", data_dir_, "-R", "-X", "stream", "-c", "fast", "--no-sync"},
            log);
  if (pid < 0 || WaitExit(pid) != 0) return Status::Internal("pg_basebackup failed: " + Tail(log));
  // The WAL receiver reports cluster_name as its application_name, the name
  // the primary's synchronous_standby_names refers to. The primary's own
  // -c settings are not copied (they are not in the data folder), so the
  // standby does not itself wait for a synchronous standby once promoted.
  settings_ = {"cluster_name=" + name, "hot_standby=on"};
  port_ = PickFreePort();
  if (port_ == 0) return Status::Unavailable("no free port");
  return StartServer();
}

Result<std::string> MiniPostgres::BaseBackup() {
  const std::string target = root_ + "/base-" + std::to_string(++base_backups_);
  const std::string log = root_ + "/basebackup.log";
  const pid_t pid =
      Spawn({bin_dir_ + "/pg_basebackup", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
             "postgres", "-D", target, "-F", "p", "-X", "fetch", "-c", "fast", "--no-sync"},
            log);
  if (pid < 0 || WaitExit(pid) != 0) return Status::Internal("pg_basebackup failed: " + Tail(log));
  return target;
}

Status MiniPostgres::StartFromBaseBackup(const std::string& base_backup,
                                         const std::string& restore_command) {
  if (Status s = MakeRoot(); !s.ok()) return s;
  const std::string log = root_ + "/restore.log";
  // cp -a as the server's user: the copy keeps the 0700 data folder it wants.
  pid_t pid = Spawn({"/bin/cp", "-a", base_backup, data_dir_}, log);
  if (pid < 0 || WaitExit(pid) != 0) return Status::Internal("copying the base backup failed");
  pid = Spawn({"/usr/bin/touch", data_dir_ + "/recovery.signal"}, log);
  if (pid < 0 || WaitExit(pid) != 0) return Status::Internal("writing recovery.signal failed");
  settings_.push_back("restore_command=" + restore_command);
  port_ = PickFreePort();
  if (port_ == 0) return Status::Unavailable("no free port");
  if (Status s = StartServer(); !s.ok()) return s;
  // Connections are accepted read-only while WAL is replayed; wait for the
  // end of recovery (promotion to a new timeline).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    Result<std::string> in_recovery = Query("SELECT pg_is_in_recovery()");
    if (in_recovery.ok() && *in_recovery == "f") return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::TimedOut("recovery did not end: " + Tail(root_ + "/postgres.log"));
}

Status MiniPostgres::Promote() {
  const std::string log = root_ + "/promote.log";
  const pid_t pid =
      Spawn({bin_dir_ + "/pg_ctl", "promote", "-w", "-t", "60", "-D", data_dir_}, log);
  if (pid < 0 || WaitExit(pid) != 0) return Status::Internal("pg_ctl promote failed: " + Tail(log));
  return Status::Ok();
}

Result<std::string> MiniPostgres::Query(const std::string& sql, const std::string& dbname) {
  const std::string out = root_ + "/query.out";
  std::error_code ec;
  std::filesystem::remove(out, ec);
  const pid_t pid = Spawn(
      {bin_dir_ + "/psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", std::to_string(port_),
       "-U", "postgres", "-d", dbname, "-o", out, "-v", "ON_ERROR_STOP=1", "-c", sql},
      root_ + "/query.log");
  if (pid < 0 || WaitExit(pid) != 0) {
    return Status::Unavailable("psql failed: " + Tail(root_ + "/query.log"));
  }
  std::string text = Tail(out);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

Status MiniPostgres::StartServer() {
  const std::string log = root_ + "/postgres.log";
  std::vector<std::string> argv = {bin_dir_ + "/postgres",
                                   "-D",
                                   data_dir_,
                                   "-k",
                                   root_,
                                   "-c",
                                   "listen_addresses=127.0.0.1",
                                   "-p",
                                   std::to_string(port_),
                                   "-c",
                                   "fsync=off",
                                   "-c",
                                   "max_prepared_transactions=64",
                                   "-c",
                                   "max_connections=200"};
  for (const std::string& setting : settings_) {
    argv.push_back("-c");
    argv.push_back(setting);
  }
  pid_ = Spawn(argv, log);
  if (pid_ < 0) return Status::Internal("fork failed");
  return WaitUntilReady(60000);
}

Status MiniPostgres::WaitUntilReady(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Unavailable("postgres exited: " + Tail(root_ + "/postgres.log"));
    }
    const pid_t probe = Spawn({bin_dir_ + "/pg_isready", "-q", "-h", "127.0.0.1", "-p",
                               std::to_string(port_), "-U", "postgres"},
                              root_ + "/probe.log");
    if (probe > 0 && WaitExit(probe) == 0) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::TimedOut("postgres did not accept connections: " + Tail(root_ + "/postgres.log"));
}

Status MiniPostgres::Pause() {
  if (!running()) return Status::Unavailable("postgres is not running");
  if (paused()) return Status::Ok();
  // The postmaster first, so it forks nobody new; then its children.
  kill(pid_, SIGSTOP);
  paused_pids_.push_back(pid_);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid ...: comm may hold spaces; parse after ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != pid_) continue;
    const pid_t child = static_cast<pid_t>(std::stol(name));
    if (kill(child, SIGSTOP) == 0) paused_pids_.push_back(child);
  }
  return Status::Ok();
}

Status MiniPostgres::Resume() {
  for (auto it = paused_pids_.rbegin(); it != paused_pids_.rend(); ++it) kill(*it, SIGCONT);
  paused_pids_.clear();
  return Status::Ok();
}

Status MiniPostgres::Stop() {
  if (!running()) return Status::Ok();
  (void)Resume();
  kill(pid_, SIGINT);  // fast shutdown: roll back sessions, checkpoint, exit
  WaitExit(pid_);
  pid_ = -1;
  return Status::Ok();
}

Status MiniPostgres::Kill() {
  if (!running()) return Status::Ok();
  (void)Resume();
  kill(pid_, SIGKILL);
  WaitExit(pid_);
  pid_ = -1;
  return Status::Ok();
}

Status MiniPostgres::Restart() {
  if (Status s = Stop(); !s.ok()) return s;
  // After Kill(), orphaned backends may hold shared memory for a moment.
  Status s;
  for (int attempt = 0; attempt < 10; ++attempt) {
    s = StartServer();
    if (s.ok()) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return s;
}

Status MiniPostgres::CreateDatabase(const std::string& name) {
  const std::string log = root_ + "/createdb.log";
  const pid_t pid = Spawn({bin_dir_ + "/createdb", "-h", "127.0.0.1", "-p", std::to_string(port_),
                           "-U", "postgres", name},
                          log);
  if (pid < 0 || WaitExit(pid) != 0) return Status::Internal("createdb failed: " + Tail(log));
  return Status::Ok();
}

std::string MiniPostgres::Uri(const std::string& dbname) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + dbname;
}

}  // namespace treaty::testing
