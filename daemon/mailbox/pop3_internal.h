// Private to the POP3 backend (pop3_backend.cc: the snapshot, the queue of turns, fill;
// pop3_calls.cc: the MailboxBackend calls): its per-session state and Impl. Loop-confined.
#ifndef MAILPOOL_MAILBOX_POP3_INTERNAL_H_
#define MAILPOOL_MAILBOX_POP3_INTERNAL_H_

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "mailbox/call_util.h"
#include "mailbox/pop3_backend.h"
#include "mailbox/search.h"
#include "mime/mime.h"
#include "pop3/client.h"
#include "session/session.h"

namespace mailpool::mailbox {
namespace pop3_detail {

constexpr char kInbox[] = "INBOX";
constexpr uint64_t kDefaultMaxAttachment = 1 << 20;
constexpr uint32_t kDefaultChunk = 64 * 1024;

struct Message {
  uint32_t number = 0;
  uint64_t size = 0;
  std::string uidl;      // empty: the server has no UIDL for it
  bool deleted = false;  // DELE by this session, pending until QUIT
  bool gone = false;     // expunged by another client (the server said so)
};

// A command for the session's POP3 link, queued in the link (its queue is the session's
// only one: LinkPolicy::max_queue and cancel-while-queued hold for it).
struct Command {
  using Start = absl::AnyInvocable<void(pop3::Client&, session::Link&)>;
  Command(Start start, Done done, std::shared_ptr<CallToken> call = nullptr)
      : start(std::move(start)), done(std::move(done)), call(std::move(call)) {}

  // Starts one command on the ready client.
  Start start;
  Done done;
  // The call it runs for (Enqueue takes the target's when null).
  std::shared_ptr<CallToken> call;
};

struct SavedSearch {
  std::vector<uint32_t> numbers;  // ascending
  uint64_t generation = 0;
  uint64_t fingerprint = 0;
  absl::Time created;
};

// Per-session POP3 mailbox state, kept in the session (destroyed with it).
class State final : public session::Session::Extension {
 public:
  std::string account;
  // The snapshot.
  bool loaded = false;
  bool loading = false;
  std::vector<Done> load_waiters;
  bool has_uidl = false;
  uint64_t generation = 0;
  // The link connection the snapshot's message numbers belong to (Link::generation()).
  // After a reconnect the numbers mean nothing: the snapshot is read again.
  uint64_t link_generation = 0;
  // UIDLs this session had deleted when its connection dropped: the server forgot those
  // DELEs, so they are sent again on the new connection.
  absl::flat_hash_set<std::string> redelete;
  absl::Time snapshot_time;
  std::vector<Message> messages;  // ascending numbers
  absl::flat_hash_map<std::string, size_t> by_uidl;
  absl::flat_hash_map<uint32_t, size_t> by_number;
  // Session-life records keyed by Key().
  absl::flat_hash_set<std::string> seen;
  absl::flat_hash_map<std::string, v1::EmailMessage> headers;
  // Saved searches by ID.
  absl::flat_hash_map<uint64_t, SavedSearch> searches;
  uint64_t next_search = 1;

  std::string Key(const Message& m) const {
    return m.uidl.empty() ? absl::StrCat("n", generation, ":", m.number)
                          : absl::StrCat("u", m.uidl);
  }
  uint32_t pending_deletions() const {
    uint32_t n = 0;
    for (const Message& m : messages) n += m.deleted ? 1 : 0;
    return n;
  }
};

// The message numbered `number` in the current snapshot, or null (a Refresh replaced it).
inline const Message* FindMessage(const State& state, uint32_t number) {
  auto it = state.by_number.find(number);
  return it == state.by_number.end() ? nullptr : &state.messages[it->second];
}

inline absl::Status Refreshed() {
  return ReasonError(absl::StatusCode::kAborted, "MAILBOX_REFRESHED",
                     "the mailbox was refreshed while the call was running; try again");
}

struct Ctx {
  session::Session* session;
  session::Link* link;
  State* state;
  std::shared_ptr<CallToken> call;
};

inline uint64_t Fnv1a(absl::string_view data, uint64_t hash = 1469598103934665603ull) {
  for (char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

inline std::string Base64Url(absl::string_view data) { return absl::WebSafeBase64Escape(data); }

// A short stable tag of the account (server and user), so that an ID of another account
// is recognised instead of addressing a message with the same UIDL there.
inline std::string AccountTag(const session::LinkSpec& spec) {
  uint64_t h = Fnv1a(absl::StrCat(absl::AsciiStrToLower(spec.endpoint.host), "\n",
                                  spec.endpoint.port, "\n", spec.login.user));
  std::string bytes(reinterpret_cast<const char*>(&h), 6);
  return Base64Url(bytes);
}

inline absl::Status Precondition(absl::string_view what) {
  return ReasonError(absl::StatusCode::kFailedPrecondition, "POP3_UNSUPPORTED", what);
}

inline absl::Status InvalidField(absl::string_view what) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD", what);
}

inline absl::Status CheckFolder(const std::string& folder) {
  if (folder.empty() || absl::EqualsIgnoreCase(folder, kInbox)) return absl::OkStatus();
  return ReasonError(absl::StatusCode::kFailedPrecondition, "POP3_UNSUPPORTED",
                     "folder: a POP3 mailbox has a single folder, INBOX");
}

// Page tokens: base64url of '|'-separated fields; every request field that shapes the
// listing is part of it.
inline std::string EncodeToken(const std::vector<std::string>& fields) {
  return Base64Url(absl::StrJoin(fields, "|"));
}

inline absl::StatusOr<std::vector<std::string>> DecodeToken(const std::string& token, size_t fields,
                                                            absl::string_view kind) {
  std::string raw;
  if (token.size() > 512 || !absl::WebSafeBase64Unescape(token, &raw)) {
    return InvalidField("page_token: not a token from a previous response");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, '|');
  if (parts.size() != fields || parts[0] != kind) {
    return InvalidField("page_token: not a token from a previous response of this call");
  }
  return parts;
}

}  // namespace pop3_detail

using namespace pop3_detail;  // NOLINT: this header is private to the POP3 backend

class Pop3Backend::Impl {
 public:
  Impl(pool::Pool& pool, Pop3BackendOptions options) : pool_(pool), options_(options) {}

  absl::StatusOr<Ctx> Lookup(const CallTarget& target);
  void Enqueue(const Ctx& ctx, Command command);
  void EnsureLoaded(const CallTarget& target, Done done);
  void LoadDone(const CallTarget& target, absl::Status status);
  // Sends again the DELEs a reconnect made the server forget.
  void Redelete(const Ctx& ctx);

  // Resolves an ID against the current snapshot.
  absl::StatusOr<const Message*> Resolve(const State& state, const std::string& id) const;
  std::string IdOf(const State& state, const Message& m) const;
  v1::EmailMessage Basic(const State& state, const Message& m) const;
  std::vector<const Message*> Visible(const State& state, bool newest_first) const;

  // Downloads one message whole (bounded by max_message_bytes).
  void Retrieve(const CallTarget& target, const Message& m,
                absl::AnyInvocable<void(absl::StatusOr<std::string>)> done);
  // The parsed header block of `m`, from the cache or TOP n 0.
  void Headers(const CallTarget& target, const Message& m,
               absl::AnyInvocable<void(absl::StatusOr<const v1::EmailMessage*>)> done);
  // `numbers` in `view`, in order.
  void Fill(const CallTarget& target, std::vector<uint32_t> numbers, v1::MessageView view,
            uint64_t max_attachment_bytes,
            absl::AnyInvocable<void(absl::StatusOr<std::vector<v1::EmailMessage>>)> done);
  // Message with the given view from downloaded source.
  v1::EmailMessage FromSource(State& state, const Message& m, v1::MessageView view,
                              const std::string& source, uint64_t max_attachment_bytes);
  v1::MailboxStatus Status(const State& state) const;
  // When `status` says the server no longer has message `number` (another client's QUIT
  // expunged it; Dovecot answers "-ERR Message N expunged"), records that and returns true.
  bool MarkGone(const CallTarget& target, uint32_t number, const absl::Status& status);

  void RunSearch(const CallTarget& target, std::shared_ptr<v1::SearchCriteria> criteria,
                 absl::AnyInvocable<void(absl::StatusOr<std::vector<uint32_t>>)> done);

  pool::Pool& pool_;
  Pop3BackendOptions options_;
};

}  // namespace mailpool::mailbox

#endif  // MAILPOOL_MAILBOX_POP3_INTERNAL_H_
