#include "mailbox/pop3_backend.h"

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
#include "mailbox/search.h"
#include "mime/mime.h"
#include "pop3/client.h"
#include "session/session.h"

namespace mailpool::mailbox {
namespace {

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
const Message* FindMessage(const State& state, uint32_t number) {
  auto it = state.by_number.find(number);
  return it == state.by_number.end() ? nullptr : &state.messages[it->second];
}

absl::Status Refreshed() {
  return ReasonError(absl::StatusCode::kAborted, "MAILBOX_REFRESHED",
                     "the mailbox was refreshed while the call was running; try again");
}

struct Ctx {
  session::Session* session;
  session::Link* link;
  State* state;
  std::shared_ptr<CallToken> call;
};

uint64_t Fnv1a(absl::string_view data, uint64_t hash = 1469598103934665603ull) {
  for (char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string Base64Url(absl::string_view data) { return absl::WebSafeBase64Escape(data); }

// A short stable tag of the account (server and user), so that an ID of another account
// is recognised instead of addressing a message with the same UIDL there.
std::string AccountTag(const session::LinkSpec& spec) {
  uint64_t h = Fnv1a(absl::StrCat(absl::AsciiStrToLower(spec.endpoint.host), "\n",
                                  spec.endpoint.port, "\n", spec.login.user));
  std::string bytes(reinterpret_cast<const char*>(&h), 6);
  return Base64Url(bytes);
}

absl::Status Precondition(absl::string_view what) {
  return ReasonError(absl::StatusCode::kFailedPrecondition, "POP3_UNSUPPORTED", what);
}

absl::Status InvalidField(absl::string_view what) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD", what);
}

absl::Status CheckFolder(const std::string& folder) {
  if (folder.empty() || absl::EqualsIgnoreCase(folder, kInbox)) return absl::OkStatus();
  return ReasonError(absl::StatusCode::kFailedPrecondition, "POP3_UNSUPPORTED",
                     "folder: a POP3 mailbox has a single folder, INBOX");
}

// Page tokens: base64url of '|'-separated fields; every request field that shapes the
// listing is part of it.
std::string EncodeToken(const std::vector<std::string>& fields) {
  return Base64Url(absl::StrJoin(fields, "|"));
}

absl::StatusOr<std::vector<std::string>> DecodeToken(const std::string& token, size_t fields,
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

}  // namespace

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

absl::StatusOr<Ctx> Pop3Backend::Impl::Lookup(const CallTarget& target) {
  MP_ASSIGN_OR_RETURN(session::Session * session, pool_.Use(target.owner, target.session));
  session::Link* link = session->link(session::Protocol::kPop3);
  if (link == nullptr) {
    return ReasonError(absl::StatusCode::kFailedPrecondition, "WRONG_PROTOCOL",
                       "the session has no POP3 connection");
  }
  auto* state = static_cast<State*>(session->extension());
  if (state == nullptr) {
    auto fresh = std::make_unique<State>();
    fresh->account = AccountTag(link->spec());
    fresh->snapshot_time = session->Snapshot().create_time;
    state = fresh.get();
    session->set_extension(std::move(fresh));
  }
  if (state->loaded && !link->turn_running() &&
      (link->generation() != state->link_generation || !link->broken().ok())) {
    // The link reconnected or will (a drop, a server restart): the server numbers the
    // messages afresh and forgot our DELEs. Read the snapshot again; IDs (UIDLs) stay valid.
    for (const Message& m : state->messages) {
      if (m.deleted && !m.uidl.empty()) state->redelete.insert(m.uidl);
    }
    state->loaded = false;
    state->messages.clear();
    state->by_uidl.clear();
    state->by_number.clear();
    state->searches.clear();
  }
  return Ctx{session, link, state, target.call};
}

void Pop3Backend::Impl::Enqueue(const Ctx& ctx, Command command) {
  session::RunOptions options;
  options.call = command.call ? std::move(command.call) : ctx.call;
  // Message numbers belong to the connection the snapshot was read on.
  if (ctx.state->loaded) options.generation = ctx.state->link_generation;
  session::Link* link = ctx.link;
  link->Run(
      [start = std::move(command.start), link](wire::ClientProtocol& client) mutable {
        start(static_cast<pop3::Client&>(client), *link);
      },
      std::move(command.done), std::move(options));
}

void Pop3Backend::Impl::EnsureLoaded(const CallTarget& target, Done done) {
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return done(ctx.status());
  State* state = ctx->state;
  if (state->loaded) return done(absl::OkStatus());
  state->load_waiters.push_back(std::move(done));
  if (state->loading) return;
  state->loading = true;
  auto list = std::make_shared<std::vector<pop3::ListEntry>>();
  auto uidl = std::make_shared<std::vector<pop3::UidlEntry>>();
  Enqueue(*ctx,
          Command{[list](pop3::Client& c, session::Link&) {
                    c.StartList([list](std::vector<pop3::ListEntry> e) { *list = std::move(e); });
                  },
                  [this, target, list, uidl](absl::Status s) {
                    if (!s.ok()) return LoadDone(target, s);
                    absl::StatusOr<Ctx> ctx = Lookup(target);
                    if (!ctx.ok()) return;  // waiters go with the session
                    Enqueue(
                        *ctx,
                        Command{[uidl](pop3::Client& c, session::Link&) {
                                  c.StartUidl([uidl](std::vector<pop3::UidlEntry> e) {
                                    *uidl = std::move(e);
                                  });
                                },
                                [this, target, list, uidl](absl::Status s) {
                                  absl::StatusOr<Ctx> ctx = Lookup(target);
                                  if (!ctx.ok()) return;
                                  State* st = ctx->state;
                                  bool no_uidl = s.code() == absl::StatusCode::kUnimplemented;
                                  if (!s.ok() && !no_uidl) return LoadDone(target, s);
                                  std::sort(list->begin(), list->end(),
                                            [](const auto& a, const auto& b) {
                                              return a.number < b.number;
                                            });
                                  absl::flat_hash_map<uint32_t, std::string> uidls;
                                  for (auto& u : *uidl) {
                                    uidls.emplace(u.number, std::move(u.uidl));
                                  }
                                  st->messages.clear();
                                  st->by_uidl.clear();
                                  st->by_number.clear();
                                  st->has_uidl = !no_uidl;
                                  st->generation =
                                      static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
                                  for (const pop3::ListEntry& e : *list) {
                                    if (st->by_number.contains(e.number)) continue;
                                    Message m{e.number, e.size, "", false};
                                    auto it = uidls.find(e.number);
                                    if (it != uidls.end() && !st->by_uidl.contains(it->second)) {
                                      m.uidl = it->second;
                                      st->by_uidl.emplace(m.uidl, st->messages.size());
                                    }
                                    st->by_number.emplace(m.number, st->messages.size());
                                    st->messages.push_back(std::move(m));
                                  }
                                  st->loaded = true;
                                  st->link_generation = ctx->link->generation();
                                  Redelete(*ctx);
                                  LoadDone(target, absl::OkStatus());
                                }});
                  }});
}

void Pop3Backend::Impl::Redelete(const Ctx& ctx) {
  State& st = *ctx.state;
  if (st.redelete.empty()) return;
  for (Message& m : st.messages) {
    if (m.uidl.empty() || !st.redelete.contains(m.uidl)) continue;
    m.deleted = true;
    uint32_t number = m.number;
    // Not bound to the caller's call: the caller asked for these long ago.
    Enqueue(Ctx{ctx.session, ctx.link, ctx.state, nullptr},
            Command{[number](pop3::Client& c, session::Link&) { c.StartDele(number); },
                    [](absl::Status) {}});
  }
  st.redelete.clear();
}

void Pop3Backend::Impl::LoadDone(const CallTarget& target, absl::Status status) {
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return;
  ctx->state->loading = false;
  std::vector<Done> waiters = std::move(ctx->state->load_waiters);
  ctx->state->load_waiters.clear();
  for (Done& w : waiters) w(status);
}

std::string Pop3Backend::Impl::IdOf(const State& state, const Message& m) const {
  if (!m.uidl.empty()) return absl::StrCat("p1.", state.account, ".", Base64Url(m.uidl));
  return absl::StrCat("p0.", state.account, ".", state.generation, ".", m.number, ".", m.size);
}

absl::StatusOr<const Message*> Pop3Backend::Impl::Resolve(const State& state,
                                                          const std::string& id) const {
  std::vector<absl::string_view> parts = absl::StrSplit(id, '.');
  bool p1 = parts.size() == 3 && parts[0] == "p1";
  bool p0 = parts.size() == 6 && parts[0] == "p0";
  if (!p1 && !p0) return InvalidField("id: not a POP3 message ID from this daemon");
  if (parts[1] != state.account) {
    return ReasonError(absl::StatusCode::kFailedPrecondition, "FOREIGN_ID",
                       "id: the message ID belongs to another POP3 account");
  }
  const Message* m = nullptr;
  if (p1) {
    std::string uidl;
    if (!absl::WebSafeBase64Unescape(parts[2], &uidl)) {
      return InvalidField("id: not a POP3 message ID from this daemon");
    }
    auto it = state.by_uidl.find(uidl);
    if (it == state.by_uidl.end()) {
      return ReasonError(absl::StatusCode::kNotFound, "MESSAGE_NOT_FOUND",
                         "the message is not in the mailbox (deleted, or newer than the "
                         "session's snapshot: call Refresh to see new mail)");
    }
    m = &state.messages[it->second];
  } else {
    uint64_t generation = 0, size = 0;
    uint32_t number = 0;
    if (!absl::SimpleAtoi(parts[3], &generation) || !absl::SimpleAtoi(parts[4], &number) ||
        !absl::SimpleAtoi(parts[5], &size)) {
      return InvalidField("id: not a POP3 message ID from this daemon");
    }
    auto it = state.by_number.find(number);
    if (generation != state.generation || it == state.by_number.end() ||
        state.messages[it->second].size != size) {
      return ReasonError(absl::StatusCode::kNotFound, "MESSAGE_NOT_FOUND",
                         "the message ID is stale: this POP3 server has no UIDL, so IDs are "
                         "valid only until Refresh; list the messages again");
    }
    m = &state.messages[it->second];
  }
  if (m->gone) {
    return ReasonError(absl::StatusCode::kNotFound, "MESSAGE_NOT_FOUND",
                       "the message was removed from the mailbox by another client");
  }
  if (m->deleted) {
    return ReasonError(absl::StatusCode::kNotFound, "MESSAGE_DELETED",
                       "the message was deleted in this session (the server removes it at "
                       "QUIT)");
  }
  return m;
}

v1::EmailMessage Pop3Backend::Impl::Basic(const State& state, const Message& m) const {
  v1::EmailMessage out;
  out.set_id(IdOf(state, m));
  out.set_size(m.size);
  out.set_folder(kInbox);
  out.set_uidl(m.uidl);
  out.mutable_flags()->set_seen(state.seen.contains(state.Key(m)));
  return out;
}

std::vector<const Message*> Pop3Backend::Impl::Visible(const State& state,
                                                       bool newest_first) const {
  std::vector<const Message*> out;
  out.reserve(state.messages.size());
  for (const Message& m : state.messages) {
    if (!m.deleted && !m.gone) out.push_back(&m);
  }
  if (newest_first) std::reverse(out.begin(), out.end());
  return out;
}

bool Pop3Backend::Impl::MarkGone(const CallTarget& target, uint32_t number,
                                 const absl::Status& status) {
  if (status.code() != absl::StatusCode::kNotFound) return false;
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return false;
  auto it = ctx->state->by_number.find(number);
  if (it == ctx->state->by_number.end()) return false;
  ctx->state->messages[it->second].gone = true;
  return true;
}

v1::MailboxStatus Pop3Backend::Impl::Status(const State& state) const {
  v1::MailboxStatus s;
  s.set_folder(kInbox);
  uint32_t count = 0, unread = 0;
  uint64_t size = 0;
  for (const Message& m : state.messages) {
    if (m.deleted || m.gone) continue;
    ++count;
    size += m.size;
    if (!state.seen.contains(state.Key(m))) ++unread;
  }
  s.set_message_count(count);
  s.set_unread_count(unread);
  s.set_size(size);
  *s.mutable_snapshot_time() = ToProtoTime(state.snapshot_time);
  s.set_pending_deletions(state.pending_deletions());
  return s;
}

void Pop3Backend::Impl::Retrieve(const CallTarget& target, const Message& m,
                                 absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) {
  if (m.size > options_.max_message_bytes) {
    return done(ReasonError(absl::StatusCode::kResourceExhausted, "MESSAGE_TOO_LARGE",
                            absl::StrCat("the message has ", m.size, " bytes, more than the ",
                                         options_.max_message_bytes,
                                         " this call reads into memory; use "
                                         "StreamMessage")));
  }
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return done(ctx.status());
  auto buffer = std::make_shared<std::string>();
  buffer->reserve(m.size + 64);
  uint64_t max = options_.max_message_bytes;
  uint32_t number = m.number;
  // LIST may under-state the size: a RETR that passes the cap is an error, never a
  // message cut short. The rest of its bytes are read and dropped (the link stays usable).
  auto over = std::make_shared<uint64_t>(0);
  Enqueue(*ctx, Command{[number, buffer, max, over](pop3::Client& c, session::Link&) {
                          buffer->clear();
                          *over = 0;
                          c.StartRetr(number, [buffer, max, over](absl::string_view piece) {
                            if (*over == 0 && buffer->size() + piece.size() <= max) {
                              buffer->append(piece.data(), piece.size());
                              return;
                            }
                            if (*over == 0) {
                              *over = buffer->size();
                              buffer->clear();
                              buffer->shrink_to_fit();
                            }
                            *over += piece.size();
                          });
                        },
                        [buffer, max, over, announced = m.size,
                         done = std::move(done)](absl::Status s) mutable {
                          if (!s.ok()) return done(s);
                          if (*over != 0) {
                            return done(ReasonError(
                                absl::StatusCode::kResourceExhausted, "MESSAGE_TOO_LARGE",
                                absl::StrCat("the server sent ", *over,
                                             " bytes for a message it listed at ", announced,
                                             ", more than the ", max,
                                             " this call reads into memory; use "
                                             "StreamMessage")));
                          }
                          done(std::move(*buffer));
                        }});
}

void Pop3Backend::Impl::Headers(
    const CallTarget& target, const Message& m,
    absl::AnyInvocable<void(absl::StatusOr<const v1::EmailMessage*>)> done) {
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return done(ctx.status());
  std::string key = ctx->state->Key(m);
  auto cached = ctx->state->headers.find(key);
  if (cached != ctx->state->headers.end()) return done(&cached->second);
  auto buffer = std::make_shared<std::string>();
  constexpr size_t kMaxHeader = 4 << 20;
  uint32_t number = m.number;
  Enqueue(*ctx,
          Command{[number, buffer](pop3::Client& c, session::Link&) {
                    c.StartTop(number, 0, [buffer](absl::string_view piece) {
                      if (buffer->size() + piece.size() <= kMaxHeader) {
                        buffer->append(piece.data(), piece.size());
                      }
                    });
                  },
                  [this, target, key, buffer, done = std::move(done)](absl::Status s) mutable {
                    if (!s.ok()) return done(s);
                    absl::StatusOr<Ctx> ctx = Lookup(target);
                    if (!ctx.ok()) return done(ctx.status());
                    mime::ParseOptions options;
                    options.headers_only = true;
                    std::vector<std::string> warnings;
                    v1::EmailMessage parsed = ParseServerMessage(*buffer, options, &warnings);
                    auto& cache = ctx->state->headers;
                    if (cache.size() >= options_.max_cached_headers) cache.clear();
                    auto [it, inserted] = cache.insert_or_assign(key, std::move(parsed));
                    done(&it->second);
                  }});
}

v1::EmailMessage Pop3Backend::Impl::FromSource(State& state, const Message& m, v1::MessageView view,
                                               const std::string& source,
                                               uint64_t max_attachment_bytes) {
  v1::EmailMessage out;
  if (view == v1::MESSAGE_VIEW_FULL) {
    mime::ParseOptions options;
    options.max_attachment_bytes =
        max_attachment_bytes == 0 ? kDefaultMaxAttachment : max_attachment_bytes;
    std::vector<std::string> warnings;
    out = ParseServerMessage(source, options, &warnings);
    if (absl::optional<absl::Time> t = ReceiveTimeOf(out)) {
      *out.mutable_receive_time() = ToProtoTime(*t);
    }
  } else {
    out.set_source(source);
  }
  state.seen.insert(state.Key(m));
  v1::EmailMessage basic = Basic(state, m);
  out.MergeFrom(basic);
  return out;
}

void Pop3Backend::Impl::Fill(
    const CallTarget& target, std::vector<uint32_t> numbers, v1::MessageView view,
    uint64_t max_attachment_bytes,
    absl::AnyInvocable<void(absl::StatusOr<std::vector<v1::EmailMessage>>)> done) {
  struct Job {
    CallTarget target;
    std::vector<uint32_t> numbers;
    v1::MessageView view;
    uint64_t max_attachment_bytes;
    std::vector<v1::EmailMessage> out;
    size_t next = 0;
    bool failed = false;
    bool in_call = false;    // inside a call that may complete synchronously
    bool completed = false;  // ... and it did
    std::shared_ptr<Once<absl::StatusOr<std::vector<v1::EmailMessage>>>> done;
    void Fail(absl::Status s) {
      failed = true;
      (*done)(std::move(s));
    }
  };
  auto job = std::make_shared<Job>();
  job->target = target;
  job->numbers = std::move(numbers);
  job->view = view;
  job->max_attachment_bytes = max_attachment_bytes;
  job->done = MakeOnce<absl::StatusOr<std::vector<v1::EmailMessage>>>(std::move(done));
  job->out.reserve(job->numbers.size());
  auto step = std::make_shared<absl::AnyInvocable<void()>>();
  // The step runs synchronously while no server command is needed, and continues from the
  // command's completion otherwise.
  *step = [this, job, step_weak = std::weak_ptr<absl::AnyInvocable<void()>>(step)]() {
    auto step = step_weak.lock();
    if (!step) return;
    while (!job->failed && job->next < job->numbers.size()) {
      absl::StatusOr<Ctx> ctx = Lookup(job->target);
      if (!ctx.ok()) return job->Fail(ctx.status());
      const Message* found = FindMessage(*ctx->state, job->numbers[job->next]);
      if (found == nullptr) return job->Fail(Refreshed());
      const Message& m = *found;
      switch (job->view) {
        case v1::MESSAGE_VIEW_BASIC:
          job->out.push_back(Basic(*ctx->state, m));
          ++job->next;
          continue;
        case v1::MESSAGE_VIEW_HEADERS: {
          job->in_call = true;
          job->completed = false;
          Headers(job->target, m, [this, job, step](absl::StatusOr<const v1::EmailMessage*> h) {
            auto advance = [&] {
              ++job->next;
              if (job->in_call) {
                job->completed = true;
              } else {
                (*step)();
              }
            };
            if (!h.ok()) {
              // A message expunged by another client is left out of the page.
              if (MarkGone(job->target, job->numbers[job->next], h.status())) return advance();
              return job->Fail(h.status());
            }
            absl::StatusOr<Ctx> ctx = Lookup(job->target);
            if (!ctx.ok()) return job->Fail(ctx.status());
            const Message* found = FindMessage(*ctx->state, job->numbers[job->next]);
            if (found == nullptr) return job->Fail(Refreshed());
            const Message& m = *found;
            v1::EmailMessage out = **h;
            if (absl::optional<absl::Time> t = ReceiveTimeOf(out)) {
              *out.mutable_receive_time() = ToProtoTime(*t);
            }
            out.MergeFrom(Basic(*ctx->state, m));
            job->out.push_back(std::move(out));
            advance();
          });
          job->in_call = false;
          if (job->completed) continue;
          return;
        }
        default: {
          uint32_t number = m.number;
          Retrieve(job->target, m, [this, job, step, number](absl::StatusOr<std::string> source) {
            if (!source.ok()) {
              if (MarkGone(job->target, number, source.status())) {
                ++job->next;
                return (*step)();
              }
              return job->Fail(source.status());
            }
            absl::StatusOr<Ctx> ctx = Lookup(job->target);
            if (!ctx.ok()) return job->Fail(ctx.status());
            const Message* m = FindMessage(*ctx->state, number);
            if (m == nullptr) return job->Fail(Refreshed());
            job->out.push_back(
                FromSource(*ctx->state, *m, job->view, *source, job->max_attachment_bytes));
            ++job->next;
            (*step)();
          });
          return;
        }
      }
    }
    if (!job->failed) (*job->done)(std::move(job->out));
  };
  // Keep the step alive while commands run: each pending callback holds it.
  (*step)();
}

void Pop3Backend::Impl::RunSearch(
    const CallTarget& target, std::shared_ptr<v1::SearchCriteria> criteria,
    absl::AnyInvocable<void(absl::StatusOr<std::vector<uint32_t>>)> done) {
  struct Job {
    CallTarget target;
    std::shared_ptr<v1::SearchCriteria> criteria;
    Needs needs;
    std::vector<uint32_t> candidates;
    std::vector<uint32_t> hits;
    size_t next = 0;
    bool failed = false;
    bool in_call = false;
    bool completed = false;
    std::shared_ptr<Once<absl::StatusOr<std::vector<uint32_t>>>> done;
    void Fail(absl::Status s) {
      failed = true;
      (*done)(std::move(s));
    }
  };
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return done(ctx.status());
  auto job = std::make_shared<Job>();
  job->target = target;
  job->criteria = std::move(criteria);
  job->needs = NeedsOf(*job->criteria);
  for (const Message* m : Visible(*ctx->state, false)) job->candidates.push_back(m->number);
  job->done = MakeOnce<absl::StatusOr<std::vector<uint32_t>>>(std::move(done));
  auto step = std::make_shared<absl::AnyInvocable<void()>>();
  *step = [this, job, step_weak = std::weak_ptr<absl::AnyInvocable<void()>>(step)]() {
    auto step = step_weak.lock();
    if (!step) return;
    while (!job->failed && job->next < job->candidates.size()) {
      absl::StatusOr<Ctx> ctx = Lookup(job->target);
      if (!ctx.ok()) return job->Fail(ctx.status());
      uint32_t number = job->candidates[job->next];
      const Message* found = FindMessage(*ctx->state, number);
      if (found == nullptr) return job->Fail(Refreshed());
      const Message& m = *found;
      MessageFacts facts;
      facts.size = m.size;
      facts.seen = ctx->state->seen.contains(ctx->state->Key(m));
      if (!job->needs.headers && !job->needs.bodies) {
        if (Matches(*job->criteria, facts)) job->hits.push_back(number);
        ++job->next;
        continue;
      }
      // `headers` null: the message is gone and does not match.
      auto evaluate = [this, job, step, number](const v1::EmailMessage* headers,
                                                const v1::EmailMessage* full) {
        absl::StatusOr<Ctx> ctx = Lookup(job->target);
        if (!ctx.ok()) return job->Fail(ctx.status());
        const Message* m = FindMessage(*ctx->state, number);
        if (m == nullptr) return job->Fail(Refreshed());
        if (headers == nullptr) {
          ++job->next;
          if (job->in_call) {
            job->completed = true;
          } else {
            (*step)();
          }
          return;
        }
        MessageFacts facts;
        facts.size = m->size;
        facts.seen = ctx->state->seen.contains(ctx->state->Key(*m));
        facts.headers = headers;
        facts.full = full;
        if (Matches(*job->criteria, facts)) job->hits.push_back(number);
        ++job->next;
        if (job->in_call) {
          job->completed = true;
        } else {
          (*step)();
        }
      };
      job->in_call = true;
      job->completed = false;
      if (job->needs.bodies) {
        Retrieve(job->target, m,
                 [this, job, number, evaluate](absl::StatusOr<std::string> source) mutable {
                   if (!source.ok()) {
                     if (MarkGone(job->target, number, source.status()))
                       return evaluate(nullptr, nullptr);
                     return job->Fail(source.status());
                   }
                   mime::ParseOptions options;
                   options.max_attachment_bytes = 1;  // text bodies only
                   std::vector<std::string> warnings;
                   v1::EmailMessage full = ParseServerMessage(*source, options, &warnings);
                   evaluate(&full, &full);
                 });
      } else {
        Headers(job->target, m,
                [this, job, number, evaluate](absl::StatusOr<const v1::EmailMessage*> h) mutable {
                  if (!h.ok()) {
                    if (MarkGone(job->target, number, h.status()))
                      return evaluate(nullptr, nullptr);
                    return job->Fail(h.status());
                  }
                  evaluate(*h, nullptr);
                });
      }
      job->in_call = false;
      if (job->completed) continue;
      return;
    }
    if (!job->failed) (*job->done)(std::move(job->hits));
  };
  (*step)();
}

// --- The calls ---

Pop3Backend::Pop3Backend(pool::Pool& pool, Pop3BackendOptions options)
    : impl_(std::make_unique<Impl>(pool, options)) {}
Pop3Backend::~Pop3Backend() = default;

void Pop3Backend::GetMailboxStatus(const CallTarget& target,
                                   const v1::GetMailboxStatusRequest& request,
                                   Reply<v1::GetMailboxStatusResponse> done) {
  if (absl::Status s = CheckFolder(request.folder()); !s.ok()) return done(s);
  auto once = MakeOnce<absl::StatusOr<v1::GetMailboxStatusResponse>>(std::move(done));
  impl_->EnsureLoaded(target, [this, target, once](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    v1::GetMailboxStatusResponse response;
    *response.mutable_status() = impl_->Status(*ctx->state);
    (*once)(std::move(response));
  });
}

void Pop3Backend::ListMessages(const CallTarget& target, const v1::ListMessagesRequest& request,
                               Reply<v1::ListMessagesResponse> done) {
  if (absl::Status s = CheckFolder(request.folder()); !s.ok()) return done(s);
  if (request.filter() == v1::MESSAGE_FILTER_UNREAD) {
    return done(
        Precondition("filter: POP3 keeps no read/unread state (the \"unread\" filter needs IMAP)"));
  }
  v1::MessageView view =
      request.view() == v1::MESSAGE_VIEW_UNSPECIFIED ? v1::MESSAGE_VIEW_HEADERS : request.view();
  absl::StatusOr<size_t> page_size = PageSize(request.page_size(), view);
  if (!page_size.ok()) return done(page_size.status());
  bool newest_first = request.order() != v1::MESSAGE_ORDER_OLDEST_FIRST;
  auto once = MakeOnce<absl::StatusOr<v1::ListMessagesResponse>>(std::move(done));
  impl_->EnsureLoaded(target, [this, target, once, view, newest_first, size = *page_size,
                               token = request.page_token(),
                               max_attachment = request.max_attachment_bytes()](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    State& state = *ctx->state;
    std::vector<std::string> shape = {absl::StrCat(static_cast<int>(view)),
                                      newest_first ? "n" : "o", absl::StrCat(size),
                                      absl::StrCat(max_attachment)};
    uint32_t after = 0;
    bool has_after = false;
    if (!token.empty()) {
      absl::StatusOr<std::vector<std::string>> parts = DecodeToken(token, 7, "l1");
      if (!parts.ok()) return (*once)(parts.status());
      if (!std::equal(shape.begin(), shape.end(), parts->begin() + 1)) {
        return (*once)(
            InvalidField("page_token: the request's other fields differ from the first page's"));
      }
      if ((*parts)[5] != absl::StrCat(state.generation)) {
        return (*once)(ReasonError(absl::StatusCode::kFailedPrecondition, "STALE_PAGE_TOKEN",
                                   "page_token: the mailbox was refreshed since; list again"));
      }
      if (!absl::SimpleAtoi((*parts)[6], &after)) {
        return (*once)(InvalidField("page_token: not a token from a previous response"));
      }
      has_after = true;
    }
    std::vector<const Message*> visible = impl_->Visible(state, newest_first);
    size_t start = 0;
    if (has_after) {
      while (start < visible.size() &&
             (newest_first ? visible[start]->number >= after : visible[start]->number <= after)) {
        ++start;
      }
    }
    std::vector<uint32_t> numbers;
    for (size_t i = start; i < visible.size() && numbers.size() < size; ++i) {
      numbers.push_back(visible[i]->number);
    }
    auto response = std::make_shared<v1::ListMessagesResponse>();
    response->set_total_count(static_cast<uint32_t>(visible.size()));
    if (start + numbers.size() < visible.size() && !numbers.empty()) {
      std::vector<std::string> fields = {"l1"};
      fields.insert(fields.end(), shape.begin(), shape.end());
      fields.push_back(absl::StrCat(state.generation));
      fields.push_back(absl::StrCat(numbers.back()));
      response->set_next_page_token(EncodeToken(fields));
    }
    impl_->Fill(target, std::move(numbers), view, max_attachment,
                [once, response](absl::StatusOr<std::vector<v1::EmailMessage>> messages) {
                  if (!messages.ok()) return (*once)(messages.status());
                  for (auto& m : *messages) *response->add_messages() = std::move(m);
                  (*once)(std::move(*response));
                });
  });
}

void Pop3Backend::GetMessage(const CallTarget& target, const v1::GetMessageRequest& request,
                             Reply<v1::GetMessageResponse> done) {
  v1::MessageView view =
      request.view() == v1::MESSAGE_VIEW_UNSPECIFIED ? v1::MESSAGE_VIEW_FULL : request.view();
  auto once = MakeOnce<absl::StatusOr<v1::GetMessageResponse>>(std::move(done));
  impl_->EnsureLoaded(target, [this, target, once, view, id = request.id(),
                               max_attachment = request.max_attachment_bytes()](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    absl::StatusOr<const Message*> m = impl_->Resolve(*ctx->state, id);
    if (!m.ok()) return (*once)(m.status());
    impl_->Fill(target, {(*m)->number}, view, max_attachment,
                [once](absl::StatusOr<std::vector<v1::EmailMessage>> messages) {
                  if (!messages.ok()) return (*once)(messages.status());
                  if (messages->empty()) {
                    return (*once)(ReasonError(absl::StatusCode::kNotFound, "MESSAGE_NOT_FOUND",
                                               "the message was removed from the mailbox by "
                                               "another client"));
                  }
                  v1::GetMessageResponse response;
                  *response.mutable_message() = std::move(messages->front());
                  (*once)(std::move(response));
                });
  });
}

void Pop3Backend::StreamMessage(const CallTarget& target, const v1::StreamMessageRequest& request,
                                std::shared_ptr<ChunkSink> sink, Done done) {
  struct Stream {
    std::shared_ptr<ChunkSink> sink;
    uint64_t skip = 0;    // bytes of the RETR still to pass over
    uint64_t offset = 0;  // where the next chunk starts (the caller has everything before)
    uint32_t chunk = 0;
    std::string buffer;
    bool paused = false;
    bool begun = false;
    bool retried = false;
  };
  auto stream = std::make_shared<Stream>();
  stream->sink = std::move(sink);
  stream->offset = request.offset();
  stream->chunk = request.chunk_size() == 0 ? kDefaultChunk : request.chunk_size();
  auto once = MakeOnce<absl::Status>(std::move(done));
  // One RETR. After a drop under it the message numbers are stale (LINK_RECONNECTED): the
  // message is found again by its UIDL on the new connection and a second RETR passes over
  // what the caller already has.
  auto attempt = std::make_shared<absl::AnyInvocable<void()>>();
  *attempt = [this, target, once, stream, id = request.id(),
              weak = std::weak_ptr<absl::AnyInvocable<void()>>(attempt)]() {
    auto self = weak.lock();
    if (!self) return;
    impl_->EnsureLoaded(target, [this, target, once, stream, id, self](absl::Status s) {
      if (!s.ok()) return (*once)(s);
      absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
      if (!ctx.ok()) return (*once)(ctx.status());
      absl::StatusOr<const Message*> m = impl_->Resolve(*ctx->state, id);
      if (!m.ok()) return (*once)(m.status());
      if (!stream->begun) {
        if (stream->offset > 0 && stream->offset >= (*m)->size) {
          return (*once)(
              ReasonError(absl::StatusCode::kOutOfRange, "OFFSET_PAST_END",
                          absl::StrCat("offset: the message has ", (*m)->size, " bytes")));
        }
        stream->sink->Begin((*m)->size, nullptr);
        stream->begun = true;
      }
      stream->skip = stream->offset;
      stream->buffer.clear();
      uint32_t number = (*m)->number;
      std::string key = ctx->state->Key(**m);
      impl_->Enqueue(
          *ctx,
          Command{[this, number, stream, target](pop3::Client& c, session::Link& link) {
                    c.StartRetr(number, [this, stream, target, &link](absl::string_view piece) {
                      if (stream->sink->Cancelled()) return;  // drain, keep the session usable
                      uint64_t k = std::min<uint64_t>(stream->skip, piece.size());
                      piece.remove_prefix(k);
                      stream->skip -= k;
                      while (!piece.empty()) {
                        size_t take =
                            std::min<size_t>(stream->chunk - stream->buffer.size(), piece.size());
                        stream->buffer.append(piece.data(), take);
                        piece.remove_prefix(take);
                        if (stream->buffer.size() == stream->chunk) {
                          uint64_t at = stream->offset;
                          stream->offset += stream->buffer.size();
                          stream->sink->Write(std::move(stream->buffer), at);
                          stream->buffer = std::string();
                        }
                      }
                      if (!stream->paused && stream->sink->Full()) {
                        stream->paused = true;
                        link.PauseReading();
                        stream->sink->OnDrained([this, stream, target] {
                          stream->paused = false;
                          absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
                          if (ctx.ok()) ctx->link->ResumeReading();
                        });
                      }
                    });
                  },
                  [this, once, stream, target, key, self](absl::Status s) {
                    if (!s.ok() && !stream->retried && !stream->sink->Cancelled() &&
                        GetPayloadText(s, kReasonPayload) == "LINK_RECONNECTED") {
                      stream->retried = true;
                      return (*self)();
                    }
                    if (s.ok() && !stream->buffer.empty() && !stream->sink->Cancelled()) {
                      uint64_t at = stream->offset;
                      stream->offset += stream->buffer.size();
                      stream->sink->Write(std::move(stream->buffer), at);
                    }
                    if (s.ok()) {
                      absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
                      if (ctx.ok()) ctx->state->seen.insert(key);
                    }
                    (*once)(s);
                  }});
    });
  };
  (*attempt)();
}

void Pop3Backend::GetAttachment(const CallTarget& target, const v1::GetAttachmentRequest& request,
                                std::shared_ptr<ChunkSink> sink, Done done) {
  auto once = MakeOnce<absl::Status>(std::move(done));
  uint32_t chunk = request.chunk_size() == 0 ? kDefaultChunk : request.chunk_size();
  impl_->EnsureLoaded(target, [this, target, once, sink, chunk, request = request](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    absl::StatusOr<const Message*> m = impl_->Resolve(*ctx->state, request.id());
    if (!m.ok()) return (*once)(m.status());
    impl_->Retrieve(target, **m, [once, sink, chunk, request](absl::StatusOr<std::string> source) {
      if (!source.ok()) return (*once)(source.status());
      mime::ParseOptions options;  // every attachment whole
      std::vector<std::string> warnings;
      v1::EmailMessage full = ParseServerMessage(*source, options, &warnings);
      source->clear();
      const v1::Attachment* found = nullptr;
      for (const v1::Attachment& a : full.attachments()) {
        if (request.has_part_id() ? a.part_id() == request.part_id()
                                  : a.content_id() == request.content_id()) {
          found = &a;
          break;
        }
      }
      if (found == nullptr) {
        return (*once)(ReasonError(absl::StatusCode::kNotFound, "PART_NOT_FOUND",
                                   "the message has no attachment with that part ID or "
                                   "Content-ID"));
      }
      std::string content = found->content();
      v1::Attachment meta = *found;
      meta.clear_content();
      sink->Begin(content.size(), &meta);
      StreamString(sink, std::move(content), chunk, [once](absl::Status s) { (*once)(s); });
    });
  });
}

void Pop3Backend::SearchMessages(const CallTarget& target, const v1::SearchMessagesRequest& request,
                                 Reply<v1::SearchMessagesResponse> done) {
  if (absl::Status s = CheckFolder(request.folder()); !s.ok()) return done(s);
  if (absl::Status s = ValidateCriteria(request.criteria(), /*pop3=*/true); !s.ok()) {
    return done(s);
  }
  v1::MessageView view =
      request.view() == v1::MESSAGE_VIEW_UNSPECIFIED ? v1::MESSAGE_VIEW_HEADERS : request.view();
  absl::StatusOr<size_t> page_size = PageSize(request.page_size(), view);
  if (!page_size.ok()) return done(page_size.status());
  bool newest_first = request.order() != v1::MESSAGE_ORDER_OLDEST_FIRST;
  uint64_t fingerprint = Fnv1a(request.criteria().SerializeAsString());
  std::vector<std::string> shape = {
      absl::StrCat(static_cast<int>(view)), newest_first ? "n" : "o", absl::StrCat(*page_size),
      absl::StrCat(request.max_attachment_bytes()), absl::StrCat(fingerprint)};
  auto once = MakeOnce<absl::StatusOr<v1::SearchMessagesResponse>>(std::move(done));
  // Serves one page of a saved search.
  auto serve = [this, target, once, view, newest_first, size = *page_size, shape,
                max_attachment = request.max_attachment_bytes()](uint64_t search_id,
                                                                 size_t offset) {
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    State& state = *ctx->state;
    auto saved_it = state.searches.find(search_id);
    if (saved_it == state.searches.end()) return (*once)(Refreshed());
    const SavedSearch& saved = saved_it->second;
    std::vector<uint32_t> hits;
    for (uint32_t n : saved.numbers) {
      auto it = state.by_number.find(n);
      if (it != state.by_number.end() && !state.messages[it->second].deleted &&
          !state.messages[it->second].gone) {
        hits.push_back(n);
      }
    }
    if (newest_first) std::reverse(hits.begin(), hits.end());
    auto response = std::make_shared<v1::SearchMessagesResponse>();
    response->set_total_count(static_cast<uint32_t>(hits.size()));
    std::vector<uint32_t> page;
    for (size_t i = offset; i < hits.size() && page.size() < size; ++i) page.push_back(hits[i]);
    if (offset + page.size() < hits.size()) {
      std::vector<std::string> fields = {"s1"};
      fields.insert(fields.end(), shape.begin(), shape.end());
      fields.push_back(absl::StrCat(search_id));
      fields.push_back(absl::StrCat(offset + page.size()));
      response->set_next_page_token(EncodeToken(fields));
    }
    impl_->Fill(target, std::move(page), view, max_attachment,
                [once, response](absl::StatusOr<std::vector<v1::EmailMessage>> messages) {
                  if (!messages.ok()) return (*once)(messages.status());
                  for (auto& m : *messages) *response->add_messages() = std::move(m);
                  (*once)(std::move(*response));
                });
  };
  if (!request.page_token().empty()) {
    absl::StatusOr<std::vector<std::string>> parts = DecodeToken(request.page_token(), 8, "s1");
    if (!parts.ok()) return (*once)(parts.status());
    if (!std::equal(shape.begin(), shape.end(), parts->begin() + 1)) {
      return (*once)(
          InvalidField("page_token: the request's other fields differ from the first page's"));
    }
    uint64_t search_id = 0;
    size_t offset = 0;
    if (!absl::SimpleAtoi((*parts)[6], &search_id) || !absl::SimpleAtoi((*parts)[7], &offset)) {
      return (*once)(InvalidField("page_token: not a token from a previous response"));
    }
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    auto it = ctx->state->searches.find(search_id);
    if (it == ctx->state->searches.end() || it->second.generation != ctx->state->generation ||
        absl::Now() - it->second.created > impl_->options_.search_lifetime) {
      return (*once)(ReasonError(absl::StatusCode::kFailedPrecondition, "STALE_PAGE_TOKEN",
                                 "page_token: the saved search expired or the mailbox was "
                                 "refreshed; search again"));
    }
    return serve(search_id, offset);
  }
  auto criteria = std::make_shared<v1::SearchCriteria>(request.criteria());
  impl_->EnsureLoaded(target, [this, target, once, criteria, fingerprint,
                               serve = std::move(serve)](absl::Status s) mutable {
    if (!s.ok()) return (*once)(s);
    impl_->RunSearch(target, criteria,
                     [this, target, once, fingerprint, serve = std::move(serve)](
                         absl::StatusOr<std::vector<uint32_t>> hits) mutable {
                       if (!hits.ok()) return (*once)(hits.status());
                       absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
                       if (!ctx.ok()) return (*once)(ctx.status());
                       State& state = *ctx->state;
                       while (state.searches.size() >= impl_->options_.max_saved_searches) {
                         auto oldest = state.searches.begin();
                         for (auto it = state.searches.begin(); it != state.searches.end(); ++it) {
                           if (it->second.created < oldest->second.created) oldest = it;
                         }
                         state.searches.erase(oldest);
                       }
                       uint64_t id = state.next_search++;
                       state.searches[id] = SavedSearch{std::move(*hits), state.generation,
                                                        fingerprint, absl::Now()};
                       serve(id, 0);
                     });
  });
}

void Pop3Backend::DeleteMessages(const CallTarget& target, const v1::DeleteMessagesRequest& request,
                                 Reply<v1::DeleteMessagesResponse> done) {
  if (request.mode() != v1::DELETE_MODE_UNSPECIFIED && request.mode() != v1::DELETE_MODE_EXPUNGE) {
    return done(
        Precondition("mode: POP3 deletes at QUIT only; FLAG_ONLY and MOVE_TO_TRASH need IMAP"));
  }
  auto once = MakeOnce<absl::StatusOr<v1::DeleteMessagesResponse>>(std::move(done));
  std::vector<std::string> ids(request.ids().begin(), request.ids().end());
  impl_->EnsureLoaded(target, [this, target, once, ids = std::move(ids)](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    // Every ID is checked before anything is deleted.
    auto numbers = std::make_shared<std::vector<uint32_t>>();
    absl::flat_hash_set<uint32_t> unique;
    for (const std::string& id : ids) {
      absl::StatusOr<const Message*> m = impl_->Resolve(*ctx->state, id);
      if (!m.ok()) {
        return (*once)(absl::Status(m.status().code(),
                                    absl::StrCat(m.status().message(), " (id ", id.substr(0, 200),
                                                 "); nothing was deleted")));
      }
      if (unique.insert((*m)->number).second) numbers->push_back((*m)->number);
    }
    auto next = std::make_shared<size_t>(0);
    auto step = std::make_shared<absl::AnyInvocable<void()>>();
    *step = [this, target, once, numbers, next,
             weak = std::weak_ptr<absl::AnyInvocable<void()>>(step)]() {
      auto self = weak.lock();
      if (!self) return;
      if (*next == numbers->size()) {
        v1::DeleteMessagesResponse response;
        response.set_deleted_count(static_cast<uint32_t>(numbers->size()));
        response.set_pending_until_quit(true);
        return (*once)(std::move(response));
      }
      absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
      if (!ctx.ok()) return (*once)(ctx.status());
      uint32_t number = (*numbers)[*next];
      impl_->Enqueue(
          *ctx,
          Command{[number](pop3::Client& c, session::Link&) { c.StartDele(number); },
                  [this, target, once, next, numbers, number, self](absl::Status s) {
                    if (!s.ok()) {
                      return (*once)(absl::Status(
                          s.code(), absl::StrCat(s.message(), " (", *next, " of ", numbers->size(),
                                                 " messages were marked "
                                                 "deleted before)")));
                    }
                    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
                    if (!ctx.ok()) return (*once)(ctx.status());
                    auto it = ctx->state->by_number.find(number);
                    if (it != ctx->state->by_number.end()) {
                      ctx->state->messages[it->second].deleted = true;
                    }
                    ++*next;
                    (*self)();
                  }});
    };
    (*step)();
  });
}

void Pop3Backend::Refresh(const CallTarget& target, const v1::RefreshRequest& request,
                          Reply<v1::RefreshResponse> done) {
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return done(ctx.status());
  auto once = MakeOnce<absl::StatusOr<v1::RefreshResponse>>(std::move(done));
  auto response = std::make_shared<v1::RefreshResponse>();
  // QUIT waits in the link's queue behind the calls before it; the new login holds back
  // the ones after it (their message numbers belong to the old connection: ABORTED).
  session::Link& link = *ctx->link;
  auto finish = [this, target, once, response](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    impl_->EnsureLoaded(target, [this, target, once, response](absl::Status s) {
      if (!s.ok()) return (*once)(s);
      absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
      if (!ctx.ok()) return (*once)(ctx.status());
      *response->mutable_status() = impl_->Status(*ctx->state);
      (*once)(std::move(*response));
    });
  };
  link.Logout([this, target, response, &link, finish = std::move(finish)](
                  absl::Status s, std::string reply) mutable {
    // The new snapshot: forget the old one, keep what UIDLs still name.
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    response->set_server_reply(SanitizeServerText(reply));
    if (s.ok() && ctx.ok()) response->set_committed_deletions(ctx->state->pending_deletions());
    if (ctx.ok()) {
      State& st = *ctx->state;
      st.loaded = false;
      st.messages.clear();
      st.by_uidl.clear();
      st.by_number.clear();
      st.searches.clear();
      absl::erase_if(st.headers, [](const auto& kv) { return kv.first[0] == 'n'; });
      absl::erase_if(st.seen, [](const std::string& k) { return k[0] == 'n'; });
      st.snapshot_time = absl::Now();
    }
    link.Open(std::move(finish));
  });
}

// --- IMAP-only calls ---

namespace {
absl::Status ImapOnly(absl::string_view call) {
  return Precondition(
      absl::StrCat(call, " is an IMAP call; POP3 has a single folder and no flags"));
}
}  // namespace

#define MP_POP3_IMAP_ONLY(Method)                                         \
  void Pop3Backend::Method(const CallTarget&, const v1::Method##Request&, \
                           Reply<v1::Method##Response> done) {            \
    done(ImapOnly(#Method));                                              \
  }
MP_POP3_IMAP_ONLY(ListFolders)
MP_POP3_IMAP_ONLY(SelectFolder)
MP_POP3_IMAP_ONLY(CreateFolder)
MP_POP3_IMAP_ONLY(DeleteFolder)
MP_POP3_IMAP_ONLY(RenameFolder)
MP_POP3_IMAP_ONLY(CopyMessages)
MP_POP3_IMAP_ONLY(MoveMessages)
MP_POP3_IMAP_ONLY(UpdateFlags)
MP_POP3_IMAP_ONLY(AppendMessage)
MP_POP3_IMAP_ONLY(Expunge)
#undef MP_POP3_IMAP_ONLY

void Pop3Backend::WatchMailbox(const CallTarget&, const v1::WatchMailboxRequest&,
                               std::shared_ptr<EventSink>, Done done) {
  done(Precondition("WatchMailbox is an IMAP call; on POP3 use Refresh to see new mail"));
}

}  // namespace mailpool::mailbox
