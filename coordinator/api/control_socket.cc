#include "api/control_socket.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <istream>

namespace treaty {

namespace {

using boost::asio::local::stream_protocol;

std::string ErrorLine(const Status& s) {
  std::string message = s.message();
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return std::string("error ") + StatusCodeName(s.code()) + " " + message;
}

// At most 64 printable characters of client input, for an error answer.
std::string Shown(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  return s.size() > 64 ? out + "..." : out;
}

// Connects to the unix socket at `path`; -1 with errno set on failure.
int ConnectTo(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

// One connection: reads one line within the time-out, answers, closes.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(stream_protocol::socket socket, ControlSocket* owner)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(ControlSocket::kMaxLine),
        owner_(owner) {}

  void Start() {
    auto self = shared_from_this();
    timer_.expires_after(std::chrono::milliseconds(ControlSocket::kRequestTimeoutMs));
    timer_.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->socket_.close();  // too slow: the pending operation ends with an error
    });
    boost::asio::async_read_until(
        socket_, buffer_, '\n', [self](const boost::system::error_code& ec, size_t) {
          if (ec == boost::asio::error::not_found) {
            self->Reply("error InvalidArgument request line longer than " +
                        std::to_string(ControlSocket::kMaxLine) + " bytes");
            return;
          }
          if (ec) {
            self->timer_.cancel();  // closed, timed out or reset: nobody to answer
            return;
          }
          std::istream in(&self->buffer_);
          std::string line;
          std::getline(in, line);
          if (!line.empty() && line.back() == '\r') line.pop_back();
          self->timer_.cancel();
          self->owner_->Handle(line, [self](std::string answer) {
            boost::asio::post(self->socket_.get_executor(),
                              [self, answer = std::move(answer)] { self->Reply(answer); });
          });
        });
  }

 private:
  void Reply(const std::string& answer) {
    auto self = shared_from_this();
    answer_ = answer + "\n";
    timer_.expires_after(std::chrono::milliseconds(ControlSocket::kRequestTimeoutMs));
    timer_.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->socket_.close();
    });
    boost::asio::async_write(
        socket_, boost::asio::buffer(answer_), [self](const boost::system::error_code&, size_t) {
          self->timer_.cancel();
          boost::system::error_code ignored;
          self->socket_.shutdown(stream_protocol::socket::shutdown_both, ignored);
          self->socket_.close(ignored);
        });
  }

  stream_protocol::socket socket_;
  boost::asio::steady_timer timer_;
  boost::asio::streambuf buffer_;
  std::string answer_;
  ControlSocket* const owner_;
};

}  // namespace

ControlSocket::ControlSocket(boost::asio::io_context& io, std::string path, BackupFn backup)
    : io_(io), path_(std::move(path)), backup_(std::move(backup)), acceptor_(io), retry_(io) {}

ControlSocket::~ControlSocket() { Stop(); }

Status ControlSocket::Start() {
  if (path_.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status::InvalidArgument("control socket '" + path_ + "': path longer than " +
                                   std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                                   " bytes (a unix socket limit)");
  }
  struct stat st {};
  if (lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
      return Status::InvalidArgument("control socket '" + path_ +
                                     "' exists and is not a socket of this user; left as it is");
    }
    const int fd = ConnectTo(path_);
    if (fd >= 0) {
      close(fd);
      return Status::Unavailable("control socket '" + path_ +
                                 "': another process answers on it; left as it is");
    }
    if (unlink(path_.c_str()) != 0) {
      return Status::Unavailable("control socket '" + path_ +
                                 "': cannot remove the stale socket: " + std::strerror(errno));
    }
    spdlog::info("control socket {}: replaced a stale socket nothing answered on", path_);
  }
  boost::system::error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(stream_protocol::endpoint(path_), ec);
  if (ec) {
    acceptor_.close();
    return Status::Unavailable("control socket '" + path_ + "': " + ec.message());
  }
  bound_ = true;
  // Restricted before listen(): until then nobody can connect.
  if (chmod(path_.c_str(), 0600) != 0) {
    const std::string why = std::strerror(errno);
    Stop();
    return Status::Unavailable("control socket '" + path_ + "': chmod 0600 failed: " + why);
  }
  acceptor_.listen(8, ec);
  if (ec) {
    Stop();
    return Status::Unavailable("control socket '" + path_ + "': " + ec.message());
  }
  {
    std::lock_guard<std::mutex> lock(accept_mu_);
    Accept();
  }
  spdlog::info("control socket {} (mode 0600): `treatyd backup` copies the log online", path_);
  return Status::Ok();
}

void ControlSocket::Accept() {
  // Each connection on its own strand: its timer and its reads never run at once.
  acceptor_.async_accept(boost::asio::make_strand(io_), [this](const boost::system::error_code& ec,
                                                               stream_protocol::socket socket) {
    std::lock_guard<std::mutex> lock(accept_mu_);
    if (stopped_) return;
    if (!ec) {
      std::make_shared<Session>(std::move(socket), this)->Start();
      Accept();
      return;
    }
    // E.g. out of file descriptors: try again a little later, not in a loop.
    spdlog::warn("control socket {}: accept failed: {}", path_, ec.message());
    retry_.expires_after(std::chrono::milliseconds(100));
    retry_.async_wait([this](const boost::system::error_code& wait) {
      std::lock_guard<std::mutex> again(accept_mu_);
      if (!wait && !stopped_) Accept();
    });
  });
}

void ControlSocket::Handle(const std::string& line, std::function<void(std::string)> reply) {
  constexpr const char* kUsage = "(want: backup [--force] /absolute/path)";
  const size_t space = line.find(' ');
  const std::string verb = line.substr(0, space);
  if (verb != "backup") {
    reply("error InvalidArgument unknown verb '" + Shown(verb) + "' " + kUsage);
    return;
  }
  std::string dest = space == std::string::npos ? "" : line.substr(space + 1);
  bool force = false;
  if (dest.rfind("--force ", 0) == 0) {
    force = true;
    dest = dest.substr(8);
  }
  if (dest.empty() || dest[0] != '/') {
    reply("error InvalidArgument the backup path must be absolute, got '" + Shown(dest) + "' " +
          kUsage);
    return;
  }
  if (dest.find('\0') != std::string::npos) {
    reply("error InvalidArgument the backup path contains a NUL byte");
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (cancel_) {
    reply("error Unavailable treatyd is stopping");
    return;
  }
  if (running_) {
    reply("error Conflict a backup is already running; try again when it has finished");
    return;
  }
  running_ = true;
  if (worker_.joinable()) worker_.join();  // finished: it cleared running_
  worker_ = std::thread([this, dest, force, reply = std::move(reply)] {
    spdlog::info("backup of the log to {} requested on the control socket", dest);
    Result<SqliteBackupReport> report = backup_(dest, force, cancel_);
    std::string answer;
    if (report.ok()) {
      spdlog::info("backup written to {}: {} transactions, {} bytes, {} ms", dest,
                   report->transactions, report->bytes, report->elapsed_ms);
      answer = "ok transactions=" + std::to_string(report->transactions) +
               " bytes=" + std::to_string(report->bytes) +
               " elapsed_ms=" + std::to_string(report->elapsed_ms);
    } else {
      spdlog::warn("backup to {} failed: {}", dest, report.status().ToString());
      answer = ErrorLine(report.status());
    }
    {
      std::lock_guard<std::mutex> done(mu_);
      running_ = false;
    }
    reply(answer);
  });
}

void ControlSocket::Stop() {
  cancel_ = true;
  {
    std::lock_guard<std::mutex> lock(accept_mu_);
    stopped_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
  }
  std::thread worker;
  {
    std::lock_guard<std::mutex> lock(mu_);
    worker = std::move(worker_);
  }
  if (worker.joinable()) worker.join();
  if (bound_) {
    unlink(path_.c_str());
    bound_ = false;
  }
}

Result<SqliteBackupReport> RequestBackup(const std::string& socket_path, const std::string& dest,
                                         bool force, int timeout_ms, bool* nobody) {
  *nobody = false;
  const int fd = ConnectTo(socket_path);
  if (fd < 0) {
    const int saved = errno;
    if (saved == ENOENT || saved == ECONNREFUSED) {
      *nobody = true;
      return Status::Unavailable("no treatyd answers on '" + socket_path + "'");
    }
    return Status::Unavailable("control socket '" + socket_path + "': " + std::strerror(saved));
  }
  const std::string request = "backup " + std::string(force ? "--force " : "") + dest + "\n";
  std::string answer;
  Status failure;
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = Status::Unavailable("control socket '" + socket_path +
                                    "': sending failed: " + std::strerror(errno));
      break;
    }
    sent += static_cast<size_t>(n);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (failure.ok() && answer.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    pollfd p{fd, POLLIN, 0};
    const int ready = left > 0 ? poll(&p, 1, static_cast<int>(left)) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      failure = Status::Unavailable("control socket '" + socket_path + "': no answer within " +
                                    std::to_string(timeout_ms) + " ms");
      break;
    }
    char buf[1024];
    const ssize_t n = ready > 0 ? recv(fd, buf, sizeof(buf), 0) : -1;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = Status::Unavailable("control socket '" + socket_path +
                                    "': the connection ended before an answer");
      break;
    }
    answer.append(buf, static_cast<size_t>(n));
    if (answer.size() > ControlSocket::kMaxLine * 4) {
      failure = Status::Unavailable("control socket '" + socket_path + "': answer too long");
    }
  }
  close(fd);
  if (!failure.ok()) return failure;
  answer.resize(answer.find('\n'));
  if (answer.rfind("ok ", 0) == 0) {
    SqliteBackupReport report;
    long long tx = 0, bytes = 0, ms = 0;
    if (std::sscanf(answer.c_str(), "ok transactions=%lld bytes=%lld elapsed_ms=%lld", &tx, &bytes,
                    &ms) == 3) {
      report.transactions = tx;
      report.bytes = bytes;
      report.elapsed_ms = ms;
      return report;
    }
  } else if (answer.rfind("error ", 0) == 0) {
    const std::string rest = answer.substr(6);
    const size_t space = rest.find(' ');
    const std::string code = rest.substr(0, space);
    const std::string message = space == std::string::npos ? "" : rest.substr(space + 1);
    for (int c = static_cast<int>(StatusCode::kInvalidArgument);
         c <= static_cast<int>(StatusCode::kInternal); ++c) {
      if (code == StatusCodeName(static_cast<StatusCode>(c))) {
        return Status(static_cast<StatusCode>(c), message);
      }
    }
  }
  return Status::Unavailable("control socket '" + socket_path + "': unexpected answer '" +
                             answer.substr(0, 200) + "'");
}

}  // namespace treaty
