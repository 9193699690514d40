#pragma once

// The name a TLS client expects in the server's certificate (RFC 6125 via
// OpenSSL's X509_VERIFY_PARAM): a DNS name is checked against the
// certificate's names (no partial wildcards such as "f*.example") and sent
// as SNI; an IP literal is checked against its IP addresses and never sent
// as SNI (RFC 6066). Call on a client SSL before the handshake. Returns false
// when OpenSSL refuses the parameters. Thread-compatible (one SSL).

#include <openssl/ssl.h>

#include <string>

namespace treaty {

bool ExpectPeerName(SSL* ssl, const std::string& host);

}  // namespace treaty
