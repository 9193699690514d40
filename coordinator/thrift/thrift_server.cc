#include "thrift/thrift_server.h"

#include <utility>

#include <spdlog/spdlog.h>

#include "common/host_port.h"
#include "common/log_throttle.h"
#include "thrift/framed_thrift_server.h"

namespace treaty {

namespace {

// The loop's service of one connection: a ThriftConnection (its security
// state) and a CoordinatorHandler serving only it, so a connection's
// identity lives with its handler. `failed_authentications` throttles the
// warning of every connection closed after too many wrong tokens.
ThriftConnectionService CoordinatorConnection(
    const CoordinatorHandler::ServiceProvider& service, const CoordinatorHandlerOptions& options,
    const std::shared_ptr<LogThrottle>& failed_authentications, const std::string& peer) {
  auto connection = std::make_shared<ThriftConnection>();
  connection->peer = peer;
  auto handler = std::make_shared<CoordinatorHandler>(service, options, connection);
  ThriftConnectionService out;
  out.processor = std::make_shared<rpc::CoordinatorServiceProcessor>(handler);
  out.on_client_certificate = [handler, connection](const std::string& common_name) {
    if (handler->AuthenticateCertificate(common_name)) {
      spdlog::debug("thrift: the connection from {} authenticated by its client certificate",
                    connection->peer);
    }
  };
  out.close_after_answer = [connection, failed_authentications] {
    if (!connection->close) return false;
    if (auto r = failed_authentications->Tick(); r.log) {
      spdlog::warn("thrift: closed the connection from {} after {} failed authenticate calls{}",
                   connection->peer, kMaxFailedAuthentications, r.Suffix());
    }
    return true;
  };
  return out;
}

}  // namespace

struct ThriftServer::Impl {
  ThriftServerOptions options;
  FramedThriftServer loop;

  Impl(CoordinatorHandler::ServiceProvider service, ThriftServerOptions o)
      : options(std::move(o)),
        loop(LoopOptions(options), Connections(std::move(service), options)) {}

  static FramedThriftServerOptions LoopOptions(const ThriftServerOptions& o) {
    FramedThriftServerOptions out;
    out.host = o.host;
    out.port = o.port;
    out.max_connections = o.max_connections;
    out.idle_timeout_ms = o.idle_timeout_ms;
    out.request_timeout_ms = o.request_timeout_ms;
    out.max_frame_bytes = o.max_frame_bytes;
    out.tls = o.tls;
    out.log_name = "thrift";
    out.request_timeout_name = "--thrift-request-timeout-ms";
    return out;
  }

  static ThriftConnectionFactory Connections(CoordinatorHandler::ServiceProvider service,
                                             const ThriftServerOptions& o) {
    return [service = std::move(service), handler = o.handler,
            failures = std::make_shared<LogThrottle>()](const std::string& peer) {
      return CoordinatorConnection(service, handler, failures, peer);
    };
  }
};

ThriftServer::ThriftServer(CoordinatorHandler::ServiceProvider service, ThriftServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(service), std::move(options))) {}

ThriftServer::~ThriftServer() { Stop(); }

Status ThriftServer::Start() {
  Impl& m = *impl_;
  if (Status s = m.loop.Start(); !s.ok()) return s;
  spdlog::info(
      "thrift front end listening on {}{} (at most {} connections, idle timeout {} ms, request "
      "timeout {} ms; {})",
      FormatHostPort(m.options.host, m.loop.port()),
      !m.options.tls.enabled()        ? ""
      : m.loop.requires_client_cert() ? " over TLS, client certificates required"
                                      : " over TLS",
      m.options.max_connections, m.options.idle_timeout_ms, m.options.request_timeout_ms,
      m.options.handler.auth ? "authentication on" : "authentication off");
  return Status::Ok();
}

uint16_t ThriftServer::port() const { return impl_->loop.port(); }

Status ThriftServer::ReloadTls() { return impl_->loop.ReloadTls(); }

void ThriftServer::Stop() { impl_->loop.Stop(); }

}  // namespace treaty
