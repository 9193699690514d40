#pragma once

// Identity and roles: who a request comes from and what it may do
// (docs/security.md "Roles"). Built by the Authenticator from a bearer token,
// a dashboard session or a verified client certificate; carried by the REST
// and Thrift front ends to their role checks and, as the actor, into operator
// events and the audit log.
//
// Roles (a client holds any set of them; none implies another):
//   submit   start and drive transactions (sagas, 2PC begin/enlist/commit/abort)
//   read     get, list, stats, cluster, the dashboard's view, /metrics
//   operate  retry, abort, pause, resume, resolve
//   admin    log level, drain
//
// Plain values; thread-compatible.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace treaty {

enum class Role : uint8_t { kSubmit = 1, kRead = 2, kOperate = 4, kAdmin = 8 };

// A set of roles as a bit mask of Role values.
class RoleSet {
 public:
  constexpr RoleSet() = default;
  static constexpr RoleSet All() { return RoleSet(0x0F); }
  constexpr bool Has(Role r) const { return (bits_ & static_cast<uint8_t>(r)) != 0; }
  constexpr void Add(Role r) { bits_ |= static_cast<uint8_t>(r); }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr bool operator==(const RoleSet&) const = default;

 private:
  constexpr explicit RoleSet(uint8_t bits) : bits_(bits) {}
  uint8_t bits_ = 0;
};

// "submit", "read", "operate", "admin".
inline const char* RoleName(Role r) {
  switch (r) {
    case Role::kSubmit:
      return "submit";
    case Role::kRead:
      return "read";
    case Role::kOperate:
      return "operate";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

// The Role named `name` (exact, lower case), or nullopt.
inline std::optional<Role> ParseRole(std::string_view name) {
  for (Role r : {Role::kSubmit, Role::kRead, Role::kOperate, Role::kAdmin}) {
    if (name == RoleName(r)) return r;
  }
  return std::nullopt;
}

// How an identity was established.
enum class AuthMethod : uint8_t {
  kNone,         // authentication is off (no --auth-tokens): every role, name "anonymous"
  kToken,        // Authorization: Bearer TOKEN (REST) or authenticate(TOKEN) (Thrift)
  kSession,      // the dashboard's session cookie
  kCertificate,  // a verified client certificate whose subject CN is named in the tokens file
};

// "none", "token", "session", "certificate": how audit records and logs name it.
inline const char* AuthMethodName(AuthMethod m) {
  switch (m) {
    case AuthMethod::kNone:
      return "none";
    case AuthMethod::kToken:
      return "token";
    case AuthMethod::kSession:
      return "session";
    case AuthMethod::kCertificate:
      return "certificate";
  }
  return "none";
}

struct Identity {
  std::string name;  // the NAME of the tokens file line; "anonymous" when auth is off
  RoleSet roles;
  AuthMethod method = AuthMethod::kNone;
};

}  // namespace treaty
