#include "common/status.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/utf8.h"

namespace mailpool {

absl::Status MailServerError(absl::StatusCode code, absl::string_view reason,
                             absl::string_view what, absl::string_view command,
                             absl::string_view server_reply) {
  std::string reply = SanitizeServerText(server_reply);
  std::string message =
      reply.empty() ? std::string(what) : absl::StrCat(what, ": server replied: ", reply);
  absl::Status status(code, message);
  status.SetPayload(kReasonPayload, absl::Cord(reason));
  if (!command.empty()) status.SetPayload(kCommandPayload, absl::Cord(command));
  if (!reply.empty()) status.SetPayload(kServerReplyPayload, absl::Cord(reply));
  return status;
}

absl::Status ReasonError(absl::StatusCode code, absl::string_view reason, absl::string_view what) {
  return MailServerError(code, reason, what);
}

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                     absl::StrCat(field, ": ", what));
}

std::optional<std::string> GetPayloadText(const absl::Status& status, absl::string_view key) {
  absl::optional<absl::Cord> payload = status.GetPayload(key);
  if (!payload) return std::nullopt;
  return std::string(*payload);
}

absl::Status PrefixMessage(const absl::Status& status, absl::string_view prefix) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(prefix, status.message()));
  status.ForEachPayload(
      [&](absl::string_view key, const absl::Cord& value) { out.SetPayload(key, value); });
  return out;
}

absl::Status RedactSecret(const absl::Status& status, absl::string_view secret) {
  if (status.ok() || secret.size() < 4) return status;
  auto redact = [&](absl::string_view text) {
    return absl::StrReplaceAll(text, {{secret, "***"}});
  };
  absl::Status out(status.code(), redact(status.message()));
  status.ForEachPayload([&](absl::string_view key, const absl::Cord& value) {
    out.SetPayload(key, absl::Cord(redact(std::string(value))));
  });
  return out;
}

std::string SanitizeServerText(absl::string_view text, size_t max_bytes) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  // Cut at a character boundary; what is left becomes valid UTF-8 below (it ends up in
  // proto3 string fields: greetings, server replies in error details).
  absl::string_view kept = Utf8Prefix(text, max_bytes);
  bool cut = kept.size() < text.size();
  std::string out;
  out.reserve(kept.size() + 3);
  for (char c : kept) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '\r' || c == '\n') {
      out += ' ';
    } else if (u < 0x20 || u == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (cut) out += "...";
  MakeValidUtf8(&out);
  return out;
}

}  // namespace mailpool
