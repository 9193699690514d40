#include "support/store_env.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>

namespace treaty::testing {

MiniPostgres* IntegrationPostgres() {
  static std::unique_ptr<MiniPostgres> pg = [] {
    auto p = std::make_unique<MiniPostgres>();
    Status s = p->Start();
    if (!s.ok()) {
      ADD_FAILURE() << "cannot start PostgreSQL: " << s.ToString();
      return std::unique_ptr<MiniPostgres>();
    }
    return p;
  }();
  return pg.get();
}

std::string FreshStoreUri(const std::string& engine, const std::string& dir) {
  static std::atomic<int> counter{0};
  const int n = counter++;
  if (engine == "sqlite") return "sqlite:" + dir + "/treaty-" + std::to_string(n) + ".db";
  MiniPostgres* pg = IntegrationPostgres();
  if (!pg) return "";
  const std::string db = "treaty_it_" + std::to_string(getpid()) + "_" + std::to_string(n);
  Status s = pg->CreateDatabase(db);
  if (!s.ok()) {
    ADD_FAILURE() << "cannot create database: " << s.ToString();
    return "";
  }
  return pg->Uri(db);
}

}  // namespace treaty::testing
