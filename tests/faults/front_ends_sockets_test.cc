// A thousand idle client connections, and too few file
// descriptors, against both front ends of a real treatyd child process
// (SQLite store).
//
// - ThousandIdleSockets{Http,Thrift}: treatyd's descriptor limit is lowered
//   to 512 (prlimit) while it runs, so 1000 idle connections exhaust it and
//   accept fails with EMFILE. While they are open treatyd must not spin
//   (CPU over 2 s well under 1 s), its log must grow by less than 100 KB,
//   and a fresh client must get an answer within 20 s (the idle time-out,
//   2 s here, frees descriptors). Once they are closed, treatyd serves
//   normally within 15 s, its descriptor count is back near the baseline and
//   no socket of its port stays in CLOSE-WAIT.
// - IdleConnectionsAreClosed: a silent connection is closed by the server
//   after the idle time-out, on both front ends; a request whose header never
//   completes is answered 408 after the request time-out (HTTP).
// - ConnectionCaps: with --http-max-connections 50 and
//   --thrift-max-connections 20, 300 idle connections to each: a fresh HTTP
//   client gets 503 at once, a fresh Thrift connection is closed at once,
//   and a connection already being served still gets its answers.
// - TrickledThriftFramesAreCut: with --thrift-request-timeout-ms 2000, an
//   idle time-out of 10 s and --thrift-max-connections 5, five clients each
//   send a frame header declaring 256 bytes and then one byte every 500 ms
//   (never idle). The server must close each within the request time-out
//   plus slack, log it, and a fresh client must then get a real answer
//   (getTransaction of an unknown gtid -> NotFound). Before the frame
//   deadline the trickling clients held all five slots for as long as they
//   trickled.
//
// Options reach treatyd through their TREATY_* environment names, so the
// same test runs against a binary that predates them (to see it fail).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "CoordinatorService.h"
#include "http/http_client.h"
#include "support/subprocess.h"
#include "support/treatyd_process.h"
#include "thrift/thrift_wire.h"

namespace treaty::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr int kIdleSockets = 1000;
constexpr rlim_t kTreatydFdLimit = 512;
constexpr int kIdleTimeoutMs = 2000;
constexpr int kRequestTimeoutMs = 3000;

// --- What /proc says about a process -----------------------------------

// utime + stime of `pid`, in milliseconds.
int64_t CpuMs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(all.substr(all.rfind(')') + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return (utime + stime) * 1000 / sysconf(_SC_CLK_TCK);
}

int FdCount(pid_t pid) {
  int n = 0;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

// Sockets whose local port is `port` in CLOSE-WAIT (state 08), IPv4 and IPv6.
int CloseWaitCount(pid_t pid, int port) {
  int n = 0;
  for (const char* table : {"tcp", "tcp6"}) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/net/" + table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state;
      f >> sl >> local >> remote >> state;
      const int local_port = std::stoi(local.substr(local.rfind(':') + 1), nullptr, 16);
      if (local_port == port && state == "08") ++n;
    }
  }
  return n;
}

int64_t FileBytes(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

// --- Client sockets ----------------------------------------------------

// Opens `n` connections to 127.0.0.1:`port` that send nothing, or only
// `first_bytes`. Thrift's listening socket uses TCP_DEFER_ACCEPT: a
// connection that has sent nothing is not handed to treatyd at once, so
// Thrift clients send one byte of a frame header to be accepted.
std::vector<int> OpenIdle(int port, int n, const std::string& first_bytes = "") {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) break;
    connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));  // EINPROGRESS is fine
    fds.push_back(fd);
  }
  if (first_bytes.empty()) return fds;
  for (int fd : fds) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 2000) == 1) send(fd, first_bytes.data(), first_bytes.size(), MSG_NOSIGNAL);
  }
  return fds;
}

void CloseAll(std::vector<int>& fds) {
  for (int fd : fds) close(fd);
  fds.clear();
}

// A blocking connection to 127.0.0.1:`port`, or -1.
int ConnectTo(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads what `fd` receives until the peer closes or `timeout` passes.
// Returns whether the peer closed (EOF or reset); `got` has the bytes.
bool ReadUntilClosed(int fd, milliseconds timeout, std::string* got = nullptr) {
  const auto deadline = steady_clock::now() + timeout;
  char buf[4096];
  while (steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()).count();
    if (poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left))) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return true;
    if (got) got->append(buf, static_cast<size_t>(n));
  }
  return false;
}

bool Eventually(const std::function<bool()>& pred, milliseconds timeout) {
  const auto deadline = steady_clock::now() + timeout;
  while (steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(100));
  }
  return pred();
}

// A getTransaction call as raw bytes, and whether a reply frame came back.
std::string GetTransactionFrame() {
  // Binary protocol, strict: version|T_CALL, name, seqid; field 1 string; stop.
  std::string body;
  auto i32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) body.push_back(static_cast<char>((v >> s) & 0xff));
  };
  i32(0x80010001u);
  const std::string name = "getTransaction";
  i32(static_cast<uint32_t>(name.size()));
  body += name;
  i32(1);
  body.push_back(11);  // T_STRING
  body.push_back(0);
  body.push_back(1);
  const std::string gtid = "no-such-gtid";
  i32(static_cast<uint32_t>(gtid.size()));
  body += gtid;
  body.push_back(0);  // T_STOP
  return Frame(body);
}

class FrontEndsTest : public ::testing::Test {
 protected:
  // Starts treatyd with the TREATY_* variables `env` set for it only.
  static std::unique_ptr<TreatydProcess> StartTreatyd(
      const std::string& name, const std::vector<std::pair<std::string, std::string>>& env) {
    static const std::string dir = MakeTempDir("treaty-front-ends");
    TreatydOptions opts;
    opts.store = "sqlite:" + dir + "/" + name + ".db";
    auto t = std::make_unique<TreatydProcess>(dir, name, opts);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    Status s = t->Start();
    for (const auto& [k, v] : env) unsetenv(k.c_str());
    EXPECT_TRUE(s.ok()) << s.ToString();
    log_path_ = dir + "/" + name + ".log";
    return s.ok() ? std::move(t) : nullptr;
  }

  static inline std::string log_path_;
};

// The scenario of ThousandIdleSockets*, against `port`; `fresh_answer` is
// one request from a fresh client that returns whether it got an answer.
void RunThousandIdleSockets(TreatydProcess& treatyd, const std::string& log_path, int port,
                            const std::string& first_bytes,
                            const std::function<bool()>& fresh_answer) {
  const pid_t pid = treatyd.proc().pid();
  const int baseline_fds = FdCount(pid);
  rlimit lim{kTreatydFdLimit, kTreatydFdLimit};
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, &lim, nullptr), 0);

  const int64_t log_before = FileBytes(log_path);
  std::vector<int> idle = OpenIdle(port, kIdleSockets, first_bytes);
  ASSERT_EQ(idle.size(), static_cast<size_t>(kIdleSockets));
  std::this_thread::sleep_for(seconds(1));  // treatyd accepts until it runs out

  const int64_t cpu_before = CpuMs(pid);
  std::this_thread::sleep_for(seconds(2));
  const int64_t cpu_ms = CpuMs(pid) - cpu_before;
  std::printf("%d idle sockets, fd limit %d: CPU %lld ms over 2 s, fds open %d\n", kIdleSockets,
              static_cast<int>(kTreatydFdLimit), static_cast<long long>(cpu_ms), FdCount(pid));
  EXPECT_LT(cpu_ms, 1000) << "treatyd spins while it cannot accept";

  const auto asked = steady_clock::now();
  EXPECT_TRUE(fresh_answer()) << "a fresh client got no answer";
  std::printf("fresh client answered after %lld ms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(steady_clock::now() - asked).count()));
  const int64_t log_growth = FileBytes(log_path) - log_before;
  std::printf("log grew by %lld bytes\n", static_cast<long long>(log_growth));
  EXPECT_LT(log_growth, 100 * 1024);

  CloseAll(idle);
  const auto closed_at = steady_clock::now();
  EXPECT_TRUE(Eventually(
      [&] {
        auto r = HttpFetch("GET", treatyd.url() + "/healthz", "", {}, 2000);
        return r.ok() && r->status == 200 && FdCount(pid) <= baseline_fds + 10 &&
               CloseWaitCount(pid, port) == 0;
      },
      seconds(15)))
      << "fds " << FdCount(pid) << " (baseline " << baseline_fds << "), CLOSE-WAIT "
      << CloseWaitCount(pid, port);
  std::printf(
      "recovered after %lld ms: fds %d (baseline %d), CLOSE-WAIT %d\n",
      static_cast<long long>(
          std::chrono::duration_cast<milliseconds>(steady_clock::now() - closed_at).count()),
      FdCount(pid), baseline_fds, CloseWaitCount(pid, port));
  ASSERT_TRUE(treatyd.running());
}

const std::vector<std::pair<std::string, std::string>> kShortTimeouts = {
    {"TREATY_HTTP_IDLE_TIMEOUT_MS", std::to_string(kIdleTimeoutMs)},
    {"TREATY_HTTP_REQUEST_TIMEOUT_MS", std::to_string(kRequestTimeoutMs)},
    {"TREATY_THRIFT_IDLE_TIMEOUT_MS", std::to_string(kIdleTimeoutMs)},
};

TEST_F(FrontEndsTest, ThousandIdleSocketsHttp) {
  auto treatyd = StartTreatyd("http-fds", kShortTimeouts);
  ASSERT_TRUE(treatyd);
  const int port = std::stoi(treatyd->http_addr().substr(treatyd->http_addr().rfind(':') + 1));
  RunThousandIdleSockets(*treatyd, log_path_, port, "", [&] {
    auto r = HttpFetch("GET", treatyd->url() + "/healthz", "", {}, 20000);
    return r.ok() && (r->status == 200 || r->status == 503);
  });
}

TEST_F(FrontEndsTest, ThousandIdleSocketsThrift) {
  auto treatyd = StartTreatyd("thrift-fds", kShortTimeouts);
  ASSERT_TRUE(treatyd);
  const int port = ThriftPortOf(treatyd->url(), treatyd->http_addr());
  ASSERT_NE(port, 0);
  RunThousandIdleSockets(*treatyd, log_path_, port, std::string(1, '\0'), [&] {
    WireReply r = SendRaw(port, GetTransactionFrame(), 20000);
    return !r.frame.empty() || r.closed;
  });
}

TEST_F(FrontEndsTest, IdleConnectionsAreClosed) {
  auto treatyd = StartTreatyd("idle", kShortTimeouts);
  ASSERT_TRUE(treatyd);
  const int http_port = std::stoi(treatyd->http_addr().substr(treatyd->http_addr().rfind(':') + 1));
  const int thrift_port = ThriftPortOf(treatyd->url(), treatyd->http_addr());
  ASSERT_NE(thrift_port, 0);

  for (int port : {http_port, thrift_port}) {
    int fd = ConnectTo(port);
    ASSERT_GE(fd, 0);
    if (port == thrift_port) send(fd, "", 1, 0);  // one byte of a frame header (see OpenIdle)
    const auto start = steady_clock::now();
    EXPECT_TRUE(ReadUntilClosed(fd, seconds(10))) << "port " << port << " kept an idle connection";
    EXPECT_GE(steady_clock::now() - start, milliseconds(kIdleTimeoutMs / 2));
    close(fd);
  }

  // Slowloris: a header trickled one byte every 500 ms (never idle for the
  // idle time-out) is cut once the request time-out has passed.
  int fd = ConnectTo(http_port);
  ASSERT_GE(fd, 0);
  const std::string trickle = "GET /healthz HTTP/1.1\r\nX-Slow: " + std::string(100, 'a');
  const auto start = steady_clock::now();
  bool closed = false;
  for (char c : trickle) {
    if (send(fd, &c, 1, MSG_NOSIGNAL) != 1 || ReadUntilClosed(fd, milliseconds(500))) {
      closed = true;
      break;
    }
    if (steady_clock::now() - start > seconds(15)) break;
  }
  EXPECT_TRUE(closed) << "a request trickled for 15 s was not cut";
  EXPECT_GE(steady_clock::now() - start, milliseconds(kRequestTimeoutMs / 2));
  close(fd);
}

TEST_F(FrontEndsTest, ConnectionCaps) {
  auto env = kShortTimeouts;
  env.push_back({"TREATY_HTTP_MAX_CONNECTIONS", "50"});
  env.push_back({"TREATY_THRIFT_MAX_CONNECTIONS", "20"});
  env[0].second = env[2].second = "30000";  // idle connections stay for the whole test
  auto treatyd = StartTreatyd("caps", env);
  ASSERT_TRUE(treatyd);
  const int http_port = std::stoi(treatyd->http_addr().substr(treatyd->http_addr().rfind(':') + 1));
  const int thrift_port = ThriftPortOf(treatyd->url(), treatyd->http_addr());
  ASSERT_NE(thrift_port, 0);

  // Served before the crowd: these must keep working.
  int http_served = ConnectTo(http_port);
  int thrift_served = ConnectTo(thrift_port);
  ASSERT_GE(http_served, 0);
  ASSERT_GE(thrift_served, 0);
  const std::string call = GetTransactionFrame();
  ASSERT_EQ(send(thrift_served, call.data(), 1, 0), 1);  // accepted now (see OpenIdle)
  std::this_thread::sleep_for(milliseconds(200));
  std::vector<int> http_idle = OpenIdle(http_port, 300);
  std::vector<int> thrift_idle = OpenIdle(thrift_port, 300, std::string(1, '\0'));
  std::this_thread::sleep_for(seconds(1));
  std::printf("idle connections: %zu HTTP, %zu Thrift (port %d); treatyd has %d fds\n",
              http_idle.size(), thrift_idle.size(), thrift_port, FdCount(treatyd->proc().pid()));

  const auto start = steady_clock::now();
  auto fresh = HttpFetch("GET", treatyd->url() + "/healthz", "", {}, 10000);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(fresh->status, 503);
  EXPECT_LT(steady_clock::now() - start, seconds(5));
  WireReply thrift_fresh = SendRaw(thrift_port, GetTransactionFrame(), 10000);
  EXPECT_TRUE(thrift_fresh.closed && thrift_fresh.frame.empty())
      << "a Thrift connection over the cap was served or left waiting (answer: "
      << thrift_fresh.frame.size() << " bytes, timed out: " << thrift_fresh.timed_out << ")";

  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(send(http_served, request.data(), request.size(), 0),
            static_cast<ssize_t>(request.size()));
  std::string http_answer;
  ReadUntilClosed(http_served, seconds(10), &http_answer);
  EXPECT_NE(http_answer.find(" 200 "), std::string::npos) << http_answer;
  ASSERT_EQ(send(thrift_served, call.data() + 1, call.size() - 1, 0),
            static_cast<ssize_t>(call.size() - 1));
  std::string thrift_answer;
  pollfd p{thrift_served, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10000), 1);
  char buf[4096];
  EXPECT_GT(recv(thrift_served, buf, sizeof(buf), 0), 4) << "the served Thrift connection";

  close(http_served);
  close(thrift_served);
  CloseAll(http_idle);
  CloseAll(thrift_idle);
  EXPECT_TRUE(Eventually(
      [&] {
        auto r = HttpFetch("GET", treatyd->url() + "/healthz", "", {}, 2000);
        return r.ok() && r->status == 200;
      },
      seconds(15)));
}

TEST_F(FrontEndsTest, TrickledThriftFramesAreCut) {
  constexpr int kClients = 5;
  constexpr int kFrameTimeoutMs = 2000;
  constexpr auto kTrickleEvery = milliseconds(500);
  auto treatyd = StartTreatyd(
      "trickle", {
                     {"TREATY_THRIFT_IDLE_TIMEOUT_MS", "10000"},
                     {"TREATY_THRIFT_REQUEST_TIMEOUT_MS", std::to_string(kFrameTimeoutMs)},
                     {"TREATY_THRIFT_MAX_CONNECTIONS", std::to_string(kClients)},
                 });
  ASSERT_TRUE(treatyd);
  const int port = ThriftPortOf(treatyd->url(), treatyd->http_addr());
  ASSERT_NE(port, 0);

  // Each client: a frame header declaring 256 bytes, then one byte of the
  // frame every 500 ms, until the server closes the connection or 15 s pass.
  const std::string header("\0\0\x01\0", 4);
  std::vector<int> fds;
  for (int i = 0; i < kClients; ++i) {
    int fd = ConnectTo(port);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(send(fd, header.data(), header.size(), MSG_NOSIGNAL), 4);
    fds.push_back(fd);
  }
  const auto start = steady_clock::now();
  std::vector<milliseconds> closed_after(kClients, milliseconds(-1));
  int open = kClients;
  while (open > 0 && steady_clock::now() - start < seconds(15)) {
    std::this_thread::sleep_for(kTrickleEvery);
    for (int i = 0; i < kClients; ++i) {
      if (closed_after[i].count() >= 0) continue;
      char c = 'x';
      const bool sent = send(fds[i], &c, 1, MSG_NOSIGNAL) == 1;
      const ssize_t n = recv(fds[i], &c, 1, MSG_DONTWAIT);
      if (!sent || n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        closed_after[i] = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
        --open;
      }
    }
  }
  for (int i = 0; i < kClients; ++i) {
    std::printf("trickling client %d: closed after %lld ms\n", i,
                static_cast<long long>(closed_after[i].count()));
    EXPECT_GE(closed_after[i].count(), 0) << "client " << i << " trickled for 15 s, never cut";
    if (closed_after[i].count() >= 0) {
      EXPECT_GE(closed_after[i].count(), kFrameTimeoutMs / 2) << "client " << i;
      EXPECT_LE(closed_after[i].count(), kFrameTimeoutMs + 5000) << "client " << i;
    }
  }

  // The server freed their slots (our ends are still open): a fresh client
  // gets a real answer.
  EXPECT_TRUE(Eventually(
      [&] {
        namespace at = apache::thrift;
        auto socket = std::make_shared<at::transport::TSocket>("127.0.0.1", port);
        socket->setConnTimeout(2000);
        socket->setRecvTimeout(5000);
        socket->setSendTimeout(5000);
        auto transport = std::make_shared<at::transport::TFramedTransport>(socket);
        rpc::CoordinatorServiceClient client(
            std::make_shared<at::protocol::TBinaryProtocol>(transport));
        try {
          transport->open();
          rpc::Transaction txn;
          client.getTransaction(txn, "no-such-gtid");
        } catch (const rpc::NotFound&) {
          return true;
        } catch (const std::exception& e) {
          std::printf("fresh client: %s\n", e.what());
        }
        return false;
      },
      seconds(5)))  // less than the idle time-out, which would free the slots too
      << "a fresh Thrift client got no NotFound answer";
  CloseAll(fds);

  std::ifstream log(log_path_);
  std::string all((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("was not complete"), std::string::npos)
      << "no log line for the connections cut at the frame deadline";
  ASSERT_TRUE(treatyd->running());
}

}  // namespace
}  // namespace treaty::testing
