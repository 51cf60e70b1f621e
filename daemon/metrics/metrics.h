// Prometheus-style metrics: counters, gauges and fixed-bucket histograms with labels, and
// their text exposition (format 0.0.4) for a `GET /metrics` scrape.
//
//   metrics::CounterFamily& calls = metrics::Registry::Default().Counter(
//       "mailpool_grpc_calls_total", "gRPC calls answered.", {"service", "method", "code"});
//   metrics::Counter& ok = calls.WithLabels({"mailpool.v1.SessionService", "StartSession", "OK"});
//   ok.Increment();                                    // a relaxed atomic add
//   std::string page = metrics::Registry::Default().Scrape();
//
// Thread-safe. Hot paths touch only atomics: look a series up once (WithLabels takes the
// family's mutex) and keep the reference — series are never removed, so references stay
// valid for the life of the registry. Values that are cheaper to compute than to track
// (sessions by state) come from collectors that Scrape() runs first.
#ifndef MAILPOOL_METRICS_METRICS_H_
#define MAILPOOL_METRICS_METRICS_H_

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"

namespace mailpool::metrics {

class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  // For a collector that mirrors a total kept elsewhere (e.g. the pool's reconnects);
  // that total must never decrease.
  void Set(uint64_t total) { value_.store(total, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into fixed buckets (upper bounds, ascending; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (not cumulative) counts, the last one for +Inf.
  std::vector<uint64_t> BucketCounts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Latency buckets in seconds, 1 ms to 60 s: mail servers answer in milliseconds, a
// reconnect or a large message takes seconds.
std::vector<double> LatencyBuckets();

// The series of one metric name, one per distinct tuple of label values.
template <typename Metric>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds = {})
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}

  // The series for these label values (as many as label names), created at zero on first
  // use. The reference stays valid for the family's life.
  Metric& WithLabels(std::initializer_list<absl::string_view> values) {
    std::vector<std::string> key(values.begin(), values.end());
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = series_[std::move(key)];
    if (!slot) slot = New();
    return *slot;
  }

  Metric& WithLabels(const std::vector<std::string>& values) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = series_[values];
    if (!slot) slot = New();
    return *slot;
  }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls fn(label values, metric) for every series, sorted by label values.
  template <typename Fn>
  void ForEach(Fn fn) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [labels, metric] : series_) fn(labels, *metric);
  }

 private:
  std::unique_ptr<Metric> New() const;

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> series_;
};

template <>
inline std::unique_ptr<Histogram> Family<Histogram>::New() const {
  return std::make_unique<Histogram>(bounds_);
}
template <typename Metric>
std::unique_ptr<Metric> Family<Metric>::New() const {
  return std::make_unique<Metric>();
}

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class Registry {
 public:
  // The process-wide registry that the daemon serves.
  static Registry& Default();

  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Register a family, or return the one already registered under `name` (so modules can
  // look families up where they use them). Names and label names must match
  // [a-zA-Z_][a-zA-Z0-9_]*; asking for an existing name with another type aborts.
  CounterFamily& Counter(const std::string& name, const std::string& help,
                         std::vector<std::string> label_names = {});
  GaugeFamily& Gauge(const std::string& name, const std::string& help,
                     std::vector<std::string> label_names = {});
  HistogramFamily& Histogram(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names, std::vector<double> bounds);
  // A counter with a fractional value (e.g. CPU seconds), set by a collector from a total
  // kept elsewhere that never decreases; exposed with TYPE counter.
  GaugeFamily& FloatCounter(const std::string& name, const std::string& help,
                            std::vector<std::string> label_names = {});

  // A function Scrape() runs before rendering, e.g. to set gauges from live state. It
  // runs on the scraping thread (the daemon scrapes on its event loop). Returns a handle
  // for RemoveCollector.
  int AddCollector(absl::AnyInvocable<void()> collect);
  void RemoveCollector(int handle);

  // Runs the collectors, then renders every family in the text exposition format 0.0.4,
  // families sorted by name.
  std::string Scrape();
  // Renders without running collectors.
  std::string Render() const;

 private:
  struct Entry;
  // The family registered under `name` in `slot`, created if new.
  template <typename F>
  F& Add(std::unique_ptr<F> Entry::*slot, const std::string& name, const std::string& help,
         std::vector<std::string> label_names, std::vector<double> bounds = {});

  mutable std::mutex mu_;
  std::map<std::string, Entry> families_;
  std::mutex collectors_mu_;  // held while collectors run: one scrape at a time
  std::map<int, absl::AnyInvocable<void()>> collectors_;
  int next_handle_ = 1;
};

// Exposition helpers, public for tests: a label value with \, " and newline escaped, and
// a sample value as Prometheus writes it (shortest round-trip form, +Inf, -Inf, NaN).
std::string EscapeLabelValue(absl::string_view value);
std::string FormatValue(double value);

}  // namespace mailpool::metrics

#endif  // MAILPOOL_METRICS_METRICS_H_
