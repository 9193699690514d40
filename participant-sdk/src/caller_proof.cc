#include "caller_proof.h"

#include <chrono>

#include "security/request_signature.h"

namespace treaty_sdk_detail {

std::string SignatureError(const std::vector<std::string>& keys, const std::string& header,
                           const std::string& method, const std::string& target,
                           const std::string& body) {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  treaty::Status s = treaty::VerifyRequestSignature(keys, header, now, kMaxSignatureSkewSeconds,
                                                    method, target, body);
  return s.ok() ? "" : s.message();
}

}  // namespace treaty_sdk_detail
