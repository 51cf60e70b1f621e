#include "net/descriptors.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace mailpool::net {
namespace {

std::atomic<long> reserved{-1};  // -1: the default

long SoftLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return -1;
  return static_cast<long>(limit.rlim_cur);
}

}  // namespace

long RaiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  return SoftLimit();
}

void SetReservedDescriptors(long count) { reserved = std::max(0L, count); }

long ReservedDescriptors() {
  long r = reserved;
  if (r >= 0) return r;
  long soft = SoftLimit();
  return soft < 0 ? 64 : std::max(64L, soft / 8);
}

absl::Status CheckDescriptorBudget() {
  long soft = SoftLimit();
  long reserve = ReservedDescriptors();
  if (soft < 0 || reserve == 0) return absl::OkStatus();
  int probe = fcntl(0, F_DUPFD_CLOEXEC, 0);
  if (probe >= 0) close(probe);
  if (probe >= 0 && probe < soft - reserve) return absl::OkStatus();
  return ReasonError(absl::StatusCode::kResourceExhausted, "DESCRIPTORS_EXHAUSTED",
                     absl::StrCat("the daemon is out of file descriptors for mail connections (",
                                  soft, " allowed, ", reserve,
                                  " kept for callers): close sessions or raise LimitNOFILE"));
}

}  // namespace mailpool::net
