#include "service/unimplemented.h"
namespace mailpool::service {
std::vector<std::unique_ptr<grpc::Service>> NewUnimplementedServices() { return {}; }
}  // namespace mailpool::service
