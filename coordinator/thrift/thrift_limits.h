#pragma once

// Thrift input limits for every server and client transport of Treaty (the
// coordinator's CoordinatorService server and ParticipantService client, the
// SDK's ParticipantService server and CoordinatorService client). Values in
// common/limits.h, documented in docs/input-rules.md.
//
// Three layers, each needed:
// - TConfiguration bounds a message's size, a frame's size and the nesting
//   of structs and containers (kThriftMaxRecursionDepth).
// - The binary protocol refuses a string longer than kThriftMaxStringBytes
//   and a container of more than kThriftMaxContainerElements, and (Treaty's
//   subclass) checks every declared string length and container size
//   against the bytes left in the message, counting a struct as at least one
//   byte, before anything is allocated. Stock Thrift 0.17 counts a struct as
//   zero bytes, so a 39-byte frame declaring 2^31-1 structs passed the check
//   and the reader reserved memory for all of them.
// - Servers: TNonblockingServer 0.17 reads each frame into a TMemoryBuffer
//   it makes itself, with Thrift's default TConfiguration and without telling
//   it the frame's length, and it exit()s the process on std::bad_alloc.
//   LimitedServerInputTransportFactory() puts a FrameReader over that buffer
//   (our TConfiguration; "bytes left in the message" = bytes left in the
//   frame), and GuardedProcessor answers a refused request with a
//   TApplicationException instead of letting anything reach the server's
//   own handler. Together with setMaxFrameSize the memory one request can
//   cost is bounded by its frame. (Treaty's own servers, treatyd's front end
//   and the SDK's ParticipantService server, run on one thread-per-connection
//   loop, framed_thrift_server.h: its FramedRequestProcessor reads each frame
//   into a TMemoryBuffer itself and uses FrameReader and GuardedProcessor
//   the same way.)
//
// Header-only; thread-safe (each call builds new objects; a GuardedProcessor
// may serve many connections at once).

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include <thrift/TApplicationException.h>
#include <thrift/TConfiguration.h>
#include <thrift/TProcessor.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TTransport.h>
#include <thrift/transport/TVirtualTransport.h>

#include "common/limits.h"

namespace treaty {

inline std::shared_ptr<apache::thrift::TConfiguration> ThriftConfiguration() {
  return std::make_shared<apache::thrift::TConfiguration>(limits::kThriftMaxMessageBytes,
                                                          limits::kThriftMaxMessageBytes,
                                                          limits::kThriftMaxRecursionDepth);
}

// TBinaryProtocol that checks declared sizes against the bytes left in the
// message (see the file comment). Refusals are TProtocolException
// (SIZE_LIMIT, DEPTH_LIMIT, NEGATIVE_SIZE) or TTransportException
// (END_OF_FILE "MaxMessageSize reached").
class BoundedBinaryProtocol : public apache::thrift::protocol::TBinaryProtocol {
 public:
  explicit BoundedBinaryProtocol(std::shared_ptr<apache::thrift::transport::TTransport> transport)
      : TBinaryProtocolT(std::move(transport), limits::kThriftMaxStringBytes,
                         limits::kThriftMaxContainerElements,
                         /*strict_read=*/false, /*strict_write=*/true) {}

  // A struct on the wire is at least its field-stop byte.
  int getMinSerializedSize(apache::thrift::protocol::TType type) override {
    if (type == apache::thrift::protocol::T_STRUCT) return 1;
    return TBinaryProtocolT::getMinSerializedSize(type);
  }

  uint32_t readString_virt(std::string& str) override { return ReadCheckedString(str); }
  uint32_t readBinary_virt(std::string& str) override { return ReadCheckedString(str); }

  // Type bytes are checked before they become a TType: the stock reader
  // casts any wire byte to the enum (undefined behaviour for bytes outside
  // its range, reported by UBSan) and only fails later, in skip().
  uint32_t readMessageBegin_virt(std::string& name, apache::thrift::protocol::TMessageType& type,
                                 int32_t& seqid) override {
    uint32_t n = TBinaryProtocolT::readMessageBegin(name, type, seqid);
    int raw = 0;  // the enum's bits, read without loading an out-of-range enum value
    static_assert(sizeof(type) == sizeof(raw));
    std::memcpy(&raw, &type, sizeof(raw));
    if (raw < apache::thrift::protocol::T_CALL || raw > apache::thrift::protocol::T_ONEWAY) {
      throw apache::thrift::protocol::TProtocolException(
          apache::thrift::protocol::TProtocolException::INVALID_DATA,
          "unknown Thrift message type " + std::to_string(raw));
    }
    return n;
  }
  // The stock skip_virt skips through TBinaryProtocolT's own readers,
  // bypassing the checked ones above (a generated processor skips the
  // arguments of an unknown method this way): skip through this class's
  // virtual interface instead.
  uint32_t skip_virt(apache::thrift::protocol::TType type) override {
    return apache::thrift::protocol::skip(static_cast<apache::thrift::protocol::TProtocol&>(*this),
                                          type);
  }
  uint32_t readFieldBegin_virt(std::string& /*name*/, apache::thrift::protocol::TType& type,
                               int16_t& id) override {
    uint32_t n = ReadType(type);
    id = 0;
    if (type == apache::thrift::protocol::T_STOP) return n;
    return n + readI16(id);
  }
  uint32_t readMapBegin_virt(apache::thrift::protocol::TType& key_type,
                             apache::thrift::protocol::TType& value_type, uint32_t& size) override {
    uint32_t n = ReadType(key_type);
    n += ReadType(value_type);
    n += ReadSize(size);
    apache::thrift::protocol::TMap declared(key_type, value_type, size);
    checkReadBytesAvailable(declared);
    return n;
  }
  uint32_t readListBegin_virt(apache::thrift::protocol::TType& elem_type, uint32_t& size) override {
    uint32_t n = ReadType(elem_type);
    n += ReadSize(size);
    apache::thrift::protocol::TList declared(elem_type, size);
    checkReadBytesAvailable(declared);
    return n;
  }
  uint32_t readSetBegin_virt(apache::thrift::protocol::TType& elem_type, uint32_t& size) override {
    uint32_t n = ReadType(elem_type);
    n += ReadSize(size);
    apache::thrift::protocol::TSet declared(elem_type, size);
    checkReadBytesAvailable(declared);
    return n;
  }

 private:
  uint32_t ReadType(apache::thrift::protocol::TType& type) {
    using apache::thrift::protocol::TProtocolException;
    int8_t raw = 0;
    uint32_t n = readByte(raw);
    switch (raw) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 6:
      case 8:
      case 10:
      case 11:
      case 12:
      case 13:
      case 14:
      case 15:
      case 16:
      case 17:
        type = static_cast<apache::thrift::protocol::TType>(raw);
        return n;
      default:
        throw TProtocolException(TProtocolException::INVALID_DATA,
                                 "unknown Thrift type " + std::to_string(raw));
    }
  }
  uint32_t ReadSize(uint32_t& size) {
    using apache::thrift::protocol::TProtocolException;
    int32_t raw = 0;
    uint32_t n = readI32(raw);
    if (raw < 0) throw TProtocolException(TProtocolException::NEGATIVE_SIZE);
    if (container_limit_ && raw > container_limit_) {
      throw TProtocolException(TProtocolException::SIZE_LIMIT);
    }
    size = static_cast<uint32_t>(raw);
    return n;
  }
  uint32_t ReadCheckedString(std::string& str) {
    int32_t size = 0;
    uint32_t n = readI32(size);
    if (size > 0) trans_->checkReadBytesAvailable(size);
    return n + readStringBody(str, size);
  }
};

// Binary protocol over `transport` with Treaty's string and container limits.
inline std::shared_ptr<apache::thrift::protocol::TProtocol> LimitedBinaryProtocol(
    std::shared_ptr<apache::thrift::transport::TTransport> transport) {
  return std::make_shared<BoundedBinaryProtocol>(std::move(transport));
}

// Factory form, for servers.
class LimitedBinaryProtocolFactoryImpl : public apache::thrift::protocol::TProtocolFactory {
 public:
  std::shared_ptr<apache::thrift::protocol::TProtocol> getProtocol(
      std::shared_ptr<apache::thrift::transport::TTransport> transport) override {
    return LimitedBinaryProtocol(std::move(transport));
  }
};
inline std::shared_ptr<apache::thrift::protocol::TProtocolFactory> LimitedBinaryProtocolFactory() {
  return std::make_shared<LimitedBinaryProtocolFactoryImpl>();
}

// A frame already read into memory, as a transport with Treaty's
// TConfiguration whose "bytes left in the message" is the bytes left in the
// frame. Reads only; writes go to the frame buffer unchanged.
class FrameReader : public apache::thrift::transport::TVirtualTransport<FrameReader> {
 public:
  explicit FrameReader(std::shared_ptr<apache::thrift::transport::TMemoryBuffer> frame)
      : TVirtualTransport(ThriftConfiguration()), frame_(std::move(frame)) {
    Track();
  }

  bool isOpen() const override { return frame_->isOpen(); }
  bool peek() override { return frame_->peek(); }
  void open() override {}
  void close() override {}

  uint32_t read(uint8_t* buf, uint32_t len) {
    const uint32_t n = frame_->read(buf, len);
    Track();
    return n;
  }
  uint32_t readAll(uint8_t* buf, uint32_t len) {
    const uint32_t n = frame_->readAll(buf, len);
    Track();
    return n;
  }
  const uint8_t* borrow(uint8_t* buf, uint32_t* len) { return frame_->borrow(buf, len); }
  void consume(uint32_t len) {
    frame_->consume(len);
    Track();
  }
  uint32_t readEnd() override {
    const uint32_t n = frame_->readEnd();
    Track();
    return n;
  }
  void write(const uint8_t* buf, uint32_t len) { frame_->write(buf, len); }
  uint32_t writeEnd() override { return frame_->writeEnd(); }
  void flush() override { frame_->flush(); }

 private:
  void Track() {
    setRemainingMessageSize(
        std::min<long>(static_cast<long>(frame_->available_read()), getMaxMessageSize()));
  }

  std::shared_ptr<apache::thrift::transport::TMemoryBuffer> frame_;
};

// Input transport factory for a TNonblockingServer: wraps each connection's
// frame buffer in a FrameReader (any other transport is passed through).
class LimitedServerInputTransportFactoryImpl : public apache::thrift::transport::TTransportFactory {
 public:
  std::shared_ptr<apache::thrift::transport::TTransport> getTransport(
      std::shared_ptr<apache::thrift::transport::TTransport> transport) override {
    auto frame = std::dynamic_pointer_cast<apache::thrift::transport::TMemoryBuffer>(transport);
    if (!frame) return transport;
    return std::make_shared<FrameReader>(std::move(frame));
  }
};
inline std::shared_ptr<apache::thrift::transport::TTransportFactory>
LimitedServerInputTransportFactory() {
  return std::make_shared<LimitedServerInputTransportFactoryImpl>();
}

// Wraps a server's processor: a request that cannot be read (a limit above,
// a malformed frame) or anything else thrown out of the processor (even
// std::bad_alloc, on which TNonblockingServer would exit the process) is
// answered with a TApplicationException (PROTOCOL_ERROR) and reported to
// `refused` (may be empty) with a short reason. A generated processor lets
// exceptions out only while it reads the request, before it writes anything,
// so the answer is the only thing on the wire; the rest of the frame is
// dropped and the connection keeps serving later frames.
class GuardedProcessor : public apache::thrift::TProcessor {
 public:
  using Report = std::function<void(const std::string& reason)>;
  GuardedProcessor(std::shared_ptr<apache::thrift::TProcessor> inner, Report refused)
      : inner_(std::move(inner)), refused_(std::move(refused)) {}

  bool process(std::shared_ptr<apache::thrift::protocol::TProtocol> in,
               std::shared_ptr<apache::thrift::protocol::TProtocol> out,
               void* connection_context) override {
    std::string reason;
    try {
      return inner_->process(in, out, connection_context);
    } catch (const std::exception& e) {
      reason = e.what();
    } catch (...) {
      reason = "unknown exception";
    }
    if (refused_) refused_(reason);
    try {
      apache::thrift::TApplicationException x(apache::thrift::TApplicationException::PROTOCOL_ERROR,
                                              "request refused: " + reason.substr(0, 200));
      out->writeMessageBegin("", apache::thrift::protocol::T_EXCEPTION, 0);
      x.write(out.get());
      out->writeMessageEnd();
      out->getTransport()->writeEnd();
      out->getTransport()->flush();
    } catch (...) {
      // Nothing more to say on this connection.
    }
    return false;
  }

 private:
  std::shared_ptr<apache::thrift::TProcessor> inner_;
  Report refused_;
};

}  // namespace treaty
