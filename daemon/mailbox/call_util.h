// Small helpers shared by the mailbox backends: exactly-once completion, time conversion,
// the page-size rule of mailbox.proto, and streaming an in-memory string into a ChunkSink.
//
//   auto once = MakeOnce<absl::Status>(std::move(done));   // UNAVAILABLE if never called
//   StreamString(sink, std::move(content), chunk, [once](absl::Status s) { (*once)(s); });
//
// Loop-confined like the backends.
#ifndef MAILPOOL_MAILBOX_CALL_UTIL_H_
#define MAILPOOL_MAILBOX_CALL_UTIL_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "mailbox/backend.h"
#include "mailpool/v1/mailbox.pb.h"
#include "mime/mime.h"

namespace mailpool::mailbox {

// The error a call gets when its session goes away under it.
absl::Status SessionClosedError();

// Makes every `string` field of `message` (recursively: nested messages, repeated
// fields, map values) valid UTF-8 (common/utf8.h); `bytes` fields are left alone. Server
// text reaches callers only through this (or through the protocol clients, which sanitize
// greetings, capabilities and folder names): a proto3 string with invalid UTF-8 makes
// strict clients fail the whole reply.
void SanitizeUtf8(google::protobuf::Message* message);

// mime::Parse of server bytes, made valid UTF-8 by SanitizeUtf8.
v1::EmailMessage ParseServerMessage(absl::string_view source, const mime::ParseOptions& options,
                                    std::vector<std::string>* warnings);

// Calls `fn` exactly once: with the value given, or — when dropped uncalled because the
// session (and with it the queued work) went away — with SessionClosedError().
template <typename T>
class Once {
 public:
  explicit Once(absl::AnyInvocable<void(T)> fn) : fn_(std::move(fn)) {}
  Once(const Once&) = delete;
  Once& operator=(const Once&) = delete;
  ~Once() {
    if (fn_) fn_(T(SessionClosedError()));
  }
  void operator()(T value) {
    auto fn = std::move(fn_);
    fn_ = nullptr;
    if (fn) fn(std::move(value));
  }
  bool called() const { return fn_ == nullptr; }

 private:
  absl::AnyInvocable<void(T)> fn_;
};

template <typename T>
std::shared_ptr<Once<T>> MakeOnce(absl::AnyInvocable<void(T)> fn) {
  return std::make_shared<Once<T>>(std::move(fn));
}

google::protobuf::Timestamp ToProtoTime(absl::Time t);

// page_size of ListMessages/SearchMessages: 0 is 50; at most 1000 for BASIC and HEADERS,
// 100 for FULL and RAW (larger is lowered to that, AIP-158); INVALID_ARGUMENT if negative.
absl::StatusOr<size_t> PageSize(int32_t page_size, v1::MessageView view);

// Writes `content` into `sink` in `chunk`-byte pieces, waiting while the sink is full;
// then `done` (OK also when the consumer went away).
void StreamString(std::shared_ptr<ChunkSink> sink, std::string content, uint32_t chunk, Done done);

}  // namespace mailpool::mailbox

#endif  // MAILPOOL_MAILBOX_CALL_UTIL_H_
