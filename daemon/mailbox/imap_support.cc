#include "mailbox/imap_support.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status.h"

namespace mailpool::mailbox {
namespace {

constexpr absl::string_view kIdPrefix = "i1.";
constexpr size_t kAccountBytes = 6;

absl::Status InvalidField(absl::string_view what) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD", what);
}

void PutBigEndian(uint32_t v, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

uint32_t GetBigEndian(absl::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    if (n == 2 && c < 0xc2) return false;  // overlong
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

}  // namespace

uint64_t Fingerprint(absl::string_view data) {
  uint64_t hash = 1469598103934665603ull;
  for (char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string AccountTag(absl::string_view host, uint16_t port, absl::string_view user) {
  uint64_t h = Fingerprint(absl::StrCat(absl::AsciiStrToLower(host), "\n", port, "\n", user));
  std::string bytes;
  for (size_t i = 0; i < kAccountBytes; ++i) bytes.push_back(static_cast<char>(h >> (8 * i)));
  return bytes;
}

bool SameFolder(absl::string_view a, absl::string_view b) {
  if (absl::EqualsIgnoreCase(a, "INBOX")) return absl::EqualsIgnoreCase(b, "INBOX");
  return a == b;
}

std::string NormalizeFolder(absl::string_view name) {
  if (absl::EqualsIgnoreCase(name, "INBOX")) return "INBOX";
  return std::string(name);
}

std::string EncodeMessageId(absl::string_view account, const MessageRef& ref) {
  std::string raw(account.substr(0, kAccountBytes));
  raw.resize(kAccountBytes, '\0');
  PutBigEndian(ref.uid_validity, &raw);
  PutBigEndian(ref.uid, &raw);
  raw.append(ref.folder);
  return absl::StrCat(kIdPrefix, absl::WebSafeBase64Escape(raw));
}

absl::StatusOr<MessageRef> DecodeMessageId(absl::string_view account, absl::string_view id) {
  std::string raw;
  if (!absl::StartsWith(id, kIdPrefix) ||
      !absl::WebSafeBase64Unescape(id.substr(kIdPrefix.size()), &raw) ||
      raw.size() < kAccountBytes + 8 + 1) {
    return InvalidField("id: not an IMAP message ID from this daemon");
  }
  absl::string_view view(raw);
  MessageRef ref;
  ref.uid_validity = GetBigEndian(view.substr(kAccountBytes, 4));
  ref.uid = GetBigEndian(view.substr(kAccountBytes + 4, 4));
  absl::string_view folder = view.substr(kAccountBytes + 8);
  if (ref.uid == 0 || ref.uid_validity == 0 || !IsValidUtf8(folder) ||
      folder.find_first_of(absl::string_view("\r\n\0", 3)) != absl::string_view::npos) {
    return InvalidField("id: not an IMAP message ID from this daemon");
  }
  if (view.substr(0, kAccountBytes) != account.substr(0, kAccountBytes)) {
    return ReasonError(absl::StatusCode::kFailedPrecondition, "FOREIGN_ID",
                       "id: the message ID belongs to another IMAP account");
  }
  ref.folder = NormalizeFolder(folder);
  return ref;
}

std::string EncodePageToken(absl::string_view kind, const std::vector<std::string>& fields) {
  std::string raw(kind);
  for (const std::string& f : fields) {
    raw.push_back('\0');
    raw.append(f);
  }
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<std::vector<std::string>> DecodePageToken(absl::string_view token,
                                                         absl::string_view kind, size_t fields) {
  std::string raw;
  if (token.size() > 1024 || !absl::WebSafeBase64Unescape(token, &raw)) {
    return InvalidField("page_token: not a token from a previous response");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, absl::ByChar('\0'));
  if (parts.size() != fields + 1 || parts[0] != kind) {
    return InvalidField("page_token: not a token from a previous response of this call");
  }
  parts.erase(parts.begin());
  return parts;
}

std::vector<std::string> FlagsToImap(const v1::Flags& flags) {
  std::vector<std::string> out;
  if (flags.seen()) out.push_back("\\Seen");
  if (flags.answered()) out.push_back("\\Answered");
  if (flags.flagged()) out.push_back("\\Flagged");
  if (flags.deleted()) out.push_back("\\Deleted");
  if (flags.draft()) out.push_back("\\Draft");
  for (const std::string& k : flags.keywords()) out.push_back(k);
  return out;
}

v1::Flags FlagsFromImap(const std::vector<std::string>& flags) {
  v1::Flags out;
  for (const std::string& f : flags) {
    if (f.empty()) continue;
    if (f[0] != '\\') {
      out.add_keywords(f);
    } else if (absl::EqualsIgnoreCase(f, "\\Seen")) {
      out.set_seen(true);
    } else if (absl::EqualsIgnoreCase(f, "\\Answered")) {
      out.set_answered(true);
    } else if (absl::EqualsIgnoreCase(f, "\\Flagged")) {
      out.set_flagged(true);
    } else if (absl::EqualsIgnoreCase(f, "\\Deleted")) {
      out.set_deleted(true);
    } else if (absl::EqualsIgnoreCase(f, "\\Draft")) {
      out.set_draft(true);
    } else if (absl::EqualsIgnoreCase(f, "\\Recent")) {
      out.set_recent(true);
    }
  }
  return out;
}

v1::FolderRole RoleOf(absl::string_view folder, absl::string_view special_use) {
  if (absl::EqualsIgnoreCase(folder, "INBOX")) return v1::FOLDER_ROLE_INBOX;
  static constexpr std::pair<absl::string_view, v1::FolderRole> kRoles[] = {
      {"\\All", v1::FOLDER_ROLE_ALL},       {"\\Archive", v1::FOLDER_ROLE_ARCHIVE},
      {"\\Drafts", v1::FOLDER_ROLE_DRAFTS}, {"\\Flagged", v1::FOLDER_ROLE_FLAGGED},
      {"\\Junk", v1::FOLDER_ROLE_JUNK},     {"\\Sent", v1::FOLDER_ROLE_SENT},
      {"\\Trash", v1::FOLDER_ROLE_TRASH},   {"\\Important", v1::FOLDER_ROLE_IMPORTANT},
  };
  for (const auto& [name, role] : kRoles) {
    if (absl::EqualsIgnoreCase(special_use, name)) return role;
  }
  return v1::FOLDER_ROLE_UNSPECIFIED;
}

absl::Status ValidateFlags(absl::string_view field, const v1::Flags& flags) {
  if (flags.recent()) return InvalidField(absl::StrCat(field, ".recent: cannot be set"));
  for (const std::string& k : flags.keywords()) {
    if (k.empty() || k.size() > 128) {
      return InvalidField(absl::StrCat(field, ".keywords: 1 to 128 bytes each"));
    }
    for (char c : k) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f ||
          absl::string_view("(){%*\"\\]").find(c) != absl::string_view::npos) {
        return InvalidField(absl::StrCat(field, ".keywords: \"", absl::CHexEscape(k),
                                         "\" is not an IMAP keyword (printable ASCII without "
                                         "spaces or ( ) { % * \" \\ ])"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateFolderName(absl::string_view field, absl::string_view name) {
  if (!IsValidUtf8(name)) return InvalidField(absl::StrCat(field, ": must be valid UTF-8"));
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return InvalidField(absl::StrCat(field, ": must not contain control characters"));
    }
  }
  return absl::OkStatus();
}

}  // namespace mailpool::mailbox
