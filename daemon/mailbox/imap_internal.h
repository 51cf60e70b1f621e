// Private to the IMAP backend (imap_backend.h), split by purpose:
//   imap_backend.cc  the turns on the session's link (select, check, command), ID resolution
//   imap_fill.cc     reading: messages in a view, listing, search, streaming, attachments
//   imap_folders.cc  folder status, listing, selection, create/delete/rename
//   imap_changes.cc  flags, deletion, copy/move, append, expunge
//   imap_watch.cc    WatchMailbox (MailboxWatcher)
// Its per-session State, the Command of one turn, helpers and Impl. Loop-confined: every
// function here runs on the event loop that owns the pool (see backend.h).
#ifndef MAILPOOL_MAILBOX_IMAP_INTERNAL_H_
#define MAILPOOL_MAILBOX_IMAP_INTERNAL_H_

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/types/optional.h"
#include "common/log.h"
#include "common/status.h"
#include "imap/client.h"
#include "mailbox/call_util.h"
#include "mailbox/imap_backend.h"
#include "mailbox/imap_search.h"
#include "mailbox/imap_support.h"
#include "mailbox/search.h"
#include "mime/mime.h"
#include "net/timer.h"
#include "session/session.h"

namespace mailpool::mailbox {
namespace imap_detail {

constexpr uint32_t kMaxUid = 0xffffffffu;
constexpr uint64_t kDefaultMaxAttachment = 1 << 20;
constexpr uint32_t kDefaultChunk = 64 * 1024;

using imap::Client;

inline absl::Status InvalidField(absl::string_view what) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD", what);
}

inline absl::Status StaleValidity() {
  return ReasonError(absl::StatusCode::kFailedPrecondition, "UIDVALIDITY_CHANGED",
                     "the folder's UIDVALIDITY changed (it was deleted and recreated, or "
                     "renamed): IDs and page tokens from before are stale; list it again");
}

inline absl::Status ReadOnlyFolder() {
  return ReasonError(absl::StatusCode::kFailedPrecondition, "FOLDER_READ_ONLY",
                     "the folder is open read-only (SelectFolder with read_only, or the "
                     "server allows no changes)");
}

inline absl::Status MessageGone(absl::string_view id) {
  return ReasonError(
      absl::StatusCode::kNotFound, "MESSAGE_NOT_FOUND",
      absl::StrCat("the message is not in its folder (expunged or moved): ", id.substr(0, 200)));
}

inline absl::Status TooLarge(uint64_t limit) {
  return ReasonError(absl::StatusCode::kResourceExhausted, "MESSAGE_TOO_LARGE",
                     absl::StrCat("more than the ", limit,
                                  " bytes this call reads into memory; use StreamMessage "
                                  "or a smaller page"));
}

// A command the server does not offer is the caller's precondition, not ours.
inline absl::Status NotOfferedToPrecondition(absl::Status s) {
  if (s.code() != absl::StatusCode::kUnimplemented) return s;
  return absl::Status(absl::StatusCode::kFailedPrecondition, s.message());
}

// A Content-ID without its angle brackets.
inline std::string StripAngles(absl::string_view id) {
  absl::ConsumePrefix(&id, "<");
  absl::ConsumeSuffix(&id, ">");
  return std::string(id);
}

// A folder that must be selected before a command runs.
struct Want {
  enum class Mode { kAny, kReadWrite, kReadOnly };
  std::string folder;
  Mode mode = Mode::kAny;
};

// One turn on the session's connection: optionally select a folder, check what the
// selection says (UIDVALIDITY, read-only), then start one IMAP command.
struct Command {
  absl::optional<Want> want;
  // The folder comes from a message ID: a folder that cannot be selected makes the ID
  // stale (FAILED_PRECONDITION), not the caller's folder NOT_FOUND.
  bool folder_from_id = false;
  absl::AnyInvocable<absl::Status(Client&)> check;
  absl::AnyInvocable<void(Client&)> start;
  Done done;
  bool idle = false;  // the watch's IDLE: left (DONE) as soon as other work queues
  // Not run again after a reconnect (APPEND: a second copy would be stored).
  bool unsafe = false;
  // Runs before `start` is called again on a new connection (the link lost the first one
  // under the command and repeats it): forgets what the lost attempt gathered.
  absl::AnyInvocable<void()> restart;
  bool started = false;
  // The caller's call (Enqueue takes it from the target): cancelled while queued, the
  // command leaves the link's queue at once; while it runs, the link resets the connection.
  std::shared_ptr<CallToken> call;

  enum class Phase { kSelect, kFailed, kMain };
  Phase phase = Phase::kMain;
  absl::Status failure;
  int selects = 0;
};

struct Watch {
  uint64_t id = 0;
  std::shared_ptr<EventSink> sink;
  std::shared_ptr<Once<absl::Status>> done;
  v1::MessageView view = v1::MESSAGE_VIEW_UNSPECIFIED;
};

struct SavedSearch {
  std::string folder;
  uint32_t uid_validity = 0;
  std::vector<uint32_t> uids;  // ascending
  absl::Time created;
};

// Per-session IMAP state, kept in the session (destroyed with it).
class State final : public session::Session::Extension {
 public:
  explicit State(net::EventLoop& loop) : timer(loop) {}
  ~State() override {
    *alive = false;
    EndWatches(absl::OkStatus());
  }

  void OnClose() override {
    EndWatches(absl::OkStatus());
    StopIdle();
  }

  // Ends the watch's IDLE (DONE), if one runs, so that queued work can go.
  void StopIdle() {
    if (idle_client == nullptr) return;
    idle_client->StopIdle();
    if (link != nullptr) link->Flush();  // DONE goes out now, not with the next read
  }

  void EndWatches(const absl::Status& status) {
    std::vector<std::shared_ptr<Watch>> ending = std::move(watches);
    watches.clear();
    timer.Cancel();
    for (auto& w : ending) (*w->done)(status);
  }

  CallTarget target;  // the session, without a call: for work of the session's own (watch)
  session::Link* link = nullptr;  // the session's IMAP link (outlives this state)
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::string account;
  std::string current = "INBOX";
  bool current_read_only = false;
  bool selecting = false;
  Client* idle_client = nullptr;  // while the watch's IDLE runs on it
  absl::Duration silence_timeout = absl::Minutes(10);

  // WatchMailbox, all on the current folder.
  std::vector<std::shared_ptr<Watch>> watches;
  uint64_t next_watch = 1;
  uint32_t watch_validity = 0;
  uint32_t watch_max_uid = 0;
  absl::flat_hash_map<uint32_t, v1::Flags> watch_known;  // UID -> flags
  bool watch_need_new = false;
  bool watch_need_resync = false;
  bool watch_baselined = false;
  bool no_idle = false;
  absl::Duration poll_interval = absl::Seconds(60);
  net::Timer timer;

  absl::flat_hash_map<uint64_t, SavedSearch> searches;
  uint64_t next_search = 1;
};

struct Ctx {
  session::Session* session;
  session::Link* link;
  State* state;
};

inline bool IsSelected(const Client& c, const Want& w) {
  if (!c.selected() || !SameFolder(c.mailbox().name, w.folder)) return false;
  switch (w.mode) {
    case Want::Mode::kAny:
      return true;
    case Want::Mode::kReadWrite:
      return !c.mailbox().read_only;
    case Want::Mode::kReadOnly:
      return c.mailbox().read_only;
  }
  return false;
}

inline imap::UidSet SetOf(const std::vector<uint32_t>& uids) {
  imap::UidSet set;
  for (uint32_t u : uids) set.Add(u);
  return set;
}

inline imap::UidSet AllUids() {
  imap::UidSet set;
  set.AddRange(1, kMaxUid);
  return set;
}

// Checks that the selected folder is the incarnation an ID or token was made in.
inline absl::AnyInvocable<absl::Status(Client&)> CheckValidity(uint32_t uid_validity,
                                                               bool need_write = false) {
  return [uid_validity, need_write](Client& c) -> absl::Status {
    if (c.mailbox().uidvalidity != uid_validity) return StaleValidity();
    if (need_write && c.mailbox().read_only) return ReadOnlyFolder();
    return absl::OkStatus();
  };
}

inline absl::AnyInvocable<absl::Status(Client&)> CheckWritable() {
  return [](Client& c) -> absl::Status {
    if (c.mailbox().read_only) return ReadOnlyFolder();
    return absl::OkStatus();
  };
}

inline bool HasCapability(const session::Link& link, absl::string_view name) {
  const wire::ServerInfo* info = link.server_info();
  if (info == nullptr) return false;
  for (const std::string& c : info->capabilities) {
    if (absl::EqualsIgnoreCase(c, name)) return true;
  }
  return false;
}

// A folder's status from STATUS and, for the selected folder, from SELECT (imap_folders.cc).
v1::MailboxStatus StatusFrom(const std::string& folder, const imap::MailboxStatus& s,
                             const imap::MailboxState* selected);

// A received message in `view` from one FETCH response and its section data (BODY[HEADER]
// for HEADERS, BODY[] for FULL and RAW) (imap_fill.cc).
v1::EmailMessage MessageFrom(const std::string& id, const std::string& folder,
                             imap::FetchedMessage& m, v1::MessageView view, std::string data,
                             uint64_t max_attachment_bytes);
// The FETCH items and sections of `view` (imap_fill.cc).
imap::FetchRequest FetchFor(v1::MessageView view);

// Section bytes of a FETCH, per message (by sequence number), within a byte budget.
struct SectionBuffer {
  absl::flat_hash_map<uint32_t, std::string> by_seq;
  uint64_t total = 0;
  uint64_t cap = 0;
  bool over = false;

  imap::SectionSink Sink(std::shared_ptr<SectionBuffer> self) {
    return [self](uint32_t seq, uint32_t, absl::string_view, absl::string_view piece, bool) {
      if (self->over) return;
      self->total += piece.size();
      if (self->total > self->cap) {
        self->over = true;
        self->by_seq.clear();
        return;
      }
      self->by_seq[seq].append(piece.data(), piece.size());
    };
  }
  // Forgets what a lost attempt gathered (the command runs again).
  void Reset() {
    by_seq.clear();
    total = 0;
    over = false;
  }
  std::string Take(uint32_t seq) {
    auto it = by_seq.find(seq);
    if (it == by_seq.end()) return "";
    std::string out = std::move(it->second);
    by_seq.erase(it);
    return out;
  }
};

// WatchMailbox events (imap_watch.cc).
bool FlagsEqual(const v1::Flags& a, const v1::Flags& b);
v1::WatchMailboxResponse Event(v1::MailboxEventType type, std::string id = "");

// WatchMailbox on the current folder (imap_watch.cc): a baseline UID FETCH of every UID's
// flags, then IDLE (NOOP polling where IDLE is missing) whenever no other command waits;
// untagged EXISTS, EXPUNGE/VANISHED and FETCH FLAGS become events, and after a
// re-selection a resync reports what changed meanwhile. Its state lives in State (watch_*);
// it is a part of Impl and lives as long as it.
class MailboxWatcher {
 public:
  explicit MailboxWatcher(ImapBackend::Impl& impl) : impl_(impl) {}

  // Submits the watch's next turn: baseline or resync, new messages, IDLE, or a poll timer.
  void Step(State* st);
  // An untagged response about the selected folder (the client's event callback).
  void OnEvent(State* st, Client& c, const imap::MailboxEvent& e);
  // Sends `event` to every watch that is not cancelled.
  void SendEvent(State* st, v1::WatchMailboxResponse event);
  // Ends every watch with `s` and forgets the baseline.
  void Failed(State* st, const absl::Status& s);

 private:
  struct Snapshot;
  // A turn on the current folder, for the steps below.
  std::shared_ptr<Command> NewTurn(State* st);
  // The steps of Step, each one turn on the link.
  std::shared_ptr<Command> Baseline(State* st);
  std::shared_ptr<Command> FetchNew(State* st);
  std::shared_ptr<Command> Idle(State* st);
  void SchedulePoll(State* st);
  // What the steps' answers mean for the watches.
  void OnSnapshot(State* st, Snapshot& snap);
  void Reconcile(State* st, Snapshot& snap);
  void OnNew(State* st, std::vector<v1::EmailMessage>& fresh, uint32_t from);

  ImapBackend::Impl& impl_;
};

}  // namespace imap_detail

using namespace imap_detail;  // NOLINT: this header is private to the IMAP backend

class ImapBackend::Impl {
 public:
  Impl(net::EventLoop& loop, pool::Pool& pool, ImapBackendOptions options)
      : loop_(loop), pool_(pool), options_(options) {}

  absl::StatusOr<Ctx> Lookup(const CallTarget& target);
  void Enqueue(const CallTarget& target, std::shared_ptr<Command> command);
  void Submit(State* st, session::Link* link, std::shared_ptr<Command> command);
  void MaybeWatch(State* st, session::Link* link);
  void Hook(State* st, Client& c);

  // A NOOP on `want`'s folder, queued before a command whose answer must include what
  // other clients changed: servers report new and expunged messages at NOOP, and may
  // hold them back during UID SEARCH (Dovecot does).
  void Sync(const CallTarget& target, const Want& want);

  // The folder a request names ("" is the current one) and how to select it.
  Want WantFor(const State& st, const std::string& folder, bool write) const;
  std::string IdOf(const State& st, const std::string& folder, uint32_t uid_validity,
                   uint32_t uid) const {
    return EncodeMessageId(st.account, {folder, uid_validity, uid});
  }

  // IDs of one folder and UIDVALIDITY, in request order.
  struct Resolved {
    std::string account;
    std::string folder;
    uint32_t uid_validity = 0;
    std::vector<uint32_t> uids;
  };
  absl::StatusOr<Resolved> ResolveAll(const State& st,
                                      const google::protobuf::RepeatedPtrField<std::string>& ids);
  // Fails unless every UID still exists (nothing is changed before this check).
  void Verify(const CallTarget& target, const Resolved& r,
              const google::protobuf::RepeatedPtrField<std::string>& ids, bool write, Done done);

  using Messages = absl::StatusOr<std::vector<v1::EmailMessage>>;
  // The messages `uids` of `folder` in `view`, in the given order (expunged ones left out).
  void Fill(const CallTarget& target, const std::string& folder, uint32_t uid_validity,
            std::vector<uint32_t> uids, v1::MessageView view, uint64_t max_attachment_bytes,
            bool mark_seen, bool folder_from_id, absl::AnyInvocable<void(Messages)> done);
  // `before` (optional) sees the client first (Refresh reads the NOOP's reply).
  void FolderStatus(const CallTarget& target, const std::string& folder,
                    absl::AnyInvocable<void(absl::StatusOr<v1::MailboxStatus>)> done,
                    absl::AnyInvocable<void(Client&)> before = nullptr);
  void FindFolder(const CallTarget& target, const std::string& folder,
                  absl::AnyInvocable<void(absl::StatusOr<v1::Folder>)> done);
  // A CREATE or RENAME refused without saying why (GNU Mailutils imap4d: "NO RENAME
  // Failed"): when `folder` (the name it was to take) exists, the answer is
  // ALREADY_EXISTS, with the server's reply kept; otherwise `refusal` as it is.
  template <typename Once>
  void RefusedOntoExisting(const CallTarget& target, const std::string& folder,
                           absl::Status refusal, Once once) {
    if (refusal.code() == absl::StatusCode::kAlreadyExists ||
        GetPayloadText(refusal, kServerReplyPayload).value_or("").empty()) {
      return (*once)(std::move(refusal));
    }
    FindFolder(target, folder, [once, refusal](absl::StatusOr<v1::Folder> f) {
      if (!f.ok()) return (*once)(refusal);
      (*once)(MailServerError(absl::StatusCode::kAlreadyExists, "FOLDER_EXISTS",
                              absl::StrCat("a folder named ", f->name(), " already exists"),
                              GetPayloadText(refusal, kCommandPayload).value_or(""),
                              GetPayloadText(refusal, kServerReplyPayload).value_or("")));
    });
  }
  void SetCurrent(const CallTarget& target, const std::string& folder, bool read_only);
  void Store(const CallTarget& target, const Resolved& r, imap::StoreMode mode,
             std::vector<std::string> flags, Done done);
  void RemoveUids(const CallTarget& target, const Resolved& r, Done done);
  void Move(const CallTarget& target, const Resolved& r, const std::string& destination,
            bool copy_only, absl::AnyInvocable<void(absl::StatusOr<imap::CopyResult>)> done);
  void Search(const CallTarget& target, const std::string& folder,
              std::vector<imap::SearchArg> args, DateRefinement refine,
              absl::AnyInvocable<void(absl::StatusOr<SavedSearch>)> done);

  net::EventLoop& loop_;
  pool::Pool& pool_;
  ImapBackendOptions options_;
  MailboxWatcher watcher_{*this};  // WatchMailbox (imap_watch.cc)
};

}  // namespace mailpool::mailbox

#endif  // MAILPOOL_MAILBOX_IMAP_INTERNAL_H_
