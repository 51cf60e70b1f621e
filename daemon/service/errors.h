// The one table that maps absl::Status to gRPC status, and the error detail trailer.
//
// Below the gRPC edge every module picks the absl code by DESIGN.md's rules (unknown
// session NOT_FOUND, bad field INVALID_ARGUMENT, wrong protocol/state FAILED_PRECONDITION,
// refused credentials UNAUTHENTICATED, connect/TLS/4xx/broken link UNAVAILABLE, limits
// RESOURCE_EXHAUSTED, server silence DEADLINE_EXCEEDED). This file converts and attaches
// a serialized mailpool.v1.ErrorDetail as trailing metadata `mailpool-error-bin`.
#ifndef MAILPOOL_SERVICE_ERRORS_H_
#define MAILPOOL_SERVICE_ERRORS_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "mailpool/v1/errors.pb.h"

namespace mailpool::service {

inline constexpr char kErrorDetailTrailer[] = "mailpool-error-bin";

grpc::StatusCode ToGrpcCode(absl::StatusCode code);
// The ErrorDetail carried by `status` (reason, command, server reply payloads).
v1::ErrorDetail DetailOf(const absl::Status& status);
// Converts, and when `context` is given attaches the ErrorDetail trailer.
grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::CallbackServerContext* context = nullptr);

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_ERRORS_H_
