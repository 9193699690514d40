#include "security/participant_policy.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/host_port.h"
#include "common/mutex.h"
#include "common/text.h"

namespace treaty {

namespace ip = boost::asio::ip;

namespace {

// One --participant-allow entry.
struct AllowEntry {
  enum class Kind { kName, kSuffix, kNetwork };
  Kind kind = Kind::kName;
  std::string name;     // kName: the host; kSuffix: ".suffix"; lower case
  ip::address network;  // kNetwork, masked to `prefix` bits
  int prefix = 0;
  uint16_t port = 0;  // 0: any port

  bool PortMatches(uint16_t p) const { return port == 0 || port == p; }
};

// One listener of this coordinator.
struct OwnListener {
  enum class Kind { kAny, kLoopback, kAddress };
  Kind kind = Kind::kAddress;
  ip::address address;  // kAddress
  uint16_t port = 0;
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// An IPv4-mapped IPv6 address as the IPv4 address it carries.
ip::address Normalize(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  }
  return a;
}

// The first `prefix` bits of `a` (network order bytes) are kept.
template <size_t N>
std::array<unsigned char, N> Mask(std::array<unsigned char, N> bytes, int prefix) {
  for (size_t i = 0; i < N; ++i) {
    int keep = std::clamp(prefix - static_cast<int>(i) * 8, 0, 8);
    bytes[i] &= static_cast<unsigned char>(0xFF00 >> keep);
  }
  return bytes;
}

bool InNetwork(const ip::address& a, const ip::address& network, int prefix) {
  if (a.is_v4() != network.is_v4()) return false;
  if (a.is_v4()) {
    return Mask(a.to_v4().to_bytes(), prefix) == network.to_v4().to_bytes();
  }
  return Mask(a.to_v6().to_bytes(), prefix) == network.to_v6().to_bytes();
}

ip::address MaskAddress(const ip::address& a, int prefix) {
  if (a.is_v4()) return ip::address_v4(Mask(a.to_v4().to_bytes(), prefix));
  return ip::address_v6(Mask(a.to_v6().to_bytes(), prefix));
}

bool InNetwork(const ip::address& a, std::string_view network, int prefix) {
  return InNetwork(a, ip::make_address(std::string(network)), prefix);
}

// IPv4 text as inet_aton (and so getaddrinfo) reads it: 1 to 4 parts, each
// decimal, octal (leading 0) or hex (0x), the last filling the remaining
// bytes: 127.1, 0177.0.0.1, 0x7f000001, 2130706433.
std::optional<ip::address_v4> ParseInetAton(std::string_view s) {
  std::array<uint64_t, 4> parts{};
  size_t n = 0;
  size_t i = 0;
  while (true) {
    if (n == parts.size() || i >= s.size() || s[i] < '0' || s[i] > '9') return std::nullopt;
    int base = 10;
    if (s[i] == '0') {
      base = 8;
      if (i + 1 < s.size() && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        base = 16;
        i += 2;
      }
    }
    uint64_t v = 0;
    for (; i < s.size() && s[i] != '.'; ++i) {
      char c = s[i];
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : 99;
      if (d >= base) return std::nullopt;
      v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
      if (v > 0xFFFFFFFFu) return std::nullopt;
    }
    parts[n++] = v;
    if (i == s.size()) break;
    ++i;  // the '.'
  }
  uint64_t value = 0;
  for (size_t k = 0; k + 1 < n; ++k) {
    if (parts[k] > 0xFF) return std::nullopt;
    value |= parts[k] << (24 - 8 * k);
  }
  const uint64_t last_max = 0xFFFFFFFFu >> (8 * (n - 1));
  if (parts[n - 1] > last_max) return std::nullopt;
  value |= parts[n - 1];
  return ip::address_v4(static_cast<uint32_t>(value));
}

// The host of a URL as an address when it is a literal (in any form the
// resolver would read as one).
std::optional<ip::address> ParseLiteral(const std::string& host) {
  boost::system::error_code ec;
  ip::address a = ip::make_address(host, ec);
  if (!ec) return Normalize(a);
  if (auto v4 = ParseInetAton(host)) return ip::address(*v4);
  return std::nullopt;
}

// The host of `url` as judged: lower case, one trailing dot dropped (the
// resolver reads "127.0.0.1." and "metadata." as "127.0.0.1" and "metadata").
std::string HostOf(const Endpoint& url) {
  std::string host = Lower(url.host);
  if (host.size() > 1 && host.back() == '.') host.pop_back();
  return host;
}

bool IsLoopback(const ip::address& a) {
  return a.is_v4() ? InNetwork(a, "127.0.0.0", 8) : a.to_v6().is_loopback();
}

bool IsUnspecified(const ip::address& a) {
  return a.is_v4() ? InNetwork(a, "0.0.0.0", 8) : a.is_unspecified();
}

// The rule that always denies `a` (normalized), or nullptr.
const char* BuiltinDenial(const ip::address& a) {
  if (IsUnspecified(a)) return "unspecified address";
  if (a.is_v4()) {
    if (a == ip::make_address("169.254.169.254") || a == ip::make_address("100.100.100.200")) {
      return "cloud metadata address";
    }
    if (InNetwork(a, "169.254.0.0", 16)) return "link-local address";
    return nullptr;
  }
  if (a == ip::make_address("fd00:ec2::254")) return "cloud metadata address";
  if (InNetwork(a, "fe80::", 10)) return "link-local address";
  return nullptr;
}

bool IsMetadataName(const std::string& name) {
  return name == "metadata.google.internal" || name == "metadata" || name == "instance-data" ||
         name == "instance-data.ec2.internal";
}

bool IsLocalhostName(const std::string& name) {
  return name == "localhost" || name.ends_with(".localhost");
}

// Every address of this machine's interfaces.
std::vector<ip::address> InterfaceAddresses() {
  std::vector<ip::address> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      out.push_back(ip::address_v4(ntohl(sin->sin_addr.s_addr)));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      ip::address_v6::bytes_type bytes;
      std::copy(std::begin(sin6->sin6_addr.s6_addr), std::end(sin6->sin6_addr.s6_addr),
                bytes.begin());
      out.push_back(Normalize(ip::address_v6(bytes)));
    }
  }
  freeifaddrs(list);
  return out;
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

// "10.0.0.0/8", "fd00::/8", "10.1.2.3", "::1" into `e`.
bool ParseNetwork(std::string_view text, AllowEntry* e) {
  size_t slash = text.find('/');
  boost::system::error_code ec;
  ip::address a = ip::make_address(std::string(text.substr(0, slash)), ec);
  if (ec) return false;
  a = Normalize(a);
  int max = a.is_v4() ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    auto [end, perr] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || perr != std::errc() || end != p.data() + p.size() || prefix < 0 ||
        prefix > max) {
      return false;
    }
  }
  e->kind = AllowEntry::Kind::kNetwork;
  e->prefix = prefix;
  e->network = MaskAddress(a, prefix);
  return true;
}

Result<AllowEntry> ParseAllowEntry(std::string_view text, size_t index) {
  auto bad = [&](const char* why) {
    return Status::InvalidArgument("--participant-allow: entry " + std::to_string(index + 1) +
                                   " ('" + EscapeControl(Excerpt(text, 100)) + "') " + why);
  };
  AllowEntry e;
  // Several colons without brackets: a bare IPv6 address or network.
  const AuthorityParts parts = SplitAuthority(text, ExtraColons::kNoPort);
  if (parts.error == AuthorityParts::Error::kUnclosedBracket) return bad("has an unclosed '['");
  if (parts.error != AuthorityParts::Error::kNone) return bad("has characters after ']'");
  if (parts.has_port) {
    if (parts.port.empty()) return bad("has an empty port");
    const std::optional<uint16_t> port =
        parts.port.size() > 5 ? std::nullopt : ParsePortNumber(parts.port);
    if (!port || *port == 0) return bad("has a port outside 1..65535");
    e.port = *port;
  }
  const std::string_view host = parts.host;
  const bool bracketed = parts.bracketed;
  if (host.empty()) return bad("is empty");
  if (bracketed || host.find(':') != std::string_view::npos ||
      host.find('/') != std::string_view::npos) {
    if (!ParseNetwork(host, &e)) return bad("is not a valid IP address or CIDR");
    return e;
  }
  if (ParseNetwork(host, &e)) return e;
  std::string name = Lower(host);
  if (name.starts_with("*.")) {
    e.kind = AllowEntry::Kind::kSuffix;
    name.erase(0, 1);  // keep the dot
  } else {
    e.kind = AllowEntry::Kind::kName;
  }
  std::string_view body = e.kind == AllowEntry::Kind::kSuffix ? std::string_view(name).substr(1)
                                                              : std::string_view(name);
  if (body.empty() || body.size() > 253 || body.front() == '.' ||
      !std::all_of(body.begin(), body.end(), IsNameChar)) {
    return bad("is not a host name, *.suffix, IP address or CIDR");
  }
  if (name.size() > 1 && name.back() == '.') name.pop_back();
  e.name = std::move(name);
  return e;
}

}  // namespace

struct ParticipantPolicy::Impl {
  std::vector<AllowEntry> allow;  // immutable after Create
  mutable Mutex mu;
  std::vector<OwnListener> own TREATY_GUARDED_BY(mu);

  bool NameAllowed(const std::string& name, uint16_t port) const {
    for (const AllowEntry& e : allow) {
      if (!e.PortMatches(port)) continue;
      if (e.kind == AllowEntry::Kind::kName && name == e.name) return true;
      if (e.kind == AllowEntry::Kind::kSuffix && name.size() > e.name.size() &&
          name.ends_with(e.name)) {
        return true;
      }
    }
    return false;
  }

  bool AddressAllowed(const ip::address& a, uint16_t port) const {
    for (const AllowEntry& e : allow) {
      if (e.kind == AllowEntry::Kind::kNetwork && e.PortMatches(port) &&
          InNetwork(a, e.network, e.prefix)) {
        return true;
      }
    }
    return false;
  }

  bool AnyNetworkEntryFor(uint16_t port) const {
    for (const AllowEntry& e : allow) {
      if (e.kind == AllowEntry::Kind::kNetwork && e.PortMatches(port)) return true;
    }
    return false;
  }

  bool IsOwnListener(const ip::address& a, uint16_t port) const {
    bool any = false;
    {
      MutexLock lock(&mu);
      for (const OwnListener& l : own) {
        if (l.port != port) continue;
        switch (l.kind) {
          case OwnListener::Kind::kAny:
            any = true;
            break;
          case OwnListener::Kind::kLoopback:
            if (IsLoopback(a)) return true;
            break;
          case OwnListener::Kind::kAddress:
            if (a == l.address) return true;
            break;
        }
      }
    }
    if (!any) return false;
    if (IsLoopback(a) || IsUnspecified(a)) return true;
    for (const ip::address& local : InterfaceAddresses()) {
      if (a == local) return true;
    }
    return false;
  }

  // The rule denying a call to `a` (normalized) on `port`, not counting the
  // allow-list, or nullptr.
  const char* AddressDenial(const ip::address& a, uint16_t port) const {
    if (const char* why = BuiltinDenial(a)) return why;
    if (IsOwnListener(a, port)) return "this coordinator's own listener";
    return nullptr;
  }

  // The rule denying `url` at submission, or nullptr.
  const char* UrlDenial(const Endpoint& url) const {
    const std::string name = HostOf(url);
    if (auto literal = ParseLiteral(name)) {
      if (const char* why = AddressDenial(*literal, url.port)) return why;
      if (!allow.empty() && !AddressAllowed(*literal, url.port))
        return "not in --participant-allow";
      return nullptr;
    }
    if (IsMetadataName(name)) return "cloud metadata address";
    if (IsLocalhostName(name) && (IsOwnListener(ip::make_address("127.0.0.1"), url.port) ||
                                  IsOwnListener(ip::make_address("::1"), url.port))) {
      return "this coordinator's own listener";
    }
    if (!allow.empty() && !NameAllowed(name, url.port) && !AnyNetworkEntryFor(url.port)) {
      return "not in --participant-allow";
    }
    return nullptr;
  }
};

Result<std::shared_ptr<ParticipantPolicy>> ParticipantPolicy::Create(
    const std::vector<std::string>& allow) {
  auto impl = std::make_unique<Impl>();
  for (size_t i = 0; i < allow.size(); ++i) {
    auto entry = ParseAllowEntry(allow[i], i);
    if (!entry.ok()) return entry.status();
    impl->allow.push_back(std::move(*entry));
  }
  return std::shared_ptr<ParticipantPolicy>(new ParticipantPolicy(std::move(impl)));
}

ParticipantPolicy::ParticipantPolicy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ParticipantPolicy::~ParticipantPolicy() = default;

void ParticipantPolicy::AddOwnListener(const std::string& host, uint16_t port) {
  std::vector<OwnListener> add;
  if (auto literal = ParseLiteral(host)) {
    OwnListener l;
    l.port = port;
    if (IsUnspecified(*literal)) {
      l.kind = OwnListener::Kind::kAny;
    } else if (IsLoopback(*literal)) {
      l.kind = OwnListener::Kind::kLoopback;
    } else {
      l.kind = OwnListener::Kind::kAddress;
      l.address = *literal;
    }
    add.push_back(l);
  } else {
    // A listener named by host name (e.g. "localhost"): whatever it
    // resolves to is ours; loopback names cover the whole loopback range.
    boost::asio::io_context io;
    ip::tcp::resolver resolver(io);
    boost::system::error_code ec;
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (!ec) {
      for (const auto& r : results) {
        ip::address a = Normalize(r.endpoint().address());
        OwnListener l;
        l.port = port;
        l.kind = IsLoopback(a) ? OwnListener::Kind::kLoopback : OwnListener::Kind::kAddress;
        l.address = a;
        add.push_back(l);
      }
    }
    if (IsLocalhostName(Lower(host))) add.push_back({OwnListener::Kind::kLoopback, {}, port});
  }
  MutexLock lock(&impl_->mu);
  impl_->own.insert(impl_->own.end(), add.begin(), add.end());
}

Status ParticipantPolicy::CheckUrl(const Endpoint& url, std::string_view field) const {
  const char* why = impl_->UrlDenial(url);
  if (why == nullptr) return Status::Ok();
  return Status::InvalidArgument(EscapeControl(field) + " (URL " + EscapeControl(url.Authority()) +
                                 ") is denied by the participant policy: " + why);
}

Status ParticipantPolicy::CheckAddress(const Endpoint& url, const ip::address& address) const {
  const ip::address a = Normalize(address);
  const std::string name = HostOf(url);
  const bool literal = ParseLiteral(name).has_value();
  const char* why = impl_->AddressDenial(a, url.port);
  if (why == nullptr && !literal && IsMetadataName(name)) {
    why = "cloud metadata address";
  }
  if (why == nullptr && !impl_->allow.empty() && !impl_->AddressAllowed(a, url.port) &&
      (literal || !impl_->NameAllowed(name, url.port))) {
    why = "not in --participant-allow";
  }
  if (why == nullptr) return Status::Ok();
  std::string shown = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return Status::InvalidArgument("participant address " + shown + ":" + std::to_string(url.port) +
                                 " is denied by the participant policy (" + why + ")");
}

}  // namespace treaty
