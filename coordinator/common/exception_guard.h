#pragma once

// The guard at every executor entry (docs/input-rules.md, "Failures inside
// the server"): no exception may unwind into an executor or a thread, where
// it would call std::terminate (Asio's thread_pool, std::thread) or stop an
// io_context thread. RunGuarded runs a task and turns an exception into one
// log line. Callers that owe an answer (HTTP handlers and their completions)
// add their own error answer on top: see AnswerGuarded in http/http_server.h.
//
// Stateless, thread-safe, never throws.

#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/text.h"

namespace treaty {

// The message of the exception being handled, printable and at most 200
// bytes (an exception's text may carry outside bytes). Call only inside a
// catch block.
inline std::string CurrentExceptionMessage() noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    try {
      return Excerpt(EscapeControl(e.what()), 200);
    } catch (...) {
      return "(unprintable)";
    }
  } catch (...) {
    return "a non-standard exception";
  }
}

// Logs the exception being handled as one error line naming `where` (e.g.
// "engine task"). Call only inside a catch block.
inline void LogCurrentException(std::string_view where) noexcept {
  try {
    spdlog::error("{} threw (a bug; the process keeps running): {}", where,
                  CurrentExceptionMessage());
  } catch (...) {
  }
}

// Runs `fn()`. Returns true when it returned normally; false when it threw,
// after logging one line naming `where`.
template <class Fn>
bool RunGuarded(std::string_view where, Fn&& fn) noexcept {
  try {
    std::forward<Fn>(fn)();
    return true;
  } catch (...) {
    LogCurrentException(where);
    return false;
  }
}

}  // namespace treaty
