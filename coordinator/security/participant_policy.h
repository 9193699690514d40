#pragma once

// ParticipantPolicy: which participant addresses this coordinator may call
// (docs/security.md "Participant allow-list"; the SSRF guard).
//
// Always denied, with or without a list:
//   - link-local addresses: 169.254.0.0/16, fe80::/10 (this includes the
//     cloud metadata service 169.254.169.254);
//   - other well-known metadata addresses: fd00:ec2::254, 100.100.100.200,
//     and the names metadata.google.internal, metadata, instance-data,
//     instance-data.ec2.internal;
//   - the coordinator's own listeners (AddOwnListener): its HTTP and Thrift
//     ports on any of its own addresses (a listener on 0.0.0.0 or :: is
//     reached through every local address, loopback included), so a saga
//     cannot make the coordinator call its own API (confused deputy);
//   - the unspecified addresses 0.0.0.0/8 and :: (a connect to them reaches
//     this host).
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are judged as the IPv4
// address they carry, everywhere (denials, own listeners, the list). A URL's
// host is judged without one trailing dot, as the resolver reads it
// ("169.254.169.254." is that literal, "metadata.google.internal." that name).
// With --participant-allow LIST (comma-separated entries), an address must
// also match an entry:
//   HOST[:PORT]         a DNS name, exact, case-insensitive
//   *.SUFFIX[:PORT]     any name ending in .SUFFIX (not SUFFIX itself)
//   IP[:PORT]           an IPv4 or bracketed IPv6 literal
//   CIDR[:PORT]         e.g. 10.0.0.0/8, [fd00::/8]:8443
// without a PORT any port matches. Names are matched at submission against
// the URL's host; at connect time every resolved address must match an IP or
// CIDR entry, or have been reached through a name entry that matched. (So a
// name no name entry matches passes submission only when an IP or CIDR
// entry could match its port; its addresses decide at connect time.)
//
// Two checks:
//   CheckUrl      at submission (sagas, 2PC enlistment): the URL's host as
//                 written. A literal IP is judged as an address; numeric
//                 forms like 0x7f000001, 2130706433, 0177.0.0.1 or 127.1 are
//                 parsed as IPv4 the way inet_aton (and so the resolver)
//                 reads them. A host name meets only the name rules (the
//                 metadata names, the list's names; "localhost" and
//                 *.localhost count as the loopback addresses for the
//                 own-listener rule); its addresses are judged at connect
//                 time. On denial InvalidArgument (the REST answer is a 400):
//                   FIELD (URL HOST:PORT) is denied by the participant policy: RULE
//   CheckAddress  at connect time, for each address the name resolved to;
//                 a denied address is never connected to. On denial
//                 InvalidArgument:
//                   participant address ADDRESS:PORT is denied by the participant policy (RULE)
// RULE is one of "link-local address", "cloud metadata address",
// "unspecified address", "this coordinator's own listener", "not in
// --participant-allow". Messages escape control bytes.
// Thread-safe once built; AddOwnListener may be called while others check.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "common/endpoint.h"
#include "treaty/status.h"

namespace treaty {

class ParticipantPolicy {
 public:
  // `allow`: the --participant-allow entries (empty: no list, only the
  // built-in denials). InvalidArgument naming the bad entry.
  static Result<std::shared_ptr<ParticipantPolicy>> Create(const std::vector<std::string>& allow);

  // A listener of this coordinator on `port`: "0.0.0.0" / "::" mean every
  // local address (any loopback address, the unspecified address and every
  // address of this machine's interfaces, read at check time); a loopback
  // address means all of 127.0.0.0/8 and ::1; another literal, itself. A
  // host name is resolved now (blocks on DNS) and its addresses are added.
  void AddOwnListener(const std::string& host, uint16_t port);

  Status CheckUrl(const Endpoint& url, std::string_view field) const;
  Status CheckAddress(const Endpoint& url, const boost::asio::ip::address& address) const;

  ~ParticipantPolicy();

 private:
  struct Impl;
  explicit ParticipantPolicy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty
