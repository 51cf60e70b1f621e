// Message preparation: the envelope and the bytes of one send (send.h).
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "mime/mime.h"
#include "send/send.h"

namespace mailpool::sender {
namespace {

constexpr size_t kMaxSourceBytes = 64u << 20;

void AddRecipients(const google::protobuf::RepeatedPtrField<v1::Address>& list,
                   std::set<std::string>* seen, std::vector<std::string>* out) {
  for (const v1::Address& a : list) {
    if (a.address().empty()) continue;
    std::string key = absl::AsciiStrToLower(a.address());
    if (seen->insert(key).second) out->push_back(a.address());
  }
}

// RCPT TO from the header: To, Cc and Bcc, each address once (case-insensitive).
std::vector<std::string> HeaderRecipients(const v1::EmailMessage& m) {
  std::set<std::string> seen;
  std::vector<std::string> out;
  AddRecipients(m.to(), &seen, &out);
  AddRecipients(m.cc(), &seen, &out);
  AddRecipients(m.bcc(), &seen, &out);
  return out;
}

// MAIL FROM from the header: Sender, else From.
std::string HeaderSender(const v1::EmailMessage& m) {
  return !m.sender().address().empty() ? m.sender().address() : m.from().address();
}

}  // namespace

std::string WithoutBcc(absl::string_view source) {
  std::string out;
  out.reserve(source.size());
  size_t pos = 0;
  bool dropping = false;
  while (pos < source.size()) {
    size_t eol = source.find('\n', pos);
    size_t next = eol == absl::string_view::npos ? source.size() : eol + 1;
    absl::string_view line = source.substr(pos, next - pos);
    absl::string_view bare = absl::StripTrailingAsciiWhitespace(line);
    if (bare.empty()) {  // end of the header block: the rest is the body
      absl::StrAppend(&out, source.substr(pos));
      return out;
    }
    bool continuation = line[0] == ' ' || line[0] == '\t';
    if (!continuation) dropping = absl::StartsWithIgnoreCase(line, "bcc:");
    if (!dropping) absl::StrAppend(&out, line);
    pos = next;
  }
  return out;
}

absl::StatusOr<Outgoing> Prepare(const v1::SendMessageRequest& request) {
  Outgoing out;
  out.require_all = request.require_all_recipients();
  const v1::Envelope& env = request.envelope();
  if (env.rcpt_to_size() > static_cast<int>(smtp::kMaxRecipients)) {
    return Invalid("envelope.rcpt_to", "at most 1000 recipients");
  }
  std::string mail_from;
  bool from_given = !env.mail_from().empty();
  if (from_given) mail_from = env.mail_from() == "<>" ? "" : env.mail_from();
  std::vector<std::string> rcpts(env.rcpt_to().begin(), env.rcpt_to().end());
  bool dsn = env.request_dsn();
  switch (request.content_case()) {
    case v1::SendMessageRequest::kMessage: {
      const v1::EmailMessage& m = request.message();
      absl::StatusOr<std::string> built = mime::Build(m, request.build_options(), &out.message_id);
      if (!built.ok()) return built.status();
      out.source = std::move(*built);
      out.subject = m.subject();
      if (!from_given) mail_from = HeaderSender(m);
      if (rcpts.empty()) rcpts = HeaderRecipients(m);
      dsn = dsn || m.delivery_receipt();
      break;
    }
    case v1::SendMessageRequest::kSource: {
      if (request.source().empty()) return Invalid("source", "empty");
      if (request.source().size() > kMaxSourceBytes) {
        return ReasonError(absl::StatusCode::kResourceExhausted, "MESSAGE_TOO_LARGE",
                           "source: at most 64 MiB");
      }
      mime::ParseOptions options;
      options.headers_only = true;
      v1::EmailMessage headers = mime::Parse(request.source(), options, nullptr);
      out.message_id = headers.message_id();
      out.subject = headers.subject();
      if (!from_given) mail_from = HeaderSender(headers);
      if (rcpts.empty()) {
        rcpts = HeaderRecipients(headers);
        out.source = headers.bcc().empty() ? request.source() : WithoutBcc(request.source());
      } else {
        out.source = request.source();
      }
      break;
    }
    default:
      return Invalid("content", "a message or a source is required");
  }
  if (!from_given && mail_from.empty()) {
    return Invalid("envelope.mail_from", "the message has no From or Sender address; give one");
  }
  if (rcpts.empty()) return Invalid("envelope.rcpt_to", "the message has no recipient");
  if (!mail_from.empty()) MP_RETURN_IF_ERROR(smtp::ValidatePath("envelope.mail_from", mail_from));
  for (const std::string& r : rcpts) MP_RETURN_IF_ERROR(smtp::ValidatePath("envelope.rcpt_to", r));
  out.envelope.mail_from = std::move(mail_from);
  out.envelope.rcpt_to = std::move(rcpts);
  out.envelope.request_dsn = dsn;
  return out;
}

}  // namespace mailpool::sender
