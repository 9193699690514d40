#include "security/config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace treaty {

namespace {

// Closes a descriptor at scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status Refused(std::string_view option, const std::string& path, const std::string& why) {
  return Status::InvalidArgument(std::string(option) + ": cannot read '" + path + "': " + why);
}

// Opens `path` for reading without blocking on a FIFO and checks that it is
// a regular file; `st` gets its status.
Result<int> OpenRegular(std::string_view option, const std::string& path, struct stat* st) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Refused(option, path, strerror(errno));
  if (::fstat(fd, st) != 0) {
    const int err = errno;
    ::close(fd);
    return Refused(option, path, strerror(err));
  }
  if (!S_ISREG(st->st_mode)) {
    ::close(fd);
    return Refused(
        option, path,
        S_ISDIR(st->st_mode) ? "it is a directory, not a file" : "it is not a regular file");
  }
  return fd;
}

}  // namespace

Status CheckRegularFile(std::string_view option, const std::string& path) {
  struct stat st {};
  auto fd = OpenRegular(option, path, &st);
  if (!fd.ok()) return fd.status();
  ::close(*fd);
  return Status::Ok();
}

Result<ConfigFile> ReadConfigFile(std::string_view option, const std::string& path,
                                  size_t max_bytes) {
  struct stat st {};
  auto opened = OpenRegular(option, path, &st);
  if (!opened.ok()) return opened.status();
  Fd fd(*opened);
  auto too_large = [&] {
    return Refused(option, path, "the file is larger than " + std::to_string(max_bytes) + " bytes");
  };
  if (static_cast<uint64_t>(st.st_size) > max_bytes) return too_large();
  ConfigFile out;
  out.mode = st.st_mode & 07777;
  char buf[8192];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Refused(option, path, strerror(errno));
    }
    if (n == 0) break;
    if (out.text.size() + static_cast<size_t>(n) > max_bytes) return too_large();
    out.text.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace treaty
