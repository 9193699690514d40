#pragma once

// Private to the SDK: HttpCoordinator, the CoordinatorTransport of
// "http://host:port" and "https://host:port" coordinators (REST,
// docs/api.md), over the base library's keep-alive HttpClient
// (coordinator/http/http_client.h).
//
// Connections: at most TransportOptions::pool_size idle connections are
// kept per coordinator (0: one connection per call, "Connection: close");
// any number may be in use at once, one per concurrent call. Reuse, idle
// expiry (TransportOptions::idle_ms), the one retry of a reused connection
// found closed before any answer byte (safe: every call of
// CoordinatorTransport may be repeated; client.h, "Fail-over"), TLS checks
// and the 64 MiB answer bound are HttpClient's.
//
// Delivery: an answer is kAnswered with the body's typed error code
// (RestAnswerCode); a failure before the request was written is kNotSent,
// after it kNoAnswer; an answer over the bound or not a JSON object is
// kBadAnswer; a host no certificate can be checked against is kBadConfig.
// Thread-safe.

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
