// Callers: who is calling, and what each caller may still do.
//
// Owns the caller identities of the gRPC edge and the per-caller limits:
//   - identity from what a call carries (CallFacts, filled by the service layer from the
//     gRPC context): a bearer token from --caller_tokens_file (identity = its NAME), the
//     Unix user of a Unix-socket peer (`uid:<N>`, recorded at accept), the subject CN or
//     URI SAN of a verified client certificate (`cert:<CN>`), else — only when the daemon
//     requires no authentication — the one shared identity `local`;
//   - the token table (SHA-256 digests only, compared in constant time, re-read by Reload);
//   - calls in flight per identity and the StartSession token bucket per identity.
//
//   callers::Callers callers(options);
//   MP_RETURN_IF_ERROR(callers.Load());                 // start-up: a bad line is an error
//   absl::StatusOr<Caller> who = callers.Identify(facts);  // UNAUTHENTICATED or a caller
//
// A token is never logged nor put into a status. Thread-safe. Uses common/ only.
#ifndef MAILPOOL_CALLERS_CALLERS_H_
#define MAILPOOL_CALLERS_CALLERS_H_

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mailpool::callers {

// The identity that owns sessions when the daemon requires no authentication.
inline constexpr char kLocal[] = "local";

struct Caller {
  std::string name;    // "alice" (token), "uid:1000", "cert:ops", or "local"
  bool admin = false;  // may list and close every caller's sessions
};

// What a call carries that can identify its caller; the gRPC edge fills it.
struct CallFacts {
  // The `authorization` request header, if the call sent one.
  bool has_authorization = false;
  absl::string_view authorization;
  // The transport peer: "fd:<N>" for Unix-socket connections accepted by the daemon.
  std::string peer;
  // From a verified client certificate (mutual TLS); empty otherwise.
  std::string cert_common_name;
  std::string cert_uri;
};

struct CallersOptions {
  // Token file: one `NAME SHA256-HEX [admin]` per line, `#` comments. Empty: no tokens.
  std::string tokens_file;
  // Mutual TLS is configured: certificates identify callers.
  bool client_certificates = false;
  // Calls in flight per identity; 0: no limit.
  int max_calls_per_caller = 0;
  // StartSession token bucket per identity: refill per second and bucket size; rate 0:
  // no limit.
  double start_rate_per_caller = 10;
  int start_burst_per_caller = 50;
  // Message bytes that calls in flight may hold, daemon-wide; 0: no limit.
  size_t max_inflight_message_bytes = size_t{256} << 20;
  // Time source of the token bucket (tests pass a fake one).
  absl::Time (*now)() = &absl::Now;
};

// One line of a token file. ParseTokenFile parses a file's text; `origin` names it in
// errors ("FILE:LINE: ..."); it never quotes a line (a token pasted by mistake stays out).
struct TokenEntry {
  std::string name;
  std::string digest;  // 32 raw bytes of SHA-256
  bool admin = false;
};
absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(absl::string_view text,
                                                       absl::string_view origin);

class Callers {
 public:
  explicit Callers(CallersOptions options);
  ~Callers();
  Callers(const Callers&) = delete;
  Callers& operator=(const Callers&) = delete;

  // Reads the token file (if any). On error (unreadable file, a malformed line — named by
  // its number) the table in use stays as it was.
  absl::Status Load();
  // Whether a TCP call must authenticate (tokens or client certificates are configured).
  bool authentication_required() const;
  size_t token_count() const;

  // The caller of a call: UNAUTHENTICATED for a missing, malformed or unknown token, and
  // for a call without credentials when authentication is required.
  absl::StatusOr<Caller> Identify(const CallFacts& facts) const;

  // Records the Unix user of a Unix-socket connection before gRPC serves it (fd = the
  // accepted descriptor, whose number gRPC puts in the peer string "fd:<N>").
  void NoteUnixPeer(int fd, uid_t uid);

  // Calls in flight: Enter when a call starts, Leave when it ends (the call observer);
  // Admit refuses with RESOURCE_EXHAUSTED (and a retry hint) past max_calls_per_caller.
  void Enter(const std::string& name);
  void Leave(const std::string& name);
  absl::Status Admit(const Caller& caller) const;
  // One StartSession of `caller`: RESOURCE_EXHAUSTED with a retry hint when its bucket is
  // empty.
  absl::Status TakeStart(const Caller& caller);
  // Reserves `bytes` of the daemon-wide budget for the message a call holds (SendMessage,
  // AppendMessage, BuildSource, ParseSource charge twice the request: it and its working
  // copy). Past the budget: RESOURCE_EXHAUSTED, reason MEMORY_BUDGET, with a retry hint —
  // except that a call always gets in when nothing else holds any (one message larger
  // than the budget still goes, alone). Dropping the hold gives the bytes back.
  absl::StatusOr<std::shared_ptr<const void>> ReserveMessageBytes(size_t bytes) const;
  size_t message_bytes_in_flight() const { return message_bytes_->load(); }

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time last;
  };

  CallersOptions options_;
  mutable absl::Mutex mu_;
  std::vector<TokenEntry> tokens_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int, uid_t> unix_peers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> in_flight_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  // Shared with the holds, which may outlive this object by a moment at shutdown.
  std::shared_ptr<std::atomic<size_t>> message_bytes_ = std::make_shared<std::atomic<size_t>>(0);
};


// Lowercase hex SHA-256 of `text` (what a token file holds for a token).
std::string Sha256Hex(absl::string_view text);

}  // namespace mailpool::callers

#endif  // MAILPOOL_CALLERS_CALLERS_H_
