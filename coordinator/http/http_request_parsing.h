#pragma once

// Pure helpers that turn a raw HTTP request target into the decoded parts of
// HttpRequest. Private to treaty_http (used by HttpServer); exposed in a
// header so they can be unit-tested. Stateless and thread-safe.

#include <map>
#include <string>
#include <string_view>

namespace treaty {

// Decodes %XX escapes; with `plus_is_space` (query strings) '+' becomes ' '.
// Malformed escapes ("%G1", a trailing '%') are kept verbatim. With
// `keep_encoded_slash` (paths), "%2F" stays as it is: an encoded '/' is data
// inside a segment, never a separator, so "/v1/transactions%2Fx%2Fretry"
// cannot reach the route "/v1/transactions/x/retry".
std::string PercentDecode(std::string_view in, bool plus_is_space, bool keep_encoded_slash = false);

// Parses "a=1&b=x%20y&flag" into {a:1, b:"x y", flag:""}. A repeated key
// keeps its first value.
std::map<std::string, std::string> ParseQuery(std::string_view query);

// Splits a request target into its decoded path (encoded slashes kept, see
// PercentDecode) and parsed query.
void SplitTarget(std::string_view target, std::string* path,
                 std::map<std::string, std::string>* query);

// The coordinator's one error body (also behind api/http_answers.h):
// `{"error":{"code":code,"message":message}}` with proper JSON escaping;
// ill-formed UTF-8 in `message` becomes U+FFFD (DumpJson): never throws on data.
std::string JsonError(std::string_view code, std::string_view message);

}  // namespace treaty
