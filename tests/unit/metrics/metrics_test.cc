// The Prometheus text exposition (format 0.0.4) of counters, gauges and histograms.
#include "metrics/metrics.h"

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mailpool::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, CounterRendersHelpTypeAndLabeledSeries) {
  Registry registry;
  CounterFamily& calls = registry.Counter("calls_total", "Calls made.", {"method", "code"});
  calls.WithLabels({"Start", "OK"}).Increment();
  calls.WithLabels({"Start", "OK"}).Increment(2);
  calls.WithLabels({"Close", "NOT_FOUND"}).Increment();
  EXPECT_EQ(registry.Render(),
            "# HELP calls_total Calls made.\n"
            "# TYPE calls_total counter\n"
            "calls_total{method=\"Close\",code=\"NOT_FOUND\"} 1\n"
            "calls_total{method=\"Start\",code=\"OK\"} 3\n");
}

TEST(MetricsTest, LabelValuesEscapeBackslashQuoteAndNewline) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  Registry registry;
  registry.Gauge("g", "G.", {"name"}).WithLabels({"x\"y\n"}).Set(1);
  EXPECT_THAT(registry.Render(), HasSubstr("g{name=\"x\\\"y\\n\"} 1\n"));
}

TEST(MetricsTest, HelpEscapesBackslashAndNewlineOnly) {
  Registry registry;
  registry.Counter("c_total", "a \"quoted\" \\ and\nmore");
  EXPECT_THAT(registry.Render(), HasSubstr("# HELP c_total a \"quoted\" \\\\ and\\nmore\n"));
}

TEST(MetricsTest, UnlabeledSeriesHaveNoBraces) {
  Registry registry;
  registry.Gauge("depth", "Depth.").WithLabels({}).Set(2.5);
  EXPECT_THAT(registry.Render(), HasSubstr("\ndepth 2.5\n"));
}

TEST(MetricsTest, FamiliesAreFoundAgainByName) {
  Registry registry;
  CounterFamily& a = registry.Counter("c_total", "C.", {"x"});
  CounterFamily& b = registry.Counter("c_total", "C.", {"x"});
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(&a.WithLabels({"1"}), &b.WithLabels({"1"}));
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  HistogramFamily& latency =
      registry.Histogram("latency_seconds", "Latency.", {"method"}, {0.1, 1, 10});
  Histogram& h = latency.WithLabels({"Get"});
  h.Observe(0.05);
  h.Observe(0.1);  // a bound is inclusive: le="0.1"
  h.Observe(0.5);
  h.Observe(100);
  EXPECT_EQ(registry.Render(),
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{method=\"Get\",le=\"0.1\"} 2\n"
            "latency_seconds_bucket{method=\"Get\",le=\"1\"} 3\n"
            "latency_seconds_bucket{method=\"Get\",le=\"10\"} 3\n"
            "latency_seconds_bucket{method=\"Get\",le=\"+Inf\"} 4\n"
            "latency_seconds_sum{method=\"Get\"} 100.65\n"
            "latency_seconds_count{method=\"Get\"} 4\n");
}

TEST(MetricsTest, UnlabeledHistogramPutsLeAlone) {
  Registry registry;
  registry.Histogram("h", "H.", {}, {1}).WithLabels({}).Observe(2);
  std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("h_bucket{le=\"1\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("h_bucket{le=\"+Inf\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("h_sum 2\n"));
  EXPECT_THAT(text, HasSubstr("h_count 1\n"));
}

TEST(MetricsTest, ValuesUseShortestFormAndSpecialNames) {
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(-2.25), "-2.25");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(MetricsTest, FamiliesRenderSortedByName) {
  Registry registry;
  registry.Counter("b_total", "B.").WithLabels({}).Increment();
  registry.Counter("a_total", "A.").WithLabels({}).Increment();
  std::string text = registry.Render();
  EXPECT_LT(text.find("a_total"), text.find("b_total"));
}

TEST(MetricsTest, ScrapeRunsCollectorsUntilRemoved) {
  Registry registry;
  Gauge& g = registry.Gauge("open", "Open.").WithLabels({});
  int runs = 0;
  int handle = registry.AddCollector([&] { g.Set(++runs); });
  EXPECT_THAT(registry.Scrape(), HasSubstr("open 1\n"));
  EXPECT_THAT(registry.Scrape(), HasSubstr("open 2\n"));
  registry.RemoveCollector(handle);
  EXPECT_THAT(registry.Scrape(), HasSubstr("open 2\n"));
  EXPECT_EQ(runs, 2);
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  Registry registry;
  CounterFamily& family = registry.Counter("n_total", "N.", {"t"});
  HistogramFamily& hist = registry.Histogram("d", "D.", {}, {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        family.WithLabels({"x"}).Increment();
        hist.WithLabels({}).Observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(family.WithLabels({"x"}).value(), 40000u);
  std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("d_count 40000\n"));
  EXPECT_THAT(text, HasSubstr("d_sum 20000\n"));
}

TEST(MetricsTest, CollectorsMayMirrorATotalKeptElsewhere) {
  Registry registry;
  Counter& c = registry.Counter("reconnects_total", "R.").WithLabels({});
  c.Set(41);
  c.Increment();
  EXPECT_THAT(registry.Render(), HasSubstr("\nreconnects_total 42\n"));
}

TEST(MetricsDeathTest, SameNameWithAnotherTypeAborts) {
  Registry registry;
  registry.Counter("x_total", "X.");
  EXPECT_DEATH(registry.Gauge("x_total", "X."), "different types");
}

TEST(MetricsDeathTest, InvalidNamesAbort) {
  Registry registry;
  EXPECT_DEATH(registry.Counter("bad-name", "x"), "invalid metric");
  EXPECT_DEATH(registry.Counter("ok", "x", {"le"}), "invalid metric");
}

}  // namespace
}  // namespace mailpool::metrics
