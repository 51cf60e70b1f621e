// The message model <-> RFC 5322/MIME bytes (EmailBuildSource / EmailImportSource).
//
//   std::vector<std::string> warnings;
//   v1::EmailMessage m = mime::Parse(raw, mime::ParseOptions{}, &warnings);
//   absl::StatusOr<std::string> source = mime::Build(m, v1::BuildOptions(), &message_id);
//
// Parse never fails outright: real-world mail (broken charsets, missing boundaries, 8-bit
// headers) degrades, and what could not be decoded is described in `warnings`. Headers
// are decoded to UTF-8 (RFC 2047 words, RFC 2231 parameters, declared charsets).
// Thread-safe (no shared state); may be slow on large messages, so the daemon runs it off
// the event loop.
#ifndef MAILPOOL_MIME_MIME_H_
#define MAILPOOL_MIME_MIME_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mailpool/v1/message.pb.h"

namespace mailpool::mime {

struct ParseOptions {
  // Stop after the header block: fill addresses, subject, date, ids, priority, receipts
  // and `headers`, leave bodies and attachments empty. Cheap; used for HEADERS views and
  // header searches.
  bool headers_only = false;
  // Attachments larger than this keep their metadata but not their bytes
  // (Attachment.content_omitted = true). 0: no limit.
  size_t max_attachment_bytes = 0;
  // Also copy the raw bytes into EmailMessage.source.
  bool include_source = false;
};

v1::EmailMessage Parse(absl::string_view source, const ParseOptions& options,
                       std::vector<std::string>* warnings);

// Builds RFC 5322 bytes. Fills a Message-ID when the message has none (or when
// options.regenerate_message_id) and returns it in *message_id. INVALID_ARGUMENT for a
// message that cannot be built (no sender, header injection attempts, ...).
absl::StatusOr<std::string> Build(const v1::EmailMessage& message, const v1::BuildOptions& options,
                                  std::string* message_id);

}  // namespace mailpool::mime

#endif  // MAILPOOL_MIME_MIME_H_
