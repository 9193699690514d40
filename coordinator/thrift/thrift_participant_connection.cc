#include "thrift/thrift_participant_connection.h"

#include <utility>

#include <thrift/transport/TBufferTransports.h>

#include "common/limits.h"
#include "common/text.h"
#include "thrift/thrift_limits.h"

namespace treaty {

namespace at = apache::thrift;

namespace {

// A TLS refusal worded for participant `key`; "" for kNone.
std::string RefusalMessage(const TlsFailure& tls, const std::string& key, const std::string& host) {
  switch (tls.kind) {
    case TlsFailure::Kind::kCertificate:
      if (tls.name_mismatch) {
        return "certificate verify failed: the participant's certificate does not name '" + host +
               "' (participant " + key + ")";
      }
      return "certificate verify failed: " + tls.reason + " (participant " + key +
             ", expected name '" + host + "')";
    case TlsFailure::Kind::kRefused:
      return "TLS with " + key + " failed: " + tls.reason;
    case TlsFailure::Kind::kNone:
      break;
  }
  return "";
}

}  // namespace

void ParticipantConnection::Close() {
  try {
    transport->close();
  } catch (const std::exception&) {
  }
}

std::string ParticipantConnection::TlsRefusal(const std::string& what, const std::string& key,
                                              const std::string& host) {
  return RefusalMessage(TlsRefusalAfterExchange(*socket, what), key, host);
}

std::shared_ptr<ClientTlsFactory> MakeClientTlsFactory(const TlsClientFiles& files,
                                                       OpenFailure& failure) {
  auto factory = MakeClientTlsFactory(files);
  if (factory.ok()) return std::move(*factory);
  failure.error = "thrifts:// participants: TLS cannot be set up: " +
                  Excerpt(factory.status().message(), limits::kErrorExcerptBytes);
  failure.config_error = true;
  return nullptr;
}

std::unique_ptr<ParticipantConnection> OpenParticipantConnection(
    const Endpoint& endpoint, const std::string& key, const ThriftCallerOptions& options,
    const std::shared_ptr<ClientTlsFactory>& tls, std::chrono::steady_clock::time_point deadline,
    int64_t timeout_ms, OpenFailure& failure) {
  ThriftConnectOptions connect;
  connect.timeout_ms = options.connect_timeout_ms;
  connect.deadline = deadline;
  if (options.policy) {
    connect.check_address = [&](const boost::asio::ip::address& address) {
      return options.policy->CheckAddress(endpoint, address);
    };
  }
  ThriftConnectFailure why;
  auto c = std::make_unique<ParticipantConnection>();
  c->socket = ConnectThriftSocket(endpoint, tls, connect, why);
  if (!c->socket) {
    failure.config_error = why.config_error;
    failure.timed_out = why.timed_out;
    const std::string timed_out = "timed out after " + std::to_string(timeout_ms) + " ms";
    switch (why.stage) {
      case ThriftConnectFailure::Stage::kResolve:
        failure.error = why.timed_out ? "thrift call to " + key + " failed: " + timed_out +
                                            " resolving '" + endpoint.host + "'"
                                      : std::move(why.error);
        break;
      case ThriftConnectFailure::Stage::kAddressCheck:
        failure.error = std::move(why.error);
        break;
      case ThriftConnectFailure::Stage::kConnect:
        failure.error = "thrift call to " + key + " failed: could not connect: " + why.error;
        break;
      case ThriftConnectFailure::Stage::kTls:
        if (why.timed_out) {
          failure.error = "TLS handshake with " + key + " failed: " + timed_out;
          break;
        }
        failure.error = RefusalMessage(why.tls, key, endpoint.host);
        if (failure.error.empty()) {
          failure.error = "TLS handshake with " + key + " failed: " + why.error;
        }
        break;
    }
    return nullptr;
  }
  c->transport =
      std::make_shared<at::transport::TFramedTransport>(c->socket, ThriftConfiguration());
  c->client = std::make_unique<rpc::ParticipantServiceClient>(LimitedBinaryProtocol(c->transport));
  return c;
}

}  // namespace treaty
