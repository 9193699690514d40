#include "sdk/raw_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>

namespace treaty::testing {

namespace {

// Parses the response starting at raw[*pos] (status line, headers, a body
// of Content-Length bytes); false if it is not one. Fills r for the first.
bool ParseOne(RawResponse* r, size_t* pos) {
  const std::string& s = r->raw;
  size_t end = s.find("\r\n\r\n", *pos);
  if (end == std::string::npos) return false;
  size_t line_end = s.find("\r\n", *pos);
  const std::string status_line = s.substr(*pos, line_end - *pos);
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) return false;
  if (status_line[8] != ' ') return false;
  for (int i = 9; i < 12; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(status_line[i]))) return false;
  }
  const int status = std::atoi(status_line.substr(9, 3).c_str());
  if (status < 100 || status > 599) return false;
  std::map<std::string, std::string> headers;
  for (size_t p = line_end + 2; p < end;) {
    size_t eol = s.find("\r\n", p);
    std::string line = s.substr(p, eol - p);
    size_t colon = line.find(':');
    if (colon == std::string::npos) return false;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    headers[name] = value;
    p = eol + 2;
  }
  auto cl = headers.find("content-length");
  if (cl == headers.end() || cl->second.empty() || cl->second.size() > 9) return false;
  for (char c : cl->second) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  const size_t length = std::stoul(cl->second);
  if (end + 4 + length > s.size()) return false;
  if (r->status == 0) {
    r->status = status;
    r->headers = std::move(headers);
    r->body = s.substr(end + 4, length);
  }
  *pos = end + 4 + length;
  return true;
}

// Every byte of r->raw must belong to a well-formed response.
void Parse(RawResponse* r) {
  size_t pos = 0;
  while (pos < r->raw.size()) {
    if (!ParseOne(r, &pos)) return;
    r->responses++;
  }
  r->well_formed = r->responses > 0;
}

}  // namespace

RawResponse RawExchange(uint16_t port, const std::string& request, int guard_ms) {
  RawResponse r;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return r;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return r;
  }
  r.connected = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(guard_ms);
  auto left_ms = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(0, left.count()));
  };
  // Send and read interleaved: the server may answer (413) and stop reading
  // long before the request is all sent.
  size_t sent = 0;
  bool write_open = true;
  char buf[16384];
  while (true) {
    if (write_open && sent == request.size()) {
      ::shutdown(fd, SHUT_WR);
      write_open = false;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    int ms = left_ms();
    if (ms == 0) {
      r.timed_out = true;
      break;
    }
    if (::poll(&p, 1, ms) <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;  // EOF or reset: the server is done with us
      r.raw.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (write_open && (p.revents & POLLOUT)) {
      ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0) {
        write_open = false;  // the server closed its side; read what it said
      } else {
        sent += static_cast<size_t>(n);
      }
    }
  }
  ::close(fd);
  r.answered = !r.raw.empty();
  Parse(&r);
  return r;
}

std::string RawPost(const std::string& path, const std::string& body,
                    const std::map<std::string, std::string>& headers) {
  std::string out = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  out += "Content-Type: application/json\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
  out += "\r\n" + body;
  return out;
}

}  // namespace treaty::testing
