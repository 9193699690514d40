#pragma once

// DashboardSessions: the dashboard's sign-in (docs/security.md "Dashboard").
// A browser cannot attach a bearer token to the dashboard's own requests
// without keeping it in script-readable storage, so the operator trades the
// token once for a session cookie the page's script never sees:
//
//   POST   /v1/session  {"token": "..."}  -> 200 {"name","roles","method"} and
//          Set-Cookie: treaty_session=ID; Path=/; HttpOnly; SameSite=Strict[; Secure]
//          401 for a token the tokens file does not know; 429 (Retry-After: 60)
//          once a peer IP address failed `max_failures_per_minute` times in
//          the last minute (its attempts are not even checked until then)
//   GET    /v1/session  -> 200 who the request is authenticated as (needs read)
//   DELETE /v1/session  -> 200 {"signed_out":true}; forgets the cookie's session
//          and clears the cookie
//
// A session is a random 256-bit id (64 hex digits) kept in memory only
// (a restart signs everyone out), stored by its SHA-256 so a lookup leaks
// nothing of other ids. It ends `idle_ms` after its last use, `absolute_ms`
// after sign-in, or at sign-out. A client (a NAME of the tokens file) holds
// at most `max_sessions_per_client` sessions: its next sign-in ends its own
// oldest, so one client can never sign another out. Should the sessions of
// all clients together reach `max_sessions`, the oldest session of the
// client holding the most goes. At every request it re-reads its client's roles from the
// tokens file (Authenticator::ForName): a client removed by a reload loses
// access at once. With authentication off (null Authenticator) there is
// nothing to sign in to: POST and GET answer the anonymous identity and no
// cookie is set.
//
// Thread-safe (one mutex); never blocks on I/O.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "http/http_types.h"
#include "security/authenticator.h"
#include "security/identity.h"

namespace treaty {

// The name of the dashboard's session cookie.
inline constexpr std::string_view kSessionCookie = "treaty_session";

struct DashboardSessionOptions {
  int64_t idle_ms = 30 * 60 * 1000;
  int64_t absolute_ms = 12LL * 3600 * 1000;
  size_t max_sessions = 10000;          // all clients together
  size_t max_sessions_per_client = 16;  // per NAME of the tokens file
  int max_failures_per_minute = 10;     // failed sign-ins per peer IP address
  // Milliseconds of a monotonic clock; empty: std::chrono::steady_clock.
  std::function<int64_t()> now_ms;
};

class DashboardSessions {
 public:
  // `auth` null: authentication off. `secure_cookie`: the listener is
  // HTTPS, so the cookie gets the Secure flag.
  DashboardSessions(std::shared_ptr<Authenticator> auth, bool secure_cookie,
                    DashboardSessionOptions options);

  // The identity of the session cookie `id` now (method kSession), or
  // nullopt when it is unknown, expired or its client is gone. A hit counts
  // as use (idle expiry starts over).
  std::optional<Identity> Find(std::string_view id);

  // Answers POST, GET and DELETE /v1/session (see above). `who` is the
  // identity the AccessGate admitted the request with (GET needs one).
  void Handle(const HttpRequest& req, const Identity& who, HttpResponder& respond);

  // The value of the treaty_session cookie of `req`, or "".
  static std::string CookieOf(const HttpRequest& req);

  size_t size() const;

 private:
  struct Session {
    std::string name;
    int64_t created_ms = 0;
    int64_t used_ms = 0;
  };
  void SignIn(const HttpRequest& req, HttpResponder& respond);
  void SignOut(const HttpRequest& req, HttpResponder& respond);
  // Whether `ip` failed too often in the last minute; drops older failures.
  bool Throttled(const std::string& ip, int64_t now) TREATY_REQUIRES(mu_);
  void NoteFailure(const std::string& ip, int64_t now) TREATY_REQUIRES(mu_);
  // Makes room for one more session of `name`: drops expired sessions,
  // then `name`'s own oldest past max_sessions_per_client, then, at
  // max_sessions, the oldest of the client with the most.
  void EvictLocked(const std::string& name, int64_t now) TREATY_REQUIRES(mu_);
  // A new session for `name`; returns its id.
  std::string CreateLocked(const std::string& name, int64_t now) TREATY_REQUIRES(mu_);
  std::string Cookie(const std::string& id) const;
  int64_t Now() const;

  const std::shared_ptr<Authenticator> auth_;
  const bool secure_cookie_;
  const DashboardSessionOptions options_;
  mutable Mutex mu_;
  std::map<std::string, Session, std::less<>> sessions_ TREATY_GUARDED_BY(mu_);  // by SHA-256 of id
  std::map<std::string, std::deque<int64_t>> failures_ TREATY_GUARDED_BY(mu_);   // by peer IP
};

// The roles of `roles` as JSON-ready names, in the order submit, read,
// operate, admin.
std::vector<std::string> RoleNames(RoleSet roles);

}  // namespace treaty
