#pragma once

// Private to the SDK: HttpCoordinator, the CoordinatorTransport of
// "http://host:port" and "https://host:port" coordinators (REST,
// docs/api.md), over Beast with HTTP/1.1 keep-alive.
//
// Connections: at most TransportOptions::pool_size idle connections are
// kept per coordinator (any number may be in use at once, one per
// concurrent call); an idle one is reused most-recent-first, after checking
// that the coordinator has not closed it (IdleSocketUsable), and closed once
// idle for longer than TransportOptions::idle_ms or when the answer says
// "Connection: close". A reused connection that fails before a single byte
// of the answer arrives (the coordinator closed it just as the request
// left) is retried once on a fresh connection: every call of
// CoordinatorTransport is safe to repeat (client.h, "Fail-over"), so this
// hides keep-alive races without ever doing anything the caller's own retry
// would not.
//
// https:// checks the coordinator's certificate against ca_file (the
// system's trust store when empty) and the URL's host name, presenting
// cert_file/key_file when given; a refused certificate is kNotSent naming
// the reason ("certificate has expired"). Answers are read with a 64 MiB
// bound (coordinator/http/bounded_read.h). Thread-safe.

#include <memory>
#include <string>

#include "coordinator_transport.h"

namespace treaty_sdk_detail {

// The transport for an http(s):// `address`, or null with *why set (a URL
// ParseEndpoint refuses, another scheme, unusable TLS files).
std::unique_ptr<CoordinatorTransport> MakeHttpCoordinator(const std::string& address,
                                                          const TransportOptions& options,
                                                          std::string* why);

}  // namespace treaty_sdk_detail
