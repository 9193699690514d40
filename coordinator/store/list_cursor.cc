#include "store/list_cursor.h"

#include <charconv>

#include "common/limits.h"
#include "common/text.h"

namespace treaty {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// A gtid a cursor may name: what every store can bind and compare as text.
bool IsCursorGtid(const std::string& gtid) {
  if (gtid.empty() || gtid.size() > limits::kMaxIdentifierBytes || !IsValidUtf8(gtid)) {
    return false;
  }
  for (unsigned char c : gtid) {
    if (c < 0x20 || c == 0x7F) return false;
  }
  return true;
}

}  // namespace

std::string EncodeListCursor(const ListCursor& cursor) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = std::to_string(cursor.created_at_ms) + ".";
  for (unsigned char c : cursor.gtid) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

Result<ListCursor> DecodeListCursor(const std::string& text) {
  const auto bad = [] {
    return Status::InvalidArgument(
        "'cursor' is malformed: pass back the 'next' value of the previous page");
  };
  const size_t dot = text.find('.');
  if (dot == std::string::npos || dot == 0) return bad();
  ListCursor cursor;
  const char* end = text.data() + dot;
  auto [ptr, ec] = std::from_chars(text.data(), end, cursor.created_at_ms);
  if (ec != std::errc() || ptr != end) return bad();
  const std::string_view hex = std::string_view(text).substr(dot + 1);
  if (hex.size() % 2 != 0) return bad();
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = HexValue(hex[i]), lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return bad();
    cursor.gtid.push_back(static_cast<char>(hi * 16 + lo));
  }
  // Canonical form only ("+1", "01", "-0" are not what Encode writes).
  if (!IsCursorGtid(cursor.gtid) || EncodeListCursor(cursor) != text) return bad();
  return cursor;
}

std::optional<std::string> PrefixUpperBound(std::string_view prefix) {
  std::string bound(prefix);
  while (!bound.empty() && static_cast<unsigned char>(bound.back()) == 0xFF) bound.pop_back();
  if (bound.empty()) return std::nullopt;
  bound.back() = static_cast<char>(static_cast<unsigned char>(bound.back()) + 1);
  return bound;
}

}  // namespace treaty
