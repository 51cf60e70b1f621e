// Process metrics: readings that follow what the process does (descriptors opened, CPU
// burnt), and their exposition next to mailpool_build_info.
#include "metrics/process.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mailpool::metrics {
namespace {

using ::testing::HasSubstr;

TEST(ProcessMetricsTest, OpenFdsFollowDescriptorsOpenedAndClosed) {
  double before = ReadProcessStats().open_fds;
  ASSERT_GE(before, 3);  // stdin, stdout, stderr at least
  int fds[2][2];
  ASSERT_EQ(pipe(fds[0]), 0);
  ASSERT_EQ(pipe(fds[1]), 0);
  EXPECT_EQ(ReadProcessStats().open_fds, before + 4);
  for (auto& p : fds) {
    close(p[0]);
    close(p[1]);
  }
  EXPECT_EQ(ReadProcessStats().open_fds, before);
}

TEST(ProcessMetricsTest, CpuMemoryLimitsAndStartTimeAreThisProcesss) {
  ProcessStats first = ReadProcessStats();
  volatile double sink = 0;
  for (int i = 0; i < 20000000; ++i) sink = sink + i * 0.5;  // some CPU time
  ProcessStats s = ReadProcessStats();
  EXPECT_GE(first.cpu_seconds, 0);
  EXPECT_GT(s.cpu_seconds, first.cpu_seconds);
  EXPECT_GT(s.resident_bytes, 1 << 20);
  EXPECT_GE(s.virtual_bytes, s.resident_bytes);
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(s.max_fds, static_cast<double>(limit.rlim_cur));
  // Started before now, and not long ago (generous: a slow CI machine).
  double now = static_cast<double>(::time(nullptr));
  EXPECT_LE(s.start_time_seconds, now + 1);
  EXPECT_GT(s.start_time_seconds, now - 3600);
}

TEST(ProcessMetricsTest, ExposedWithBuildInfo) {
  Registry registry;
  RegisterProcessMetrics(registry, {{"version", "1.2.3"}, {"grpc", "1.51.1"}});
  std::string page = registry.Scrape();
  EXPECT_THAT(page, HasSubstr("# TYPE mailpool_build_info gauge\n"
                              "mailpool_build_info{version=\"1.2.3\",grpc=\"1.51.1\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("# TYPE process_cpu_seconds_total counter\n"));
  for (const char* name : {"process_resident_memory_bytes", "process_virtual_memory_bytes",
                           "process_open_fds", "process_max_fds", "process_start_time_seconds"}) {
    EXPECT_THAT(page, HasSubstr(std::string("# TYPE ") + name + " gauge\n" + name + " ")) << name;
  }
}

}  // namespace
}  // namespace mailpool::metrics
