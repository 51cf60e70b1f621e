#include "wire/protocol.h"

namespace mailpool::wire {

absl::string_view MechanismName(Mechanism mechanism) {
  switch (mechanism) {
    case Mechanism::kAuto:
      return "AUTO";
    case Mechanism::kCommand:
      return "LOGIN-COMMAND";
    case Mechanism::kPlain:
      return "PLAIN";
    case Mechanism::kLogin:
      return "LOGIN";
    case Mechanism::kCramMd5:
      return "CRAM-MD5";
    case Mechanism::kApop:
      return "APOP";
    case Mechanism::kXoauth2:
      return "XOAUTH2";
    case Mechanism::kOauthbearer:
      return "OAUTHBEARER";
    case Mechanism::kNone:
      return "NONE";
    case Mechanism::kScramSha1:
      return "SCRAM-SHA-1";
    case Mechanism::kScramSha256:
      return "SCRAM-SHA-256";
  }
  return "UNKNOWN";
}

}  // namespace mailpool::wire
