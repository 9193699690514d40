#include "api/metrics.h"

#include <cmath>
#include <cstdio>

namespace treaty {
namespace {

std::string EscapeLabel(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string MetricNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

std::string MetricFamily::LabelText(const LabelValues& values, const std::string& extra) const {
  if (values.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ",";
    out += label_names_[i] + "=\"" + EscapeLabel(values[i]) + "\"";
  }
  if (!extra.empty()) {
    if (!values.empty()) out += ",";
    out += extra;
  }
  return out + "}";
}

void MetricFamily::Header(const char* type, std::string* out) const {
  *out += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
  *out += "# TYPE " + name_ + " " + type + "\n";
}

void CounterFamily::Inc(const LabelValues& values, double by) {
  if (!Valid(values) || by < 0) return;
  MutexLock l(&mu_);
  series_[values] += by;
}

double CounterFamily::Value(const LabelValues& values) const {
  MutexLock l(&mu_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second;
}

void CounterFamily::Render(std::string* out) const {
  Header("counter", out);
  MutexLock l(&mu_);
  // A label-less counter is always shown, starting at 0.
  if (series_.empty() && label_names_.empty()) *out += name_ + " 0\n";
  for (const auto& [labels, v] : series_) {
    *out += name_ + LabelText(labels) + " " + MetricNumber(v) + "\n";
  }
}

void GaugeFamily::Set(const LabelValues& values, double v) {
  if (!Valid(values)) return;
  MutexLock l(&mu_);
  series_[values] = v;
}

void GaugeFamily::Replace(std::map<LabelValues, double> series) {
  for (auto it = series.begin(); it != series.end();) {
    it = Valid(it->first) ? std::next(it) : series.erase(it);
  }
  MutexLock l(&mu_);
  series_ = std::move(series);
}

double GaugeFamily::Value(const LabelValues& values) const {
  MutexLock l(&mu_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second;
}

void GaugeFamily::Render(std::string* out) const {
  Header("gauge", out);
  MutexLock l(&mu_);
  if (series_.empty() && label_names_.empty()) *out += name_ + " 0\n";
  for (const auto& [labels, v] : series_) {
    *out += name_ + LabelText(labels) + " " + MetricNumber(v) + "\n";
  }
}

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> label_names, std::vector<double> bounds)
    : MetricFamily(std::move(name), std::move(help), std::move(label_names)),
      bounds_(std::move(bounds)) {}

void HistogramFamily::Observe(const LabelValues& values, double v) {
  if (!Valid(values)) return;
  MutexLock l(&mu_);
  Series& s = series_[values];
  if (s.buckets.empty()) s.buckets.assign(bounds_.size(), 0);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (v <= bounds_[i]) {
      ++s.buckets[i];
      break;
    }
  }
  ++s.count;
  s.sum += v;
}

uint64_t HistogramFamily::Count(const LabelValues& values) const {
  MutexLock l(&mu_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second.count;
}

void HistogramFamily::Render(std::string* out) const {
  Header("histogram", out);
  MutexLock l(&mu_);
  for (const auto& [labels, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += s.buckets[i];
      *out += name_ + "_bucket" + LabelText(labels, "le=\"" + MetricNumber(bounds_[i]) + "\"") +
              " " + std::to_string(cumulative) + "\n";
    }
    *out +=
        name_ + "_bucket" + LabelText(labels, "le=\"+Inf\"") + " " + std::to_string(s.count) + "\n";
    *out += name_ + "_sum" + LabelText(labels) + " " + MetricNumber(s.sum) + "\n";
    *out += name_ + "_count" + LabelText(labels) + " " + std::to_string(s.count) + "\n";
  }
}

CounterFamily* MetricsRegistry::AddCounter(std::string name, std::string help,
                                           std::vector<std::string> label_names) {
  auto f =
      std::make_unique<CounterFamily>(std::move(name), std::move(help), std::move(label_names));
  CounterFamily* raw = f.get();
  MutexLock l(&mu_);
  families_.push_back(std::move(f));
  return raw;
}

GaugeFamily* MetricsRegistry::AddGauge(std::string name, std::string help,
                                       std::vector<std::string> label_names) {
  auto f = std::make_unique<GaugeFamily>(std::move(name), std::move(help), std::move(label_names));
  GaugeFamily* raw = f.get();
  MutexLock l(&mu_);
  families_.push_back(std::move(f));
  return raw;
}

HistogramFamily* MetricsRegistry::AddHistogram(std::string name, std::string help,
                                               std::vector<std::string> label_names,
                                               std::vector<double> bounds) {
  auto f = std::make_unique<HistogramFamily>(std::move(name), std::move(help),
                                             std::move(label_names), std::move(bounds));
  HistogramFamily* raw = f.get();
  MutexLock l(&mu_);
  families_.push_back(std::move(f));
  return raw;
}

std::string MetricsRegistry::Render() const {
  std::string out;
  MutexLock l(&mu_);
  for (const auto& f : families_) f->Render(&out);
  return out;
}

}  // namespace treaty
