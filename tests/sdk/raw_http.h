#pragma once

// A deliberately dumb HTTP/1.1 client for input-hygiene tests: sends the
// given bytes unchanged (invalid UTF-8, control bytes, lying lengths) over a
// fresh loopback connection, half-closes, and reads what comes back until
// the server closes. No dependency on the SDK or the coordinator.

#include <cstdint>
#include <map>
#include <string>

namespace treaty::testing {

struct RawResponse {
  bool connected = false;  // the TCP connection was made
  bool answered = false;   // at least one byte came back
  // Every byte received forms whole responses: "HTTP/1.x NNN ...", headers,
  // CRLFCRLF, a body of exactly Content-Length bytes (several when the
  // request bytes held several requests).
  bool well_formed = false;
  int responses = 0;                           // how many
  int status = 0;                              // of the first response
  std::map<std::string, std::string> headers;  // of the first response; lower-case names
  std::string body;                            // of the first response
  std::string raw;                             // every byte received
  bool timed_out = false;                      // no close within the guard time (a hang: a bug)
};

// Sends `request` to 127.0.0.1:`port`, shuts down the sending side, reads
// until EOF (at most `guard_ms` overall, a guard against hangs only).
RawResponse RawExchange(uint16_t port, const std::string& request, int guard_ms = 20000);

// "POST {path} HTTP/1.1" with Host, Content-Length and `headers` (written
// as given: names and values may hold any bytes), then `body`.
std::string RawPost(const std::string& path, const std::string& body,
                    const std::map<std::string, std::string>& headers = {});

}  // namespace treaty::testing
