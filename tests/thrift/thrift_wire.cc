#include "thrift/thrift_wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include <nlohmann/json.hpp>

#include "http/http_client.h"

namespace treaty::testing {

ThriftWriter& ThriftWriter::I8(uint8_t v) {
  bytes_.push_back(static_cast<char>(v));
  return *this;
}

ThriftWriter& ThriftWriter::I16(int16_t v) {
  const auto u = static_cast<uint16_t>(v);
  I8(static_cast<uint8_t>(u >> 8));
  return I8(static_cast<uint8_t>(u));
}

ThriftWriter& ThriftWriter::I32(int32_t v) {
  const auto u = static_cast<uint32_t>(v);
  for (int shift = 24; shift >= 0; shift -= 8) I8(static_cast<uint8_t>(u >> shift));
  return *this;
}

ThriftWriter& ThriftWriter::I64(int64_t v) {
  const auto u = static_cast<uint64_t>(v);
  for (int shift = 56; shift >= 0; shift -= 8) I8(static_cast<uint8_t>(u >> shift));
  return *this;
}

ThriftWriter& ThriftWriter::String(const std::string& s) {
  I32(static_cast<int32_t>(s.size()));
  bytes_ += s;
  return *this;
}

ThriftWriter& ThriftWriter::Field(uint8_t type, int16_t id) {
  I8(type);
  return I16(id);
}

ThriftWriter& ThriftWriter::ListBegin(uint8_t elem_type, int32_t size) {
  I8(elem_type);
  return I32(size);
}

ThriftWriter& ThriftWriter::MessageBegin(const std::string& name, uint8_t type, int32_t seqid) {
  I32(static_cast<int32_t>(0x80010000u | type));
  String(name);
  return I32(seqid);
}

ThriftWriter& ThriftWriter::Raw(const std::string& bytes) {
  bytes_ += bytes;
  return *this;
}

std::string Frame(const std::string& body) {
  ThriftWriter w;
  w.I32(static_cast<int32_t>(body.size()));
  return w.bytes() + body;
}

int WireReply::message_type() const {
  if (frame.size() < 4) return 0;
  const auto b0 = static_cast<uint8_t>(frame[0]);
  if (b0 & 0x80) return static_cast<uint8_t>(frame[3]) & 0x07;  // strict header
  return 0;
}

WireReply SendRaw(int port, const std::string& bytes, int timeout_ms, bool half_close) {
  WireReply r;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return r;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return r;
  }
  r.connected = true;
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early: read what it said
    sent += static_cast<size_t>(n);
  }
  if (half_close) ::shutdown(fd, SHUT_WR);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string in;
  for (;;) {
    if (in.size() >= 4) {
      const uint32_t len = (static_cast<uint32_t>(static_cast<uint8_t>(in[0])) << 24) |
                           (static_cast<uint32_t>(static_cast<uint8_t>(in[1])) << 16) |
                           (static_cast<uint32_t>(static_cast<uint8_t>(in[2])) << 8) |
                           static_cast<uint32_t>(static_cast<uint8_t>(in[3]));
      if (in.size() >= 4 + static_cast<size_t>(len)) {
        r.frame = in.substr(4, len);
        break;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      r.timed_out = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      r.closed = true;
      break;
    }
    in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return r;
}

int64_t ResidentKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

int ThriftPortOf(const std::string& http_url, const std::string& http_addr) {
  auto r = HttpFetch("GET", http_url + "/v1/cluster", "", {}, 5000);
  if (!r.ok() || r->status != 200) return 0;
  auto doc = nlohmann::json::parse(r->body, nullptr, false);
  if (doc.is_discarded() || !doc.contains("coordinators")) return 0;
  for (const auto& c : doc["coordinators"]) {
    if (c.value("http", "") != http_addr) continue;
    const std::string thrift = c.value("thrift", "");
    const auto colon = thrift.rfind(':');
    if (colon == std::string::npos) return 0;
    return std::atoi(thrift.c_str() + colon + 1);
  }
  return 0;
}

}  // namespace treaty::testing
