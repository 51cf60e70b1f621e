#include "imap/refusal.h"

#include <initializer_list>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace mailpool::imap {
namespace {

using Code = absl::StatusCode;

bool Mentions(absl::string_view text, std::initializer_list<absl::string_view> needles) {
  std::string lower = absl::AsciiStrToLower(text);
  for (absl::string_view n : needles) {
    if (absl::StrContains(lower, n)) return true;
  }
  return false;
}

bool NamesFolder(RefusedCommand c) {
  return c == RefusedCommand::kSelect || c == RefusedCommand::kStatus ||
         c == RefusedCommand::kDelete || c == RefusedCommand::kRename ||
         c == RefusedCommand::kSubscribe;
}

// Some servers (GNU Mailutils imap4d) put the response code after the command's name:
// "NO APPEND [TRYCREATE] failed", "NO UID COPY [TRYCREATE] failed". The code's name, or
// empty.
absl::string_view LateCode(absl::string_view text) {
  size_t space = text.find(' ');
  if (space != absl::string_view::npos && absl::EqualsIgnoreCase(text.substr(0, space), "UID")) {
    space = text.find(' ', space + 1);  // the code follows "UID COPY", "UID MOVE", ...
  }
  if (space == absl::string_view::npos || space + 1 >= text.size() || text[space + 1] != '[') {
    return {};
  }
  absl::string_view rest = text.substr(space + 2);
  size_t end = rest.find_first_of(" ]");
  if (end == absl::string_view::npos || end == 0) return {};
  return rest.substr(0, end);
}

}  // namespace

Refusal ClassifyRefusal(RefusedCommand command, absl::string_view code, absl::string_view text) {
  if (code.empty()) code = LateCode(text);
  auto is = [&](absl::string_view name) { return absl::EqualsIgnoreCase(code, name); };
  // RFC 3501 section 7.1 and RFC 5530 section 3.
  if (is("TRYCREATE") || is("NONEXISTENT")) return {Code::kNotFound, "FOLDER_NOT_FOUND"};
  if (is("ALREADYEXISTS")) return {Code::kAlreadyExists, "FOLDER_EXISTS"};
  // RFC 4469 section 4 / RFC 7889: the message is over the server's limit.
  if (is("TOOBIG")) return {Code::kResourceExhausted, "MESSAGE_TOO_BIG"};
  if (is("OVERQUOTA") || is("LIMIT")) return {Code::kResourceExhausted, "COMMAND_REFUSED"};
  if (is("NOPERM") || is("AUTHORIZATIONFAILED") || is("CONTACTADMIN")) {
    return {Code::kPermissionDenied, "COMMAND_REFUSED"};
  }
  if (is("READ-ONLY") || is("CANNOT") || is("PRIVACYREQUIRED") || is("EXPUNGEISSUED")) {
    return {Code::kFailedPrecondition, "COMMAND_REFUSED"};
  }
  if (is("BADCHARSET") || is("CLIENTBUG")) return {Code::kInvalidArgument, "COMMAND_REFUSED"};
  if (is("SERVERBUG")) return {Code::kInternal, "COMMAND_FAILED"};
  if (is("CORRUPTION")) return {Code::kDataLoss, "COMMAND_FAILED"};
  if (is("UNAVAILABLE") || is("INUSE")) return {Code::kUnavailable, "SERVER_BUSY"};

  // No code (or one not listed): what the text says.
  bool folder_command = NamesFolder(command) || command == RefusedCommand::kCreate ||
                        command == RefusedCommand::kCopy || command == RefusedCommand::kAppend;
  bool creates = command == RefusedCommand::kCreate || command == RefusedCommand::kRename;
  if (creates && Mentions(text, {"already exist"})) return {Code::kAlreadyExists, "FOLDER_EXISTS"};
  if (folder_command &&
      Mentions(text, {"does not exist", "doesn't exist", "not exist", "no such", "not found",
                      "unknown mailbox", "nonexistent", "non-existent"})) {
    return {Code::kNotFound, "FOLDER_NOT_FOUND"};
  }
  if (creates && Mentions(text, {"exists"})) return {Code::kAlreadyExists, "FOLDER_EXISTS"};
  if (command == RefusedCommand::kAppend &&
      Mentions(text, {"too big", "too large", "too long", "size limit", "exceeds"})) {
    return {Code::kResourceExhausted, "MESSAGE_TOO_BIG"};
  }
  if (Mentions(text, {"quota"})) return {Code::kResourceExhausted, "COMMAND_REFUSED"};
  if (Mentions(text, {"permission", "not allowed", "denied"})) {
    return {Code::kPermissionDenied, "COMMAND_REFUSED"};
  }
  if (NamesFolder(command)) return {Code::kNotFound, "FOLDER_NOT_FOUND"};
  return {Code::kFailedPrecondition, "COMMAND_REFUSED"};
}

}  // namespace mailpool::imap
