#include "common/text.h"

#include <cstdint>
#include <cstdio>

#include "common/limits.h"

namespace treaty {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when the
// bytes there are ill-formed (RFC 3629, table 3-7 of the Unicode standard).
size_t SequenceLength(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const uint8_t c = b(0);
  if (c < 0x80) return 1;
  size_t n = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (b(k) < 0x80 || b(k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ToValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = SequenceLength(s, i);
    if (n == 0 || s[i] == '\0') {
      out += kReplacement;
      i += n == 0 ? 1 : n;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string Excerpt(std::string_view s, size_t max_bytes) {
  std::string valid = ToValidUtf8(s);
  if (valid.size() <= max_bytes) return valid;
  constexpr std::string_view kEllipsis = "...";
  size_t budget = max_bytes > kEllipsis.size() ? max_bytes - kEllipsis.size() : 0;
  size_t end = 0;
  for (size_t i = 0; i < valid.size();) {
    size_t n = SequenceLength(valid, i);  // valid: never 0
    if (i + n > budget) break;
    i += n;
    end = i;
  }
  std::string out = valid.substr(0, end);
  if (max_bytes >= kEllipsis.size()) out += kEllipsis;
  return out;
}

std::string EscapeControl(std::string_view s) {
  std::string valid = ToValidUtf8(s);
  std::string out;
  out.reserve(valid.size());
  for (size_t i = 0; i < valid.size(); ++i) {
    const auto c = static_cast<uint8_t>(valid[i]);
    // C1 controls U+0080..U+009F are encoded as C2 80..C2 9F.
    if (c == 0xC2 && i + 1 < valid.size() && static_cast<uint8_t>(valid[i + 1]) <= 0x9F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<uint8_t>(valid[i + 1]));
      out += buf;
      ++i;
      continue;
    }
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

bool IsIdentifierChar(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return c >= 0x21 && c <= 0x7E && c != '/' && c != '?' && c != '#' && c != '%' && c != '\\';
}

Status ValidateIdentifier(std::string_view value, std::string_view field) {
  const std::string f(field);
  if (value.empty() || value.size() > limits::kMaxIdentifierBytes) {
    return Status::InvalidArgument(f + " must be 1.." +
                                   std::to_string(limits::kMaxIdentifierBytes) + " bytes long");
  }
  for (char c : value) {
    if (!IsIdentifierChar(c)) {
      return Status::InvalidArgument(
          f + " may contain only printable ASCII other than space, '/', '?', '#', '%' and '\\'");
    }
  }
  if (value == "." || value == "..") {
    return Status::InvalidArgument(f + " must not be '.' or '..'");
  }
  return Status::Ok();
}

Status ValidateText(std::string_view value, std::string_view field, size_t max_bytes) {
  const std::string f(field);
  if (value.size() > max_bytes) {
    return Status::InvalidArgument(f + " must be at most " + std::to_string(max_bytes) + " bytes");
  }
  if (!IsValidUtf8(value)) return Status::InvalidArgument(f + " must be valid UTF-8");
  if (value.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument(f + " must not contain NUL");
  }
  return Status::Ok();
}

}  // namespace treaty
