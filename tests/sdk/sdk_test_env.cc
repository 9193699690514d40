#include "sdk/sdk_test_env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>

#include <pqxx/pqxx>

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

}  // namespace treaty::testing
