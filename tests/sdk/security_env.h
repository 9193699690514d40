#pragma once

// What SDK security tests need from the coordinator's side: a throwaway CA
// (TestPki) and request signatures as a coordinator makes them
// (SignRequest). Not thread-safe; blocking (openssl).

#include <cstdint>
#include <memory>
#include <string>

namespace treaty::testing {

struct PemFiles {
  std::string cert;  // PEM certificate
  std::string key;   // its private key
};

class SdkTestCa {
 public:
  // A new CA named `ca_name`; null with *error set when openssl fails.
  static std::unique_ptr<SdkTestCa> Create(const std::string& ca_name, std::string* error);
  ~SdkTestCa();

  std::string ca_cert() const;  // the CA certificate file
  // A leaf certificate (server and client use) with subject CN `common_name`;
  // false with *error set when openssl fails.
  bool Issue(const std::string& common_name, const std::string& file_stem, PemFiles* out,
             std::string* error);

 private:
  struct Impl;
  explicit SdkTestCa(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The Treaty-Signature header value a coordinator holding `key` sends with
// this request, signed `age_s` seconds ago.
std::string SignatureHeader(const std::string& key, const std::string& method,
                            const std::string& target, const std::string& body, int64_t age_s = 0);

}  // namespace treaty::testing
