#include "ops/prometheus_parser.h"

#include <cmath>
#include <regex>
#include <set>
#include <sstream>

namespace treaty::testing {
namespace {

const std::regex kMetricName("[a-zA-Z_:][a-zA-Z0-9_:]*");
const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");

bool ParseValue(const std::string& s, double* v) {
  if (s == "+Inf") {
    *v = INFINITY;
    return true;
  }
  if (s == "-Inf") {
    *v = -INFINITY;
    return true;
  }
  if (s == "NaN") {
    *v = NAN;
    return true;
  }
  try {
    size_t used = 0;
    *v = std::stod(s, &used);
    return used == s.size();
  } catch (const std::exception&) {
    return false;
  }
}

// The family a sample belongs to (histogram suffixes stripped when typed so).
std::string FamilyOf(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string sfx = suffix;
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      std::string base = name.substr(0, name.size() - sfx.size());
      auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return name;
}

bool ParseSample(const std::string& line, PromSample* s, std::string* why) {
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  s->name = line.substr(0, i);
  if (!std::regex_match(s->name, kMetricName)) {
    *why = "bad metric name";
    return false;
  }
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      size_t eq = line.find('=', i);
      if (eq == std::string::npos) {
        *why = "label without '='";
        return false;
      }
      std::string lname = line.substr(i, eq - i);
      if (!std::regex_match(lname, kLabelName)) {
        *why = "bad label name '" + lname + "'";
        return false;
      }
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') {
        *why = "label value not quoted";
        return false;
      }
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '\\') {
          if (i >= line.size()) break;
          char e = line[i++];
          if (e == 'n')
            value += '\n';
          else if (e == '\\' || e == '"')
            value += e;
          else {
            *why = "bad escape in label value";
            return false;
          }
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value += c;
        }
      }
      if (!closed) {
        *why = "unterminated label value";
        return false;
      }
      if (s->labels.count(lname)) {
        *why = "duplicate label " + lname;
        return false;
      }
      s->labels[lname] = value;
      if (i < line.size() && line[i] == ',') ++i;
    }
  }
  if (i >= line.size() || line[i] != ' ') {
    *why = "no value";
    return false;
  }
  std::istringstream rest(line.substr(i + 1));
  std::string value, timestamp, extra;
  rest >> value >> timestamp >> extra;
  if (!extra.empty()) {
    *why = "trailing text";
    return false;
  }
  if (!ParseValue(value, &s->value)) {
    *why = "bad value '" + value + "'";
    return false;
  }
  return true;
}

}  // namespace

double PromExposition::Sum(const std::string& name,
                           const std::map<std::string, std::string>& match) const {
  double total = 0;
  for (const PromSample& s : samples) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      ok = ok && it != s.labels.end() && it->second == v;
    }
    if (ok) total += s.value;
  }
  return total;
}

bool PromExposition::Has(const std::string& name) const {
  for (const PromSample& s : samples) {
    if (s.name == name) return true;
  }
  return false;
}

bool ParsePrometheus(const std::string& text, PromExposition* out, std::string* error) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  std::set<std::string> seen_samples_of;
  auto fail = [&](const std::string& why) {
    *error = "line " + std::to_string(n) + ": " + why + ": " + line;
    return false;
  };
  if (!text.empty() && text.back() != '\n') return fail("exposition must end with a newline");
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream c(line);
      std::string hash, kind, name;
      c >> hash >> kind >> name;
      if (kind == "TYPE") {
        std::string type;
        c >> type;
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (!kTypes.count(type)) return fail("unknown type");
        if (out->types.count(name)) return fail("second TYPE for " + name);
        if (seen_samples_of.count(name)) return fail("TYPE after samples of " + name);
        out->types[name] = type;
      } else if (kind == "HELP") {
        if (!std::regex_match(name, kMetricName)) return fail("bad metric name in HELP");
        out->help[name] = line.size() > 7 + name.size() ? line.substr(8 + name.size()) : "";
      }
      continue;
    }
    PromSample s;
    std::string why;
    if (!ParseSample(line, &s, &why)) return fail(why);
    const std::string family = FamilyOf(s.name, out->types);
    seen_samples_of.insert(family);
    auto t = out->types.find(family);
    if (t != out->types.end() && t->second == "counter" && s.value < 0) {
      return fail("negative counter");
    }
    if (t != out->types.end() && t->second == "histogram" && s.name == family + "_bucket" &&
        !s.labels.count("le")) {
      return fail("bucket without le");
    }
    out->samples.push_back(std::move(s));
  }
  // Histograms: buckets cumulative, +Inf bucket == _count, per label set.
  for (const auto& [family, type] : out->types) {
    if (type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    std::map<std::map<std::string, std::string>, double> counts;
    for (const PromSample& s : out->samples) {
      auto labels = s.labels;
      if (s.name == family + "_bucket") {
        double le = 0;
        if (!ParseValue(labels["le"], &le)) {
          *error = family + ": bad le";
          return false;
        }
        labels.erase("le");
        buckets[labels].push_back({le, s.value});
      } else if (s.name == family + "_count") {
        counts[labels] = s.value;
      }
    }
    for (auto& [labels, bs] : buckets) {
      double last_le = -INFINITY, last = 0;
      for (const auto& [le, v] : bs) {
        if (le <= last_le || v < last) {
          *error = family + ": buckets not ascending and cumulative";
          return false;
        }
        last_le = le;
        last = v;
      }
      if (!std::isinf(last_le) || !counts.count(labels) || counts[labels] != last) {
        *error = family + ": +Inf bucket missing or not equal to _count";
        return false;
      }
    }
  }
  return true;
}

}  // namespace treaty::testing
