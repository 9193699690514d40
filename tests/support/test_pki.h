#pragma once

// TestPki: a throwaway certificate authority made at test time with the
// openssl command line (no certificate is committed). Keys are P-256; every
// leaf carries subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1 and both
// serverAuth and clientAuth, so one leaf serves as a server or a client
// certificate. Files live in a fresh folder under /tmp.
//
// Not thread-safe; one owner. Blocks while openssl runs (tens of ms).

#include <string>

#include "treaty/status.h"

namespace treaty::testing {

struct CertFiles {
  std::string cert;  // PEM certificate
  std::string key;   // PEM private key, unencrypted
};

class TestPki {
 public:
  // A new CA with subject CN=`ca_name`. Internal on an openssl failure (its output in the message).
  static Result<TestPki> Create(const std::string& ca_name = "Treaty Test CA");

  const std::string& dir() const { return dir_; }
  // The CA certificate (PEM): what --tls-client-ca, --participant-ca and clients trust.
  const std::string& ca_cert() const { return ca_cert_; }

  // A leaf certificate with subject CN=`common_name`, signed by this CA and
  // valid from an hour ago for `valid_days`; with `expired`, valid only in
  // January 2020. `file_stem` names the files (stem.pem, stem.key).
  Result<CertFiles> Issue(const std::string& common_name, const std::string& file_stem,
                          bool expired = false, int valid_days = 30);

 private:
  TestPki(std::string dir, std::string ca_cert)
      : dir_(std::move(dir)), ca_cert_(std::move(ca_cert)) {}
  std::string dir_;
  std::string ca_cert_;
};

}  // namespace treaty::testing
