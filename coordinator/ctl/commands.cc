#include "ctl/commands.h"

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/operator_input.h"
#include "common/endpoint.h"
#include "common/ids.h"
#include "common/json_input.h"
#include "common/text.h"

namespace treaty::ctl {
namespace {

using nlohmann::json;

// Text from the coordinator as one terminal cell: control characters
// escaped, cut to `max_bytes`.
std::string Cell(const std::string& s, size_t max_bytes) {
  return Excerpt(EscapeControl(s), max_bytes);
}

std::string Str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return DumpJson(v);
}

// doc[key] as text; "" when `doc` is not an object or has no such key (a
// const json's operator[] must not be used on a missing key).
std::string Str(const json& doc, const char* key) {
  if (!doc.is_object()) return "";
  auto it = doc.find(key);
  return it == doc.end() ? "" : Str(*it);
}

// doc[key] when it is a boolean; false otherwise (what a coordinator sends
// is never trusted to have the expected type).
bool Flag(const json& doc, const char* key) {
  if (!doc.is_object()) return false;
  auto it = doc.find(key);
  return it != doc.end() && it->is_boolean() && it->get<bool>();
}

// What a 401 or 403 answer means for the operator, without the token.
std::string AuthProblem(const CoordinatorClient& c, int status, const json& doc) {
  const std::string message = doc.is_object() ? Str(doc.value("error", json()), "message") : "";
  if (status == 401) {
    if (!c.has_token() && !c.has_certificate()) {
      return "the coordinator needs a token: --token or TREATY_TOKEN";
    }
    return c.has_token()
               ? "the coordinator refused the token (unknown or revoked): check --token or "
                 "TREATY_TOKEN"
               : "the coordinator does not know the client certificate: give a token with "
                 "--token or TREATY_TOKEN";
  }
  // A missing role is named in "required_role" (docs/api.md "Errors").
  if (doc.is_object() && doc.contains("error") && doc["error"].is_object()) {
    const json& error = doc["error"];
    auto role = error.find("required_role");
    if (role != error.end() && role->is_string()) {
      return "token lacks the '" + Cell(role->get<std::string>(), 32) +
             "' role needed for this command";
    }
  }
  return "forbidden: " +
         (message.empty() ? "the token lacks a role this command needs" : Cell(message, 200));
}

// Sends a request; on success stores the parsed body in *out. Prints why
// and returns the exit code otherwise (-1 on success).
// `fail_over_on_503`: as CoordinatorClient::Request (false for operator
// actions, which a coordinator may have applied before answering 503).
int Call(CoordinatorClient& c, const std::string& method, const std::string& path,
         const std::string& body, json* out, std::string* raw = nullptr,
         bool fail_over_on_503 = true) {
  auto r = c.Request(method, path, body, fail_over_on_503);
  if (!r.ok()) {
    std::cerr << "treatyctl: " << r.status().message() << "\n";
    return r.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitUnreachable;
  }
  auto parsed = ParseJson(r->body, "the coordinator's answer");
  json doc = parsed.ok() ? std::move(*parsed) : json(json::value_t::discarded);
  if (r->status == 401 || r->status == 403) {
    std::cerr << "treatyctl: " << AuthProblem(c, r->status, doc) << "\n";
    return kExitRefused;
  }
  if (r->status >= 300) {
    // The coordinator's words, escaped and cut: never raw bytes on the terminal.
    std::string message = Cell(r->body, 200);
    if (!doc.is_discarded() && doc.is_object() && doc.contains("error") &&
        doc["error"].is_object()) {
      const json& error = doc["error"];
      message = Cell(Str(error, "code"), 64) + ": " + Cell(Str(error, "message"), 200);
    }
    std::cerr << "treatyctl: " << method << " " << path << " -> " << r->status << " " << message
              << "\n";
    return kExitRefused;
  }
  if (doc.is_discarded()) {
    std::cerr << "treatyctl: the coordinator answered with invalid JSON\n";
    return kExitRefused;
  }
  *out = std::move(doc);
  if (raw) *raw = r->body;
  return -1;
}

// "GTID STATE" (and " (paused)"), or the whole answer with `as_json`.
int PrintStatus(const json& doc, bool as_json) {
  if (as_json) {
    std::cout << doc.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << Cell(Str(doc, "gtid"), 256) << " " << Cell(Str(doc, "state"), 32)
            << (Flag(doc, "paused") ? " (paused)" : "") << "\n";
  return kExitOk;
}

int64_t Int(const json& doc, const char* key, int64_t fallback) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

// Prints rows as left-aligned columns.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

std::string UrlEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out.push_back(static_cast<char>(ch));
    } else {
      out += '%';
      out += kHex[ch >> 4];
      out += kHex[ch & 15];
    }
  }
  return out;
}

}  // namespace

const char kExitCodesHelp[] =
    "Exit status:\n"
    "  0  done (saga submit --wait, 2pc commit: COMMITTED)\n"
    "  1  the coordinator refused the request (its message is printed)\n"
    "  2  usage error (bad arguments, unreadable file)\n"
    "  3  no coordinator reachable\n"
    "  4  saga submit --wait, 2pc commit: the transaction ended ABORTED\n"
    "  5  saga submit --wait: the wait ran out before the saga finished\n";

std::string TimeText(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

int SagaSubmit(CoordinatorClient& c, const std::string& file, bool wait, bool as_json) {
  std::ifstream in(file);
  if (!in) {
    std::cerr << "treatyctl: cannot read " << file << "\n";
    return kExitUsage;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = ParseJson(ss.str(), "the saga file");
  if (!parsed.ok() || !parsed->is_object()) {
    std::cerr << "treatyctl: " << file << " is not a JSON object"
              << (parsed.ok() ? "" : ": " + parsed.status().message()) << "\n";
    return kExitUsage;
  }
  json body = std::move(*parsed);
  // A submission is re-sent to the next coordinator when one does not
  // answer: without a gtid each would make its own and the saga would run
  // twice. The gtid is chosen here, once, as the SDK's Client does.
  if (!body.contains("gtid") || body["gtid"].is_null()) body["gtid"] = NewGtid();
  if (wait) body["wait"] = true;
  json out;
  if (int rc = Call(c, "POST", "/v1/sagas", DumpJson(body), &out); rc >= 0) {
    if (rc == kExitUnreachable && body["gtid"].is_string()) {
      // A time-out may hide a saga that was created: name it, so that it
      // can be looked up or the same file submitted again with this gtid.
      std::cerr << "treatyctl: the saga's gtid is " << Cell(body["gtid"].get<std::string>(), 256)
                << " (treatyctl get GTID tells whether it was created)\n";
    }
    return rc;
  }
  PrintStatus(out, as_json);
  if (!wait) return kExitOk;
  const std::string state = Str(out, "state");
  if (state == "COMMITTED") return kExitOk;
  return state == "ABORTED" ? kExitAborted : kExitNotFinished;
}

int Begin2pc(CoordinatorClient& c, const std::string& gtid, int64_t timeout_ms, bool no_one_phase,
             bool as_json) {
  json body = json::object();
  body["gtid"] = gtid.empty() ? NewGtid() : gtid;  // one gtid for every coordinator tried
  if (timeout_ms > 0) body["timeout_ms"] = timeout_ms;
  if (no_one_phase) body["one_phase"] = false;
  json out;
  if (int rc = Call(c, "POST", "/v1/2pc", DumpJson(body), &out); rc >= 0) return rc;
  return PrintStatus(out, as_json);
}

int Enlist2pc(CoordinatorClient& c, const std::string& gtid, const std::string& name,
              const std::string& prepare, const std::string& commit, const std::string& abort,
              const std::string& payload, bool one_phase, bool as_json) {
  for (const auto& [flag, url] : {std::pair{"--prepare", &prepare}, std::pair{"--commit", &commit},
                                  std::pair{"--abort", &abort}}) {
    if (auto ep = ParseEndpoint(*url, flag); !ep.ok()) {
      std::cerr << "treatyctl: " << ep.status().message() << "\n";
      return kExitUsage;
    }
  }
  json body = {{"name", name}, {"prepare", prepare}, {"commit", commit}, {"abort", abort}};
  if (!payload.empty()) {
    auto p = ParseJson(payload, "--payload");
    if (!p.ok()) {
      std::cerr << "treatyctl: " << p.status().message() << "\n";
      return kExitUsage;
    }
    body["payload"] = std::move(*p);
  }
  if (one_phase) body["one_phase"] = true;
  json out;
  if (int rc = Call(c, "POST", "/v1/2pc/" + UrlEncode(gtid) + "/branches", DumpJson(body), &out);
      rc >= 0) {
    return rc;
  }
  if (as_json) return PrintStatus(out, true);
  std::cout << Cell(Str(out, "gtid"), 256) << " " << Cell(Str(out, "branch"), 128) << " enlisted ("
            << Cell(Str(out, "state"), 32) << ")\n";
  return kExitOk;
}

int Decide2pc(CoordinatorClient& c, const std::string& gtid, const std::string& op, bool as_json) {
  json out;
  if (int rc = Call(c, "POST", "/v1/2pc/" + UrlEncode(gtid) + "/" + op, "{}", &out); rc >= 0) {
    return rc;
  }
  PrintStatus(out, as_json);
  const std::string state = Str(out, "state");
  const bool aborted = state == "ABORTING" || state == "ABORTED";
  return op == "commit" && aborted ? kExitAborted : kExitOk;
}

int Get(CoordinatorClient& c, const std::string& gtid, bool as_json) {
  json out;
  std::string raw;
  if (int rc = Call(c, "GET", "/v1/transactions/" + UrlEncode(gtid), "", &out, &raw); rc >= 0) {
    return rc;
  }
  if (as_json) {
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "gtid:     " << Cell(Str(out["gtid"]), 256) << "\n"
            << "kind:     " << Cell(Str(out["kind"]), 32) << "\n"
            << "state:    " << Cell(Str(out["state"]), 32)
            << (Flag(out, "paused") ? "  (PAUSED)" : "")
            << (Flag(out, "needs_attention") ? "  (NEEDS ATTENTION)" : "") << "\n"
            << "owner:    " << Cell(Str(out["owner"]), 256) << "\n"
            << "created:  " << TimeText(Int(out, "created_at_ms", 0)) << "\n"
            << "updated:  " << TimeText(Int(out, "updated_at_ms", 0)) << "\n"
            << "deadline: " << TimeText(Int(out, "deadline_ms", 0)) << "\n";
  if (!Str(out["last_error"]).empty()) {
    std::cout << "error:    " << Cell(Str(out["last_error"]), 200) << "\n";
  }
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows = {{"BRANCH", "STATE", "ATTEMPTS", "LAST ERROR"}};
  for (const auto& b : out["branches"]) {
    rows.push_back(
        {Str(b, "name"), Str(b, "state"), Str(b, "attempts"), Cell(Str(b, "last_error"), 200)});
  }
  PrintTable(rows);
  if (out.contains("history")) {
    std::cout << "\nhistory:\n";
    // A collapsed event (retries of one branch) reads
    // "retry x30 (first .. last): detail".
    for (const auto& e : out["history"]) {
      std::string who = Str(e, "branch");
      const int64_t at = Int(e, "at_ms", 0);
      const int64_t count = Int(e, "count", 1);
      std::string what = Cell(Str(e, "type"), 64);
      if (count > 1) {
        what += " x" + std::to_string(count) + " (" + TimeText(Int(e, "first_at_ms", at)) + " .. " +
                TimeText(at) + ")";
      }
      std::cout << "  " << TimeText(at) << "  " << (who.empty() ? "-" : Cell(who, 128)) << "  "
                << what << ": " << Cell(Str(e, "detail"), 1000) << "\n";
    }
  }
  return kExitOk;
}

int List(CoordinatorClient& c, const ListOptions& o) {
  std::string q = "?limit=" + std::to_string(o.limit);
  if (!o.state.empty()) q += "&state=" + UrlEncode(o.state);
  if (!o.kind.empty()) q += "&kind=" + UrlEncode(o.kind);
  if (o.needs_attention) q += "&needs_attention=true";
  if (o.paused) q += "&paused=true";
  if (!o.cursor.empty()) q += "&cursor=" + UrlEncode(o.cursor);
  json out;
  if (int rc = Call(c, "GET", "/v1/transactions" + q, "", &out); rc >= 0) return rc;
  if (o.json) {
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  // FLAGS: "attention" (needs_attention), "paused"; LAST ERROR cut to fit
  // a terminal line.
  std::vector<std::vector<std::string>> rows = {
      {"GTID", "KIND", "STATE", "FLAGS", "ATTEMPTS", "OWNER", "UPDATED", "LAST ERROR"}};
  for (const auto& t : out["items"]) {
    std::string flags;
    if (Flag(t, "needs_attention")) flags = "attention";
    if (Flag(t, "paused")) flags += flags.empty() ? "paused" : ",paused";
    rows.push_back({Str(t, "gtid"), Str(t, "kind"), Str(t, "state"), flags, Str(t, "attempts"),
                    Cell(Str(t, "owner"), 256), TimeText(Int(t, "updated_at_ms", 0)),
                    Cell(Str(t, "last_error"), 60)});
  }
  PrintTable(rows);
  // The cursor is opaque URL-safe text from the coordinator; escaped anyway.
  const std::string next = Cell(Str(out, "next"), 1024);
  if (!next.empty()) std::cout << "next page: --cursor " << next << "\n";
  return kExitOk;
}

int Operator(CoordinatorClient& c, const std::string& gtid, const std::string& action,
             const std::string& reason, bool as_json) {
  if (auto s = CheckReason(reason, false); !s.ok()) {
    std::cerr << "treatyctl: --reason: " << s.message() << "\n";
    return kExitUsage;
  }
  json body = json::object();
  if (!reason.empty()) body["reason"] = reason;
  json out;
  if (int rc = Call(c, "POST", "/v1/transactions/" + UrlEncode(gtid) + "/" + action, DumpJson(body),
                    &out, nullptr, /*fail_over_on_503=*/false);
      rc >= 0) {
    return rc;
  }
  return PrintStatus(out, as_json);
}

int Resolve(CoordinatorClient& c, const std::string& gtid, const std::string& branch,
            const std::string& outcome, const std::string& reason, bool as_json) {
  for (const Status& s : {CheckOutcome(outcome), CheckReason(reason, true)}) {
    if (!s.ok()) {
      std::cerr << "treatyctl: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  json out;
  if (int rc = Call(
          c, "POST",
          "/v1/transactions/" + UrlEncode(gtid) + "/branches/" + UrlEncode(branch) + "/resolve",
          DumpJson({{"outcome", outcome}, {"reason", reason}}), &out, nullptr,
          /*fail_over_on_503=*/false);
      rc >= 0) {
    return rc;
  }
  return PrintStatus(out, as_json);
}

int Cluster(CoordinatorClient& c, bool as_json) {
  json out;
  if (int rc = Call(c, "GET", "/v1/cluster", "", &out); rc >= 0) return rc;
  if (as_json) {
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "NODE", "HTTP", "THRIFT", "STATE", "HEARTBEAT AGE", "OWNED"}};
  for (const auto& m : out["coordinators"]) {
    // A peer's id and node name are whatever its operator set: escaped.
    rows.push_back({Cell(Str(m, "id"), 256), Cell(Str(m, "node_name"), 256),
                    Cell(Str(m, "http"), 300), Cell(Str(m, "thrift"), 300),
                    Cell(Str(m, "state"), 32), Str(m, "heartbeat_age_ms") + " ms",
                    Str(m, "owned")});
  }
  PrintTable(rows);
  return kExitOk;
}

}  // namespace treaty::ctl
