#include "store/store_fixture.h"

#include <atomic>
#include <filesystem>

namespace treaty::testing {

MiniPostgres* SharedPostgres() {
  static MiniPostgres* pg = [] {
    auto* p = new MiniPostgres();
    Status s = p->Start();
    if (!s.ok()) {
      ADD_FAILURE() << "MiniPostgres: " << s.ToString();
      delete p;
      return static_cast<MiniPostgres*>(nullptr);
    }
    // Stopped and removed at exit.
    std::atexit([] { delete SharedPostgres(); });
    return p;
  }();
  return pg;
}

Result<std::unique_ptr<LogStore>> OpenFreshStore(const std::string& engine,
                                                 std::string* scratch_dir) {
  static std::atomic<int> counter{0};
  const int n = counter++;
  if (engine == "sqlite") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("treaty-store-test-" + std::to_string(getpid()) + "-" + std::to_string(n));
    std::filesystem::remove_all(dir);
    if (scratch_dir != nullptr) *scratch_dir = dir.string();
    return OpenLogStore("sqlite:" + (dir / "sub" / "treaty.db").string());
  }
  MiniPostgres* pg = SharedPostgres();
  if (pg == nullptr) return Status::Unavailable("no PostgreSQL");
  const std::string db = "store_test_" + std::to_string(n);
  if (Status s = pg->CreateDatabase(db); !s.ok()) return s;
  return OpenLogStore(pg->Uri(db));
}

Result<std::unique_ptr<LogStore>> OpenNewPgStore(const std::string& db) {
  MiniPostgres* pg = SharedPostgres();
  if (pg == nullptr) return Status::Unavailable("no PostgreSQL");
  if (Status s = pg->CreateDatabase(db); !s.ok()) return s;
  Result<std::unique_ptr<LogStore>> store = OpenLogStore(pg->Uri(db));
  if (!store.ok()) return store.status();
  if (Status s = (*store)->Migrate(); !s.ok()) return s;
  return store;
}

void StoreTest::SetUp() {
  Result<std::unique_ptr<LogStore>> store = OpenFreshStore(GetParam(), &scratch_dir_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  store_ = std::move(*store);
  ASSERT_EQ(store_->Engine(), GetParam());
  Status s = store_->Migrate();
  ASSERT_TRUE(s.ok()) << s.ToString();
}

void StoreTest::TearDown() {
  store_.reset();
  if (!scratch_dir_.empty()) std::filesystem::remove_all(scratch_dir_);
}

TxnWrite CreateWrite(const std::string& gtid, const std::string& owner, int64_t created_at_ms,
                     const std::string& state, const std::string& kind) {
  TxnWrite w;
  w.gtid = gtid;
  w.owner = owner;
  w.now_ms = created_at_ms;
  TxnRow row;
  row.gtid = gtid;
  row.kind = kind;
  row.state = state;
  row.spec = R"({"steps":[]})";
  row.deadline_ms = created_at_ms + 60000;
  row.created_at_ms = created_at_ms;
  w.create = row;
  return w;
}

Status ApplyOne(LogStore& store, const TxnWrite& write) {
  Result<std::vector<Status>> r = store.ApplyBatch({write});
  if (!r.ok()) return r.status();
  if (r->size() != 1) return Status::Internal("wrong number of results");
  return (*r)[0];
}

std::string EngineName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

}  // namespace treaty::testing
