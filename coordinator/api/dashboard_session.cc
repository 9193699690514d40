#include "api/dashboard_session.h"

#include <algorithm>
#include <chrono>

#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "api/rest_api.h"
#include "common/host_port.h"
#include "common/json_input.h"

namespace treaty {
namespace {

using nlohmann::json;

constexpr int64_t kFailureWindowMs = 60 * 1000;
// Peer addresses whose failures are remembered; past this, addresses whose
// window has passed are forgotten first, then the whole table.
constexpr size_t kMaxFailingPeers = 10000;

// 32 random bytes as 64 lower-case hex digits; "" if the generator fails.
std::string RandomId() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

// "1.2.3.4:5678" -> "1.2.3.4", "::1:5678" -> "::1" (the HTTP server writes
// peers ADDRESS:PORT without brackets).
std::string PeerIp(const std::string& remote) {
  const AuthorityParts parts = SplitAuthority(remote, ExtraColons::kLastSplits);
  return parts.error == AuthorityParts::Error::kNone ? std::string(parts.host) : remote;
}

HttpResponse WhoAnswer(const Identity& who) {
  const char* method = "none";
  switch (who.method) {
    case AuthMethod::kNone:
      break;
    case AuthMethod::kToken:
      method = "token";
      break;
    case AuthMethod::kSession:
      method = "session";
      break;
    case AuthMethod::kCertificate:
      method = "certificate";
      break;
  }
  return JsonResponse(
      200, DumpJson({{"name", who.name}, {"roles", RoleNames(who.roles)}, {"method", method}}));
}

}  // namespace

std::vector<std::string> RoleNames(RoleSet roles) {
  std::vector<std::string> out;
  for (Role r : {Role::kSubmit, Role::kRead, Role::kOperate, Role::kAdmin}) {
    if (roles.Has(r)) out.emplace_back(RoleName(r));
  }
  return out;
}

DashboardSessions::DashboardSessions(std::shared_ptr<Authenticator> auth, bool secure_cookie,
                                     DashboardSessionOptions options)
    : auth_(std::move(auth)), secure_cookie_(secure_cookie), options_(std::move(options)) {}

int64_t DashboardSessions::Now() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string DashboardSessions::CookieOf(const HttpRequest& req) {
  const std::string header = req.Header("cookie");
  std::string_view rest = header;
  while (!rest.empty()) {
    const size_t semi = rest.find(';');
    std::string_view pair = rest.substr(0, semi);
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != kSessionCookie) continue;
    std::string_view value = pair.substr(eq + 1);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    return std::string(value);
  }
  return "";
}

std::optional<Identity> DashboardSessions::Find(std::string_view id) {
  if (!auth_ || id.size() != 64) return std::nullopt;
  const std::string key = Sha256Hex(id);
  const int64_t now = Now();
  std::string name;
  {
    MutexLock lock(&mu_);
    auto it = sessions_.find(key);
    if (it == sessions_.end()) return std::nullopt;
    Session& s = it->second;
    if (now - s.used_ms > options_.idle_ms || now - s.created_ms > options_.absolute_ms) {
      sessions_.erase(it);
      return std::nullopt;
    }
    s.used_ms = now;
    name = s.name;
  }
  std::optional<Identity> who = auth_->ForName(name);
  if (!who) {
    MutexLock lock(&mu_);
    sessions_.erase(key);
    return std::nullopt;
  }
  who->method = AuthMethod::kSession;
  return who;
}

size_t DashboardSessions::size() const {
  MutexLock lock(&mu_);
  return sessions_.size();
}

void DashboardSessions::Handle(const HttpRequest& req, const Identity& who,
                               HttpResponder& respond) {
  if (req.method == "POST") {
    SignIn(req, respond);
  } else if (req.method == "DELETE") {
    SignOut(req, respond);
  } else if (req.method == "GET" || req.method == "HEAD") {
    respond(WhoAnswer(who));
  } else {
    respond(ErrorResponse(NoRoute(req)));
  }
}

bool DashboardSessions::Throttled(const std::string& ip, int64_t now) {
  auto it = failures_.find(ip);
  if (it == failures_.end()) return false;
  std::deque<int64_t>& times = it->second;
  while (!times.empty() && now - times.front() >= kFailureWindowMs) times.pop_front();
  if (times.empty()) {
    failures_.erase(it);
    return false;
  }
  return static_cast<int>(times.size()) >= options_.max_failures_per_minute;
}

void DashboardSessions::NoteFailure(const std::string& ip, int64_t now) {
  if (failures_.size() >= kMaxFailingPeers && failures_.find(ip) == failures_.end()) {
    for (auto it = failures_.begin(); it != failures_.end();) {
      it = now - it->second.back() >= kFailureWindowMs ? failures_.erase(it) : std::next(it);
    }
    if (failures_.size() >= kMaxFailingPeers) failures_.clear();
  }
  failures_[ip].push_back(now);
}

std::string DashboardSessions::Cookie(const std::string& id) const {
  std::string c = std::string(kSessionCookie) + "=" + id + "; Path=/; HttpOnly; SameSite=Strict";
  if (id.empty()) c += "; Max-Age=0";
  if (secure_cookie_) c += "; Secure";
  return c;
}

void DashboardSessions::EvictLocked(const std::string& name, int64_t now) {
  auto expired = [&](const Session& s) {
    return now - s.used_ms > options_.idle_ms || now - s.created_ms > options_.absolute_ms;
  };
  // The oldest session of `client`, or end().
  auto oldest_of = [&](const std::string& client) TREATY_REQUIRES(mu_) {
    auto oldest = sessions_.end();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (it->second.name != client) continue;
      if (oldest == sessions_.end() || it->second.created_ms < oldest->second.created_ms) {
        oldest = it;
      }
    }
    return oldest;
  };
  size_t own = 0;
  for (const auto& [key, s] : sessions_) own += s.name == name ? 1 : 0;
  if (own < options_.max_sessions_per_client && sessions_.size() < options_.max_sessions) return;
  // Expired sessions go first.
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (expired(it->second)) {
      own -= it->second.name == name ? 1 : 0;
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  // Then the client's own oldest: one client never signs out another.
  while (own > 0 && own >= options_.max_sessions_per_client) {
    sessions_.erase(oldest_of(name));
    --own;
  }
  // Last resort, at the global cap: the oldest session of the client with
  // the most sessions.
  while (!sessions_.empty() && sessions_.size() >= options_.max_sessions) {
    std::map<std::string_view, size_t> counts;
    for (const auto& [key, s] : sessions_) ++counts[s.name];
    auto most = std::max_element(counts.begin(), counts.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    sessions_.erase(oldest_of(std::string(most->first)));
  }
}

std::string DashboardSessions::CreateLocked(const std::string& name, int64_t now) {
  EvictLocked(name, now);
  std::string id = RandomId();
  if (id.empty()) return id;
  sessions_[Sha256Hex(id)] = Session{name, now, now};
  return id;
}

void DashboardSessions::SignIn(const HttpRequest& req, HttpResponder& respond) {
  if (!auth_) {
    respond(WhoAnswer(Identity{"anonymous", RoleSet::All(), AuthMethod::kNone}));
    return;
  }
  const std::string ip = PeerIp(req.remote);
  const int64_t now = Now();
  bool throttled;
  {
    MutexLock lock(&mu_);
    throttled = Throttled(ip, now);
  }
  if (throttled) {
    HttpResponse r = ErrorAnswer(
        429, "too_many_requests",
        "too many failed sign-ins from this address in the last minute; wait and try again");
    r.headers.push_back({"Retry-After", "60"});
    respond(std::move(r));
    return;
  }
  Result<json> body = ParseJson(req.body, "the request body");
  if (!body.ok()) {
    respond(ErrorResponse(body.status()));
    return;
  }
  auto token = body->is_object() ? body->find("token") : body->end();
  if (!body->is_object() || token == body->end() || !token->is_string() ||
      token->get_ref<const std::string&>().empty()) {
    respond(ErrorResponse(Status::InvalidArgument("body must be {\"token\": \"...\"}")));
    return;
  }
  std::optional<Identity> who = auth_->ForToken(token->get_ref<const std::string&>());
  if (!who) {
    {
      MutexLock lock(&mu_);
      NoteFailure(ip, now);
    }
    spdlog::warn("dashboard sign-in with an unknown token from {}", req.remote);
    respond(ErrorResponse(Status::Unauthenticated("the token is not valid")));
    return;
  }
  std::string id;
  {
    MutexLock lock(&mu_);
    const std::string old = CookieOf(req);
    if (old.size() == 64) sessions_.erase(Sha256Hex(old));
    id = CreateLocked(who->name, now);
  }
  if (id.empty()) {
    respond(ErrorResponse(Status::Internal("no random session id could be made")));
    return;
  }
  spdlog::info("dashboard sign-in: {} from {}", who->name, req.remote);
  who->method = AuthMethod::kSession;
  HttpResponse r = WhoAnswer(*who);
  r.headers.push_back({"Set-Cookie", Cookie(id)});
  respond(std::move(r));
}

void DashboardSessions::SignOut(const HttpRequest& req, HttpResponder& respond) {
  const std::string id = CookieOf(req);
  if (id.size() == 64) {
    MutexLock lock(&mu_);
    sessions_.erase(Sha256Hex(id));
  }
  HttpResponse r = JsonResponse(200, R"({"signed_out":true})");
  if (auth_) r.headers.push_back({"Set-Cookie", Cookie("")});
  respond(std::move(r));
}

}  // namespace treaty
