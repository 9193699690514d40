// The SDK's HTTP participant server under hostile input
// (docs/input-rules.md), against a real ParticipantServer on loopback with
// raw sockets: deep JSON, invalid UTF-8 and control bytes in the Treaty-*
// headers, disagreeing body and headers, oversized bodies, handlers that
// throw or answer with ill-formed UTF-8. After each, the server still
// serves a valid call.

#include <gtest/gtest.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "sdk/raw_http.h"
#include "treaty/participant_server.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;
using nlohmann::json;

class ParticipantServerInputTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }

  void StartServer(sdk::ParticipantServerOptions options) {
    server_ = std::make_unique<sdk::ParticipantServer>(std::move(options));
    // The travel example's shape: a saga step "flight" (POST /flight/book).
    // The payload steers what the handler answers.
    auto step = [this](const sdk::CallContext& ctx) -> treaty::Status {
      {
        std::lock_guard<std::mutex> l(mu_);
        calls_.push_back(ctx);
      }
      if (ctx.payload == "\"throw\"") throw std::runtime_error("boom\n\x1b[31m\xff");
      if (ctx.payload == "\"bad-utf8\"")
        return treaty::Status::BusinessFailure("sold out \xff\xfe");
      if (ctx.payload == "\"invalid\"") return treaty::Status::InvalidArgument("no such seat");
      if (ctx.payload == "\"unavailable\"") return treaty::Status::Unavailable("database down");
      return treaty::Status::Ok();
    };
    server_->AddSagaStep("flight", step, step);
    // A resource manager "debit" whose commit records its context.
    auto prepare = [](const sdk::CallContext&) -> treaty::Result<sdk::Vote> {
      return sdk::Vote::kYes;
    };
    server_->AddResourceManager("debit", prepare, step, step);
    auto s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  RawResponse Post(const std::string& path, const std::string& body,
                   const std::map<std::string, std::string>& headers = {}) {
    return RawExchange(server_->http_port(), RawPost(path, body, headers));
  }

  std::vector<sdk::CallContext> Calls() {
    std::lock_guard<std::mutex> l(mu_);
    return calls_;
  }

  // A valid delivery still succeeds and reaches the handler.
  void ExpectStillServing() {
    const size_t before = Calls().size();
    RawResponse r = Post("/flight/book", R"({"gtid":"ok-1","branch":"flight","op":"action"})");
    ASSERT_TRUE(r.well_formed) << r.raw;
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Calls().size(), before + 1);
  }

  static std::string Message(const RawResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("error")) return "";
    return j["error"].value("message", "");
  }

  static std::string Code(const RawResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("error")) return "";
    return j["error"].value("code", "");
  }

  std::unique_ptr<sdk::ParticipantServer> server_;
  std::mutex mu_;
  std::vector<sdk::CallContext> calls_;  // guarded by mu_
};

// 100,000 nested arrays in the payload (200 KB) used to
// overflow the stack and kill the service.
TEST_F(ParticipantServerInputTest, DeeplyNestedPayloadIsRefusedAndTheServiceStaysUp) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  RawResponse r =
      Post("/flight/book",
           R"({"gtid":"g-deep","branch":"flight","op":"action","payload":)" + deep + "}");
  ASSERT_TRUE(r.well_formed) << r.raw.substr(0, 200);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(Message(r).find("deeper than 64"), std::string::npos) << r.body;
  EXPECT_TRUE(Calls().empty());
  ExpectStillServing();
}

TEST_F(ParticipantServerInputTest, NestingUpToTheLimitIsAccepted) {
  // The body object is level 1: 63 arrays in the payload make 64 levels.
  const std::string at_limit = std::string(63, '[') + std::string(63, ']');
  RawResponse ok =
      Post("/flight/book", R"({"gtid":"g-64","op":"action","payload":)" + at_limit + "}");
  ASSERT_TRUE(ok.well_formed) << ok.raw;
  EXPECT_EQ(ok.status, 200) << ok.body;
  ASSERT_EQ(Calls().size(), 1u);
  EXPECT_EQ(Calls()[0].payload, at_limit);

  const std::string over = std::string(64, '[') + std::string(64, ']');
  RawResponse refused =
      Post("/flight/book", R"({"gtid":"g-65","op":"action","payload":)" + over + "}");
  EXPECT_EQ(refused.status, 400) << refused.raw;
  EXPECT_EQ(Calls().size(), 1u);
}

// One 0xFF byte in Treaty-Gtid with an empty JSON body
// used to be accepted (200) and handed to the handler.
TEST_F(ParticipantServerInputTest, InvalidUtf8GtidHeaderIsRefused) {
  RawResponse r =
      Post("/flight/book", "{}",
           {{"Treaty-Gtid", "\xff"}, {"Treaty-Branch", "flight"}, {"Treaty-Op", "action"}});
  ASSERT_TRUE(r.well_formed) << r.raw;
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(Message(r).find("Treaty-Gtid"), std::string::npos) << r.body;
  EXPECT_TRUE(IsValidUtf8(r.body)) << "the offending byte must not be echoed";
  EXPECT_TRUE(Calls().empty());
  ExpectStillServing();
}

TEST_F(ParticipantServerInputTest, EveryIdentifierSourceIsValidatedAndNamed) {
  struct Case {
    std::string body;
    std::map<std::string, std::string> headers;
    std::string names;  // expected in the message
    // Control bytes in a header are refused by the HTTP layer itself
    // ("malformed HTTP request"), before the body is even read.
    bool control_bytes = false;
  };
  const std::vector<Case> cases = {
      {R"({"gtid":"a b","op":"action"})", {}, "'gtid'"},
      {R"({"gtid":"g1","op":"act/ion"})", {}, "'op'"},
      {R"({"gtid":"g1","op":"action","branch":".."})", {}, "'branch'"},
      {R"({"gtid":")" + std::string(129, 'x') + R"(","op":"action"})", {}, "'gtid'"},
      {R"({"gtid":"\u0000","op":"action"})", {}, "'gtid'"},
      {R"({"gtid":"caf\u00e9","op":"action"})", {}, "'gtid'"},
      {R"({"gtid":7,"op":"action"})", {}, "'gtid'"},
      {R"({"gtid":"g1","op":null})", {}, "'op'"},
      {"{}", {{"Treaty-Gtid", "g1"}, {"Treaty-Op", "act\x01ion"}}, "Treaty-Op", true},
      {"{}",
       {{"Treaty-Gtid", "g1"}, {"Treaty-Op", "action"}, {"Treaty-Branch", "a%2f"}},
       "Treaty-Branch"},
      {"{}", {{"Treaty-Gtid", "g1\x7f"}, {"Treaty-Op", "action"}}, "Treaty-Gtid", true},
      {"{}", {{"Treaty-Gtid", "\xc2\x85"}, {"Treaty-Op", "action"}}, "Treaty-Gtid"},
      {"{}", {{"Treaty-Gtid", ""}, {"Treaty-Op", "action"}}, "Treaty-Gtid"},
      // Body and header must agree.
      {R"({"gtid":"g1","op":"action"})", {{"Treaty-Gtid", "g2"}}, "'gtid'"},
      {R"({"gtid":"g1","op":"action"})", {{"Treaty-Op", "compensate"}}, "'op'"},
      {R"({"gtid":"g1","op":"action","branch":"flight"})",
       {{"Treaty-Branch", "hotel"}},
       "'branch'"},
      // The idempotency key is "{gtid}/{branch}/{op}" of the call.
      {R"({"gtid":"g1","op":"action"})",
       {{"Idempotency-Key", "g1/flight/compensate"}},
       "Idempotency-Key"},
      {R"({"gtid":"g1","op":"action"})", {{"Idempotency-Key", "\xff"}}, "Idempotency-Key"},
      // Required.
      {R"({"op":"action"})", {}, "'gtid'"},
      {R"({"gtid":"g1"})", {}, "'op'"},
      // Not a Treaty body.
      {"[]", {}, "JSON object"},
      {"", {}, "request body"},
      {"{\"gtid\":\"\xff\",\"op\":\"action\"}", {}, "request body"},
  };
  for (const auto& c : cases) {
    RawResponse r = Post("/flight/book", c.body, c.headers);
    ASSERT_TRUE(r.well_formed) << c.names << ": " << r.raw;
    EXPECT_EQ(r.status, 400) << c.names << ": " << r.body;
    const std::string message = Message(r);
    if (!(c.control_bytes && message.find("malformed HTTP request") != std::string::npos)) {
      EXPECT_NE(message.find(c.names), std::string::npos) << r.body;
    }
    EXPECT_TRUE(IsValidUtf8(r.body)) << r.body;
  }
  EXPECT_TRUE(Calls().empty());
  ExpectStillServing();
}

TEST_F(ParticipantServerInputTest, HeadersAloneOrAgreeingWithTheBodyAreAccepted) {
  RawResponse r =
      Post("/flight/book", R"({"gtid":"g1","payload":{"seat":"1A"}})",
           {{"Treaty-Gtid", "g1"},
            {"Treaty-Branch", "flight"},
            {"Treaty-Op", "action"},
            {"Idempotency-Key", "g1/flight/action"},
            {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}});
  ASSERT_TRUE(r.well_formed) << r.raw;
  EXPECT_EQ(r.status, 200) << r.body;
  // A traceparent that is not one is dropped, not refused.
  RawResponse r2 = Post("/flight/book", "{}",
                        {{"Treaty-Gtid", "g2"},
                         {"Treaty-Op", "compensate"},
                         {"traceparent", "00-\xff\xfe-<script>-" + std::string(60, 'f')}});
  EXPECT_EQ(r2.status, 200) << r2.raw;
  auto calls = Calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].gtid, "g1");
  EXPECT_EQ(calls[0].branch, "flight");
  EXPECT_EQ(calls[0].op, "action");
  EXPECT_EQ(calls[0].payload, R"({"seat":"1A"})");
  EXPECT_EQ(calls[0].idempotency_key, "g1/flight/action");
  EXPECT_EQ(calls[0].traceparent.size(), 55u);
  EXPECT_EQ(calls[1].branch, "flight");  // the URL's name
  EXPECT_EQ(calls[1].idempotency_key, "g2/flight/compensate");
  EXPECT_EQ(calls[1].traceparent, "");
}

TEST_F(ParticipantServerInputTest, UnknownNamesAreNotEchoedRaw) {
  RawResponse r = Post("/fl%0Aight\xff/book", R"({"gtid":"g1","branch":"b","op":"action"})");
  ASSERT_TRUE(r.well_formed) << r.raw;
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_TRUE(IsValidUtf8(r.body));
  EXPECT_EQ(r.body.find('\n'), std::string::npos);
  // Without a branch, the URL's name must be an identifier.
  RawResponse r2 = Post("/fl%20ight/book", R"({"gtid":"g1","op":"action"})");
  EXPECT_EQ(r2.status, 400) << r2.raw;
  EXPECT_TRUE(Calls().empty());
}

TEST_F(ParticipantServerInputTest, HandlerExceptionsAndIllFormedMessagesGiveCleanAnswers) {
  RawResponse threw = Post("/flight/book", R"({"gtid":"g1","op":"action","payload":"throw"})");
  ASSERT_TRUE(threw.well_formed) << threw.raw;
  EXPECT_EQ(threw.status, 500);
  EXPECT_TRUE(IsValidUtf8(threw.body)) << threw.body;
  EXPECT_TRUE(json::accept(threw.body)) << threw.body;

  // A handler's message with ill-formed UTF-8 used to make the reply's
  // serialization throw on a pool thread (the process died).
  RawResponse bad = Post("/flight/book", R"({"gtid":"g2","op":"action","payload":"bad-utf8"})");
  ASSERT_TRUE(bad.well_formed) << bad.raw;
  EXPECT_EQ(bad.status, 409);
  EXPECT_TRUE(IsValidUtf8(bad.body)) << bad.body;
  EXPECT_NE(Message(bad).find("sold out"), std::string::npos) << bad.body;
  ExpectStillServing();
}

TEST_F(ParticipantServerInputTest, BodiesOverTheLimitAre413) {
  server_.reset();
  StartServer({.max_body_bytes = 4096});
  const std::string big_payload = "\"" + std::string(5000, 'x') + "\"";
  RawResponse r =
      Post("/flight/book", R"({"gtid":"g1","op":"action","payload":)" + big_payload + "}");
  ASSERT_TRUE(r.well_formed) << r.raw;
  EXPECT_EQ(r.status, 413);
  // A declared length far over the limit is refused before the body is read.
  RawResponse lying = RawExchange(server_->http_port(),
                                  "POST /flight/book HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Length: 99999999999\r\n\r\n{}");
  ASSERT_TRUE(lying.well_formed) << lying.raw;
  EXPECT_EQ(lying.status, 413);
  EXPECT_TRUE(Calls().empty());
  ExpectStillServing();
}

// A handler's InvalidArgument was answered 500, which the
// coordinator retries forever (forever for a compensation). It is a final
// refusal: 409, like a BusinessFailure. The error codes of the JSON bodies
// are spelled as the coordinator's REST API spells them.
TEST_F(ParticipantServerInputTest, InvalidArgumentIsABusinessFailureAndCodesMatchTheCoordinator) {
  RawResponse invalid = Post("/flight/book", R"({"gtid":"g1","op":"action","payload":"invalid"})");
  ASSERT_TRUE(invalid.well_formed) << invalid.raw;
  EXPECT_EQ(invalid.status, 409) << invalid.body;
  EXPECT_EQ(Code(invalid), "invalid_argument") << invalid.body;
  EXPECT_NE(Message(invalid).find("no such seat"), std::string::npos) << invalid.body;

  RawResponse refused = Post("/flight/book", R"({"gtid":"g2","op":"action","payload":"bad-utf8"})");
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(Code(refused), "business_failure") << refused.body;

  RawResponse transient =
      Post("/flight/book", R"({"gtid":"g3","op":"action","payload":"unavailable"})");
  EXPECT_EQ(transient.status, 500);
  EXPECT_EQ(Code(transient), "unavailable") << transient.body;

  RawResponse threw = Post("/flight/book", R"({"gtid":"g4","op":"action","payload":"throw"})");
  EXPECT_EQ(threw.status, 500);
  EXPECT_EQ(Code(threw), "internal") << threw.body;

  RawResponse bad = Post("/flight/book", R"({"gtid":"a b","op":"action"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(Code(bad), "invalid_argument") << bad.body;

  RawResponse unknown = Post("/nowhere/book", R"({"gtid":"g5","op":"action"})");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(Code(unknown), "not_found") << unknown.body;

  // The coordinator and the SDK share one Status (treaty/status.h): every
  // code's JSON name reads back to the same code.
  for (int c = static_cast<int>(StatusCode::kOk); c <= static_cast<int>(StatusCode::kInternal);
       ++c) {
    const auto code = static_cast<StatusCode>(c);
    EXPECT_EQ(ErrorCodeFromName(ErrorCodeName(code)), code) << StatusCodeName(code);
  }
  EXPECT_STREQ(ErrorCodeName(StatusCode::kBusinessFailure), "business_failure");
  EXPECT_STREQ(ErrorCodeName(StatusCode::kLostOwnership), "not_owner");
  EXPECT_EQ(ErrorCodeFromName("no such code"), StatusCode::kInternal);
}

// A commit without prepare (one-phase) is flagged to the handler,
// from the body's "one_phase" or the Treaty-One-Phase header.
TEST_F(ParticipantServerInputTest, HandlersAreToldThatACommitIsOnePhase) {
  struct Case {
    std::string body;
    std::map<std::string, std::string> headers;
    bool one_phase;
  };
  const std::vector<Case> cases = {
      {R"({"gtid":"p1","op":"commit","one_phase":true})", {}, true},
      {R"({"gtid":"p2","op":"commit"})", {{"Treaty-One-Phase", "true"}}, true},
      {R"({"gtid":"p3","op":"commit","one_phase":true})", {{"Treaty-One-Phase", "true"}}, true},
      {R"({"gtid":"p4","op":"commit"})", {}, false},
      {R"({"gtid":"p5","op":"commit","one_phase":false})", {}, false},
  };
  for (const auto& c : cases) {
    RawResponse r = Post("/debit/commit", c.body, c.headers);
    ASSERT_TRUE(r.well_formed) << r.raw;
    EXPECT_EQ(r.status, 200) << c.body << ": " << r.body;
  }
  auto calls = Calls();
  ASSERT_EQ(calls.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(calls[i].op, "commit");
    EXPECT_EQ(calls[i].one_phase, cases[i].one_phase) << cases[i].body;
  }

  // Ill-typed, disagreeing, or on another op: refused before any handler.
  const std::vector<Case> refused = {
      {R"({"gtid":"q1","op":"commit","one_phase":"yes"})", {}, false},
      {R"({"gtid":"q2","op":"commit"})", {{"Treaty-One-Phase", "1"}}, false},
      {R"({"gtid":"q3","op":"commit","one_phase":false})", {{"Treaty-One-Phase", "true"}}, false},
      {R"({"gtid":"q4","op":"prepare","one_phase":true})", {}, false},
      {R"({"gtid":"q5","op":"abort"})", {{"Treaty-One-Phase", "true"}}, false},
  };
  for (const auto& c : refused) {
    RawResponse r = Post("/debit/x", c.body, c.headers);
    EXPECT_EQ(r.status, 400) << c.body << ": " << r.body;
    const std::string message = Message(r);
    EXPECT_TRUE(message.find("one_phase") != std::string::npos ||
                message.find("Treaty-One-Phase") != std::string::npos)
        << r.body;
  }
  EXPECT_EQ(Calls().size(), cases.size());
  ExpectStillServing();
}

TEST_F(ParticipantServerInputTest, OnlyPostIsServed) {
  RawResponse r = RawExchange(server_->http_port(), "GET /flight/book HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(r.well_formed) << r.raw;
  EXPECT_EQ(r.status, 405);
  ExpectStillServing();
}

}  // namespace
}  // namespace treaty::testing
