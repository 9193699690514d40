#include "common/json_log_formatter.h"

#include <chrono>
#include <ctime>

#include <nlohmann/json.hpp>

namespace treaty {
namespace {

// The value of the first `key=VALUE` token of `text` (VALUE ends at a space
// or a comma), or "".
std::string TokenValue(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while ((pos = text.find(key, pos)) != std::string_view::npos) {
    const bool at_word_start = pos == 0 || text[pos - 1] == ' ' || text[pos - 1] == '(';
    const size_t start = pos + key.size();
    if (at_word_start && start < text.size() && text[start] == '=') {
      size_t end = start + 1;
      while (end < text.size() && text[end] != ' ' && text[end] != ',' && text[end] != ':') ++end;
      return std::string(text.substr(start + 1, end - start - 1));
    }
    pos = start;
  }
  return "";
}

std::string IsoUtc(spdlog::log_clock::time_point tp) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms.count() % 1000));
  return buf;
}

}  // namespace

std::string JsonLogLine(const spdlog::details::log_msg& msg) {
  const std::string_view text(msg.payload.data(), msg.payload.size());
  const auto level = spdlog::level::to_string_view(msg.level);
  nlohmann::ordered_json line = {
      {"time", IsoUtc(msg.time)},
      {"level", std::string(level.data(), level.size())},
      {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
      {"msg", std::string(text)},
  };
  if (auto gtid = TokenValue(text, "gtid"); !gtid.empty()) line["gtid"] = gtid;
  if (auto branch = TokenValue(text, "branch"); !branch.empty()) line["branch"] = branch;
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  const std::string line = JsonLogLine(msg);
  dest.append(line.data(), line.data() + line.size());
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

}  // namespace treaty
