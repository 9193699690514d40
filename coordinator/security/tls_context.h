#pragma once

// TLS contexts built from PEM files (docs/security.md "TLS"), for the
// coordinator's listeners (HTTP and Thrift), its calls to participants, the
// SDK and treatyctl. OpenSSL through Boost.Asio's ssl::context.
//
// Server side (--tls-cert, --tls-key, --tls-client-ca): TLS 1.2 or newer,
// the certificate chain and key from the files (the key must match the
// certificate). With a client CA, a client must present a certificate that
// chains to it (mTLS); the handshake fails otherwise.
//
// Client side (--participant-ca, --participant-cert, --participant-key, and
// treatyctl's / the SDK's CA option): TLS 1.2 or newer, peer verification
// always on, against `ca_file` or, when empty, the system's default trust
// store; host name verification is the caller's (SetVerifyHost). An
// optional client certificate for mTLS.
//
// ServerTls holds the current server context and swaps in a new one on
// Reload() (SIGHUP): connections already open keep the context they were
// accepted with; new ones use the new one. A reload that fails keeps the old
// context and returns the error. Thread-safe.

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "common/mutex.h"
#include "treaty/status.h"

namespace treaty {

struct TlsServerFiles {
  std::string cert_file;       // PEM certificate chain, leaf first; empty: TLS off
  std::string key_file;        // PEM private key (unencrypted)
  std::string client_ca_file;  // PEM CA bundle; non-empty: client certificates required
  bool enabled() const { return !cert_file.empty(); }
};

struct TlsClientFiles {
  std::string ca_file;    // PEM CA bundle; empty: the system's trust store
  std::string cert_file;  // PEM client certificate chain for mTLS; empty: none
  std::string key_file;   // its key; required with cert_file
};

// InvalidArgument naming the option and the file when a file is missing,
// unreadable, not a regular file, not PEM, or the key does not match the
// certificate. The server's certificate (the first of --tls-cert) must be
// valid now: one that has expired or is not yet valid is refused naming the
// date ("--tls-cert: certificate 'FILE' expired on 2020-01-02"); one that
// expires within 7 days is accepted with a warning in the main log. Never
// throw.
Result<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const TlsServerFiles& files);
Result<std::shared_ptr<boost::asio::ssl::context>> MakeClientTlsContext(
    const TlsClientFiles& files);

// The subject common name of the verified peer certificate of `ssl`, or ""
// when there is none (no certificate, or verification failed).
std::string PeerCommonName(const SSL* ssl);

class ServerTls {
 public:
  // Loads the files once. Errors as MakeServerTlsContext.
  static Result<std::shared_ptr<ServerTls>> Load(TlsServerFiles files);

  // The context for the next accepted connection.
  std::shared_ptr<boost::asio::ssl::context> context() const;
  // Re-reads the files; on success new connections use them.
  Status Reload();
  const TlsServerFiles& files() const { return files_; }
  bool requires_client_cert() const { return !files_.client_ca_file.empty(); }

 private:
  explicit ServerTls(TlsServerFiles files) : files_(std::move(files)) {}
  const TlsServerFiles files_;
  mutable Mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> context_ TREATY_GUARDED_BY(mu_);
};

}  // namespace treaty
