// The OpenAPI document (docs/openapi.json, served at GET /v1/openapi.json)
// against the live routes of a real treaty::Server (SQLite, HTTP on a
// loopback port, authentication off):
//   - the served document is the repository's file, byte for byte: valid
//     JSON, "openapi": "3.1.x", every operation with responses and a role;
//   - every route of the server's route table (Router::Routes) is in the
//     document with the same methods, and every documented path is a route:
//     a route added without documenting it fails here;
//   - every documented operation reaches its handler: over HTTP (HEAD, which
//     the test client cannot read, through Router::Find) the answer is not
//     the router's "no route for" 404, its status is one the operation
//     documents, and a JSON answer has the documented shape (types, enums,
//     required fields) — probed with minimal bodies on a real 2PC transaction;
//   - each operation's x-treaty-role is the access its route was added with,
//     as the AccessGate reads it (Router::RuleFor; docs/security.md "Roles").

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "api/access_gate.h"
#include "api/router.h"
#include "api/server.h"
#include "http/http_client.h"
#include "support/store_env.h"
#include "support/subprocess.h"

namespace treaty::testing {
namespace {

using nlohmann::json;

const char* const kMethods[] = {"get",     "put",  "post",  "delete",
                                "options", "head", "patch", "trace"};

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A router pattern as an OpenAPI path: "/ui/{file...}" -> "/ui/{file}".
std::string AsOpenApiPath(const std::string& pattern) {
  return std::regex_replace(pattern, std::regex(R"(\{([A-Za-z_]+)\.\.\.\})"), "{$1}");
}

// A documented path with its templates filled with values the handlers accept
// as well-formed ("/ui/{file}" gets a file that exists: a missing one is
// answered with the same 404 as a missing route).
std::string Concrete(const std::string& path) {
  static const std::map<std::string, std::string> kValues = {
      {"gtid", "openapi-probe-1"}, {"branch", "b"}, {"file", "index.html"}};
  std::string out = path;
  for (const auto& [name, value] : kValues) {
    out = std::regex_replace(out, std::regex("\\{" + name + "\\}"), value);
  }
  return out;
}

// The role the AccessGate requires for METHOD PATH on `router`, as
// x-treaty-role writes it.
std::string GateRole(const Router& router, const std::string& method, const std::string& path) {
  const RouteAccess access = router.RuleFor(method, path).access;
  switch (access.kind) {
    case RouteAccess::Kind::kOpen:
      return "none";
    case RouteAccess::Kind::kAuthenticated:
      return "(no rule: the gate takes it for an unknown route)";
    case RouteAccess::Kind::kRole:
      break;
  }
  return RoleName(access.role);
}

std::string SourceDir() {
  const char* dir = std::getenv("TREATY_SOURCE_DIR");  // set by treaty_add_test
  return dir ? dir : "";
}

class OpenApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-openapi");
    ServerOptions options;
    options.store_uri = FreshStoreUri("sqlite", dir_);
    options.http_port = 0;
    options.heartbeat_ms = 200;
    options.lease_ms = 1000;
    server_ = std::make_unique<Server>(options);
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_NE(server_->router(), nullptr);

    auto r = HttpFetch("GET", server_->http_url() + "/v1/openapi.json", "", {}, 20000);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->headers["content-type"], "application/json");
    served_ = r->body;
    doc_ = json::parse(served_, nullptr, false);
    ASSERT_FALSE(doc_.is_discarded()) << "GET /v1/openapi.json is not valid JSON";
    ASSERT_TRUE(doc_.is_object() && doc_.contains("paths") && doc_["paths"].is_object());
  }

  void TearDown() override {
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // The node `node` refers to ("$ref": "#/components/..."), or `node` itself.
  const json& Resolve(const json& node) const {
    const json* at = &node;
    while (at->is_object() && at->contains("$ref")) {
      const std::string ref = (*at)["$ref"].get<std::string>();  // "#/components/schemas/X"
      at = &doc_.at(json::json_pointer(ref.substr(1)));
    }
    return *at;
  }

  // Where `value` breaks `schema_node`, "" if nowhere. Checks the keywords the
  // document uses: $ref, allOf, type, enum, const, required, properties, items.
  std::string Mismatch(const json& value, const json& schema_node, const std::string& at) const {
    const json& schema = Resolve(schema_node);
    if (!schema.is_object()) return "";
    const json all_of = schema.value("allOf", json::array());
    for (const json& part : all_of) {
      if (std::string m = Mismatch(value, part, at); !m.empty()) return m;
    }
    if (schema.contains("type")) {
      const std::string type = schema["type"].get<std::string>();
      const bool fits = type == "object"    ? value.is_object()
                        : type == "array"   ? value.is_array()
                        : type == "string"  ? value.is_string()
                        : type == "integer" ? value.is_number_integer()
                        : type == "boolean" ? value.is_boolean()
                        : type == "number"  ? value.is_number()
                                            : true;
      if (!fits) return at + " is not of type " + type + ": " + value.dump();
    }
    if (schema.contains("enum")) {
      const json& values = schema["enum"];
      if (std::find(values.begin(), values.end(), value) == values.end()) {
        return at + " = " + value.dump() + " is not one of " + values.dump();
      }
    }
    if (schema.contains("const") && value != schema["const"]) {
      return at + " = " + value.dump() + " is not " + schema["const"].dump();
    }
    if (value.is_object()) {
      const json required = schema.value("required", json::array());
      for (const json& key : required) {
        if (!value.contains(key.get<std::string>())) {
          return at + " lacks the required '" + key.get<std::string>() + "'";
        }
      }
      const json properties = schema.value("properties", json::object());
      for (const auto& [key, sub] : properties.items()) {
        if (!value.contains(key)) continue;
        if (std::string m = Mismatch(value[key], sub, at + "." + key); !m.empty()) return m;
      }
    }
    if (value.is_array() && schema.contains("items")) {
      for (size_t i = 0; i < value.size(); ++i) {
        const std::string where = at + "[" + std::to_string(i) + "]";
        if (std::string m = Mismatch(value[i], schema["items"], where); !m.empty()) return m;
      }
    }
    return "";
  }

  // Documented path -> its methods in upper case.
  std::map<std::string, std::set<std::string>> DocumentedRoutes() const {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& [path, item] : doc_["paths"].items()) {
      std::set<std::string>& methods = out[path];
      for (const char* m : kMethods) {
        if (item.contains(m)) methods.insert(Upper(m));
      }
    }
    return out;
  }

  std::string dir_;
  std::unique_ptr<Server> server_;
  std::string served_;
  json doc_;
};

TEST_F(OpenApiTest, ServedDocumentIsTheRepositorysValidOpenApi31) {
  const std::string dir = SourceDir();
  ASSERT_FALSE(dir.empty()) << "TREATY_SOURCE_DIR is not set (treaty_add_test sets it)";
  std::ifstream file(dir + "/docs/openapi.json", std::ios::binary);
  ASSERT_TRUE(file) << "cannot read docs/openapi.json under " << dir;
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_TRUE(served_ == text.str())
      << "the served document differs from docs/openapi.json: rebuild treatyd";

  ASSERT_TRUE(doc_["openapi"].is_string());
  EXPECT_TRUE(doc_["openapi"].get<std::string>().rfind("3.1.", 0) == 0) << doc_["openapi"];
  EXPECT_TRUE(doc_["info"]["title"].is_string());
  EXPECT_TRUE(doc_["info"]["version"].is_string());
  int operations = 0;
  for (const auto& [path, item] : doc_["paths"].items()) {
    for (const char* m : kMethods) {
      if (!item.contains(m)) continue;
      ++operations;
      const json& op = item[m];
      const std::string where = Upper(m) + " " + path;
      ASSERT_TRUE(op.contains("responses") && op["responses"].is_object()) << where;
      EXPECT_FALSE(op["responses"].empty()) << where << " documents no response";
      EXPECT_TRUE(op.contains("x-treaty-role") && op["x-treaty-role"].is_string())
          << where << " has no x-treaty-role";
    }
  }
  EXPECT_GT(operations, 20);
}

TEST_F(OpenApiTest, EveryRouteOfTheServerIsDocumentedWithItsMethods) {
  // Pattern -> methods ("*" for a route that takes any method).
  std::map<std::string, std::set<std::string>> routes;
  for (const Router::RouteInfo& r : server_->router()->Routes()) {
    std::set<std::string>& methods = routes[AsOpenApiPath(r.pattern)];
    if (r.methods.empty()) methods.insert("*");
    for (const std::string& m : r.methods) methods.insert(m);
  }
  ASSERT_GT(routes.size(), 20u);
  const auto documented = DocumentedRoutes();
  for (const auto& [path, methods] : routes) {
    auto it = documented.find(path);
    if (it == documented.end()) {
      ADD_FAILURE() << "route " << path << " is served but not in docs/openapi.json";
      continue;
    }
    if (methods.count("*")) {
      // The handler picks its methods; each documented one is checked live.
      EXPECT_FALSE(it->second.empty()) << path << ": no method documented";
      continue;
    }
    for (const std::string& m : methods) {
      EXPECT_TRUE(it->second.count(m)) << m << " " << path << " is served but not documented";
    }
    for (const std::string& m : it->second) {
      EXPECT_TRUE(methods.count(m)) << m << " " << path << " is documented but not served";
    }
  }
  for (const auto& [path, methods] : documented) {
    EXPECT_TRUE(routes.count(path)) << path << " is documented but no route serves it";
  }
}

TEST_F(OpenApiTest, EveryDocumentedOperationReachesItsHandler) {
  // The transaction the {gtid} routes are probed on, so that reads find it.
  auto begun = HttpFetch("POST", server_->http_url() + "/v1/2pc", R"({"gtid":"openapi-probe-1"})",
                         {{"Content-Type", "application/json"}}, 20000);
  ASSERT_TRUE(begun.ok()) << begun.status().ToString();
  ASSERT_EQ(begun->status, 201) << begun->body;
  int checked_bodies = 0;
  for (const auto& [path, methods] : DocumentedRoutes()) {
    const std::string target = Concrete(path);
    for (const std::string& method : methods) {
      const std::string where = method + " " + path;
      EXPECT_EQ(server_->router()->Find(method, target).outcome, Router::Outcome::kMatched)
          << where << " (as " << target << ") matches no route";
      if (method == "HEAD") continue;  // HttpFetch would wait for a body
      const bool with_body = method == "POST" || method == "PUT";
      std::map<std::string, std::string> headers;
      if (with_body) headers["Content-Type"] = "application/json";
      auto r =
          HttpFetch(method, server_->http_url() + target, with_body ? "{}" : "", headers, 20000);
      ASSERT_TRUE(r.ok()) << where << ": " << r.status().ToString();
      const json body = json::parse(r->body, nullptr, false);
      const bool no_route = r->status == 404 && body.is_object() && body.contains("error") &&
                            body["error"].is_object() &&
                            body["error"].value("message", "").rfind("no route for", 0) == 0;
      EXPECT_FALSE(no_route) << where << " is answered by the router's unknown-route 404";
      const json& responses = doc_["paths"][path][Lower(method)]["responses"];
      const std::string status = std::to_string(r->status);
      if (!responses.contains(status)) {
        ADD_FAILURE() << where << " answered " << status
                      << ", which the document does not list: " << r->body.substr(0, 300);
        continue;
      }
      // A JSON answer has the shape its documented response gives.
      const json content = Resolve(responses[status]).value("content", json::object());
      if (!content.contains("application/json") || body.is_discarded()) continue;
      ++checked_bodies;
      EXPECT_EQ(Mismatch(body, content["application/json"]["schema"], "body"), "")
          << where << " answered " << status << ": " << r->body.substr(0, 300);
    }
  }
  EXPECT_GT(checked_bodies, 20);
}

TEST_F(OpenApiTest, DocumentedRolesAreTheAccessGates) {
  for (const auto& [path, item] : doc_["paths"].items()) {
    for (const char* m : kMethods) {
      if (!item.contains(m)) continue;
      const std::string method = Upper(m);
      EXPECT_EQ(item[m].value("x-treaty-role", ""),
                GateRole(*server_->router(), method, Concrete(path)))
          << method << " " << path;
    }
  }
}

}  // namespace
}  // namespace treaty::testing
