#pragma once

// TlsTestClient: a small HTTPS client for tests on Asio / Beast ssl: one
// connection, its handshake, then requests on it (keep-alive). Every step is
// bounded by a 10 s guard (a hang is a bug, not something to wait for). It
// exposes what TLS tests check: the handshake's error, the certificate
// verification result, the server certificate's CN, and how the server
// ended the connection (close_notify or not).
//
// Plain types only in this header (no coordinator Status), so SDK tests can
// use it too. Not thread-safe; one owner. Blocking.

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <boost/system/error_code.hpp>

namespace treaty::testing {

struct TlsTestResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

class TlsTestClient {
 public:
  // Trusts the CA bundle `ca_file` (PEM); presents `cert_file` / `key_file`
  // as client certificate when given. setup_error() tells if they cannot be
  // used (then every call fails).
  explicit TlsTestClient(const std::string& ca_file, const std::string& cert_file = "",
                         const std::string& key_file = "");
  ~TlsTestClient();
  TlsTestClient(const TlsTestClient&) = delete;
  TlsTestClient& operator=(const TlsTestClient&) = delete;

  const std::string& setup_error() const;

  // Connects to 127.0.0.1:`port` and handshakes. No error: the server's
  // certificate was verified (TLS 1.3: the server may still refuse this
  // client's certificate; the next read then fails).
  boost::system::error_code Connect(uint16_t port);

  // Sends one HTTP/1.1 request (Host: localhost) on the connection and reads
  // its response into *out.
  boost::system::error_code Request(const std::string& method, const std::string& target,
                                    const std::string& body,
                                    const std::map<std::string, std::string>& headers,
                                    TlsTestResponse* out);
  boost::system::error_code Get(const std::string& target, TlsTestResponse* out) {
    return Request("GET", target, "", {}, out);
  }

  // Reads once more, after the server has ended the connection: eof after
  // a close_notify; stream_truncated after a TCP close without one.
  boost::system::error_code ReadAfterEnd();

  // The verified server certificate's subject CN ("" when not verified).
  std::string ServerCommonName() const;
  // OpenSSL's verification result (X509_V_OK, X509_V_ERR_CERT_HAS_EXPIRED, ...).
  long VerifyResult() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty::testing
