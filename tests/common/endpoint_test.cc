#include "common/endpoint.h"

#include <gtest/gtest.h>

#include <string>

#include "common/limits.h"
#include "common/text.h"

namespace treaty {
namespace {

TEST(EndpointTest, AcceptsCallableUrls) {
  struct Case {
    std::string url, scheme, host;
    uint16_t port;
    std::string target;
  };
  const Case cases[] = {
      {"http://127.0.0.1:8080/flight/book", "http", "127.0.0.1", 8080, "/flight/book"},
      {"http://example.com", "http", "example.com", 80, "/"},
      {"http://example.com?x=1", "http", "example.com", 80, "/?x=1"},
      {"HTTP://Svc_1.internal:1/a%20b?q=%FF", "http", "Svc_1.internal", 1, "/a%20b?q=%FF"},
      {"http://h:65535/", "http", "h", 65535, "/"},
      {"http://[::1]:8080/x", "http", "::1", 8080, "/x"},
      {"http://[::1]/x", "http", "::1", 80, "/x"},
      {"thrift://127.0.0.1:7481", "thrift", "127.0.0.1", 7481, ""},
      {"thrift://[::1]:7481/ignored", "thrift", "::1", 7481, ""},
      {"https://pay.example.com/charge?x=1", "https", "pay.example.com", 443, "/charge?x=1"},
      {"HTTPS://127.0.0.1:8443", "https", "127.0.0.1", 8443, "/"},
      {"https://[::1]/x", "https", "::1", 443, "/x"},
      {"thrifts://svc.internal:7482", "thrifts", "svc.internal", 7482, ""},
      {"Thrifts://[::1]:7482/ignored", "thrifts", "::1", 7482, ""},
  };
  for (const Case& c : cases) {
    Result<Endpoint> ep = ParseEndpoint(c.url, "'action'");
    ASSERT_TRUE(ep.ok()) << c.url << ": " << ep.status().ToString();
    EXPECT_EQ(ep->scheme, c.scheme) << c.url;
    EXPECT_EQ(ep->host, c.host) << c.url;
    EXPECT_EQ(ep->port, c.port) << c.url;
    EXPECT_EQ(ep->target, c.target) << c.url;
    EXPECT_EQ(ep->tls(), c.scheme == "https" || c.scheme == "thrifts") << c.url;
    EXPECT_EQ(ep->http(), c.scheme == "http" || c.scheme == "https") << c.url;
  }
  EXPECT_EQ(ParseEndpoint("http://[::1]:8080/x")->Authority(), "[::1]:8080");
  EXPECT_EQ(ParseEndpoint("http://h:81/x")->Authority(), "h:81");
}

TEST(EndpointTest, RefusesUrlsThatCannotBeCalled) {
  const std::string bad[] = {
      // URLs that can never be called.
      "http://127.0.0.1:99999/a",
      "http://127.0.0.1:0/a",
      "http://127.0.0.1:abc/a",
      "http://127.0.0.1:/a",
      "http://:8080/a",
      "http:///a",
      "http://user:pw@127.0.0.1:8080/a",
      "http://user@127.0.0.1/a",
      "http://[::1",
      "http://[::1/a",
      std::string("http://127.0.0.1:8080/a\0b", 25),
      "thrift://h:abc",
      "thrift://h",
      "thrift://h:",
      // CR/LF would reach the request line.
      "http://127.0.0.1:8080/a\r\nHost: evil\r\n\r\nGET /admin",
      "http://127.0.0.1:8080/a\nb",
      "http://127.0.0.1:8080/a\rb",
      // More of the same kind.
      "http://127.0.0.1:8080/a b",
      "http://127.0.0.1:8080/a\x7F",
      "http://127.0.0.1:8080/caf\xC3\xA9",
      "http://127.0.0.1:8080/\xFF",
      "http://127.0.0.1:8080/a#frag",
      "http://127.0.0.1:8080#frag",
      "http://127.0.0.1:-1/a",
      "http://127.0.0.1:+80/a",
      "http://127.0.0.1:000080/a",
      "http://127.0.0.1:4294967377/a",  // 2^32 + 81: would wrap to 81
      "http://[::1]x/a",
      "http://[]:80/a",
      "http://[fe80::1%eth0]:80/a",
      "http://h\\x/a",
      "https://127.0.0.1:0/a",
      "https://user@127.0.0.1/a",
      "https://127.0.0.1/a#frag",
      "https://",
      "thrifts://h",
      "thrifts://h:",
      "thrifts://h:0",
      "thriftss://h:1",
      "httpss://h/a",
      "ftp://127.0.0.1/a",
      "127.0.0.1:8080/a",
      "",
      "http://",
      "http://" + std::string(300, 'h') + "/a",
      "http://h/" + std::string(limits::kMaxUrlBytes, 'a'),
  };
  for (const std::string& url : bad) {
    Result<Endpoint> ep = ParseEndpoint(url, "step 'a': 'action'");
    ASSERT_FALSE(ep.ok()) << url;
    EXPECT_EQ(ep.status().code(), StatusCode::kInvalidArgument);
    const std::string& m = ep.status().message();
    EXPECT_EQ(m.rfind("step 'a': 'action'", 0), 0u) << m;
    EXPECT_TRUE(IsValidUtf8(m)) << m;
    for (unsigned char c : m) EXPECT_FALSE(c < 0x20 || c == 0x7F) << url;
  }
}

TEST(EndpointTest, RefusalsSayWhatIsAccepted) {
  auto no_port = ParseEndpoint("thrifts://svc.internal", "'commit'");
  ASSERT_FALSE(no_port.ok());
  EXPECT_EQ(no_port.status().message(),
            "'commit' must be thrifts://host:port (the port is required)");
  auto scheme = ParseEndpoint("ftp://svc.internal/x", "'commit'");
  ASSERT_FALSE(scheme.ok());
  EXPECT_EQ(scheme.status().message(),
            "'commit' must be an http://, https://, thrift:// or thrifts:// URL");
}

TEST(EndpointTest, HostileAuthoritiesAreRefusedWithTheirRule) {
  struct Case {
    std::string url, message;
  };
  const Case cases[] = {
      {"http://[::1", "f has an unclosed '[' in its host"},
      {"http://[zz]x/a", "f has an invalid IPv6 address in its host"},
      {"http://[::1]x/a", "f has characters after its IPv6 host"},
      {"http://::1:80/a", "f has no host"},
      {"http://:80/a", "f has no host"},
      {"http://a:b:c/a", "f has an invalid port (digits only, at most 65535)"},
      {"http://host:/a", "f has an invalid port (digits only, at most 65535)"},
      {"http://h:65536/a", "f has an invalid port (at most 65535)"},
      {"http://h:99999999999/a", "f has an invalid port (digits only, at most 65535)"},
      {"http://h:0/a", "f has an invalid port (1..65535)"},
      {"thrift://h:", "f has an invalid port (digits only, at most 65535)"},
      {"thrift://[::1]", "f must be thrift://host:port (the port is required)"},
  };
  for (const Case& c : cases) {
    auto ep = ParseEndpoint(c.url, "f");
    ASSERT_FALSE(ep.ok()) << c.url;
    EXPECT_EQ(ep.status().message(), c.message) << c.url;
  }
}

TEST(HostPortTest, AcceptsListenAddresses) {
  struct Case {
    std::string text, host;
    uint16_t port;
  };
  const Case cases[] = {
      {"127.0.0.1:7480", "127.0.0.1", 7480},
      {"0.0.0.0:0", "0.0.0.0", 0},
      {"localhost:65535", "localhost", 65535},
      {"[::1]:7481", "::1", 7481},
      {"[::]:1", "::", 1},
      {"[0:0::1]:80", "::1", 80},
  };
  for (const Case& c : cases) {
    auto hp = ParseHostPort(c.text, "--http");
    ASSERT_TRUE(hp.ok()) << c.text << ": " << hp.status().ToString();
    EXPECT_EQ(hp->host, c.host) << c.text;
    EXPECT_EQ(hp->port, c.port) << c.text;
  }
}

TEST(HostPortTest, RefusesHostileListenAddressesWithoutEchoingThem) {
  struct Case {
    std::string text, message;
  };
  const Case cases[] = {
      {"127.0.0.1", "--http must be HOST:PORT (the port is missing)"},
      {"[::1]", "--http must be HOST:PORT (the port is missing)"},
      {"host:", "--http has an invalid port (digits only, at most 65535)"},
      {":80", "--http has no host"},
      {"::1:80", "--http has no host"},
      {"[::1", "--http has an unclosed '[' in its host"},
      {"[::1]80", "--http has characters after its IPv6 host"},
      {"[::1]:", "--http has an invalid port (digits only, at most 65535)"},
      {"[fe80::1%eth0]:80", "--http has an invalid IPv6 address in its host"},
      {"a:b:c", "--http has an invalid port (digits only, at most 65535)"},
      {"h:65536", "--http has an invalid port (at most 65535)"},
      {"h:4294967377", "--http has an invalid port (digits only, at most 65535)"},
      {"h:+80", "--http has an invalid port (digits only, at most 65535)"},
      {"h:-1", "--http has an invalid port (digits only, at most 65535)"},
      {"h!:80", "--http has an invalid host (letters, digits, '-', '.', '_' or [IPv6])"},
      {"http://h:80", "--http must be HOST:PORT (no scheme, path or user info)"},
      {"h:80/x", "--http must be HOST:PORT (no scheme, path or user info)"},
      {"u@h:80", "--http must be HOST:PORT (no scheme, path or user info)"},
      {"h :80", "--http must be HOST:PORT without spaces, control characters or non-ASCII bytes"},
      {std::string("h\0:80", 5),
       "--http must be HOST:PORT without spaces, control characters or non-ASCII bytes"},
      {"h:80\r\nX: y",
       "--http must be HOST:PORT without spaces, control characters or non-ASCII bytes"},
      {"h\x1b[31m:80",
       "--http must be HOST:PORT without spaces, control characters or non-ASCII bytes"},
      {"caf\xC3\xA9:80",
       "--http must be HOST:PORT without spaces, control characters or non-ASCII bytes"},
      {std::string(254, 'h') + ":80", "--http has a host name longer than 253 bytes"},
      {std::string(301, 'h') + ":80", "--http must be HOST:PORT of at most 300 bytes"},
      {"", "--http has no host"},
  };
  for (const Case& c : cases) {
    auto hp = ParseHostPort(c.text, "--http");
    ASSERT_FALSE(hp.ok()) << c.text;
    EXPECT_EQ(hp.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(hp.status().message(), c.message) << EscapeControl(c.text);
  }
}

}  // namespace
}  // namespace treaty
