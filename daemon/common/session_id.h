// Session IDs: an instance tag and 128 bits from the OS CSPRNG, as opaque text.
//
// Form: "ms" + tag + "_" + 32 lowercase hex digits, e.g. "ms0_3f9a...". The tag (the
// daemon's --instance flag, e.g. a pod ordinal) lets a proxy route a call to the daemon
// that owns the session. Names chosen by callers may not start with "ms" so the two never
// collide.
#ifndef MAILPOOL_COMMON_SESSION_ID_H_
#define MAILPOOL_COMMON_SESSION_ID_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mailpool {

// A new random session ID for instance `tag` (letters, digits, '-'; at most 32 bytes).
absl::StatusOr<std::string> NewSessionId(absl::string_view tag);

// Whether `text` has the shape of a session ID.
bool LooksLikeSessionId(absl::string_view text);

// Whether `tag` is a valid instance tag.
bool IsValidInstanceTag(absl::string_view tag);

}  // namespace mailpool

#endif  // MAILPOOL_COMMON_SESSION_ID_H_
