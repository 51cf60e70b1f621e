// Descriptors: the process's file-descriptor budget, so that mail connections can never
// take the descriptors the gRPC listener and callers need.
//
//   net::RaiseDescriptorLimit();            // start-up: soft RLIMIT_NOFILE = hard
//   net::SetReservedDescriptors(256);       // kept free for everything but mail sockets
//   MP_RETURN_IF_ERROR(net::CheckDescriptorBudget());   // before each mail connect
//
// The check costs one dup(): Linux hands out the lowest free descriptor, so when that is
// already inside the reserve (at or above the soft limit minus the reserve), a new mail
// connection is RESOURCE_EXHAUSTED (reason DESCRIPTORS_EXHAUSTED) and the session or call
// fails alone; gRPC keeps its headroom, and everything works again once sessions close.
// Thread-safe.
#ifndef MAILPOOL_NET_DESCRIPTORS_H_
#define MAILPOOL_NET_DESCRIPTORS_H_

#include "absl/status/status.h"

namespace mailpool::net {

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
long RaiseDescriptorLimit();
// Descriptors kept free (0: none; the default is the larger of 64 and an eighth of the
// soft limit, computed at the first check).
void SetReservedDescriptors(long count);
long ReservedDescriptors();
absl::Status CheckDescriptorBudget();

}  // namespace mailpool::net

#endif  // MAILPOOL_NET_DESCRIPTORS_H_
