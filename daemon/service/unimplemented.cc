#include "service/unimplemented.h"

#include <grpcpp/impl/service_type.h>

namespace mailpool::service {

// Every service of the contract has an implementation now; calls that are not done yet
// answer UNIMPLEMENTED from their own service (see README.md, "Not done yet").
std::vector<std::unique_ptr<grpc::Service>> NewUnimplementedServices() { return {}; }

}  // namespace mailpool::service
