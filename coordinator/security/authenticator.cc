#include "security/authenticator.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <vector>

#include <spdlog/spdlog.h>

#include "security/config_file.h"

namespace treaty {

namespace {

constexpr size_t kDigestBytes = 32;  // SHA-256
constexpr size_t kMaxNameBytes = 64;
constexpr size_t kMaxFileBytes = 4 * 1024 * 1024;
constexpr std::string_view kAnonymousName = "anonymous";

using Digest = std::array<unsigned char, kDigestBytes>;

Digest Sha256(std::string_view data) {
  Digest d{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '@' || c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits `line` at runs of spaces and tabs.
std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  Digest d = Sha256(data);
  std::string out;
  out.reserve(2 * kDigestBytes);
  for (unsigned char b : d) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0x0F]);
  }
  return out;
}

Result<std::shared_ptr<Authenticator>> Authenticator::Load(std::string path) {
  auto auth = std::shared_ptr<Authenticator>(new Authenticator(std::move(path)));
  if (auto s = auth->Reload(); !s.ok()) return s;
  return auth;
}

Result<std::shared_ptr<Authenticator>> Authenticator::Parse(std::string_view text,
                                                            std::string source) {
  auto auth = std::shared_ptr<Authenticator>(new Authenticator(""));
  if (auto s = auth->Replace(text, source); !s.ok()) return s;
  return auth;
}

Status Authenticator::Reload() {
  if (path_.empty()) return Status::InvalidArgument("the clients were not read from a file");
  auto file = ReadConfigFile("--auth-tokens", path_, kMaxFileBytes);
  if (!file.ok()) return file.status();
  if (auto s = Replace(file->text, "--auth-tokens '" + path_ + "'"); !s.ok()) return s;
  if ((file->mode & 077) != 0) {
    spdlog::warn(
        "--auth-tokens '{}' can be read by other users than its owner (mode {:04o}); "
        "chmod 600 it",
        path_, static_cast<unsigned>(file->mode));
  }
  return Status::Ok();
}

Status Authenticator::Replace(std::string_view text, std::string_view source) {
  std::map<std::string, Client, std::less<>> clients;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Never echo the line: it may hold a token pasted by mistake.
    auto bad = [&](const std::string& why) {
      return Status::InvalidArgument(std::string(source) + " line " + std::to_string(line_no) +
                                     ": " + why);
    };
    std::vector<std::string_view> fields = Fields(line);
    if (fields.empty() || fields[0].front() == '#') continue;
    if (fields.size() != 3) {
      return bad("expected NAME ROLES SHA256HEX (three fields), found " +
                 std::to_string(fields.size()));
    }
    for (char c : line) {
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
        return bad("holds a control character");
      }
    }
    Client client;
    client.name = std::string(fields[0]);
    if (client.name.size() > kMaxNameBytes) return bad("the NAME is longer than 64 bytes");
    for (char c : client.name) {
      if (!IsNameChar(c)) return bad("the NAME may hold only letters, digits and . _ @ -");
    }
    if (client.name == kAnonymousName) {
      return bad(
          "the NAME 'anonymous' is reserved (it is who every caller is with authentication off)");
    }
    if (clients.count(client.name) != 0) return bad("the NAME appears on an earlier line too");
    std::string_view roles = fields[1];
    while (true) {
      size_t comma = roles.find(',');
      std::string_view name = roles.substr(0, comma);
      auto role = ParseRole(name);
      if (!role) return bad("unknown role (roles: submit, read, operate, admin, comma-separated)");
      client.roles.Add(*role);
      if (comma == std::string_view::npos) break;
      roles.remove_prefix(comma + 1);
    }
    std::string_view hex = fields[2];
    if (hex != "-") {
      if (hex.size() != 2 * kDigestBytes) {
        return bad("the SHA256HEX must be 64 hex digits (or '-' for certificate only)");
      }
      client.sha256.resize(kDigestBytes);
      for (size_t i = 0; i < kDigestBytes; ++i) {
        int hi = HexValue(hex[2 * i]);
        int lo = HexValue(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
          return bad("the SHA256HEX must be 64 hex digits (or '-' for certificate only)");
        }
        client.sha256[i] = static_cast<char>(hi * 16 + lo);
      }
    }
    for (const auto& [name, other] : clients) {
      if (!client.sha256.empty() && other.sha256 == client.sha256) {
        return bad("the SHA256HEX is the same as an earlier line's (one token, one client)");
      }
    }
    std::string key = client.name;
    clients.emplace(std::move(key), std::move(client));
  }
  if (clients.empty()) return Status::InvalidArgument(std::string(source) + ": names no client");
  MutexLock lock(&mu_);
  clients_ = std::move(clients);
  return Status::Ok();
}

std::optional<Identity> Authenticator::ForToken(std::string_view token) const {
  if (token.empty()) return std::nullopt;
  const Digest presented = Sha256(token);
  MutexLock lock(&mu_);
  // Every client is compared, each in constant time, so the time taken does
  // not tell how close a token came.
  const Client* found = nullptr;
  for (const auto& [name, client] : clients_) {
    if (client.sha256.size() != kDigestBytes) continue;
    bool equal = CRYPTO_memcmp(presented.data(), client.sha256.data(), kDigestBytes) == 0;
    if (equal) found = &client;
  }
  if (found == nullptr) return std::nullopt;
  return Identity{found->name, found->roles, AuthMethod::kToken};
}

std::optional<Identity> Authenticator::ForCertificate(std::string_view common_name) const {
  MutexLock lock(&mu_);
  auto it = clients_.find(common_name);
  if (it == clients_.end()) return std::nullopt;
  return Identity{it->second.name, it->second.roles, AuthMethod::kCertificate};
}

std::optional<Identity> Authenticator::ForName(std::string_view name) const {
  MutexLock lock(&mu_);
  auto it = clients_.find(name);
  if (it == clients_.end()) return std::nullopt;
  return Identity{it->second.name, it->second.roles, AuthMethod::kSession};
}

size_t Authenticator::size() const {
  MutexLock lock(&mu_);
  return clients_.size();
}

}  // namespace treaty
