// Process metrics from getrusage, getrlimit and /proc (see process.h).
#include "metrics/process.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace mailpool::metrics {
namespace {

std::string ReadAll(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Boot time (Unix seconds) from /proc/stat's "btime" line; -1 when absent.
double BootTime() {
  std::istringstream in(ReadAll("/proc/stat"));
  for (std::string line; std::getline(in, line);) {
    double t = 0;
    if (line.rfind("btime ", 0) == 0 && absl::SimpleAtod(line.substr(6), &t)) return t;
  }
  return -1;
}

// proc(5): /proc/self/stat field 22 is the start time in clock ticks after boot. The
// second field (comm) may hold spaces and parentheses: count from the last ')'.
double StartTime() {
  std::string stat = ReadAll("/proc/self/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state), so field 22 is fields[19].
  double ticks = 0;
  long hz = sysconf(_SC_CLK_TCK);
  double boot = BootTime();
  if (fields.size() < 20 || !absl::SimpleAtod(fields[19], &ticks) || hz <= 0 || boot < 0) {
    return -1;
  }
  return boot + ticks / static_cast<double>(hz);
}

double OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  double n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory stream's own descriptor
}

}  // namespace

ProcessStats ReadProcessStats() {
  ProcessStats s;
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    s.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                    static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  // statm: size resident shared text lib data dt, in pages.
  std::vector<std::string> statm = absl::StrSplit(ReadAll("/proc/self/statm"), ' ');
  double pages = 0;
  double page_size = static_cast<double>(sysconf(_SC_PAGESIZE));
  if (statm.size() >= 2 && absl::SimpleAtod(statm[0], &pages)) s.virtual_bytes = pages * page_size;
  if (statm.size() >= 2 && absl::SimpleAtod(statm[1], &pages)) {
    s.resident_bytes = pages * page_size;
  }
  s.open_fds = OpenFds();
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    s.max_fds = static_cast<double>(limit.rlim_cur);
  }
  s.start_time_seconds = StartTime();
  return s;
}

int RegisterProcessMetrics(Registry& registry,
                           std::vector<std::pair<std::string, std::string>> build_labels) {
  std::vector<std::string> names;
  std::vector<std::string> values;
  for (auto& [name, value] : build_labels) {
    names.push_back(name);
    values.push_back(value);
  }
  registry
      .Gauge("mailpool_build_info", "The running build: always 1, its identity in the labels.",
             names)
      .WithLabels(values)
      .Set(1);
  GaugeFamily& cpu = registry.FloatCounter("process_cpu_seconds_total",
                                           "User and system CPU time spent, in seconds.");
  GaugeFamily& rss = registry.Gauge("process_resident_memory_bytes", "Resident memory size.");
  GaugeFamily& vsz = registry.Gauge("process_virtual_memory_bytes", "Virtual memory size.");
  GaugeFamily& fds = registry.Gauge("process_open_fds", "Open file descriptors.");
  GaugeFamily& max_fds =
      registry.Gauge("process_max_fds", "Maximum number of open file descriptors (soft limit).");
  GaugeFamily& start = registry.Gauge("process_start_time_seconds",
                                      "Start time of the process since the Unix epoch, seconds.");
  return registry.AddCollector([&cpu, &rss, &vsz, &fds, &max_fds, &start] {
    ProcessStats s = ReadProcessStats();
    auto set = [](GaugeFamily& family, double value) {
      if (value >= 0) family.WithLabels({}).Set(value);
    };
    set(cpu, s.cpu_seconds);
    set(rss, s.resident_bytes);
    set(vsz, s.virtual_bytes);
    set(fds, s.open_fds);
    set(max_fds, s.max_fds);
    set(start, s.start_time_seconds);
  });
}

}  // namespace mailpool::metrics
