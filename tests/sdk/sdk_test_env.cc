#include "sdk/sdk_test_env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>

#include <pqxx/pqxx>

#include "http/http_client.h"
#include "http/http_server.h"
#include "http/io_runner.h"
#include "support/store_env.h"
#include "support/subprocess.h"

#include <chrono>
#include <csignal>
#include <thread>

namespace treaty::testing {

std::string FreshDatabase(const std::string& prefix) {
  static std::atomic<int> counter{0};
  MiniPostgres* pg = IntegrationPostgres();
  if (pg == nullptr) return "";
  const std::string db = prefix + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
  auto s = pg->CreateDatabase(db);
  if (!s.ok()) {
    ADD_FAILURE() << "cannot create database " << db << ": " << s.ToString();
    return "";
  }
  return pg->Uri(db);
}

int64_t QueryInt(const std::string& uri, const std::string& sql) {
  try {
    pqxx::connection c(uri);
    pqxx::work w(c);
    pqxx::result r = w.exec(sql);
    w.commit();
    if (r.empty() || r[0][0].is_null()) return 0;
    return r[0][0].as<int64_t>();
  } catch (const std::exception& e) {
    ADD_FAILURE() << sql << ": " << e.what();
    return -1;
  }
}

void ExecSql(const std::string& uri, const std::string& sql) {
  try {
    pqxx::connection c(uri);
    pqxx::work w(c);
    w.exec(sql);
    w.commit();
  } catch (const std::exception& e) {
    ADD_FAILURE() << sql << ": " << e.what();
  }
}

void RollbackAllPrepared(const std::string& uri) {
  try {
    pqxx::connection c(uri);
    pqxx::nontransaction n(c);
    pqxx::result r =
        n.exec("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()");
    for (const auto& row : r) n.exec("ROLLBACK PREPARED " + n.quote(row[0].c_str()));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "rollback prepared: " << e.what();
  }
}

struct CoordinatorProcess::Impl {
  std::string store, log_dir;
  int port = 0;
  int thrift_port = 0;
  std::unique_ptr<Subprocess> proc;
};

CoordinatorProcess::CoordinatorProcess(std::string store, std::string log_dir, int port)
    : impl_(std::make_unique<Impl>()) {
  impl_->store = std::move(store);
  impl_->log_dir = std::move(log_dir);
  impl_->port = port == 0 ? FreePort() : port;
  impl_->thrift_port = FreePort();
}

CoordinatorProcess::~CoordinatorProcess() { Kill(); }

bool CoordinatorProcess::Start(int timeout_ms) {
  static std::atomic<int> n{0};
  const std::string name = "coordinator-" + std::to_string(n++);
  impl_->proc = std::make_unique<Subprocess>(
      std::vector<std::string>{BinaryPath("treatyd"), "--store", impl_->store, "--http",
                               "127.0.0.1:" + std::to_string(impl_->port), "--thrift",
                               "127.0.0.1:" + std::to_string(impl_->thrift_port), "--node-name",
                               name, "--heartbeat-ms", "200", "--lease-ms", "1000",
                               "--retry-max-backoff-ms", "200", "--drain-timeout-ms", "1000"},
      impl_->log_dir + "/" + name + ".log");
  if (auto s = impl_->proc->Start(); !s.ok()) {
    ADD_FAILURE() << "treatyd: " << s.ToString();
    return false;
  }
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    auto r = HttpFetch("GET", url() + "/readyz", "", {}, 1000);
    if (r.ok() && r->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "treatyd not ready: " << impl_->proc->Log();
  return false;
}

void CoordinatorProcess::Kill() {
  if (impl_->proc && impl_->proc->running()) impl_->proc->Kill();
}

void CoordinatorProcess::Terminate() {
  if (impl_->proc && impl_->proc->running()) {
    impl_->proc->Signal(SIGTERM);
    if (impl_->proc->Wait(15000) < 0) impl_->proc->Kill();
  }
}

std::string CoordinatorProcess::url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port);
}

std::string CoordinatorProcess::thrift_url() const {
  return "thrift://127.0.0.1:" + std::to_string(impl_->thrift_port);
}

std::string CoordinatorProcess::Log() const { return impl_->proc ? impl_->proc->Log() : ""; }

struct FakeCoordinator::Impl {
  IoRunner io{1};
  std::unique_ptr<HttpServer> server;
  mutable std::mutex mu;
  std::map<std::string, std::string> states;  // guarded by mu
  int lookups = 0;                            // guarded by mu
};

FakeCoordinator::FakeCoordinator() : impl_(std::make_unique<Impl>()) {
  Impl* impl = impl_.get();
  impl_->server = std::make_unique<HttpServer>(
      impl_->io.io(), HttpServerOptions{}, [impl](HttpRequest req, HttpResponder respond) {
        static const std::string kPrefix = "/v1/transactions/";
        HttpResponse r;
        std::lock_guard<std::mutex> l(impl->mu);
        impl->lookups++;
        auto it = req.path.rfind(kPrefix, 0) == 0
                      ? impl->states.find(req.path.substr(kPrefix.size()))
                      : impl->states.end();
        if (req.method != "GET" || it == impl->states.end()) {
          r.status = 404;
          r.body = R"({"error":{"code":"not_found","message":"no such transaction"}})";
        } else {
          r.body = "{\"gtid\":\"" + it->first + "\",\"kind\":\"2pc\",\"state\":\"" + it->second +
                   "\",\"branches\":[]}";
        }
        respond(std::move(r));
      });
  auto s = impl_->server->Start();
  if (!s.ok()) ADD_FAILURE() << "fake coordinator: " << s.ToString();
}

FakeCoordinator::~FakeCoordinator() { impl_->server->Stop(); }

void FakeCoordinator::SetState(const std::string& gtid, const std::string& state) {
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->states[gtid] = state;
}

std::string FakeCoordinator::url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->server->port());
}

int FakeCoordinator::lookups() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->lookups;
}

}  // namespace treaty::testing
