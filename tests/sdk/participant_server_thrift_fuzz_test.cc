// Deterministic fuzz of the SDK's Thrift ParticipantService
// (docs/input-rules.md): fixed seeds, a few thousand call frames against a
// real in-process ParticipantServer's Thrift port, each sent as raw bytes on
// a fresh loopback connection (half-closed after sending). Every frame starts
// as a call serialized by the generated client, with gtid, branch, op,
// payload, idempotency key and traceparent drawn from valid values and from
// hostile ones (ill-formed UTF-8, NUL, control bytes, '/', "..", too long,
// deep or broken payload JSON); most frames are then mutated: bytes flipped,
// hostile 32-bit values written over what may be a length, truncated, bytes
// inserted, lying frame lengths, random tails, fields declaring huge strings
// and containers, deeply nested structs, frames over the 16 MiB limit.
//
// Properties checked:
//   - the server stays up (it runs in this process: a crash fails the test)
//     and every connection is answered or closed;
//   - every reply frame parses as a whole Thrift message: a ParticipantReply
//     with a known outcome, or a TApplicationException;
//   - no handler is invoked with a gtid / branch / op that breaks the
//     identifier rules, with another method's op, an idempotency key other
//     than "{gtid}/{branch}/{op}", or a payload the depth-limited parser
//     refuses;
//   - memory does not balloon (live heap under ASan, else VmRSS and its
//     peak VmHWM: growth under 64 MiB);
//   - afterwards valid calls through the generated client still succeed.

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "ParticipantService.h"
#include "common/json_input.h"
#include "common/text.h"
#include "thrift/thrift_wire.h"
#include "treaty/participant_server.h"

#if defined(__SANITIZE_ADDRESS__)
#define TREATY_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TREATY_FUZZ_ASAN 1
#endif
#endif
#ifdef TREATY_FUZZ_ASAN
// From <sanitizer/allocator_interface.h>, which GCC does not install: bytes
// the program has allocated and not yet freed (quarantine excluded).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace treaty::testing {
namespace {

namespace at = apache::thrift;
namespace sdk = treaty::sdk;

constexpr uint64_t kSeeds[] = {7, 20240611, 0x7417F7};
constexpr int kDefaultCasesPerSeed = 1000;
constexpr int64_t kMaxGrowthKib = 64 * 1024;
const std::vector<std::string> kMethods = {"action", "compensate", "prepare", "commit", "abort"};

// Cases per seed: TREATY_FUZZ_CASES if set (> 0, for longer runs by hand),
// else kDefaultCasesPerSeed.
int CasesPerSeed() {
  const char* env = std::getenv("TREATY_FUZZ_CASES");
  const int n = env ? std::atoi(env) : 0;
  return n > 0 ? n : kDefaultCasesPerSeed;
}

// Memory that a balloon would show, in KiB: under AddressSanitizer the live
// heap (its quarantine keeps freed memory resident, so RSS says little);
// otherwise the process's VmRSS or, with `peak`, VmHWM.
int64_t MemoryKib(bool peak) {
#ifdef TREATY_FUZZ_ASAN
  (void)peak;
  return static_cast<int64_t>(__sanitizer_get_current_allocated_bytes() / 1024);
#else
  if (!peak) return ResidentKib(::getpid());
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
#endif
}

// The message (without frame) the generated client sends for `method`; for
// a method the service lacks, an action call under that name.
std::string Serialize(const std::string& method, const rpc::ParticipantCall& call) {
  auto buffer = std::make_shared<at::transport::TMemoryBuffer>();
  rpc::ParticipantServiceClient client(std::make_shared<at::protocol::TBinaryProtocol>(buffer));
  if (method == "action") client.send_action(call);
  if (method == "compensate") client.send_compensate(call);
  if (method == "prepare") client.send_prepare(call);
  if (method == "commit") client.send_commit(call);
  if (method == "abort") client.send_abort(call);
  if (buffer->available_read() == 0) {  // no such method: an action call renamed
    client.send_action(call);
    const std::string action = buffer->getBufferAsString();
    const size_t header = 4 + 4 + std::string("action").size() + 4;
    return ThriftWriter().MessageBegin(method, 1, 0).bytes() + action.substr(header);
  }
  return buffer->getBufferAsString();
}

// One generated frame; `kind` names the mutation for failure reports.
struct FuzzCase {
  std::string bytes;
  std::string kind;
};

class Generator {
 public:
  Generator(uint64_t seed, int index) : rng_(seed * 0x9E3779B97F4A7C15ull + index) {}

  FuzzCase Next() {
    // Half the calls start clean (a registered branch, one of its methods,
    // identifiers, JSON payload) so that the fuzz reaches the handlers; in
    // the others any field may be hostile.
    static const std::vector<std::pair<std::string, std::vector<std::string>>> kBranches = {
        {"flight", {"action", "compensate"}},
        {"hotel", {"action", "compensate"}},
        {"rm", {"prepare", "commit", "abort"}}};
    const bool clean = Pick(2);
    const auto& [branch, ops] = kBranches[Pick(kBranches.size())];
    std::string method = clean || Pick(3) ? ops[Pick(ops.size())] : kMethods[Pick(kMethods.size())];
    if (!clean && Pick(8) == 0) method = Nasty();
    rpc::ParticipantCall call;
    call.gtid = clean || Pick(2) ? "g-" + std::to_string(Pick(1000)) : Identifier();
    call.branch = clean || Pick(2) ? branch : Identifier();
    call.op = clean || Pick(2) ? method : Identifier();
    call.payload = clean ? Json(0) : Payload();
    switch (Pick(4)) {
      case 0:
        break;  // no key: the server derives it
      case 1:
        if (!clean) {
          call.idempotency_key = Identifier();
          break;
        }
        [[fallthrough]];
      default:
        call.idempotency_key = call.gtid + "/" + call.branch + "/" + method;
    }
    if (Pick(3) == 0) {
      call.traceparent =
          clean || Pick(2) ? "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" : Nasty();
    }
    if (Pick(5) == 0) call.__set_one_phase(Pick(2) == 1);
    std::string msg = Serialize(method, call);
    // Where the ParticipantCall struct's fields begin: after the message
    // header (version, name, seqid) and the args' field header.
    const size_t call_start = 4 + 4 + method.size() + 4 + 3;
    FuzzCase c;
    if (Pick(3) == 0) {
      c.kind = "valid-frame";
      c.bytes = Frame(msg);
      return c;
    }
    c.bytes = Mutate(std::move(msg), call_start, &c.kind);
    return c;
  }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  std::string RandomBytes(size_t max_len) {
    std::string s(Pick(max_len + 1), '\0');
    for (char& ch : s) ch = static_cast<char>(Pick(256));
    return s;
  }

  // Bytes that break the identifier rules or UTF-8.
  std::string Nasty() {
    static const std::vector<std::string> kNasty = {"\xff",
                                                    "\xc0\xaf",
                                                    "\xed\xa0\x80",
                                                    "\xf4\x90\x80\x80",
                                                    "\xe2\x82",
                                                    "\xc2\x85",
                                                    "\x01",
                                                    "\x7f",
                                                    "\x1b[31m",
                                                    " ",
                                                    "/",
                                                    "?",
                                                    "#",
                                                    "%",
                                                    "\\",
                                                    ".",
                                                    "..",
                                                    "\t",
                                                    "\r\nX: 1",
                                                    "\xe2\x80\xae",
                                                    std::string("\0", 1),
                                                    std::string("a\0b", 3),
                                                    "\xc3\xa9"};
    std::string s;
    for (size_t i = 0, n = 1 + Pick(3); i < n; ++i) {
      s += Pick(3) ? kNasty[Pick(kNasty.size())] : RandomBytes(6);
    }
    return s;
  }

  std::string Identifier() {
    switch (Pick(6)) {
      case 0:
        return "";
      case 1:
        return std::string(129 + Pick(300), 'y');
      case 2:
        return std::string(128, 'x');  // the longest valid one
      default:
        return Nasty();
    }
  }

  std::string Json(int depth) {
    if (depth > 3) return Pick(2) ? "1" : "\"s\"";
    switch (Pick(8)) {
      case 0:
        return "null";
      case 1:
        return std::to_string(static_cast<int64_t>(rng_()));
      case 2:
        return "\"str\\u00e9\"";
      case 3:
        return "[" + Json(depth + 1) + "," + Json(depth + 1) + "]";
      case 4:
        return "1e400";
      default:
        return "{\"k\":" + Json(depth + 1) + "}";
    }
  }

  std::string Deep() {
    static const std::vector<size_t> kDepths = {63, 64, 65, 1000, 100000};
    const size_t n = kDepths[Pick(kDepths.size())];
    if (Pick(2)) return std::string(n, '[') + std::string(n, ']');
    std::string s;
    for (size_t i = 0; i < n; ++i) s += "{\"a\":";
    return s + "1" + std::string(n, '}');
  }

  std::string Payload() {
    switch (Pick(10)) {
      case 0:
        return "";
      case 1:
        return Deep();
      case 2:
        return "{\"s\":\"" + Nasty() + "\"}";  // raw bytes inside a JSON string
      case 3:
        return "{\"s\":\"\\u0000\\ud800\"}";
      case 4:
        return RandomBytes(40);
      case 5: {  // valid JSON, cut
        std::string s = Json(0);
        return s.substr(0, Pick(s.size() + 1));
      }
      default:
        return Json(0);
    }
  }

  std::string Mutate(std::string msg, size_t call_start, std::string* kind) {
    static const std::vector<int32_t> kHostile = {
        INT32_MAX, INT32_MIN, -1, 0, 1 << 24, 4'000'000, 65536, 1 << 20, 0x7fff0000, 255};
    auto pos = [&] { return Pick(msg.size()); };
    switch (Pick(11)) {
      case 0:
      case 1: {
        *kind = "flip";
        for (size_t i = 0, n = 1 + Pick(4); i < n; ++i)
          msg[pos()] ^= static_cast<char>(1 + Pick(255));
        return Frame(msg);
      }
      case 2: {
        *kind = "hostile-int";
        const size_t at = std::min(pos(), msg.size() - 4);
        msg.replace(at, 4, ThriftWriter().I32(kHostile[Pick(kHostile.size())]).bytes());
        return Frame(msg);
      }
      case 3:
        *kind = "truncate";
        return Frame(msg.substr(0, pos()));
      case 4:
        *kind = "insert";
        msg.insert(pos(), RandomBytes(16));
        return Frame(msg);
      case 5: {
        *kind = "frame-length";
        const int64_t lie = static_cast<int64_t>(msg.size()) + static_cast<int64_t>(Pick(17)) - 8;
        return ThriftWriter().I32(static_cast<int32_t>(lie)).bytes() + msg;
      }
      case 6:
        *kind = "random-tail";
        return Frame(msg.substr(0, pos()) + RandomBytes(64));
      case 7: {  // an unknown field declaring a huge string or container
        *kind = "huge-declared";
        ThriftWriter w;
        switch (Pick(4)) {
          case 0:
            w.Field(ttype::kString, 90).I32(kHostile[Pick(kHostile.size())]);
            break;
          case 1:
            w.Field(ttype::kList, 91)
                .ListBegin(Pick(2) ? ttype::kStruct : ttype::kString, INT32_MAX);
            break;
          case 2:
            w.Field(ttype::kSet, 92).ListBegin(ttype::kI64, 4'000'000);
            break;
          default:
            w.Field(ttype::kMap, 93).I8(ttype::kString).I8(ttype::kStruct).I32(INT32_MAX);
        }
        msg.insert(call_start, w.bytes());
        return Frame(Pick(2) ? msg : msg.substr(0, call_start + w.bytes().size()));
      }
      case 8: {  // an unknown field nesting structs or lists deep
        *kind = "deep-nesting";
        ThriftWriter w;
        const int depth = static_cast<int>(std::vector<size_t>{63, 64, 65, 200, 10000}[Pick(5)]);
        const bool lists = Pick(2);
        w.Field(lists ? ttype::kList : ttype::kStruct, 94);
        for (int i = 0; i < depth; ++i) {
          if (lists)
            w.ListBegin(ttype::kList, 1);
          else
            w.Field(ttype::kStruct, 1);
        }
        msg.insert(call_start, w.bytes());
        return Frame(msg);
      }
      case 9: {  // a frame over the 16 MiB limit, or negative
        *kind = "oversized-frame";
        const int32_t len = Pick(2) ? (16 << 20) + 1 + static_cast<int32_t>(Pick(1000)) : INT32_MIN;
        return ThriftWriter().I32(len).bytes() + msg;
      }
      default:
        *kind = "random";
        return RandomBytes(64);
    }
  }

  std::mt19937_64 rng_;
};

// Valid UTF-8 without control bytes.
bool IsCleanText(const std::string& s) {
  if (!IsValidUtf8(s)) return false;
  for (char ch : s) {
    const auto b = static_cast<uint8_t>(ch);
    if (b < 0x20 || b == 0x7f) return false;
  }
  return true;
}

// What one reply frame held.
struct ReplyCheck {
  std::string error;    // "" when well-formed, else what is wrong
  int messages = 0;     // whole messages in the frame
  int exceptions = 0;   // of which TApplicationExceptions
  std::string unclean;  // an exception message that is not clean text, if any
};

// Reads `frame` as a ParticipantService client would: one or more whole
// Thrift messages (TNonblockingServer answers each message a frame holds,
// all in one frame), each a reply for a ParticipantService method holding a
// ParticipantReply with a known outcome (and vote), or a
// TApplicationException. An exception's message must be valid UTF-8
// without control bytes (never the request's raw bytes echoed).
ReplyCheck CheckReply(const std::string& frame) {
  ReplyCheck check;
  auto buffer = std::make_shared<at::transport::TMemoryBuffer>(
      reinterpret_cast<uint8_t*>(const_cast<char*>(frame.data())),
      static_cast<uint32_t>(frame.size()), at::transport::TMemoryBuffer::COPY);
  at::protocol::TBinaryProtocol in(buffer);
  try {
    do {
      std::string name;
      at::protocol::TMessageType type;
      int32_t seqid = 0;
      in.readMessageBegin(name, type, seqid);
      if (type == at::protocol::T_EXCEPTION) {
        ++check.exceptions;
        at::TApplicationException x;
        x.read(&in);
        const std::string what = x.what();
        if (!IsCleanText(what)) check.unclean = what;
      } else if (type == at::protocol::T_REPLY) {
        bool known = false;
        for (const auto& m : kMethods) known = known || name == m;
        if (!known) {
          check.error = "a reply for method '" + EscapeControl(Excerpt(name, 60)) + "'";
          return check;
        }
        // Every method's result has the same shape.
        rpc::ParticipantReply reply;
        rpc::ParticipantService_action_presult result;
        result.success = &reply;
        result.read(&in);
        const int outcome = static_cast<int>(reply.outcome);
        const int vote = static_cast<int>(reply.vote);
        if (!result.__isset.success) {
          check.error = "a reply without a result";
        } else if (outcome < 1 || outcome > 3) {
          check.error = "outcome " + std::to_string(outcome);
        } else if (reply.__isset.vote && (vote < 1 || vote > 3)) {
          check.error = "vote " + std::to_string(vote);
        }
        if (!check.error.empty()) return check;
      } else {
        check.error = "message type " + std::to_string(static_cast<int>(type));
        return check;
      }
      in.readMessageEnd();
      ++check.messages;
    } while (buffer->available_read() != 0);
  } catch (const std::exception& e) {
    check.error =
        std::string("unreadable message ") + std::to_string(check.messages + 1) + ": " + e.what();
  }
  return check;
}

// `bytes` as hex, cut to 300 bytes, for failure messages.
std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < 300; ++i) {
    const auto b = static_cast<uint8_t>(bytes[i]);
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
    out += ' ';
  }
  return out;
}

bool IsIdentifier(const std::string& s) { return treaty::ValidateIdentifier(s, "x").ok(); }

TEST(ParticipantServerThriftFuzzTest, HostileCallFramesNeverCrashBloatOrReachHandlersInvalid) {
  std::mutex mu;
  std::vector<std::string> violations;  // guarded by mu
  std::atomic<int> invoked{0};
  // What a handler registered for (`branch`, `op`) sees must follow the rules.
  auto record = [&](const char* branch, const char* op, const sdk::CallContext& ctx) {
    ++invoked;
    std::string why;
    if (!IsIdentifier(ctx.gtid)) why += " gtid";
    if (ctx.branch != branch || !IsIdentifier(ctx.branch)) why += " branch";
    if (ctx.op != op || !IsIdentifier(ctx.op)) why += " op";
    if (ctx.idempotency_key != ctx.gtid + "/" + ctx.branch + "/" + ctx.op) why += " key";
    if (!treaty::ParseJson(ctx.payload, "payload").ok()) why += " payload";
    if (why.empty()) return;
    std::lock_guard<std::mutex> l(mu);
    violations.push_back(why + " in gtid=" + EscapeControl(Excerpt(ctx.gtid, 60)) +
                         " branch=" + EscapeControl(Excerpt(ctx.branch, 60)) +
                         " op=" + EscapeControl(Excerpt(ctx.op, 60)));
  };
  auto step = [&](const char* branch, const char* op) {
    return [&record, branch, op](const sdk::CallContext& ctx) {
      record(branch, op, ctx);
      return treaty::Status::Ok();
    };
  };
  sdk::ParticipantServerOptions options;
  options.thrift_port = 0;
  options.handler_threads = 4;
  sdk::ParticipantServer server(options);
  server.AddSagaStep("flight", step("flight", "action"), step("flight", "compensate"));
  server.AddSagaStep("hotel", step("hotel", "action"), step("hotel", "compensate"));
  server.AddResourceManager(
      "rm",
      [&](const sdk::CallContext& ctx) -> treaty::Result<sdk::Vote> {
        record("rm", "prepare", ctx);
        return sdk::Vote::kYes;
      },
      step("rm", "commit"), step("rm", "abort"));
  auto started = server.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  const int port = server.thrift_port();
  ASSERT_NE(port, 0);

  // A valid call over the generated client: OK, and the handler ran.
  auto expect_valid_call_works = [&](const std::string& method, const std::string& branch,
                                     const std::string& gtid) {
    const int before = invoked;
    auto socket = std::make_shared<at::transport::TSocket>("127.0.0.1", port);
    socket->setRecvTimeout(20000);
    auto transport = std::make_shared<at::transport::TFramedTransport>(socket);
    transport->open();
    rpc::ParticipantServiceClient client(
        std::make_shared<at::protocol::TBinaryProtocol>(transport));
    rpc::ParticipantCall call;
    call.gtid = gtid;
    call.branch = branch;
    call.op = method;
    call.payload = "{\"seat\":\"1A\"}";
    call.idempotency_key = gtid + "/" + branch + "/" + method;
    rpc::ParticipantReply reply;
    if (method == "prepare") {
      ASSERT_NO_THROW(client.prepare(reply, call));
    } else {
      ASSERT_NO_THROW(client.action(reply, call));
    }
    EXPECT_EQ(reply.outcome, rpc::Outcome::OK) << reply.message;
    EXPECT_EQ(invoked, before + 1);
    transport->close();
  };
  expect_valid_call_works("action", "flight", "g-warm-up");
  const int64_t memory_before = MemoryKib(false), peak_before = MemoryKib(true);
  ASSERT_GT(memory_before, 0);

  const int cases_per_seed = CasesPerSeed();
  std::map<std::string, int> outcomes;  // "answered", "exception", "closed" by mutation kind
  int answered = 0, exceptions = 0, closed = 0, multi = 0, unclean = 0;
  for (uint64_t seed : kSeeds) {
    for (int i = 0; i < cases_per_seed; ++i) {
      FuzzCase c = Generator(seed, i).Next();
      WireReply r = SendRaw(port, c.bytes, 10000, /*half_close=*/true);
      const std::string where = "seed " + std::to_string(seed) + " case " + std::to_string(i) +
                                " (" + c.kind + "): " + EscapeControl(Excerpt(c.bytes, 200));
      ASSERT_TRUE(r.connected) << "the server is down after " << where;
      ASSERT_FALSE(r.timed_out) << where << ": neither answered nor closed";
      if (r.frame.empty()) {
        ++closed;
        outcomes[c.kind + " closed"]++;
        continue;
      }
      const ReplyCheck check = CheckReply(r.frame);
      ASSERT_EQ(check.error, "") << where << "\nreply: " << Hex(r.frame)
                                 << "\nsent: " << Hex(c.bytes);
      if (!check.unclean.empty()) {
        ++unclean;
        std::cout << "unclean exception message: " << Hex(check.unclean) << "\n  for " << where
                  << "\n";
      }
      ++answered;
      const bool exception = check.exceptions > 0;
      if (exception) ++exceptions;
      if (check.messages > 1) ++multi;
      outcomes[c.kind + (exception ? " exception" : " reply")]++;
    }
  }
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_TRUE(violations.empty())
        << violations.size() << " handler calls broke the rules, first:" << violations[0];
  }
  // The generator must reach the handlers, be refused, and be cut off.
  const int cases = cases_per_seed * static_cast<int>(std::size(kSeeds));
  EXPECT_GT(invoked.load(), cases / 20);
  EXPECT_GT(exceptions, cases / 5);
  EXPECT_GT(closed, cases / 20);
  std::string summary;
  for (const auto& [what, n] : outcomes) summary += what + ":" + std::to_string(n) + " ";
  std::cout << "answered:" << answered << " (exceptions:" << exceptions << ") closed:" << closed
            << " handler calls:" << invoked.load() << " frames of several messages:" << multi
            << "\n"
            << summary << "\n";

  // Still serving, and no balloon.
  expect_valid_call_works("action", "hotel", "g-after");
  expect_valid_call_works("prepare", "rm", "g-after");
  const int64_t memory_after = MemoryKib(false), peak_after = MemoryKib(true);
  std::cout << "memory KiB before:" << memory_before << " after:" << memory_after
            << " peak before:" << peak_before << " peak after:" << peak_after << "\n";
  EXPECT_LT(memory_after - memory_before, kMaxGrowthKib);
  EXPECT_LT(peak_after - peak_before, kMaxGrowthKib);
}

}  // namespace
}  // namespace treaty::testing
