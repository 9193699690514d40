#pragma once

// JsonLogFormatter: an spdlog formatter writing one JSON object per line, for
// `treatyd --log-format json`:
//   {"time":"2026-01-02T03:04:05.678Z","level":"info","logger":"treatyd",
//    "msg":"gtid=g1 branch=flight compensate failed","gtid":"g1","branch":"flight"}
// The message is escaped (quotes, backslashes, control characters; invalid
// UTF-8 is replaced by U+FFFD), so every line is valid JSON. `gtid=` and
// `branch=` tokens of the message (the convention of every log line about a
// transaction) are also lifted into fields of their own. Time is UTC.
// Stateless; safe to use from spdlog's logging threads.

#include <memory>
#include <string>

#include <spdlog/formatter.h>

namespace treaty {

class JsonLogFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

// The JSON line (with its '\n') for one message; for tests.
std::string JsonLogLine(const spdlog::details::log_msg& msg);

}  // namespace treaty
