// Services of the contract whose calls later work implements. Every call answers
// UNIMPLEMENTED with a message naming the call, until its implementation lands.
#ifndef MAILPOOL_SERVICE_UNIMPLEMENTED_H_
#define MAILPOOL_SERVICE_UNIMPLEMENTED_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <vector>

namespace mailpool::service {

std::vector<std::unique_ptr<grpc::Service>> NewUnimplementedServices();

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_UNIMPLEMENTED_H_
