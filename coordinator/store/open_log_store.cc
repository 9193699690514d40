// OpenLogStore: picks the engine from the store URI (see log_store.h), after
// CheckStoreUri (open_log_store.h).
#include "store/open_log_store.h"

#include <cctype>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "common/text.h"
#include "store/log_store.h"
#include "store/pg_connection_pool.h"
#include "store/pg_log_store.h"
#include "store/sqlite_backup.h"
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

Status Refused(const std::string& why) { return Status::InvalidArgument("store URI: " + why); }

// A value of the URI as shown in a message: escaped and short.
std::string Shown(std::string_view v) { return "'" + EscapeControl(Excerpt(v, 40)) + "'"; }

// libpq's parse error without the parts of the URI it quotes that could be
// (or hold) a password: a "quoted" piece is kept only when it is a bare
// keyword (invalid connection option "bogus"), and never after `missing
// "=" after`, which quotes a piece of a value.
std::string WithoutSecrets(std::string message) {
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  std::string out;
  size_t pos = 0;
  while (pos < message.size()) {
    const size_t open = message.find('"', pos);
    const size_t close = open == std::string::npos ? open : message.find('"', open + 1);
    if (close == std::string::npos) {
      out += message.substr(pos);
      break;
    }
    out += message.substr(pos, open - pos);
    const std::string_view piece(message.data() + open + 1, close - open - 1);
    const bool after = out.size() >= 6 && out.compare(out.size() - 6, 6, "after ") == 0;
    bool keyword = !piece.empty() && piece.size() <= 40 && !after;
    for (char c : piece) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) keyword = false;
    }
    keyword = keyword || piece == "=";
    out += keyword ? "\"" + std::string(piece) + "\"" : "(not shown)";
    pos = close + 1;
  }
  return EscapeControl(Excerpt(out, 200));
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// As libpq's parse_int_param: optional blanks and sign, digits, blanks.
bool IsLibpqInt(std::string_view v, long* out) {
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
  bool negative = false;
  if (!v.empty() && (v.front() == '-' || v.front() == '+')) {
    negative = v.front() == '-';
    v.remove_prefix(1);
  }
  if (v.empty() || v.size() > 9) return false;
  long n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  *out = negative ? -n : n;
  return true;
}

// The checks libpq makes only when connecting (connectOptions2 and
// parse_int_param), on the parsed `given` keyword/value pairs.
Status CheckPgValues(const std::vector<std::pair<std::string, std::string>>& given) {
  const auto value_of = [&](const char* keyword) -> const std::string* {
    for (const auto& [k, v] : given) {
      if (k == keyword) return &v;
    }
    return nullptr;
  };
  size_t hosts = 1;
  if (const std::string* h = value_of("hostaddr"); h && !h->empty()) {
    hosts = SplitCommas(*h).size();
  } else if (const std::string* h = value_of("host"); h && !h->empty()) {
    hosts = SplitCommas(*h).size();
  }
  if (const std::string* port = value_of("port"); port && !port->empty()) {
    const std::vector<std::string> ports = SplitCommas(*port);
    for (const std::string& p : ports) {
      long n = 0;
      if (!p.empty() && (!IsLibpqInt(p, &n) || n < 1 || n > 65535)) {
        return Refused("port " + Shown(p) + " is not a number 1..65535");
      }
    }
    if (ports.size() > 1 && ports.size() != hosts) {
      return Refused(std::to_string(ports.size()) + " ports for " + std::to_string(hosts) +
                     " hosts (give one port, or one per host)");
    }
  }
  for (const char* keyword : {"connect_timeout", "keepalives", "keepalives_idle",
                              "keepalives_interval", "keepalives_count", "tcp_user_timeout"}) {
    long n = 0;
    if (const std::string* v = value_of(keyword); v && !v->empty() && !IsLibpqInt(*v, &n)) {
      return Refused(std::string(keyword) + " " + Shown(*v) + " is not an integer");
    }
  }
  struct Choice {
    const char* keyword;
    std::vector<std::string> allowed;
  };
  const Choice choices[] = {
      {"sslmode", {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
      {"gssencmode", {"disable", "prefer", "require"}},
      {"channel_binding", {"disable", "prefer", "require"}},
      {"target_session_attrs",
       {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}},
      {"ssl_min_protocol_version", {"", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}},
      {"ssl_max_protocol_version", {"", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}},
  };
  for (const Choice& choice : choices) {
    const std::string* v = value_of(choice.keyword);
    if (v == nullptr) continue;
    bool known = false;
    std::string list;
    for (const std::string& a : choice.allowed) {
      known = known || *v == a;
      if (!a.empty()) list += (list.empty() ? "" : ", ") + a;
    }
    if (!known) {
      return Refused(std::string(choice.keyword) + " " + Shown(*v) + " is not one of " + list);
    }
  }
  return Status::Ok();
}

Status CheckPostgresUri(const std::string& uri) {
  std::string error;
  std::optional<PgConnectionPool::ConninfoPairs> given =
      PgConnectionPool::ParseConninfo(uri, &error);
  if (!given) return Refused(WithoutSecrets(std::move(error)));
  return CheckPgValues(*given);
}

}  // namespace

bool IsPostgresStoreUri(const std::string& uri) {
  return StartsWith(uri, "postgresql://") || StartsWith(uri, "postgres://") ||
         LooksLikeConninfo(uri);
}

Status CheckStoreUri(const std::string& uri) {
  if (uri.empty()) return Refused("empty (want sqlite:PATH or a PostgreSQL URI/conninfo)");
  if (StartsWith(uri, "sqlite:")) {
    if (SqliteLogPathOf(uri)->empty())
      return Refused("sqlite: needs a PATH (sqlite:/var/lib/x.db)");
    return Status::Ok();
  }
  if (IsPostgresStoreUri(uri)) return CheckPostgresUri(uri);
  // Only the scheme is shown: the rest may hold a password.
  const size_t colon = uri.find(':');
  return Refused(
      "unknown kind of store " +
      (colon == std::string::npos ? std::string("(no scheme)") : Shown(uri.substr(0, colon + 1))) +
      " (want sqlite:PATH, postgresql://..., postgres://... or a key=value conninfo)");
}

Result<std::unique_ptr<LogStore>> OpenLogStore(const std::string& uri) {
  if (Status s = CheckStoreUri(uri); !s.ok()) return s;
  if (StartsWith(uri, "sqlite:")) {
    Result<std::unique_ptr<SqliteLogStore>> store = SqliteLogStore::Open(*SqliteLogPathOf(uri));
    if (!store.ok()) return store.status();
    return std::unique_ptr<LogStore>(std::move(*store));
  }
  Result<std::unique_ptr<PgLogStore>> store = PgLogStore::Open(uri);
  if (!store.ok()) return store.status();
  return std::unique_ptr<LogStore>(std::move(*store));
}

}  // namespace treaty
