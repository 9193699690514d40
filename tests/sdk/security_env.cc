#include "sdk/security_env.h"

#include <chrono>

#include "security/request_signature.h"
#include "support/test_pki.h"

namespace treaty::testing {

struct SdkTestCa::Impl {
  TestPki pki;
};

SdkTestCa::SdkTestCa(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SdkTestCa::~SdkTestCa() = default;

std::unique_ptr<SdkTestCa> SdkTestCa::Create(const std::string& ca_name, std::string* error) {
  auto pki = TestPki::Create(ca_name);
  if (!pki.ok()) {
    *error = pki.status().ToString();
    return nullptr;
  }
  return std::unique_ptr<SdkTestCa>(new SdkTestCa(std::make_unique<Impl>(Impl{std::move(*pki)})));
}

std::string SdkTestCa::ca_cert() const { return impl_->pki.ca_cert(); }

bool SdkTestCa::Issue(const std::string& common_name, const std::string& file_stem, PemFiles* out,
                      std::string* error) {
  auto files = impl_->pki.Issue(common_name, file_stem);
  if (!files.ok()) {
    *error = files.status().ToString();
    return false;
  }
  *out = PemFiles{files->cert, files->key};
  return true;
}

std::string SignatureHeader(const std::string& key, const std::string& method,
                            const std::string& target, const std::string& body, int64_t age_s) {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return SignRequest(key, now - age_s, method, target, body);
}

}  // namespace treaty::testing
