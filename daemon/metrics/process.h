// The process's own metrics, under the names Prometheus client libraries use, and the
// build's identity:
//
//   metrics::RegisterProcessMetrics(metrics::Registry::Default(),
//                                   {{"version", "0.4.0"}, {"grpc", grpc::Version()}});
//
// mailpool_build_info{version=...,...} 1, and, read from the kernel at each scrape:
// process_cpu_seconds_total (user + system), process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds (the soft limit) and
// process_start_time_seconds (Unix time). Linux (/proc); elsewhere the /proc-based ones
// are left out. Thread-safe; call once.
#ifndef MAILPOOL_METRICS_PROCESS_H_
#define MAILPOOL_METRICS_PROCESS_H_

#include <string>
#include <utility>
#include <vector>

#include "metrics/metrics.h"

namespace mailpool::metrics {

// `build_labels`: label name and value pairs of mailpool_build_info (names as for any
// label: [a-zA-Z_][a-zA-Z0-9_]*). Returns the collector's handle.
int RegisterProcessMetrics(Registry& registry,
                           std::vector<std::pair<std::string, std::string>> build_labels);

// One reading, public for tests. Fields the kernel did not give are negative.
struct ProcessStats {
  double cpu_seconds = -1;
  double resident_bytes = -1;
  double virtual_bytes = -1;
  double open_fds = -1;
  double max_fds = -1;
  double start_time_seconds = -1;
};
ProcessStats ReadProcessStats();

}  // namespace mailpool::metrics

#endif  // MAILPOOL_METRICS_PROCESS_H_
