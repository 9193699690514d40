#pragma once

// Private to treaty_thrift: how ThriftParticipantCaller opens a connection
// to a thrift:// or thrifts:// participant (thrift_participant_caller.h,
// "Connecting"), on the Thrift client socket shared with the SDK
// (thrift_client_tls.h): the name is resolved there, every address is
// checked with the ParticipantPolicy, the socket is connected to a checked
// address (never to the name again), and for thrifts:// the TLS handshake
// runs at once with the URL's host as SNI and as the name the certificate
// must carry. This file words the failures for participants. Everything
// blocks, until the call's deadline at most; it runs on the caller's call
// pool.

#include <chrono>
#include <memory>
#include <string>

#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransport.h>

#include "ParticipantService.h"
#include "common/endpoint.h"
#include "thrift/thrift_client_tls.h"
#include "thrift/thrift_participant_caller.h"

namespace treaty {

// One open connection to a participant, with its framed transport and
// client. Used by one call at a time.
struct ParticipantConnection {
  std::shared_ptr<apache::thrift::transport::TSocket> socket;
  std::shared_ptr<apache::thrift::transport::TTransport> transport;
  std::unique_ptr<rpc::ParticipantServiceClient> client;
  std::chrono::steady_clock::time_point idle_since;  // when it was last given back

  // Closes the connection; never throws.
  void Close();
  // After the first exchange on this connection failed with `what`: the
  // reason as a configuration error when the participant refused its TLS
  // (an alert: with TLS 1.3 a server refuses the client certificate after
  // the client's handshake completed), else "". `key` and `host` name the
  // participant in the message.
  std::string TlsRefusal(const std::string& what, const std::string& key, const std::string& host);
};

// Why a connection could not be opened: a configuration error (a name that
// does not exist, an address the policy denies, a certificate that does not
// verify, TLS files that cannot be used) or a passing fault (a refused
// connection, a time-out).
struct OpenFailure {
  std::string error;
  bool config_error = false;
  bool timed_out = false;  // the deadline passed (a passing fault)
};

// MakeClientTlsFactory (thrift_client_tls.h) for thrifts:// participants:
// null with `failure` set (a configuration error) when a file cannot be used.
std::shared_ptr<ClientTlsFactory> MakeClientTlsFactory(const TlsClientFiles& files,
                                                       OpenFailure& failure);

// Opens a connection to `endpoint` (`key` names it in messages). `tls` must
// be non-null for thrifts://. The lookup, the connects and the handshake end
// by `deadline` (the call's: `timeout_ms`, used in messages, after it
// began), each connect also within options.connect_timeout_ms; the
// connection carries the limits of thrift_limits.h. Null with `failure` set
// when it cannot ("... timed out after N ms" with failure.timed_out when
// the deadline passed).
std::unique_ptr<ParticipantConnection> OpenParticipantConnection(
    const Endpoint& endpoint, const std::string& key, const ThriftCallerOptions& options,
    const std::shared_ptr<ClientTlsFactory>& tls, std::chrono::steady_clock::time_point deadline,
    int64_t timeout_ms, OpenFailure& failure);

}  // namespace treaty
