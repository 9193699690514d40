#pragma once

// Reading the small files named by options (treatyd --config, and the
// security options --auth-tokens, --participant-hmac-key, the PEM files of
// --tls-*): only a regular file is read (a directory, FIFO or device such as
// /dev/zero is refused before a byte is read, so a FIFO cannot block the
// caller), with a size bound. And parsing the text of treatyd's --config
// file (ParseConfigText). Never throws; errors are InvalidArgument naming
// the option and the path, or the line and the key. Thread-safe
// (stateless); the readers block on the file system.

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "treaty/status.h"

namespace treaty {

struct ConfigFile {
  std::string text;
  mode_t mode = 0;  // permission bits (st_mode & 07777)
};

// Ok when `path` names a regular file this process can open for reading.
Status CheckRegularFile(std::string_view option, const std::string& path);

// The whole of `path`, at most `max_bytes` bytes.
Result<ConfigFile> ReadConfigFile(std::string_view option, const std::string& path,
                                  size_t max_bytes);

// The largest treatyd --config file read (the sample is about 7 KiB).
inline constexpr size_t kMaxOptionsFileBytes = 1 << 20;

// One `key = value` of a treatyd --config file.
struct ConfigSetting {
  std::string key;                  // as written: "http-max-connections"
  std::vector<std::string> values;  // the value (quotes removed), or a list's elements
  int line = 0;                     // 1-based line of the key
};

// What ParseConfigText's caller says a key is, and so which values it takes.
enum class ConfigKeyKind {
  kUnknown,    // no such option: an error naming the key and its line
  kFlag,       // a boolean flag: `key = true|false` (bare), or the bare `key` (= true)
  kText,       // one text value: "double", 'single' quoted or a bare word; not a list
  kInteger,    // one bare integer (`-`? digits): not quoted, not a list
  kList,       // a list ["a", "b"] of text values, or one text value
  kNotInFile,  // an option of the command line only (--config, --help, ...)
};

// Parses the text of a treatyd --config file: the subset of TOML that
// deploy/config/treatyd.conf documents. A UTF-8 byte order mark at the very
// start is skipped. Line by line: blank lines and `# comments` (also after
// a value) are skipped; every other line is `key = value`, the key one of
// `kind_of`'s options. A value is a "double quoted" string (its escapes:
// \" \\ and \t), a 'single quoted' one (taken as is), a list ["a", "b"] (it may span
// lines; elements as values; not empty), or a bare word up to a `#` or the
// end of the line (numbers, true/false, info). Each value must have the
// kind of its key (ConfigKeyKind): a flag takes only a bare true or false,
// an integer option only a bare integer, and only a list option a list. A
// bare key without `= value` is allowed for a flag only (it means true).
// Refused, as InvalidArgument "line N: ..." naming the key: an unknown key,
// a key of the command line only, a bare key that takes a value, a key set
// twice, a value of the wrong kind, a value holding a control character
// other than tab (NUL, an escape, \n), a carriage return not followed by a
// newline, a `[section]` header (treatyd's keys are all top-level) and
// anything that does not parse. Text of the file (a key included) is
// quoted in a message only with control characters escaped, at most 80
// bytes, so a message is at most a few hundred bytes whatever the file.
Result<std::vector<ConfigSetting>> ParseConfigText(
    std::string_view text, const std::function<ConfigKeyKind(const std::string&)>& kind_of);

}  // namespace treaty
