#pragma once

// Thrift input limits for every server and client transport of Treaty (the
// coordinator's CoordinatorService server and ParticipantService client, the
// SDK's ParticipantService server and CoordinatorService client). Values in
// common/limits.h, documented in docs/input-rules.md.
//
// - TConfiguration bounds a message's size and nesting (Thrift 0.17 checks
//   a declared container against the bytes left in the message, so a
//   39-byte frame cannot make the reader allocate 2^31 elements).
// - The binary protocol's string and container limits bound each field.
// Header-only; thread-safe (each call builds new objects).

#include <memory>

#include <thrift/TConfiguration.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TTransport.h>

#include "common/limits.h"

namespace treaty {

inline std::shared_ptr<apache::thrift::TConfiguration> ThriftConfiguration() {
  return std::make_shared<apache::thrift::TConfiguration>(limits::kThriftMaxMessageBytes,
                                                          limits::kThriftMaxMessageBytes,
                                                          limits::kThriftMaxRecursionDepth);
}

// Binary protocol over `transport` with Treaty's string and container limits.
inline std::shared_ptr<apache::thrift::protocol::TProtocol> LimitedBinaryProtocol(
    std::shared_ptr<apache::thrift::transport::TTransport> transport) {
  return std::make_shared<apache::thrift::protocol::TBinaryProtocol>(
      std::move(transport), limits::kThriftMaxStringBytes, limits::kThriftMaxContainerElements,
      /*strict_read=*/false, /*strict_write=*/true);
}

// Factory form, for servers.
inline std::shared_ptr<apache::thrift::protocol::TProtocolFactory> LimitedBinaryProtocolFactory() {
  return std::make_shared<apache::thrift::protocol::TBinaryProtocolFactory>(
      limits::kThriftMaxStringBytes, limits::kThriftMaxContainerElements,
      /*strict_read=*/false, /*strict_write=*/true);
}

}  // namespace treaty
