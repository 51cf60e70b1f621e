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
//
// Text bodies are canonical MIME text: Parse returns them with the line ends of the
// decoded part (CRLF in well-formed mail) and Build writes CRLF whether it is given LF or
// CRLF. So a body written with CRLF line ends survives Build -> Parse byte for byte.
//
// Shape of built messages (each level only when needed):
//   multipart/mixed
//     multipart/alternative          (text_body and html_body)
//       text/plain
//       multipart/related            (attachments with a content_id, when there is HTML)
//         text/html
//         inline parts ...
//     attachments ...
// Parse lists attachments in message order, so inline parts come back before the others.
#ifndef MAILPOOL_MIME_MIME_H_
#define MAILPOOL_MIME_MIME_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mailpool/v1/message.pb.h"

namespace mailpool::mime {

// Limits that keep hostile input cheap. Parts below kMaxDepth levels of nesting, and parts
// after the first kMaxParts, are skipped with a warning.
inline constexpr int kMaxDepth = 64;
inline constexpr int kMaxParts = 2000;
// At most this many distinct warnings are returned (then one saying how many were left).
inline constexpr size_t kMaxWarnings = 50;

struct ParseOptions {
  // Stop after the header block: fill addresses, subject, date, ids, priority, receipts
  // and `headers`, leave bodies and attachments empty. Cheap; used for HEADERS views and
  // header searches.
  bool headers_only = false;
  // Attachments larger than this keep their metadata but not their bytes
  // (Attachment.content_omitted = true). 0: no limit.
  size_t max_attachment_bytes = 0;
  // Keep no attachment bytes at all (every attachment has content_omitted = true and its
  // exact decoded size).
  bool omit_attachment_content = false;
  // Also copy the raw bytes into EmailMessage.source.
  bool include_source = false;
};

// Parses `source` (CRLF or LF line ends). `warnings` may be null. `headers` receives the
// header fields that no dedicated field models (see message.proto), in source order.
v1::EmailMessage Parse(absl::string_view source, const ParseOptions& options,
                       std::vector<std::string>* warnings);

// Builds RFC 5322 bytes. Fills a Message-ID when the message has none (or when
// options.regenerate_message_id) and returns it in *message_id. INVALID_ARGUMENT for a
// message that cannot be built (no sender, header injection attempts, ...).
absl::StatusOr<std::string> Build(const v1::EmailMessage& message, const v1::BuildOptions& options,
                                  std::string* message_id);

}  // namespace mailpool::mime

#endif  // MAILPOOL_MIME_MIME_H_
