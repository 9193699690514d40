#pragma once

// Reading the small files named by security options (--auth-tokens,
// --participant-hmac-key, the PEM files of --tls-*): only a regular file is
// read (a directory, FIFO or device is refused before a byte is read, so a
// FIFO cannot block the caller), with a size bound. Never throws; errors
// are InvalidArgument naming the option and the path. Thread-safe
// (stateless); blocks on the file system.

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

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

}  // namespace treaty
