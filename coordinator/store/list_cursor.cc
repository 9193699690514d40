#include "store/list_cursor.h"

#include <charconv>

namespace treaty {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
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
  const auto bad = [&] { return Status::InvalidArgument("malformed list cursor: " + text); };
  const size_t dot = text.find('.');
  if (dot == std::string::npos || dot == 0) return bad();
  ListCursor cursor;
  const char* end = text.data() + dot;
  auto [ptr, ec] = std::from_chars(text.data(), end, cursor.created_at_ms);
  if (ec != std::errc() || ptr != end) return bad();
  const std::string hex = text.substr(dot + 1);
  if (hex.size() % 2 != 0) return bad();
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = HexValue(hex[i]), lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return bad();
    cursor.gtid.push_back(static_cast<char>(hi * 16 + lo));
  }
  return cursor;
}

}  // namespace treaty
