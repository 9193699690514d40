#include "common/text_log_formatter.h"

#include <string>
#include <string_view>

#include <spdlog/pattern_formatter.h>

#include "common/text.h"

namespace treaty {
namespace {

// %* : the message, control characters escaped.
class EscapedMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string escaped =
        EscapeControl(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return spdlog::details::make_unique<EscapedMessageFlag>();
  }
};

}  // namespace

std::unique_ptr<spdlog::formatter> MakeTextLogFormatter() {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<EscapedMessageFlag>('*').set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %*");
  return formatter;
}

}  // namespace treaty
