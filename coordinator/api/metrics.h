#pragma once

// A small Prometheus registry: counter, gauge and histogram families with
// labels, rendered in the text exposition format (version 0.0.4).
//
//   MetricsRegistry reg;
//   auto* calls = reg.AddCounter("treaty_calls_total", "Calls.", {"op", "outcome"});
//   calls->Inc({"action", "ok"});
//   std::string text = reg.Render();
//
// Thread-safety: every method of every class here is thread-safe (one mutex
// per family; Render takes them one at a time). Families are owned by the
// registry and live as long as it; the pointers it hands out stay valid.
// Label values are given in the order of the family's label names; a wrong
// count is a programming error (the update is ignored).

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/mutex.h"

namespace treaty {

using LabelValues = std::vector<std::string>;

class MetricFamily {
 public:
  MetricFamily(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}
  virtual ~MetricFamily() = default;
  const std::string& name() const { return name_; }
  // Appends "# HELP", "# TYPE" and every series of this family.
  virtual void Render(std::string* out) const = 0;

 protected:
  // `{a="x",b="y"}` (with `extra` appended, e.g. le="0.5"), or "" when empty.
  std::string LabelText(const LabelValues& values, const std::string& extra = "") const;
  void Header(const char* type, std::string* out) const;
  bool Valid(const LabelValues& values) const { return values.size() == label_names_.size(); }

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  mutable Mutex mu_;  // guards the subclass's series_
};

class CounterFamily : public MetricFamily {
 public:
  using MetricFamily::MetricFamily;
  void Inc(const LabelValues& values, double by = 1);
  double Value(const LabelValues& values) const;
  void Render(std::string* out) const override;

 private:
  std::map<LabelValues, double> series_ TREATY_GUARDED_BY(mu_);
};

class GaugeFamily : public MetricFamily {
 public:
  using MetricFamily::MetricFamily;
  void Set(const LabelValues& values, double v);
  // Replaces every series at once (for gauges recomputed at scrape time, so
  // that a label set that disappeared is not left behind).
  void Replace(std::map<LabelValues, double> series);
  double Value(const LabelValues& values) const;
  void Render(std::string* out) const override;

 private:
  std::map<LabelValues, double> series_ TREATY_GUARDED_BY(mu_);
};

class HistogramFamily : public MetricFamily {
 public:
  // `bounds`: upper bounds of the buckets, ascending (+Inf is implicit).
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds);
  void Observe(const LabelValues& values, double v);
  uint64_t Count(const LabelValues& values) const;
  void Render(std::string* out) const override;

 private:
  struct Series {
    std::vector<uint64_t> buckets;  // not cumulative; one per bound
    uint64_t count = 0;
    double sum = 0;
  };
  const std::vector<double> bounds_;
  std::map<LabelValues, Series> series_ TREATY_GUARDED_BY(mu_);
};

class MetricsRegistry {
 public:
  CounterFamily* AddCounter(std::string name, std::string help,
                            std::vector<std::string> label_names = {});
  GaugeFamily* AddGauge(std::string name, std::string help,
                        std::vector<std::string> label_names = {});
  HistogramFamily* AddHistogram(std::string name, std::string help,
                                std::vector<std::string> label_names, std::vector<double> bounds);

  // The whole registry in Prometheus text format, families in the order added.
  std::string Render() const;

 private:
  mutable Mutex mu_;
  std::vector<std::unique_ptr<MetricFamily>> families_ TREATY_GUARDED_BY(mu_);
};

// Prometheus number text: integers without a fraction, "+Inf", "NaN".
std::string MetricNumber(double v);

}  // namespace treaty
