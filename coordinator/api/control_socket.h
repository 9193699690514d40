#pragma once

// ControlSocket: the local control socket of a treatyd running on a SQLite
// log, through which `treatyd backup` asks it for an online copy of its log
// (docs/operations.md "Backup and restore").
//
// Where: a unix-domain stream socket at LOG.ctl (SqliteControlSocketPath),
// mode 0600: only the owner (the service user) or root may connect. At Start
// an existing LOG.ctl is replaced only if it is a socket owned by this user
// that nothing answers (left by a kill -9); anything else (another file, a
// socket of another user, a socket something answers) is refused with an
// error and the socket is not created. Stop removes it.
//
// Protocol: one request line, one answer line, then the server closes.
//   request  "backup /ABSOLUTE/PATH\n" or "backup --force /ABSOLUTE/PATH\n"
//            (the path is the rest of the line, spaces included; at most
//            kMaxLine bytes with the newline, read within kRequestTimeoutMs)
//   answer   "ok transactions=N bytes=N elapsed_ms=N\n"
//            "error CODE MESSAGE\n"  (CODE: StatusCodeName, e.g.
//            InvalidArgument, Conflict, Unavailable; MESSAGE on one line)
// The copy is written by the treatyd process, with its permissions, under
// the rules of BackupSqliteLog (temporary file, integrity check, fsync,
// link/rename; an existing file only with --force). One backup at a time: a
// request while one runs is answered "error Conflict a backup is already
// running". Garbage, an over-long line, an unknown verb or a relative path
// get an InvalidArgument answer; nothing a client sends stops the server.
//
// Threads: accepting and reading run on the io_context's threads (one
// strand per connection); each backup runs on its own thread (never an I/O
// thread). Start/Stop from one thread. Stop cancels a running copy (it stops
// before its next step; its temporary file is removed) and joins it; call it
// before the store goes away.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "store/sqlite_backup.h"
#include "treaty/status.h"

namespace treaty {

class ControlSocket {
 public:
  static constexpr size_t kMaxLine = 4096;
  static constexpr int kRequestTimeoutMs = 5000;

  // Makes the copy (blocking); `cancel` turns true when the server stops.
  using BackupFn = std::function<Result<SqliteBackupReport>(const std::string& dest, bool force,
                                                            const std::atomic<bool>& cancel)>;

  ControlSocket(boost::asio::io_context& io, std::string path, BackupFn backup);
  ~ControlSocket();
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;

  // Binds PATH (mode 0600) and starts accepting. InvalidArgument when PATH
  // is too long for a unix socket or exists and is not a stale socket of
  // ours; Unavailable when something answers on it or it cannot be bound.
  [[nodiscard]] Status Start();
  // Stops accepting, cancels and joins a running backup, removes PATH.
  void Stop();
  const std::string& path() const { return path_; }

  // The answer line (without newline) for one request line; starts the
  // backup on its thread and calls `reply` from there when it is done, or
  // calls `reply` at once with an error. Public for the session class only.
  void Handle(const std::string& line, std::function<void(std::string)> reply);

 private:
  void Accept();  // with accept_mu_ held

  boost::asio::io_context& io_;
  const std::string path_;
  const BackupFn backup_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer retry_;  // re-accepting after a failed accept
  std::atomic<bool> cancel_{false};
  std::mutex mu_;
  bool running_ = false;  // a backup runs; guarded by mu_
  std::thread worker_;    // the last backup's thread; guarded by mu_
  bool bound_ = false;    // PATH is ours to remove
  std::mutex accept_mu_;  // acceptor_ and retry_ are used under it
  bool stopped_ = false;  // no more accepting; guarded by accept_mu_
};

// Client side, for `treatyd backup`: sends one request to the control
// socket at `socket_path` and waits up to `timeout_ms` for the answer.
// `*nobody` is set true (and Unavailable returned) when no process answers
// there (no such socket, or a stale one): the caller then copies the file
// itself. Otherwise the server's error is returned with its code, or
// Unavailable for a broken or late answer. `dest` must be absolute.
[[nodiscard]] Result<SqliteBackupReport> RequestBackup(const std::string& socket_path,
                                                       const std::string& dest, bool force,
                                                       int timeout_ms, bool* nobody);

}  // namespace treaty
