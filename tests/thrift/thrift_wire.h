#pragma once

// Raw Thrift on the wire for the input-limit and fuzz tests: builds
// binary-protocol messages byte by byte (so a test can declare a list of
// 2^31-1 elements in 39 bytes), sends them on a fresh loopback connection
// and reads what comes back, and measures a process's resident memory.
//
// Stateless helpers, thread-safe; ThriftWriter has one owner.

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace treaty::testing {

// Thrift type codes of the binary protocol.
namespace ttype {
inline constexpr uint8_t kStop = 0, kBool = 2, kByte = 3, kI32 = 8, kI64 = 10, kString = 11,
                         kStruct = 12, kMap = 13, kSet = 14, kList = 15;
}

// Appends big-endian binary-protocol values to bytes().
class ThriftWriter {
 public:
  ThriftWriter& I8(uint8_t v);
  ThriftWriter& I16(int16_t v);
  ThriftWriter& I32(int32_t v);
  ThriftWriter& I64(int64_t v);
  // Length-prefixed bytes, sent as given (any bytes, ill-formed UTF-8 too).
  ThriftWriter& String(const std::string& s);
  ThriftWriter& Field(uint8_t type, int16_t id);
  ThriftWriter& Stop() { return I8(ttype::kStop); }
  ThriftWriter& ListBegin(uint8_t elem_type, int32_t size);
  // Strict message header: version 1, `type` (1 call, 3 exception), name, seqid.
  ThriftWriter& MessageBegin(const std::string& name, uint8_t type = 1, int32_t seqid = 1);
  ThriftWriter& Raw(const std::string& bytes);
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// `body` with its 4-byte big-endian length in front (TFramedTransport).
std::string Frame(const std::string& body);

// What came back on one connection.
struct WireReply {
  bool connected = false;
  bool closed = false;     // the server closed the connection
  bool timed_out = false;  // nothing decisive within the time limit
  std::string frame;       // the first complete reply frame's body, if any
  // Message type of `frame` (1 call, 2 reply, 3 exception, 4 oneway), or 0.
  int message_type() const;
};

// Connects to 127.0.0.1:`port`, writes `bytes` (then half-closes when
// `half_close`, so a server waiting for the rest of a frame sees the end),
// and reads until one whole reply frame arrived, the server closed, or
// `timeout_ms` passed.
WireReply SendRaw(int port, const std::string& bytes, int timeout_ms, bool half_close = false);

// Resident memory of `pid` in KiB (VmRSS of /proc/<pid>/status); -1 if unknown.
int64_t ResidentKib(pid_t pid);

// The Thrift port treatyd at `http_url` announces for itself in
// GET /v1/cluster (the coordinator whose "http" is `http_addr`); 0 if none.
int ThriftPortOf(const std::string& http_url, const std::string& http_addr);

}  // namespace treaty::testing
