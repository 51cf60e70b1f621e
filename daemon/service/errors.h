// The one table that maps absl::Status to gRPC status, and the error detail trailer.
//
// Below the gRPC edge every module picks the absl code by DESIGN.md's rules (unknown
// session NOT_FOUND, bad field INVALID_ARGUMENT, wrong protocol/state FAILED_PRECONDITION,
// refused credentials UNAUTHENTICATED, connect/TLS/4xx/broken link UNAVAILABLE, limits
// RESOURCE_EXHAUSTED, server silence DEADLINE_EXCEEDED). This file converts and attaches
// the details twice:
//  - the standard place, `grpc-status-details-bin`: a google.rpc.Status (code, message)
//    whose details are a google.rpc.ErrorInfo (reason, domain "mailpool.dev", metadata
//    protocol / server_reply / command), a google.rpc.RetryInfo where retrying helps (the
//    status's kRetryAfterPayload hint, else 1 s for UNAVAILABLE) and a google.rpc.BadRequest
//    naming the field for INVALID_ARGUMENT (Invalid(field, what) statuses);
//  - the trailer `mailpool-error-bin`: a serialized mailpool.v1.ErrorDetail (kept for
//    clients written before the standard details).
#ifndef MAILPOOL_SERVICE_ERRORS_H_
#define MAILPOOL_SERVICE_ERRORS_H_

#include <grpcpp/grpcpp.h>

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/rpc/status.pb.h"
#include "mailpool/v1/errors.pb.h"

namespace mailpool::service {

inline constexpr char kErrorDetailTrailer[] = "mailpool-error-bin";
// ErrorInfo.domain of every error the daemon sends.
inline constexpr char kErrorDomain[] = "mailpool.dev";
// Delay suggested in RetryInfo for UNAVAILABLE without a hint.
inline constexpr absl::Duration kDefaultUnavailableRetry = absl::Seconds(1);

grpc::StatusCode ToGrpcCode(absl::StatusCode code);
// The ErrorDetail carried by `status` (reason, command, server reply payloads).
v1::ErrorDetail DetailOf(const absl::Status& status);
// The google.rpc.Status for a failed `status` (see the top of this file).
google::rpc::Status RpcStatusOf(const absl::Status& status);
// The retry hint of `status`, if retrying helps.
std::optional<absl::Duration> RetryDelayOf(const absl::Status& status);
// Converts (the google.rpc.Status goes in grpc::Status::error_details(), which gRPC sends
// as grpc-status-details-bin), and when `context` is given attaches the ErrorDetail
// trailer.
grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::CallbackServerContext* context = nullptr);

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_ERRORS_H_
