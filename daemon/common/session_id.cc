#include "common/session_id.h"

#include <errno.h>
#include <sys/random.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace mailpool {

bool IsValidInstanceTag(absl::string_view tag) {
  if (tag.empty() || tag.size() > 32) return false;
  for (char c : tag) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

absl::StatusOr<std::string> NewSessionId(absl::string_view tag) {
  if (!IsValidInstanceTag(tag)) return absl::InvalidArgumentError("invalid instance tag");
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError("getrandom failed");
    }
    got += static_cast<size_t>(n);
  }
  return absl::StrCat(
      "ms", tag, "_",
      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes))));
}

bool LooksLikeSessionId(absl::string_view text) {
  if (text.size() < 2 + 1 + 1 + 32 || text.substr(0, 2) != "ms") return false;
  size_t underscore = text.rfind('_');
  if (underscore == absl::string_view::npos || text.size() - underscore - 1 != 32) return false;
  if (!IsValidInstanceTag(text.substr(2, underscore - 2))) return false;
  for (char c : text.substr(underscore + 1)) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) || absl::ascii_isupper(c)) {
      return false;
    }
  }
  return true;
}

}  // namespace mailpool
