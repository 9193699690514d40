#include "security/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <time.h>

#include <spdlog/spdlog.h>

#include "security/config_file.h"

namespace treaty {

namespace ssl = boost::asio::ssl;

namespace {

// The first OpenSSL error on this thread's queue as text (the queue is
// cleared), or `fallback`.
std::string OpenSslError(const std::string& fallback) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return fallback;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

constexpr int64_t kExpiryWarningS = 7 * 24 * 3600;

// "2020-01-02" for an ASN.1 time, or "an unreadable date".
std::string Day(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "an unreadable date";
  char buf[16];
  strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
  return buf;
}

// The server certificate (the leaf of --tls-cert) must be valid now:
// InvalidArgument when it has expired or is not yet valid; a warning in the
// main log when it expires within kExpiryWarningS.
Status CheckValidity(SSL_CTX* ctx, const std::string& path) {
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  if (leaf == nullptr) {
    return Status::InvalidArgument("--tls-cert: '" + path + "' holds no certificate");
  }
  const ASN1_TIME* not_before = X509_get0_notBefore(leaf);
  const ASN1_TIME* not_after = X509_get0_notAfter(leaf);
  if (X509_cmp_current_time(not_after) <= 0) {
    return Status::InvalidArgument("--tls-cert: certificate '" + path + "' expired on " +
                                   Day(not_after));
  }
  if (X509_cmp_current_time(not_before) >= 0) {
    return Status::InvalidArgument("--tls-cert: certificate '" + path + "' is not valid before " +
                                   Day(not_before));
  }
  time_t soon = time(nullptr) + kExpiryWarningS;
  if (X509_cmp_time(not_after, &soon) <= 0) {
    spdlog::warn("--tls-cert: certificate '{}' expires on {} (in less than 7 days)", path,
                 Day(not_after));
  }
  return Status::Ok();
}

// Applies one file-loading step; InvalidArgument naming option and file.
template <class Fn>
Status LoadStep(const std::string& option, const std::string& path, Fn&& fn) {
  if (auto s = CheckRegularFile(option, path); !s.ok()) return s;
  boost::system::error_code ec;
  fn(ec);
  if (ec) {
    return Status::InvalidArgument(option + ": '" + path +
                                   "' cannot be used: " + OpenSslError(ec.message()));
  }
  return Status::Ok();
}

std::shared_ptr<ssl::context> NewContext(ssl::context::method method) {
  auto ctx = std::make_shared<ssl::context>(method);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  return ctx;
}

}  // namespace

Result<std::shared_ptr<ssl::context>> MakeServerTlsContext(const TlsServerFiles& files) {
  if (files.cert_file.empty() || files.key_file.empty()) {
    return Status::InvalidArgument("--tls-cert and --tls-key must be given together");
  }
  auto ctx = NewContext(ssl::context::tls_server);
  if (auto s = LoadStep("--tls-cert", files.cert_file,
                        [&](auto& ec) { ctx->use_certificate_chain_file(files.cert_file, ec); });
      !s.ok()) {
    return s;
  }
  if (auto s = CheckValidity(ctx->native_handle(), files.cert_file); !s.ok()) return s;
  if (auto s = LoadStep(
          "--tls-key", files.key_file,
          [&](auto& ec) { ctx->use_private_key_file(files.key_file, ssl::context::pem, ec); });
      !s.ok()) {
    return s;
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return Status::InvalidArgument(
        "--tls-key: '" + files.key_file +
        "' does not match the certificate of --tls-cert: " + OpenSslError("key mismatch"));
  }
  if (!files.client_ca_file.empty()) {
    if (auto s = LoadStep("--tls-client-ca", files.client_ca_file,
                          [&](auto& ec) { ctx->load_verify_file(files.client_ca_file, ec); });
        !s.ok()) {
      return s;
    }
    // The CA names sent in the CertificateRequest, so clients pick the right certificate.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
    }
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  } else {
    ctx->set_verify_mode(ssl::verify_none);
  }
  return ctx;
}

Result<std::shared_ptr<ssl::context>> MakeClientTlsContext(const TlsClientFiles& files) {
  auto ctx = NewContext(ssl::context::tls_client);
  if (files.ca_file.empty()) {
    boost::system::error_code ec;
    ctx->set_default_verify_paths(ec);
    if (ec)
      return Status::InvalidArgument("the system's trust store cannot be used: " + ec.message());
  } else if (auto s = LoadStep("CA file", files.ca_file,
                               [&](auto& ec) { ctx->load_verify_file(files.ca_file, ec); });
             !s.ok()) {
    return s;
  }
  if (files.cert_file.empty() != files.key_file.empty()) {
    return Status::InvalidArgument("a client certificate and its key must be given together");
  }
  if (!files.cert_file.empty()) {
    if (auto s = LoadStep("client certificate", files.cert_file,
                          [&](auto& ec) { ctx->use_certificate_chain_file(files.cert_file, ec); });
        !s.ok()) {
      return s;
    }
    if (auto s = LoadStep(
            "client key", files.key_file,
            [&](auto& ec) { ctx->use_private_key_file(files.key_file, ssl::context::pem, ec); });
        !s.ok()) {
      return s;
    }
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
      return Status::InvalidArgument("the client key '" + files.key_file +
                                     "' does not match its certificate");
    }
  }
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

std::string PeerCommonName(const SSL* ssl) {
  if (ssl == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return "";
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  std::string cn;
  X509_NAME* subject = X509_get_subject_name(cert);
  int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (i >= 0) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n > 0) cn.assign(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
  }
  X509_free(cert);
  return cn;
}

Result<std::shared_ptr<ServerTls>> ServerTls::Load(TlsServerFiles files) {
  auto tls = std::shared_ptr<ServerTls>(new ServerTls(std::move(files)));
  if (auto s = tls->Reload(); !s.ok()) return s;
  return tls;
}

std::shared_ptr<ssl::context> ServerTls::context() const {
  MutexLock lock(&mu_);
  return context_;
}

Status ServerTls::Reload() {
  auto ctx = MakeServerTlsContext(files_);
  if (!ctx.ok()) return ctx.status();
  MutexLock lock(&mu_);
  context_ = std::move(*ctx);
  return Status::Ok();
}

}  // namespace treaty
