// ParticipantPolicy (the SSRF guard): built-in denials (link-local and
// metadata addresses and names, the unspecified address, this coordinator's
// own listeners, in every numeric form the resolver reads), the
// --participant-allow list, and the connect-time CheckAddress.

#include "security/participant_policy.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

namespace treaty {
namespace {

namespace ip = boost::asio::ip;

std::shared_ptr<ParticipantPolicy> Policy(const std::vector<std::string>& allow = {}) {
  auto p = ParticipantPolicy::Create(allow);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : nullptr;
}

Endpoint Url(const std::string& url) {
  auto e = ParseEndpoint(url);
  EXPECT_TRUE(e.ok()) << url << ": " << e.status().ToString();
  return e.ok() ? *e : Endpoint{};
}

// The denial message for `url`, or "" when allowed.
std::string Denial(const ParticipantPolicy& p, const std::string& url) {
  Status s = p.CheckUrl(Url(url), "'action'");
  if (s.ok()) return "";
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  return s.message();
}

std::string AddressDenial(const ParticipantPolicy& p, const std::string& url,
                          const std::string& address) {
  Status s = p.CheckAddress(Url(url), ip::make_address(address));
  return s.ok() ? "" : s.message();
}

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(ParticipantPolicyTest, LinkLocalAndMetadataAreDeniedWithoutAList) {
  auto p = Policy();
  EXPECT_EQ(Denial(*p, "http://169.254.169.254/latest/meta-data"),
            "'action' (URL 169.254.169.254:80) is denied by the participant policy: cloud "
            "metadata address");
  EXPECT_TRUE(Has(Denial(*p, "http://169.254.10.1:8080/"), "link-local address"));
  EXPECT_TRUE(Has(Denial(*p, "http://[fe80::1]/x"), "(URL [fe80::1]:80)"));
  EXPECT_TRUE(Has(Denial(*p, "http://[fe80::1]/x"), "link-local address"));
  EXPECT_TRUE(Has(Denial(*p, "http://[febf::1]/x"), "link-local address"));
  EXPECT_TRUE(Has(Denial(*p, "http://[::ffff:169.254.169.254]/"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://100.100.100.200/"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://[fd00:ec2::254]/"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://metadata.google.internal/computeMetadata/v1/"),
                  "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://Metadata.Google.Internal./"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "thrift://metadata:9090"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://0.0.0.0:9000/"), "unspecified address"));
  EXPECT_TRUE(Has(Denial(*p, "http://[::]:9000/"), "unspecified address"));
  EXPECT_TRUE(Has(Denial(*p, "http://0:9000/"), "unspecified address"));
  // Numeric forms of 169.254.169.254.
  EXPECT_TRUE(Has(Denial(*p, "http://2852039166/"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://0xa9fea9fe/"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://0251.0376.0251.0376/"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://169.254.43518/"), "cloud metadata address"));

  EXPECT_EQ(Denial(*p, "http://payments.internal:8080/pay"), "");
  EXPECT_EQ(Denial(*p, "http://10.0.0.1/"), "");
  EXPECT_EQ(Denial(*p, "http://127.0.0.1:9999/"), "") << "no own listener on that port";
  EXPECT_EQ(Denial(*p, "http://169.253.255.255/"), "");
  EXPECT_EQ(Denial(*p, "http://[fec0::1]/"), "");
  EXPECT_EQ(Denial(*p, "http://08.0.0.1/"), "") << "not an address (bad octal): a name";
  EXPECT_EQ(Denial(*p, "http://1.2.3.4.5/"), "") << "five parts: a name";
}

TEST(ParticipantPolicyTest, OwnLoopbackListenerIsDeniedInEveryForm) {
  auto p = Policy();
  p->AddOwnListener("127.0.0.1", 8080);
  for (const char* url :
       {"http://127.0.0.1:8080/v1/2pc/victim/abort", "http://0x7f000001:8080/",
        "http://2130706433:8080/", "http://0177.0.0.1:8080/", "http://127.1:8080/",
        "http://127.0.0.2:8080/", "http://[::1]:8080/", "http://[::ffff:127.0.0.1]:8080/",
        "http://localhost:8080/", "http://LOCALHOST:8080/", "thrift://127.0.0.1:8080"}) {
    EXPECT_TRUE(Has(Denial(*p, url), "this coordinator's own listener")) << url;
  }
  EXPECT_EQ(Denial(*p, "http://127.0.0.1:8081/"), "");
  EXPECT_EQ(Denial(*p, "http://0x7f000001:8081/"), "");
  EXPECT_EQ(Denial(*p, "http://10.0.0.1:8080/"), "");
}

TEST(ParticipantPolicyTest, ListenerOnEveryAddressCoversLoopbackAndTheInterfaces) {
  auto p = Policy();
  p->AddOwnListener("0.0.0.0", 7000);
  EXPECT_TRUE(Has(Denial(*p, "http://127.0.0.1:7000/"), "own listener"));
  EXPECT_TRUE(Has(Denial(*p, "http://[::1]:7000/"), "own listener"));
  EXPECT_TRUE(Has(Denial(*p, "http://2130706433:7000/"), "own listener"));
  EXPECT_EQ(Denial(*p, "http://127.0.0.1:7001/"), "");
  EXPECT_EQ(Denial(*p, "http://192.0.2.1:7000/"), "") << "TEST-NET-1 is no address of ours";

  ifaddrs* list = nullptr;
  ASSERT_EQ(getifaddrs(&list), 0);
  int checked = 0;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    ip::address_v4 a(ntohl(sin->sin_addr.s_addr));
    EXPECT_TRUE(Has(AddressDenial(*p, "http://svc:7000/", a.to_string()), "own listener")) << a;
    EXPECT_EQ(AddressDenial(*p, "http://svc:7001/", a.to_string()), "") << a;
    ++checked;
  }
  freeifaddrs(list);
  EXPECT_GT(checked, 0);

  auto v6 = Policy();
  v6->AddOwnListener("::", 7002);
  EXPECT_TRUE(Has(Denial(*v6, "http://127.0.0.1:7002/"), "own listener"));
  EXPECT_TRUE(Has(Denial(*v6, "http://[::1]:7002/"), "own listener"));
}

TEST(ParticipantPolicyTest, ListenerOnOneAddressCoversThatAddressOnly) {
  auto p = Policy();
  p->AddOwnListener("192.0.2.10", 7100);
  EXPECT_TRUE(Has(Denial(*p, "http://192.0.2.10:7100/"), "own listener"));
  EXPECT_TRUE(Has(Denial(*p, "http://[::ffff:192.0.2.10]:7100/"), "own listener"));
  EXPECT_EQ(Denial(*p, "http://192.0.2.11:7100/"), "");
  EXPECT_EQ(Denial(*p, "http://127.0.0.1:7100/"), "");
  EXPECT_EQ(Denial(*p, "http://192.0.2.10:7101/"), "");
}

TEST(ParticipantPolicyTest, CheckAddressJudgesWhatANameResolvedTo) {
  auto p = Policy();
  p->AddOwnListener("127.0.0.1", 8080);
  EXPECT_EQ(AddressDenial(*p, "http://rebind.example:8080/", "127.0.0.1"),
            "participant address 127.0.0.1:8080 is denied by the participant policy (this "
            "coordinator's own listener)");
  EXPECT_TRUE(Has(AddressDenial(*p, "http://rebind.example:8080/", "::1"), "[::1]:8080"));
  EXPECT_TRUE(
      Has(AddressDenial(*p, "http://x.example/", "169.254.169.254"), "cloud metadata address"));
  EXPECT_TRUE(Has(AddressDenial(*p, "http://x.example/", "::ffff:169.254.169.254"),
                  "cloud metadata address"));
  EXPECT_TRUE(Has(AddressDenial(*p, "http://x.example/", "fe80::1"), "link-local"));
  EXPECT_TRUE(Has(AddressDenial(*p, "http://x.example/", "0.0.0.0"), "unspecified"));
  EXPECT_EQ(AddressDenial(*p, "http://x.example:8080/", "10.1.2.3"), "");
  EXPECT_EQ(AddressDenial(*p, "http://x.example:8081/", "127.0.0.1"), "");
}

TEST(ParticipantPolicyTest, AllowListOfNames) {
  auto p = Policy({"api.example.com", "*.svc.cluster.local:8443"});
  EXPECT_EQ(Denial(*p, "http://api.example.com/x"), "");
  EXPECT_EQ(Denial(*p, "http://API.Example.com:81/x"), "") << "case-insensitive, any port";
  EXPECT_EQ(Denial(*p, "http://pay.svc.cluster.local:8443/"), "");
  EXPECT_EQ(Denial(*p, "http://a.b.svc.cluster.local:8443/"), "");
  EXPECT_TRUE(Has(Denial(*p, "http://pay.svc.cluster.local:8080/"), "not in --participant-allow"));
  EXPECT_TRUE(Has(Denial(*p, "http://svc.cluster.local:8443/"), "not in --participant-allow"))
      << "*.SUFFIX does not match SUFFIX itself";
  EXPECT_TRUE(Has(Denial(*p, "http://evilsvc.cluster.local:8443/"), "not in --participant-allow"));
  EXPECT_TRUE(Has(Denial(*p, "http://api.example.com.evil.net/"), "not in --participant-allow"));
  EXPECT_TRUE(Has(Denial(*p, "http://10.0.0.1/"), "not in --participant-allow"))
      << "a literal needs an IP or CIDR entry";
  // At connect time a name entry vouches for what it resolved to...
  EXPECT_EQ(AddressDenial(*p, "http://api.example.com/", "10.9.9.9"), "");
  EXPECT_TRUE(Has(AddressDenial(*p, "http://evil.example/", "10.9.9.9"), "--participant-allow"));
  // ...but never for a built-in denial.
  EXPECT_TRUE(Has(AddressDenial(*p, "http://api.example.com/", "169.254.169.254"), "metadata"));
}

TEST(ParticipantPolicyTest, AllowListOfAddressesAndCidrs) {
  auto p = Policy({"10.0.0.0/8", "192.168.1.5:9000", "[fd00::/8]:8443", "2001:db8::1"});
  EXPECT_EQ(Denial(*p, "http://10.2.3.4:1234/"), "");
  EXPECT_EQ(Denial(*p, "http://[::ffff:10.1.1.1]/"), "");
  EXPECT_EQ(Denial(*p, "http://0x0a000001/"), "") << "10.0.0.1";
  EXPECT_TRUE(Has(Denial(*p, "http://11.0.0.1/"), "not in --participant-allow"));
  EXPECT_EQ(Denial(*p, "http://192.168.1.5:9000/"), "");
  EXPECT_TRUE(Has(Denial(*p, "http://192.168.1.5:9001/"), "not in --participant-allow"));
  EXPECT_TRUE(Has(Denial(*p, "http://192.168.1.6:9000/"), "not in --participant-allow"));
  EXPECT_EQ(Denial(*p, "http://[fd12::1]:8443/"), "");
  EXPECT_TRUE(Has(Denial(*p, "http://[fd12::1]:80/"), "not in --participant-allow"));
  EXPECT_EQ(Denial(*p, "http://[2001:db8::1]:5/"), "");
  EXPECT_TRUE(Has(Denial(*p, "http://[2001:db8::2]/"), "not in --participant-allow"));
  // A name is judged by its addresses at connect time.
  EXPECT_EQ(Denial(*p, "http://svc.example/"), "");
  EXPECT_EQ(AddressDenial(*p, "http://svc.example/", "10.1.1.1"), "");
  EXPECT_TRUE(Has(AddressDenial(*p, "http://svc.example/", "8.8.8.8"), "--participant-allow"));
}

TEST(ParticipantPolicyTest, TheListNeverOverridesBuiltInDenials) {
  auto p = Policy({"metadata.google.internal", "169.254.0.0/16", "127.0.0.0/8"});
  p->AddOwnListener("127.0.0.1", 8080);
  EXPECT_TRUE(Has(Denial(*p, "http://metadata.google.internal/"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://169.254.169.254/"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://169.254.1.1/"), "link-local address"));
  EXPECT_TRUE(Has(Denial(*p, "http://127.0.0.1:8080/"), "own listener"));
  EXPECT_EQ(Denial(*p, "http://127.0.0.1:8081/"), "");
}

// The resolver reads a host with one trailing dot as the host without it,
// so literals and names are judged without it.
TEST(ParticipantPolicyTest, ATrailingDotChangesNothing) {
  auto p = Policy();
  p->AddOwnListener("127.0.0.1", 8080);
  EXPECT_TRUE(Has(Denial(*p, "http://169.254.169.254.:80/"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://169.254.10.1./"), "link-local address"));
  EXPECT_TRUE(Has(Denial(*p, "http://127.0.0.1.:8080/x"), "this coordinator's own listener"));
  EXPECT_TRUE(Has(Denial(*p, "http://0x7f000001.:8080/x"), "this coordinator's own listener"));
  EXPECT_TRUE(Has(Denial(*p, "http://[::ffff:169.254.169.254]/"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://METADATA.google.internal./"), "cloud metadata address"));
  EXPECT_TRUE(Has(Denial(*p, "http://localhost.:8080/"), "this coordinator's own listener"));
  EXPECT_EQ(Denial(*p, "http://127.0.0.1.:8081/x"), "");

  // With a list: a literal with a dot is judged by the IP and CIDR entries
  // only, never by a name entry.
  auto listed = Policy({"*.0.1", "10.0.0.0/8"});
  EXPECT_TRUE(Has(Denial(*listed, "http://127.0.0.1./"), "not in --participant-allow"));
  EXPECT_EQ(Denial(*listed, "http://10.1.2.3./"), "");
  EXPECT_TRUE(
      Has(AddressDenial(*listed, "http://127.0.0.1./", "127.0.0.1"), "not in --participant-allow"));
  EXPECT_TRUE(Has(AddressDenial(*p, "http://metadata./", "10.1.2.3"), "cloud metadata address"));
}

TEST(ParticipantPolicyTest, BadEntriesAreRefusedNamingThem) {
  for (const char* entry :
       {"", "*", "10.0.0.0/33", "[fd00::/8", "[fd00::1]x", "host:0", "host:70000", "host:", "ho st",
        "http://x", "*.", "10.0.0.0/x", "[example.com]:80"}) {
    auto p = ParticipantPolicy::Create({"good.example", entry});
    ASSERT_FALSE(p.ok()) << entry;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Has(p.status().message(), "--participant-allow: entry 2")) << p.status().message();
  }
  auto ctl = ParticipantPolicy::Create({"evil\x1b[31m.example"});
  ASSERT_FALSE(ctl.ok());
  EXPECT_FALSE(Has(ctl.status().message(), "\x1b")) << "control bytes are escaped";
}

}  // namespace
}  // namespace treaty
