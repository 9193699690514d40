#include "sdk/sdk_test_env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>

#include <pqxx/pqxx>

#include "http/http_server.h"
#include "http/io_runner.h"
#include "support/store_env.h"

namespace treaty::testing {

std::string FreshDatabase(const std::string& prefix) {
  static std::atomic<int> counter{0};
  MiniPostgres* pg = IntegrationPostgres();
  if (pg == nullptr) return "";
  const std::string db =
      prefix + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
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
          r.body = R"({"error":{"code":"NotFound","message":"no such transaction"}})";
        } else {
          r.body = "{\"gtid\":\"" + it->first + "\",\"kind\":\"2pc\",\"state\":\"" +
                   it->second + "\",\"branches\":[]}";
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
