#pragma once

// Authenticator: the clients of one coordinator, from --auth-tokens FILE
// (docs/security.md "Tokens file"). One line per client:
//
//   NAME ROLES SHA256HEX        e.g.  ops-alice operate,read 9f86d0...
//
// NAME: 1..64 bytes of [A-Za-z0-9._@-]; unique; not "anonymous" (the name
// of every caller when authentication is off). ROLES: a comma list of
// submit, read, operate, admin (at least one). SHA256HEX: the lower- or
// upper-case hex SHA-256 of the client's bearer token (64 hex digits), or
// "-" for a client that authenticates only by certificate. Blank lines and
// lines starting with '#' are ignored. A NAME may also be the subject common
// name of a client certificate (--tls-client-ca): a verified certificate
// whose CN equals NAME gets that line's roles.
//
// Tokens are compared by their SHA-256 in constant time (CRYPTO_memcmp); the
// file never holds a token. Reload() re-reads the file (SIGHUP); a file that
// fails to parse keeps the old clients and returns the error naming the line
// number (never echoing the line). Only a regular file of at most 4 MiB is
// read; a load or reload of a file that users other than its owner can read
// (mode & 077) succeeds with a warning in the main log. Never throws.
// Thread-safe.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/mutex.h"
#include "security/identity.h"
#include "treaty/status.h"

namespace treaty {

class Authenticator {
 public:
  // Reads `path`. InvalidArgument naming --auth-tokens and the file (and the
  // line) on a bad file, a directory or anything not a regular file; an
  // empty file (no client) is an error too.
  static Result<std::shared_ptr<Authenticator>> Load(std::string path);
  // From text (tests, and Load). `source` names the text in errors.
  static Result<std::shared_ptr<Authenticator>> Parse(std::string_view text, std::string source);

  // The identity whose token is `token` (method kToken), or nullopt. Takes
  // the same time whichever client, if any, comes close.
  std::optional<Identity> ForToken(std::string_view token) const;
  // The identity named by a verified client certificate's subject CN
  // (method kCertificate), or nullopt.
  std::optional<Identity> ForCertificate(std::string_view common_name) const;
  // The identity called `name` now, with method kSession (a dashboard
  // session re-checks its client at every request, so a client removed by a
  // reload loses access).
  std::optional<Identity> ForName(std::string_view name) const;

  Status Reload();
  size_t size() const;

 private:
  struct Client {
    std::string name;
    RoleSet roles;
    std::string sha256;  // 32 raw bytes; empty: certificate only
  };
  explicit Authenticator(std::string path) : path_(std::move(path)) {}
  // Parses `text` (errors name `source` and the line) and, when it is good,
  // swaps the clients in; the old ones stay otherwise.
  Status Replace(std::string_view text, std::string_view source);

  const std::string path_;  // "" when parsed from text
  mutable Mutex mu_;
  std::map<std::string, Client, std::less<>> clients_ TREATY_GUARDED_BY(mu_);  // by name
};

// Hex SHA-256 of `data` (lower case): what the tokens file holds for a token.
std::string Sha256Hex(std::string_view data);

}  // namespace treaty
