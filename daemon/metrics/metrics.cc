#include "metrics/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace mailpool::metrics {
namespace {

bool IsValidName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

void CheckNames(const std::string& name, const std::vector<std::string>& label_names) {
  bool ok = IsValidName(name);
  for (const auto& label : label_names) ok = ok && IsValidName(label) && label != "le";
  if (!ok) {
    fprintf(stderr, "metrics: invalid metric or label name in %s\n", name.c_str());
    abort();
  }
}

// HELP text escapes only backslash and newline.
std::string EscapeHelp(absl::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// `{a="x",b="y"}` (with `extra` appended, e.g. le="0.5"), or nothing without labels.
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      absl::string_view extra = {}) {
  if (names.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, names.empty() ? "" : ",", extra);
  out.push_back('}');
  return out;
}

void Header(std::string* out, const std::string& name, const std::string& help,
            absl::string_view type) {
  absl::StrAppend(out, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, end);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // Buckets are few (~15): a linear scan beats a binary search's branches.
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

struct Registry::Entry {
  std::unique_ptr<CounterFamily> counter;
  std::unique_ptr<GaugeFamily> gauge;
  std::unique_ptr<HistogramFamily> histogram;
  std::unique_ptr<GaugeFamily> float_counter;
};

Registry& Registry::Default() {
  static Registry* registry = new Registry();  // never destroyed: used until exit
  return *registry;
}

Registry::Registry() = default;
Registry::~Registry() = default;

template <typename F>
F& Registry::Add(std::unique_ptr<F> Entry::*slot, const std::string& name, const std::string& help,
                 std::vector<std::string> label_names, std::vector<double> bounds) {
  CheckNames(name, label_names);
  std::lock_guard<std::mutex> lock(mu_);
  Entry& entry = families_[name];
  if (!(entry.*slot)) {
    if (entry.counter || entry.gauge || entry.histogram || entry.float_counter) {
      fprintf(stderr, "metrics: %s registered twice with different types\n", name.c_str());
      abort();
    }
    entry.*slot = std::make_unique<F>(name, help, std::move(label_names), std::move(bounds));
  }
  return *(entry.*slot);
}

CounterFamily& Registry::Counter(const std::string& name, const std::string& help,
                                 std::vector<std::string> label_names) {
  return Add(&Entry::counter, name, help, std::move(label_names));
}

GaugeFamily& Registry::Gauge(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names) {
  return Add(&Entry::gauge, name, help, std::move(label_names));
}

GaugeFamily& Registry::FloatCounter(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names) {
  return Add(&Entry::float_counter, name, help, std::move(label_names));
}

HistogramFamily& Registry::Histogram(const std::string& name, const std::string& help,
                                     std::vector<std::string> label_names,
                                     std::vector<double> bounds) {
  return Add(&Entry::histogram, name, help, std::move(label_names), std::move(bounds));
}

int Registry::AddCollector(absl::AnyInvocable<void()> collect) {
  std::lock_guard<std::mutex> lock(collectors_mu_);
  int handle = next_handle_++;
  collectors_.emplace(handle, std::move(collect));
  return handle;
}

void Registry::RemoveCollector(int handle) {
  std::lock_guard<std::mutex> lock(collectors_mu_);
  collectors_.erase(handle);
}

std::string Registry::Scrape() {
  {
    std::lock_guard<std::mutex> lock(collectors_mu_);
    for (auto& [handle, collect] : collectors_) collect();
  }
  return Render();
}

std::string Registry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
  for (const auto& family : families_) {
    const std::string& name = family.first;
    const auto& entry = family.second;
    if (entry.counter) {
      const CounterFamily& f = *entry.counter;
      Header(&out, name, f.help(), "counter");
      f.ForEach([&](const std::vector<std::string>& labels, const metrics::Counter& c) {
        absl::StrAppend(&out, name, LabelText(f.label_names(), labels), " ", c.value(), "\n");
      });
    } else if (entry.gauge || entry.float_counter) {
      const GaugeFamily& f = entry.gauge ? *entry.gauge : *entry.float_counter;
      Header(&out, name, f.help(), entry.gauge ? "gauge" : "counter");
      f.ForEach([&](const std::vector<std::string>& labels, const metrics::Gauge& g) {
        absl::StrAppend(&out, name, LabelText(f.label_names(), labels), " ", FormatValue(g.value()),
                        "\n");
      });
    } else if (entry.histogram) {
      const HistogramFamily& f = *entry.histogram;
      Header(&out, name, f.help(), "histogram");
      f.ForEach([&](const std::vector<std::string>& labels, const metrics::Histogram& h) {
        // Read the buckets once so _count equals the +Inf bucket even while observed.
        std::vector<uint64_t> counts = h.BucketCounts();
        uint64_t cumulative = 0;
        for (size_t i = 0; i < counts.size(); ++i) {
          cumulative += counts[i];
          std::string le = absl::StrCat(
              "le=\"", i < h.bounds().size() ? FormatValue(h.bounds()[i]) : "+Inf", "\"");
          absl::StrAppend(&out, name, "_bucket", LabelText(f.label_names(), labels, le), " ",
                          cumulative, "\n");
        }
        std::string label_text = LabelText(f.label_names(), labels);
        absl::StrAppend(&out, name, "_sum", label_text, " ", FormatValue(h.sum()), "\n");
        absl::StrAppend(&out, name, "_count", label_text, " ", cumulative, "\n");
      });
    }
  }
  return out;
}

}  // namespace mailpool::metrics
