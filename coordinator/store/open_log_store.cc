// OpenLogStore: picks the engine from the store URI (see log_store.h).
#include "store/log_store.h"
#include "store/pg_log_store.h"
#include "store/sqlite_log_store.h"

namespace treaty {

namespace {

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// libpq keyword/value conninfo: "host=... dbname=...".
bool LooksLikeConninfo(const std::string& s) {
  const size_t eq = s.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  for (size_t i = 0; i < eq; ++i) {
    const char c = s[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ' ')) return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<LogStore>> OpenLogStore(const std::string& uri) {
  if (StartsWith(uri, "sqlite:")) {
    std::string path = uri.substr(7);
    if (StartsWith(path, "//")) path = path.substr(2);  // tolerate sqlite://PATH
    Result<std::unique_ptr<SqliteLogStore>> store = SqliteLogStore::Open(path);
    if (!store.ok()) return store.status();
    return std::unique_ptr<LogStore>(std::move(*store));
  }
  if (StartsWith(uri, "postgresql://") || StartsWith(uri, "postgres://") ||
      LooksLikeConninfo(uri)) {
    Result<std::unique_ptr<PgLogStore>> store = PgLogStore::Open(uri);
    if (!store.ok()) return store.status();
    return std::unique_ptr<LogStore>(std::move(*store));
  }
  return Status::InvalidArgument("unknown store URI (want sqlite:PATH or postgresql://...): " +
                                 uri);
}

}  // namespace treaty
