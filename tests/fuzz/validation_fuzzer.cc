// Fuzzes request validation (service/validation.cc): a StartSessionRequest, an
// UpdateSession's credentials and the other checked fields, as a caller could send them
// (protobuf wire bytes), must give a SessionSpec or INVALID_ARGUMENT, never a crash.
//
// Input: byte 0 picks the request kind; the rest is the serialized message.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "google/protobuf/stubs/logging.h"
#include "mailpool/v1/session.pb.h"
#include "service/validation.h"

// Protobuf's parse errors would be logged for most inputs; they are expected here.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailpool;
  fuzz::Input in(data, size);
  uint8_t which = in.Byte();
  absl::string_view bytes = in.rest();
  switch (which % 4) {
    case 0:
    case 1: {
      v1::StartSessionRequest request;
      if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) break;
      absl::StatusOr<session::SessionSpec> spec = service::SpecFromRequest(request);
      if (!spec.ok() && spec.status().message().empty()) __builtin_trap();
      break;
    }
    case 2: {
      v1::Credentials credentials;
      if (!credentials.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) break;
      session::LinkSpec current;
      current.login.user = credentials.user();
      for (session::Kind kind : {session::Kind::kImap, session::Kind::kPop3,
                                 session::Kind::kSmtp, session::Kind::kPop3Smtp}) {
        (void)service::LoginForUpdate(credentials, kind, current);
      }
      break;
    }
    default: {
      (void)service::ValidateSessionRef("session_id", bytes);
      google::protobuf::Duration d;
      if (d.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        (void)service::DurationFromProto("timeout", d, absl::Seconds(1), service::kMaxTimeout);
      break;
    }
  }
  return 0;
}
