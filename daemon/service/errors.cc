#include "service/errors.h"

#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "google/rpc/error_details.pb.h"

namespace mailpool::service {

grpc::StatusCode ToGrpcCode(absl::StatusCode code) {
  // absl and gRPC share the canonical code space; the table is explicit so that a
  // change of policy happens here and nowhere else.
  switch (code) {
    case absl::StatusCode::kOk:
      return grpc::StatusCode::OK;
    case absl::StatusCode::kCancelled:
      return grpc::StatusCode::CANCELLED;
    case absl::StatusCode::kUnknown:
      return grpc::StatusCode::UNKNOWN;
    case absl::StatusCode::kInvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case absl::StatusCode::kDeadlineExceeded:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case absl::StatusCode::kNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case absl::StatusCode::kAlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case absl::StatusCode::kPermissionDenied:
      return grpc::StatusCode::PERMISSION_DENIED;
    case absl::StatusCode::kResourceExhausted:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case absl::StatusCode::kFailedPrecondition:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case absl::StatusCode::kAborted:
      return grpc::StatusCode::ABORTED;
    case absl::StatusCode::kOutOfRange:
      return grpc::StatusCode::OUT_OF_RANGE;
    case absl::StatusCode::kUnimplemented:
      return grpc::StatusCode::UNIMPLEMENTED;
    case absl::StatusCode::kInternal:
      return grpc::StatusCode::INTERNAL;
    case absl::StatusCode::kUnavailable:
      return grpc::StatusCode::UNAVAILABLE;
    case absl::StatusCode::kDataLoss:
      return grpc::StatusCode::DATA_LOSS;
    case absl::StatusCode::kUnauthenticated:
      return grpc::StatusCode::UNAUTHENTICATED;
    default:
      return grpc::StatusCode::UNKNOWN;
  }
}

namespace {

v1::Protocol ProtocolOf(const absl::Status& status) {
  std::optional<std::string> text = GetPayloadText(status, kProtocolPayload);
  if (!text) return v1::PROTOCOL_UNSPECIFIED;
  std::string lower = absl::AsciiStrToLower(*text);
  if (lower == "imap") return v1::PROTOCOL_IMAP;
  if (lower == "pop3") return v1::PROTOCOL_POP3;
  if (lower == "smtp") return v1::PROTOCOL_SMTP;
  return v1::PROTOCOL_UNSPECIFIED;
}

// "imap" for PROTOCOL_IMAP; empty when unspecified.
std::string ProtocolName(v1::Protocol protocol) {
  if (protocol == v1::PROTOCOL_UNSPECIFIED) return "";
  std::string name = v1::Protocol_Name(protocol);
  absl::string_view short_name = name;
  absl::ConsumePrefix(&short_name, "PROTOCOL_");
  return absl::AsciiStrToLower(short_name);
}

}  // namespace

std::optional<absl::Duration> RetryDelayOf(const absl::Status& status) {
  if (status.ok()) return std::nullopt;
  if (std::optional<std::string> hint = GetPayloadText(status, kRetryAfterPayload)) {
    int64_t ms = 0;
    if (absl::SimpleAtoi(*hint, &ms) && ms >= 0) return absl::Milliseconds(ms);
  }
  if (status.code() == absl::StatusCode::kUnavailable) return kDefaultUnavailableRetry;
  return std::nullopt;
}

google::rpc::Status RpcStatusOf(const absl::Status& status) {
  google::rpc::Status out;
  out.set_code(static_cast<int32_t>(ToGrpcCode(status.code())));
  out.set_message(std::string(status.message()));
  if (status.ok()) return out;
  v1::ErrorDetail detail = DetailOf(status);

  google::rpc::ErrorInfo info;
  // Every error has a reason: the module's, else the code's name (e.g. "UNAVAILABLE").
  info.set_reason(!detail.reason().empty()
                      ? detail.reason()
                      : absl::AsciiStrToUpper(absl::StatusCodeToString(status.code())));
  absl::StrReplaceAll({{" ", "_"}}, info.mutable_reason());
  info.set_domain(kErrorDomain);
  auto& metadata = *info.mutable_metadata();
  if (std::string protocol = ProtocolName(detail.protocol()); !protocol.empty()) {
    metadata["protocol"] = protocol;
  }
  if (!detail.server_reply().empty()) metadata["server_reply"] = detail.server_reply();
  if (!detail.command().empty()) metadata["command"] = detail.command();
  out.add_details()->PackFrom(info);

  if (std::optional<absl::Duration> delay = RetryDelayOf(status)) {
    google::rpc::RetryInfo retry;
    absl::Duration rem;
    retry.mutable_retry_delay()->set_seconds(absl::IDivDuration(*delay, absl::Seconds(1), &rem));
    retry.mutable_retry_delay()->set_nanos(
        static_cast<int32_t>(absl::IDivDuration(rem, absl::Nanoseconds(1), &rem)));
    out.add_details()->PackFrom(retry);
  }

  // Invalid(field, what) says "<field>: <what>"; the field is the text before ": ".
  if (status.code() == absl::StatusCode::kInvalidArgument && detail.reason() == "INVALID_FIELD") {
    absl::string_view message = status.message();
    size_t colon = message.find(": ");
    if (colon != absl::string_view::npos && colon > 0 &&
        message.substr(0, colon).find(' ') == absl::string_view::npos) {
      google::rpc::BadRequest bad;
      auto* violation = bad.add_field_violations();
      violation->set_field(std::string(message.substr(0, colon)));
      violation->set_description(std::string(message.substr(colon + 2)));
      out.add_details()->PackFrom(bad);
    }
  }
  return out;
}

v1::ErrorDetail DetailOf(const absl::Status& status) {
  v1::ErrorDetail detail;
  detail.set_protocol(ProtocolOf(status));
  if (auto reason = GetPayloadText(status, kReasonPayload)) detail.set_reason(*reason);
  if (auto command = GetPayloadText(status, kCommandPayload)) detail.set_command(*command);
  if (auto reply = GetPayloadText(status, kServerReplyPayload)) detail.set_server_reply(*reply);
  return detail;
}

grpc::Status ToGrpcStatus(const absl::Status& status, grpc::CallbackServerContext* context) {
  if (status.ok()) return grpc::Status::OK;
  v1::ErrorDetail detail = DetailOf(status);
  if (context != nullptr && !detail.reason().empty()) {
    context->AddTrailingMetadata(kErrorDetailTrailer, detail.SerializeAsString());
  }
  return grpc::Status(ToGrpcCode(status.code()), std::string(status.message()),
                      RpcStatusOf(status).SerializeAsString());
}

}  // namespace mailpool::service
