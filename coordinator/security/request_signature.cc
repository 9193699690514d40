#include "security/request_signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>

#include "security/config_file.h"

namespace treaty {

namespace {

constexpr size_t kMacBytes = 32;  // SHA-256
constexpr size_t kMinKeyBytes = 32;
constexpr size_t kMaxSignatures = 8;  // v1 values looked at in one header
constexpr size_t kMaxHeaderBytes = 1024;
constexpr size_t kMaxKeyFileBytes = 64 * 1024;

using Mac = std::array<unsigned char, kMacBytes>;

Mac ComputeMac(std::string_view key, int64_t unix_s, std::string_view method,
               std::string_view target, std::string_view body) {
  std::string message = std::to_string(unix_s);
  message.reserve(message.size() + method.size() + target.size() + body.size() + 3);
  message.append("\n").append(method).append("\n").append(target).append("\n").append(body);
  Mac mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(), &len);
  return mac;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool DecodeMac(std::string_view hex, Mac* out) {
  if (hex.size() != 2 * kMacBytes) return false;
  for (size_t i = 0; i < kMacBytes; ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

struct ParsedHeader {
  int64_t t = 0;
  std::vector<Mac> v1;
};

// "t=<digits>,v1=<64 hex>[,v1=<64 hex>...]": exactly one t, one or more v1,
// nothing else.
bool ParseHeader(std::string_view header, ParsedHeader* out) {
  if (header.empty() || header.size() > kMaxHeaderBytes) return false;
  bool have_t = false;
  while (true) {
    size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) return false;
    std::string_view key = item.substr(0, eq);
    std::string_view value = item.substr(eq + 1);
    if (key == "t") {
      if (have_t || value.empty() || value.size() > 18) return false;
      for (char c : value) {
        if (c < '0' || c > '9') return false;
      }
      std::from_chars(value.data(), value.data() + value.size(), out->t);
      have_t = true;
    } else if (key == "v1") {
      if (out->v1.size() == kMaxSignatures) return false;
      Mac mac{};
      if (!DecodeMac(value, &mac)) return false;
      out->v1.push_back(mac);
    } else {
      return false;
    }
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return have_t && !out->v1.empty();
}

}  // namespace

std::string SignRequest(std::string_view key, int64_t unix_s, std::string_view method,
                        std::string_view target, std::string_view body) {
  static constexpr char kHex[] = "0123456789abcdef";
  Mac mac = ComputeMac(key, unix_s, method, target, body);
  std::string out = "t=" + std::to_string(unix_s) + ",v1=";
  for (unsigned char b : mac) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0x0F]);
  }
  return out;
}

Status VerifyRequestSignature(const std::vector<std::string>& keys, std::string_view header,
                              int64_t now_unix_s, int64_t max_skew_s, std::string_view method,
                              std::string_view target, std::string_view body) {
  if (header.empty()) {
    return Status::Unauthenticated(std::string("missing ") + kSignatureHeader + " header");
  }
  ParsedHeader parsed;
  if (!ParseHeader(header, &parsed)) {
    return Status::Unauthenticated(std::string("malformed ") + kSignatureHeader +
                                   " header (expected t=UNIX_SECONDS,v1=HEX)");
  }
  const __int128 skew = static_cast<__int128>(parsed.t) - now_unix_s;
  if (skew > max_skew_s || -skew > max_skew_s) {
    return Status::Unauthenticated("the request signature's timestamp is more than " +
                                   std::to_string(max_skew_s) + " s from this clock");
  }
  // Every key against every signature, each compare in constant time.
  int matched = 0;
  for (const std::string& key : keys) {
    Mac expected = ComputeMac(key, parsed.t, method, target, body);
    for (const Mac& given : parsed.v1) {
      matched |= CRYPTO_memcmp(expected.data(), given.data(), kMacBytes) == 0 ? 1 : 0;
    }
  }
  if (matched == 0) return Status::Unauthenticated("bad request signature");
  return Status::Ok();
}

Result<std::string> LoadSigningKey(const std::string& path, std::string_view option) {
  auto file = ReadConfigFile(option, path, kMaxKeyFileBytes);
  if (!file.ok()) return file.status();
  std::string key = std::move(file->text);
  if (key.ends_with("\r\n")) {
    key.resize(key.size() - 2);
  } else if (key.ends_with("\n")) {
    key.pop_back();
  }
  if (key.size() < kMinKeyBytes) {
    return Status::InvalidArgument(std::string(option) + ": the key in '" + path +
                                   "' is shorter than " + std::to_string(kMinKeyBytes) +
                                   " bytes (make one with: openssl rand -hex 32)");
  }
  return key;
}

}  // namespace treaty
