#include "security/peer_name.h"

#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>

namespace treaty {

bool ExpectPeerName(SSL* ssl, const std::string& host) {
  boost::system::error_code not_ip;
  boost::asio::ip::make_address(host, not_ip);
  if (!not_ip) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1;
  if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1 || SSL_set1_host(ssl, host.c_str()) != 1) {
    return false;
  }
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return true;
}

}  // namespace treaty
