#include "mailbox/call_util.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/utf8.h"

namespace mailpool::mailbox {

void SanitizeUtf8(google::protobuf::Message* message) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      if (field->is_repeated()) {
        for (int i = 0, n = reflection->FieldSize(*message, field); i < n; ++i) {
          const std::string& value =
              reflection->GetRepeatedStringReference(*message, field, i, nullptr);
          if (!IsValidUtf8(value)) {
            reflection->SetRepeatedString(message, field, i, ToValidUtf8(value));
          }
        }
      } else {
        std::string scratch;
        const std::string& value = reflection->GetStringReference(*message, field, &scratch);
        if (!IsValidUtf8(value)) reflection->SetString(message, field, ToValidUtf8(value));
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0, n = reflection->FieldSize(*message, field); i < n; ++i) {
          SanitizeUtf8(reflection->MutableRepeatedMessage(message, field, i));
        }
      } else {
        SanitizeUtf8(reflection->MutableMessage(message, field));
      }
    }
  }
}

v1::EmailMessage ParseServerMessage(absl::string_view source, const mime::ParseOptions& options,
                                    std::vector<std::string>* warnings) {
  v1::EmailMessage message = mime::Parse(source, options, warnings);
  SanitizeUtf8(&message);
  return message;
}

absl::Status SessionClosedError() {
  return ReasonError(absl::StatusCode::kUnavailable, "SESSION_CLOSED",
                     "the session was closed while the call was running");
}

google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  google::protobuf::Timestamp ts;
  int64_t nanos = absl::ToUnixNanos(t);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  if (ts.nanos() < 0) {
    ts.set_seconds(ts.seconds() - 1);
    ts.set_nanos(ts.nanos() + 1000000000);
  }
  return ts;
}

absl::StatusOr<size_t> PageSize(int32_t page_size, v1::MessageView view) {
  int32_t max = (view == v1::MESSAGE_VIEW_FULL || view == v1::MESSAGE_VIEW_RAW) ? 100 : 1000;
  if (page_size < 0) {
    return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                       "page_size: must not be negative");
  }
  // AIP-158: a page size above the maximum is lowered to the maximum, not refused.
  return page_size == 0 ? 50 : static_cast<size_t>(std::min(page_size, max));
}

void StreamString(std::shared_ptr<ChunkSink> sink, std::string content, uint32_t chunk, Done done) {
  struct Job {
    std::shared_ptr<ChunkSink> sink;
    std::string content;
    uint32_t chunk;
    size_t offset = 0;
    Done done;
  };
  auto job =
      std::make_shared<Job>(Job{std::move(sink), std::move(content), chunk, 0, std::move(done)});
  auto pump = std::make_shared<absl::AnyInvocable<void()>>();
  // The pump holds itself only through the sink's OnDrained callback while it waits.
  *pump = [job, weak = std::weak_ptr<absl::AnyInvocable<void()>>(pump)]() {
    while (job->offset < job->content.size()) {
      if (job->sink->Cancelled()) break;
      if (job->sink->Full()) {
        if (auto self = weak.lock()) job->sink->OnDrained([self] { (*self)(); });
        return;
      }
      size_t n = std::min<size_t>(job->chunk, job->content.size() - job->offset);
      job->sink->Write(job->content.substr(job->offset, n), job->offset);
      job->offset += n;
    }
    if (job->done) {
      auto done = std::move(job->done);
      job->done = nullptr;
      done(absl::OkStatus());
    }
  };
  (*pump)();
}

}  // namespace mailpool::mailbox
