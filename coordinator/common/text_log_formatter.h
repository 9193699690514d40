#pragma once

// TextLogFormatter: treatyd's plain-text log lines (`--log-format text`):
//   2026-01-02 03:04:05.678 info gtid=g1 compensating: step 'b' failed: ...
// The message passes EscapeControl (common/text.h): a newline, carriage
// return, ESC or any other control character in it -- a participant's error
// text, a name or gtid from an old log -- is written as \n, \r, \xNN, and
// invalid UTF-8 as U+FFFD, so one message is exactly one line and cannot
// forge another line or send a terminal escape. Backslashes are doubled.
// The level is colored (%^..%$) when the sink is a terminal.
// Stateless; safe to use from spdlog's logging threads.

#include <memory>

#include <spdlog/formatter.h>

namespace treaty {

// A formatter for spdlog::set_formatter / sink->set_formatter.
std::unique_ptr<spdlog::formatter> MakeTextLogFormatter();

}  // namespace treaty
