#include "common/host_port.h"

namespace treaty {

AuthorityParts SplitAuthority(std::string_view text, ExtraColons extra) {
  AuthorityParts out;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      out.error = AuthorityParts::Error::kUnclosedBracket;
      return out;
    }
    out.bracketed = true;
    out.host = text.substr(1, close - 1);
    const std::string_view after = text.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        out.error = AuthorityParts::Error::kAfterBracket;
        return out;
      }
      out.has_port = true;
      out.port = after.substr(1);
    }
    return out;
  }
  const size_t first = text.find(':');
  size_t colon = first;
  if (first != std::string_view::npos && text.find(':', first + 1) != std::string_view::npos) {
    switch (extra) {
      case ExtraColons::kFirstSplits:
        break;
      case ExtraColons::kNoPort:
        colon = std::string_view::npos;
        break;
      case ExtraColons::kLastSplits:
        colon = text.rfind(':');
        break;
      case ExtraColons::kRefuse:
        out.error = AuthorityParts::Error::kSeveralColons;
        return out;
    }
  }
  out.host = text.substr(0, colon);
  if (colon != std::string_view::npos) {
    out.has_port = true;
    out.port = text.substr(colon + 1);
  }
  return out;
}

std::optional<uint16_t> ParsePortNumber(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
    if (value > 65535) return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

std::string FormatHostPort(std::string_view host, uint16_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string out;
  out.reserve(host.size() + 8);
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

}  // namespace treaty
