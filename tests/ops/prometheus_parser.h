#pragma once

// A strict-enough parser of the Prometheus text exposition format (0.0.4)
// for tests: HELP/TYPE comments, samples with escaped label values, and the
// rules a scraper enforces (metric and label names, one TYPE per family
// before its samples, histogram buckets cumulative with a +Inf bucket equal
// to _count). Returns an error message instead of throwing.

#include <map>
#include <string>
#include <vector>

namespace treaty::testing {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromExposition {
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram|...
  std::map<std::string, std::string> help;
  std::vector<PromSample> samples;

  // Sum of the samples called `name` whose labels include `match`.
  double Sum(const std::string& name, const std::map<std::string, std::string>& match = {}) const;
  bool Has(const std::string& name) const;
};

// Parses `text`; on error returns false with `*error` saying which line and why.
bool ParsePrometheus(const std::string& text, PromExposition* out, std::string* error);

}  // namespace treaty::testing
