#include "mailbox/imap_backend.h"

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
#include "mailbox/imap_search.h"
#include "mailbox/imap_support.h"
#include "mailbox/search.h"
#include "mime/mime.h"
#include "net/timer.h"
#include "session/session.h"

namespace mailpool::mailbox {
namespace {

constexpr uint32_t kMaxUid = 0xffffffffu;
constexpr uint64_t kDefaultMaxAttachment = 1 << 20;
constexpr uint32_t kDefaultChunk = 64 * 1024;

using imap::Client;

absl::Status InvalidField(absl::string_view what) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD", what);
}

absl::Status StaleValidity() {
  return ReasonError(absl::StatusCode::kFailedPrecondition, "UIDVALIDITY_CHANGED",
                     "the folder's UIDVALIDITY changed (it was deleted and recreated, or "
                     "renamed): IDs and page tokens from before are stale; list it again");
}

absl::Status ReadOnlyFolder() {
  return ReasonError(absl::StatusCode::kFailedPrecondition, "FOLDER_READ_ONLY",
                     "the folder is open read-only (SelectFolder with read_only, or the "
                     "server allows no changes)");
}

absl::Status MessageGone(absl::string_view id) {
  return ReasonError(
      absl::StatusCode::kNotFound, "MESSAGE_NOT_FOUND",
      absl::StrCat("the message is not in its folder (expunged or moved): ", id.substr(0, 200)));
}

absl::Status TooLarge(uint64_t limit) {
  return ReasonError(absl::StatusCode::kResourceExhausted, "MESSAGE_TOO_LARGE",
                     absl::StrCat("more than the ", limit,
                                  " bytes this call reads into memory; use StreamMessage "
                                  "or a smaller page"));
}

// A command the server does not offer is the caller's precondition, not ours.
absl::Status NotOfferedToPrecondition(absl::Status s) {
  if (s.code() != absl::StatusCode::kUnimplemented) return s;
  return absl::Status(absl::StatusCode::kFailedPrecondition, s.message());
}

// A Content-ID without its angle brackets.
std::string StripAngles(absl::string_view id) {
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

bool IsSelected(const Client& c, const Want& w) {
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

imap::UidSet SetOf(const std::vector<uint32_t>& uids) {
  imap::UidSet set;
  for (uint32_t u : uids) set.Add(u);
  return set;
}

imap::UidSet AllUids() {
  imap::UidSet set;
  set.AddRange(1, kMaxUid);
  return set;
}

// Checks that the selected folder is the incarnation an ID or token was made in.
absl::AnyInvocable<absl::Status(Client&)> CheckValidity(uint32_t uid_validity,
                                                        bool need_write = false) {
  return [uid_validity, need_write](Client& c) -> absl::Status {
    if (c.mailbox().uidvalidity != uid_validity) return StaleValidity();
    if (need_write && c.mailbox().read_only) return ReadOnlyFolder();
    return absl::OkStatus();
  };
}

absl::AnyInvocable<absl::Status(Client&)> CheckWritable() {
  return [](Client& c) -> absl::Status {
    if (c.mailbox().read_only) return ReadOnlyFolder();
    return absl::OkStatus();
  };
}

v1::MailboxStatus StatusFrom(const std::string& folder, const imap::MailboxStatus& s,
                             const imap::MailboxState* selected) {
  v1::MailboxStatus out;
  out.set_folder(folder);
  if (selected != nullptr) {
    out.set_message_count(selected->exists);
    out.set_recent_count(selected->recent);
    out.set_uid_validity(selected->uidvalidity);
    out.set_uid_next(selected->uidnext);
    out.set_highest_modseq(selected->highestmodseq);
    out.set_read_only(selected->read_only);
    for (const std::string& f : selected->flags) {
      if (!f.empty() && f[0] != '\\') out.add_keywords(f);
    }
    for (const std::string& f : selected->permanent_flags) {
      if (f == "\\*") out.set_can_create_keywords(true);
    }
  }
  if (s.messages) out.set_message_count(*s.messages);
  if (s.unseen) out.set_unread_count(*s.unseen);
  if (s.recent) out.set_recent_count(*s.recent);
  if (s.uidvalidity) out.set_uid_validity(*s.uidvalidity);
  if (s.uidnext) out.set_uid_next(*s.uidnext);
  if (s.size) out.set_size(*s.size);
  if (s.highestmodseq) out.set_highest_modseq(*s.highestmodseq);
  *out.mutable_snapshot_time() = ToProtoTime(absl::Now());
  return out;
}

v1::Folder FolderFrom(const imap::ListEntry& e) {
  v1::Folder f;
  f.set_name(NormalizeFolder(e.name));
  if (e.delimiter != 0) f.set_delimiter(std::string(1, e.delimiter));
  bool selectable = true;
  for (const std::string& a : e.attributes) {
    f.add_attributes(a);
    if (absl::EqualsIgnoreCase(a, "\\Noselect") || absl::EqualsIgnoreCase(a, "\\NonExistent")) {
      selectable = false;
    }
  }
  f.set_role(RoleOf(e.name, e.special_use));
  f.set_subscribed(e.subscribed);
  f.set_selectable(selectable);
  SanitizeUtf8(&f);  // attributes are server atoms
  return f;
}

void SortFolders(std::vector<v1::Folder>* folders) {
  std::stable_sort(folders->begin(), folders->end(), [](const v1::Folder& a, const v1::Folder& b) {
    bool ai = a.role() == v1::FOLDER_ROLE_INBOX, bi = b.role() == v1::FOLDER_ROLE_INBOX;
    if (ai != bi) return ai;
    return a.name() < b.name();
  });
}

std::string ParamOf(const std::vector<std::pair<std::string, std::string>>& params,
                    absl::string_view name) {
  for (const auto& [k, v] : params) {
    if (absl::EqualsIgnoreCase(k, name)) return v;
  }
  return "";
}

// A BODYSTRUCTURE parameter value decoded the way the MIME parser decodes headers: RFC
// 2231 continuations arrive as "filename*" with charset'lang'%XX, RFC 2047 words as-is.
std::string DecodeParam(const std::vector<std::pair<std::string, std::string>>& params,
                        absl::string_view name) {
  std::string plain = ParamOf(params, name);
  std::string extended = ParamOf(params, absl::StrCat(name, "*"));
  if (plain.empty() && extended.empty()) return "";
  std::string header;
  if (!extended.empty()) {
    header = absl::StrCat("Content-Type: application/octet-stream; name*=", extended, "\r\n");
  } else {
    header = absl::StrCat("Content-Type: application/octet-stream; name=\"",
                          absl::StrReplaceAll(plain, {{"\\", "\\\\"}, {"\"", "\\\""}}), "\"\r\n");
  }
  if (extended.empty() && !absl::StrContains(plain, "=?")) return plain;
  // Let the MIME layer decode it (one small parse, only for encoded names).
  mime::ParseOptions options;
  v1::EmailMessage parsed = ParseServerMessage(absl::StrCat(header, "\r\nx"), options, nullptr);
  for (const v1::Attachment& a : parsed.attachments()) {
    if (!a.file_name().empty()) return a.file_name();
  }
  return plain;
}

// The attachment summary of the HEADERS view, from BODYSTRUCTURE, with the same rules as
// the MIME parser's (mime.cc): the first text/plain and text/html parts that are not
// attachments are the bodies, every other leaf is an attachment (content omitted).
void Summarize(const imap::BodyPart& p, int depth, bool* have_text, bool* have_html,
               v1::EmailMessage* out) {
  if (depth > 64) return;
  if (p.type == "multipart") {
    for (const imap::BodyPart& child : p.children) {
      Summarize(child, depth + 1, have_text, have_html, out);
    }
    return;
  }
  std::string part = p.part.empty() ? "1" : p.part;
  std::string file_name = DecodeParam(p.disposition_params, "filename");
  if (file_name.empty()) file_name = DecodeParam(p.params, "name");
  std::string cid = StripAngles(p.id);
  v1::AttachmentDisposition disposition =
      p.disposition.empty()       ? v1::ATTACHMENT_DISPOSITION_UNSPECIFIED
      : p.disposition == "inline" ? v1::ATTACHMENT_DISPOSITION_INLINE
                                  : v1::ATTACHMENT_DISPOSITION_ATTACHMENT;
  bool is_message = p.type == "message" && p.subtype == "rfc822";
  bool body_like = !is_message && disposition != v1::ATTACHMENT_DISPOSITION_ATTACHMENT &&
                   file_name.empty() &&
                   !(disposition == v1::ATTACHMENT_DISPOSITION_INLINE && !cid.empty());
  if (body_like && p.type == "text" && p.subtype == "plain" && !*have_text) {
    *have_text = true;
    return;
  }
  if (body_like && p.type == "text" && p.subtype == "html" && !*have_html) {
    *have_html = true;
    return;
  }
  v1::Attachment* a = out->add_attachments();
  a->set_file_name(file_name);
  std::string type = absl::StrCat(p.type, "/", p.subtype);
  for (const auto& [k, v] : p.params) {
    if (absl::EqualsIgnoreCase(k, "name") || absl::EqualsIgnoreCase(k, "name*")) continue;
    absl::StrAppend(&type, "; ", k, "=", v);
  }
  a->set_content_type(type);
  a->set_content_id(cid);
  // The encoded size; base64 is about 4/3 of the decoded one.
  a->set_size(p.encoding == "base64" ? p.size / 4 * 3 : p.size);
  a->set_disposition(disposition);
  a->set_part_id(part);
  a->set_content_omitted(true);
}

// Finds a part by part_id or Content-ID.
const imap::BodyPart* FindPart(const imap::BodyPart& p, const v1::GetAttachmentRequest& request,
                               int depth) {
  if (depth > 64) return nullptr;
  std::string part = p.part.empty() ? "1" : p.part;
  if (p.type != "multipart") {
    if (request.has_part_id() && part == request.part_id()) return &p;
    if (request.has_content_id()) {
      std::string cid = StripAngles(p.id);
      if (!cid.empty() && cid == request.content_id()) return &p;
    }
    return nullptr;
  }
  for (const imap::BodyPart& child : p.children) {
    if (const imap::BodyPart* found = FindPart(child, request, depth + 1)) return found;
  }
  return nullptr;
}

// Bare LF -> CRLF (AppendMessage sources).
std::string ToCrlf(absl::string_view in) {
  std::string out;
  out.reserve(in.size() + in.size() / 32);
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) out.push_back('\r');
    out.push_back(in[i]);
  }
  return out;
}

}  // namespace

class ImapBackend::Impl {
 public:
  Impl(net::EventLoop& loop, pool::Pool& pool, ImapBackendOptions options)
      : loop_(loop), pool_(pool), options_(options) {}

  absl::StatusOr<Ctx> Lookup(const CallTarget& target);
  void Enqueue(const CallTarget& target, std::shared_ptr<Command> command);
  void Submit(State* st, session::Link* link, std::shared_ptr<Command> command);
  void MaybeWatch(State* st, session::Link* link);
  void Hook(State* st, Client& c);
  void OnEvent(State* st, Client& c, const imap::MailboxEvent& e);

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

  // WatchMailbox machinery.
  // Submits the watch's next turn (resync, new messages, IDLE, or a poll timer).
  void WatchStep(State* st);
  void SendEvent(State* st, v1::WatchMailboxResponse event);
  void WatchFailed(State* st, const absl::Status& s);

  net::EventLoop& loop_;
  pool::Pool& pool_;
  ImapBackendOptions options_;
};

absl::StatusOr<Ctx> ImapBackend::Impl::Lookup(const CallTarget& target) {
  MP_ASSIGN_OR_RETURN(session::Session * session, pool_.Use(target.owner, target.session));
  session::Link* link = session->link(session::Protocol::kImap);
  if (link == nullptr) {
    return ReasonError(absl::StatusCode::kFailedPrecondition, "WRONG_PROTOCOL",
                       "the session has no IMAP connection");
  }
  auto* state = static_cast<State*>(session->extension());
  if (state == nullptr) {
    auto fresh = std::make_unique<State>(loop_);
    const session::LinkSpec& spec = link->spec();
    fresh->account = AccountTag(spec.endpoint.host, spec.endpoint.port, spec.login.user);
    fresh->current = NormalizeFolder(spec.initial_folder.empty() ? "INBOX" : spec.initial_folder);
    state = fresh.get();
    session->set_extension(std::move(fresh));
  }
  state->silence_timeout = session->EffectiveTimeout();
  state->target = CallTarget{target.owner, target.session, nullptr};
  state->link = link;
  return Ctx{session, link, state};
}

void ImapBackend::Impl::Enqueue(const CallTarget& target, std::shared_ptr<Command> command) {
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return command->done(ctx.status());
  if (!command->call) command->call = target.call;
  Submit(ctx->state, ctx->link, std::move(command));
}

// Starts the watch's next turn when the link has nothing else to do.
void ImapBackend::Impl::MaybeWatch(State* st, session::Link* link) {
  if (st->watches.empty() || link->turn_running() || link->queued() > 0) return;
  WatchStep(st);
}

void ImapBackend::Impl::Hook(State* st, Client& c) {
  // Set on every turn: after a reconnect the link has a new client.
  c.SetEventCallback(
      [this, st, client = &c](const imap::MailboxEvent& e) { OnEvent(st, *client, e); });
}

// One command is one turn on the link: SELECT when the folder is not the selected one
// (a second step of the same turn), the check, then the command. `st` and `link` belong to
// one session; the turn's callbacks run from the link, so both are alive when they do.
void ImapBackend::Impl::Submit(State* st, session::Link* link, std::shared_ptr<Command> command) {
  using Phase = Command::Phase;
  session::RunOptions options(command->unsafe ? session::Repeat::kUnsafe : session::Repeat::kSafe);
  options.call = command->call;
  session::Turn turn;
  turn.step = [this, st, command](wire::ClientProtocol& protocol) {
    auto& c = static_cast<Client&>(protocol);
    Hook(st, c);
    if (command->want && command->selects < 2 && !IsSelected(c, *command->want)) {
      command->phase = Phase::kSelect;
      ++command->selects;
      st->selecting = true;
      c.StartSelect(command->want->folder, command->want->mode != Want::Mode::kReadWrite);
      return;
    }
    if (command->check) {
      absl::Status s = command->check(c);
      if (!s.ok()) {
        command->phase = Phase::kFailed;
        command->failure = std::move(s);
        c.StartNoop();  // a turn must run a command; the failure is reported after it
        return;
      }
    }
    command->phase = Phase::kMain;
    if (command->idle) st->idle_client = &c;
    if (command->started && command->restart) command->restart();
    command->started = true;
    command->start(c);
  };
  turn.more = [st, command](const absl::Status& s) {
    st->idle_client = nullptr;
    bool was_selecting = st->selecting;
    st->selecting = false;
    if (command->phase != Phase::kSelect || !s.ok()) return false;
    // Whatever the watch saw may have changed while another folder was open.
    if (was_selecting && !st->watches.empty()) st->watch_need_resync = true;
    return true;
  };
  // The watch's IDLE gives way to any other command.
  turn.yield = [st](wire::ClientProtocol&) { st->StopIdle(); };
  turn.done = [this, st, link, command, alive = st->alive](absl::Status s) {
    st->idle_client = nullptr;
    st->selecting = false;
    switch (command->phase) {
      case Phase::kSelect:
        if (command->folder_from_id && s.code() == absl::StatusCode::kNotFound) {
          s = MailServerError(absl::StatusCode::kFailedPrecondition, "FOLDER_GONE",
                              "the folder of this message ID no longer exists (deleted "
                              "or renamed): the ID is stale",
                              "", GetPayloadText(s, kServerReplyPayload).value_or(""));
        }
        command->done(std::move(s));
        break;
      case Phase::kFailed:
        command->done(std::move(command->failure));
        break;
      case Phase::kMain:
        command->done(std::move(s));
        break;
    }
    if (*alive) MaybeWatch(st, link);
  };
  link->Run(std::move(turn), std::move(options));
}

void ImapBackend::Impl::Sync(const CallTarget& target, const Want& want) {
  auto noop = std::make_shared<Command>();
  noop->want = want;
  noop->start = [](Client& c) { c.StartNoop(); };
  noop->done = [](absl::Status) {};  // the next command reports any failure
  Enqueue(target, std::move(noop));
}

Want ImapBackend::Impl::WantFor(const State& st, const std::string& folder, bool write) const {
  if (folder.empty() || SameFolder(folder, st.current)) {
    return Want{st.current, st.current_read_only ? Want::Mode::kReadOnly : Want::Mode::kReadWrite};
  }
  return Want{NormalizeFolder(folder), write ? Want::Mode::kReadWrite : Want::Mode::kAny};
}

absl::StatusOr<ImapBackend::Impl::Resolved> ImapBackend::Impl::ResolveAll(
    const State& st, const google::protobuf::RepeatedPtrField<std::string>& ids) {
  Resolved out;
  out.account = st.account;
  absl::flat_hash_set<uint32_t> seen;
  for (const std::string& id : ids) {
    MP_ASSIGN_OR_RETURN(MessageRef ref, DecodeMessageId(st.account, id));
    if (out.uids.empty()) {
      out.folder = ref.folder;
      out.uid_validity = ref.uid_validity;
    } else if (!SameFolder(ref.folder, out.folder) || ref.uid_validity != out.uid_validity) {
      return InvalidField("ids: all IDs must name messages of the same folder");
    }
    if (seen.insert(ref.uid).second) out.uids.push_back(ref.uid);
  }
  return out;
}

void ImapBackend::Impl::Verify(const CallTarget& target, const Resolved& r,
                               const google::protobuf::RepeatedPtrField<std::string>& ids,
                               bool write, Done done) {
  auto found = std::make_shared<std::vector<uint32_t>>();
  auto command = std::make_shared<Command>();
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return done(ctx.status());
  command->want = WantFor(*ctx->state, r.folder, write);
  command->folder_from_id = true;
  command->check = CheckValidity(r.uid_validity, write);
  command->start = [found, set = SetOf(r.uids)](Client& c) {
    c.StartUidSearch({imap::SearchArg::Atom("UID"), imap::SearchArg::Set(set.ToString())},
                     imap::SearchOptions{},
                     [found](imap::SearchResult result) { *found = std::move(result.uids); });
  };
  std::vector<std::string> id_list(ids.begin(), ids.end());
  command->done = [r, found, id_list = std::move(id_list),
                   done = std::move(done)](absl::Status s) mutable {
    if (!s.ok()) return done(s);
    absl::flat_hash_set<uint32_t> present(found->begin(), found->end());
    for (size_t i = 0; i < r.uids.size(); ++i) {
      if (present.contains(r.uids[i])) continue;
      std::string named;
      for (const std::string& id : id_list) {
        absl::StatusOr<MessageRef> ref = DecodeMessageId(r.account, id);
        if (ref.ok() && ref->uid == r.uids[i]) named = id;
      }
      return done(ReasonError(absl::StatusCode::kNotFound, "MESSAGE_NOT_FOUND",
                              absl::StrCat(MessageGone(named).message(), "; nothing was changed")));
    }
    done(absl::OkStatus());
  };
  Enqueue(target, std::move(command));
}

namespace {

bool HasCapability(const session::Link& link, absl::string_view name) {
  const wire::ServerInfo* info = link.server_info();
  if (info == nullptr) return false;
  for (const std::string& c : info->capabilities) {
    if (absl::EqualsIgnoreCase(c, name)) return true;
  }
  return false;
}

// A received message in `view` from one FETCH response and its section data (BODY[HEADER]
// for HEADERS, BODY[] for FULL and RAW).
v1::EmailMessage MessageFrom(const std::string& id, const std::string& folder,
                             imap::FetchedMessage& m, v1::MessageView view, std::string data,
                             uint64_t max_attachment_bytes) {
  v1::EmailMessage out;
  switch (view) {
    case v1::MESSAGE_VIEW_HEADERS: {
      mime::ParseOptions options;
      options.headers_only = true;
      out = ParseServerMessage(data, options, nullptr);
      if (m.body_structure) {
        bool have_text = false, have_html = false;
        Summarize(*m.body_structure, 0, &have_text, &have_html, &out);
      }
      break;
    }
    case v1::MESSAGE_VIEW_FULL: {
      mime::ParseOptions options;
      options.max_attachment_bytes =
          max_attachment_bytes == 0 ? kDefaultMaxAttachment : max_attachment_bytes;
      out = ParseServerMessage(data, options, nullptr);
      break;
    }
    case v1::MESSAGE_VIEW_RAW:
      out.set_source(std::move(data));
      break;
    default:
      break;
  }
  if (!m.unparsed.empty()) {
    // The message is served without what its server sent unreadably (no parts list for a
    // BODYSTRUCTURE, say); the log says which.
    Log(LogLevel::kWarning, "message data not readable",
        {{"folder", folder},
         {"uid", absl::StrCat(m.uid)},
         {"items", absl::StrJoin(m.unparsed, ",")}});
  }
  out.set_id(id);
  *out.mutable_flags() = FlagsFromImap(m.flags);
  out.set_size(m.size);
  if (m.internal_time) {
    *out.mutable_receive_time() = ToProtoTime(*m.internal_time);
  } else {
    out.clear_receive_time();
  }
  out.set_folder(folder);
  out.set_uid(m.uid);
  return out;
}

imap::FetchRequest FetchFor(v1::MessageView view) {
  imap::FetchRequest request;
  request.items = imap::kFetchFlags | imap::kFetchSize | imap::kFetchInternalDate;
  if (view == v1::MESSAGE_VIEW_HEADERS) {
    request.items |= imap::kFetchBodyStructure;
    request.sections.push_back({"HEADER", 0, 0});
  }
  if (view == v1::MESSAGE_VIEW_FULL || view == v1::MESSAGE_VIEW_RAW) {
    request.sections.push_back({"", 0, 0});
  }
  return request;
}

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

}  // namespace

void ImapBackend::Impl::Fill(const CallTarget& target, const std::string& folder,
                             uint32_t uid_validity, std::vector<uint32_t> uids,
                             v1::MessageView view, uint64_t max_attachment_bytes, bool mark_seen,
                             bool folder_from_id, absl::AnyInvocable<void(Messages)> done) {
  auto once = MakeOnce<Messages>(std::move(done));
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  if (uids.empty()) return (*once)(std::vector<v1::EmailMessage>());
  bool set_seen = mark_seen && (view == v1::MESSAGE_VIEW_FULL || view == v1::MESSAGE_VIEW_RAW);
  struct Job {
    std::vector<uint32_t> order;
    absl::flat_hash_map<uint32_t, v1::EmailMessage> by_uid;
    bool read_only = false;
  };
  auto job = std::make_shared<Job>();
  job->order = std::move(uids);
  auto buffer = std::make_shared<SectionBuffer>();
  buffer->cap = options_.max_message_bytes;
  std::string account = ctx->state->account;
  std::string name = folder.empty() ? ctx->state->current : NormalizeFolder(folder);
  auto command = std::make_shared<Command>();
  command->want = WantFor(*ctx->state, name, set_seen);
  command->folder_from_id = folder_from_id;
  command->check = CheckValidity(uid_validity);
  command->restart = [job, buffer] {
    job->by_uid.clear();
    buffer->Reset();
  };
  command->start = [job, buffer, view, account, name, uid_validity,
                    max_attachment_bytes](Client& c) {
    job->read_only = c.mailbox().read_only;
    imap::FetchRequest request = FetchFor(view);
    if (!request.sections.empty()) request.sink = buffer->Sink(buffer);
    c.StartUidFetch(SetOf(job->order), std::move(request),
                    [job, buffer, view, account, name, uid_validity,
                     max_attachment_bytes](imap::FetchedMessage m) {
                      if (buffer->over || m.uid == 0) return;
                      std::string id = EncodeMessageId(account, {name, uid_validity, m.uid});
                      job->by_uid[m.uid] =
                          MessageFrom(id, name, m, view, buffer->Take(m.seq), max_attachment_bytes);
                    });
  };
  auto finish = [job, once]() {
    std::vector<v1::EmailMessage> out;
    out.reserve(job->order.size());
    for (uint32_t uid : job->order) {
      auto it = job->by_uid.find(uid);
      if (it != job->by_uid.end()) out.push_back(std::move(it->second));
    }
    (*once)(std::move(out));
  };
  command->done = [this, target, job, buffer, once, finish, set_seen, name,
                   uid_validity](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    if (buffer->over) return (*once)(TooLarge(options_.max_message_bytes));
    if (!set_seen || job->read_only || job->by_uid.empty()) return finish();
    std::vector<uint32_t> got;
    for (const auto& [uid, m] : job->by_uid) got.push_back(uid);
    auto store = std::make_shared<Command>();
    absl::StatusOr<Ctx> ctx = Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    store->want = WantFor(*ctx->state, name, true);
    store->check = CheckValidity(uid_validity, true);
    store->start = [set = SetOf(got)](Client& c) {
      c.StartUidStore(set, imap::StoreMode::kAdd, {"\\Seen"}, /*silent=*/true, nullptr);
    };
    store->done = [job, once, finish](absl::Status s) {
      if (!s.ok()) return (*once)(s);
      for (auto& [uid, m] : job->by_uid) m.mutable_flags()->set_seen(true);
      finish();
    };
    Enqueue(target, std::move(store));
  };
  Enqueue(target, std::move(command));
}

void ImapBackend::Impl::FolderStatus(
    const CallTarget& target, const std::string& folder,
    absl::AnyInvocable<void(absl::StatusOr<v1::MailboxStatus>)> done,
    absl::AnyInvocable<void(Client&)> before) {
  auto once = MakeOnce<absl::StatusOr<v1::MailboxStatus>>(std::move(done));
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  bool current = folder.empty() || SameFolder(folder, ctx->state->current);
  std::string name = current ? ctx->state->current : NormalizeFolder(folder);
  auto result = std::make_shared<v1::MailboxStatus>();
  auto command = std::make_shared<Command>();
  if (current) command->want = WantFor(*ctx->state, "", false);
  command->start = [result, name, current, before = std::move(before)](Client& c) mutable {
    if (before) before(c);
    std::shared_ptr<imap::MailboxState> selected;
    if (current && c.selected()) selected = std::make_shared<imap::MailboxState>(c.mailbox());
    c.StartStatus(name, [result, name, selected](imap::MailboxStatus s) {
      *result = StatusFrom(name, s, selected.get());
    });
  };
  command->done = [once, result](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    (*once)(std::move(*result));
  };
  Enqueue(target, std::move(command));
}

void ImapBackend::Impl::FindFolder(const CallTarget& target, const std::string& folder,
                                   absl::AnyInvocable<void(absl::StatusOr<v1::Folder>)> done) {
  auto once = MakeOnce<absl::StatusOr<v1::Folder>>(std::move(done));
  auto entries = std::make_shared<std::vector<imap::ListEntry>>();
  auto command = std::make_shared<Command>();
  command->start = [entries, folder](Client& c) {
    c.StartList(folder, [entries](std::vector<imap::ListEntry> e) { *entries = std::move(e); });
  };
  command->done = [once, entries, folder](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    for (const imap::ListEntry& e : *entries) {
      if (SameFolder(e.name, folder)) return (*once)(FolderFrom(e));
    }
    (*once)(ReasonError(absl::StatusCode::kNotFound, "FOLDER_NOT_FOUND",
                        absl::StrCat("no folder named \"", folder.substr(0, 200), "\"")));
  };
  Enqueue(target, std::move(command));
}

void ImapBackend::Impl::SetCurrent(const CallTarget& target, const std::string& folder,
                                   bool read_only) {
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return;
  State& st = *ctx->state;
  std::string name = NormalizeFolder(folder);
  if (!SameFolder(name, st.current) && !st.watches.empty()) {
    st.EndWatches(ReasonError(absl::StatusCode::kAborted, "FOLDER_CHANGED",
                              "another folder was selected; watch it with a new call"));
    st.StopIdle();
  }
  st.current = name;
  st.current_read_only = read_only;
  // A reconnect re-selects it, and GetSession shows it.
  ctx->link->set_initial_folder(name);
}

void ImapBackend::Impl::Store(const CallTarget& target, const Resolved& r, imap::StoreMode mode,
                              std::vector<std::string> flags, Done done) {
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return done(ctx.status());
  auto command = std::make_shared<Command>();
  command->want = WantFor(*ctx->state, r.folder, true);
  command->folder_from_id = true;
  command->check = CheckValidity(r.uid_validity, true);
  command->start = [set = SetOf(r.uids), mode, flags = std::move(flags)](Client& c) mutable {
    c.StartUidStore(set, mode, std::move(flags), /*silent=*/true, nullptr);
  };
  command->done = std::move(done);
  Enqueue(target, std::move(command));
}

// Flags \Deleted and expunges exactly these messages: UID EXPUNGE (UIDPLUS), else EXPUNGE
// when no other message is flagged \Deleted (then nothing is changed on refusal).
void ImapBackend::Impl::RemoveUids(const CallTarget& target, const Resolved& r, Done done) {
  auto once = MakeOnce<absl::Status>(std::move(done));
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  bool uidplus = HasCapability(*ctx->link, "UIDPLUS");
  auto expunge = [this, target, r, once, uidplus]() {
    Store(target, r, imap::StoreMode::kAdd, {"\\Deleted"},
          [this, target, r, once, uidplus](absl::Status s) {
            if (!s.ok()) return (*once)(s);
            absl::StatusOr<Ctx> ctx = Lookup(target);
            if (!ctx.ok()) return (*once)(ctx.status());
            auto command = std::make_shared<Command>();
            command->want = WantFor(*ctx->state, r.folder, true);
            command->check = CheckValidity(r.uid_validity, true);
            command->start = [uidplus, set = SetOf(r.uids)](Client& c) {
              if (uidplus) {
                c.StartUidExpunge(set);
              } else {
                c.StartExpunge();
              }
            };
            command->done = [once](absl::Status s) { (*once)(s); };
            Enqueue(target, std::move(command));
          });
  };
  if (uidplus) return expunge();
  auto deleted = std::make_shared<std::vector<uint32_t>>();
  auto command = std::make_shared<Command>();
  command->want = WantFor(*ctx->state, r.folder, true);
  command->folder_from_id = true;
  command->check = CheckValidity(r.uid_validity, true);
  command->start = [deleted](Client& c) {
    c.StartUidSearch({imap::SearchArg::Atom("DELETED")}, imap::SearchOptions{},
                     [deleted](imap::SearchResult res) { *deleted = std::move(res.uids); });
  };
  command->done = [once, deleted, r, expunge](absl::Status s) mutable {
    if (!s.ok()) return (*once)(s);
    absl::flat_hash_set<uint32_t> mine(r.uids.begin(), r.uids.end());
    for (uint32_t u : *deleted) {
      if (!mine.contains(u)) {
        return (*once)(ReasonError(
            absl::StatusCode::kFailedPrecondition, "NO_UIDPLUS",
            "the server has no UID EXPUNGE (UIDPLUS) and other messages in the folder are "
            "flagged \\Deleted: EXPUNGE would remove them too; nothing was changed"));
      }
    }
    expunge();
  };
  Enqueue(target, std::move(command));
}

void ImapBackend::Impl::Move(const CallTarget& target, const Resolved& r,
                             const std::string& destination, bool copy_only,
                             absl::AnyInvocable<void(absl::StatusOr<imap::CopyResult>)> done) {
  auto once = MakeOnce<absl::StatusOr<imap::CopyResult>>(std::move(done));
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  bool native_move = !copy_only && HasCapability(*ctx->link, "MOVE");
  auto result = std::make_shared<imap::CopyResult>();
  auto command = std::make_shared<Command>();
  command->want = WantFor(*ctx->state, r.folder, !copy_only);
  command->folder_from_id = true;
  command->check = CheckValidity(r.uid_validity, !copy_only);
  // Repeated after a drop, a COPY would copy twice and a MOVE would report no new IDs.
  command->unsafe = true;
  command->start = [result, native_move, set = SetOf(r.uids), destination](Client& c) {
    auto keep = [result](imap::CopyResult res) { *result = std::move(res); };
    if (native_move) {
      c.StartUidMove(set, destination, keep);
    } else {
      c.StartUidCopy(set, destination, keep);
    }
  };
  command->done = [this, target, r, once, result, copy_only, native_move](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    if (copy_only || native_move) return (*once)(std::move(*result));
    // MOVE missing: the copies are made; now remove the originals.
    RemoveUids(target, r, [once, result](absl::Status s) {
      if (!s.ok()) return (*once)(s);
      (*once)(std::move(*result));
    });
  };
  Enqueue(target, std::move(command));
}

void ImapBackend::Impl::Search(const CallTarget& target, const std::string& folder,
                               std::vector<imap::SearchArg> args, DateRefinement refine,
                               absl::AnyInvocable<void(absl::StatusOr<SavedSearch>)> done) {
  auto once = MakeOnce<absl::StatusOr<SavedSearch>>(std::move(done));
  absl::StatusOr<Ctx> ctx = Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  auto saved = std::make_shared<SavedSearch>();
  saved->folder = folder.empty() ? ctx->state->current : NormalizeFolder(folder);
  saved->created = absl::Now();
  auto command = std::make_shared<Command>();
  command->want = WantFor(*ctx->state, saved->folder, false);
  Sync(target, *command->want);
  command->start = [saved, args = std::move(args)](Client& c) mutable {
    saved->uid_validity = c.mailbox().uidvalidity;
    c.StartUidSearch(std::move(args), imap::SearchOptions{},
                     [saved](imap::SearchResult r) { saved->uids = std::move(r.uids); });
  };
  command->done = [this, target, saved, once, refine](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    std::sort(saved->uids.begin(), saved->uids.end());
    if (!refine.needed() || saved->uids.empty()) return (*once)(std::move(*saved));
    // IMAP dates are days: keep the hits within the exact instants.
    absl::StatusOr<Ctx> ctx = Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    auto keep = std::make_shared<std::vector<uint32_t>>();
    auto fetch = std::make_shared<Command>();
    fetch->want = WantFor(*ctx->state, saved->folder, false);
    fetch->check = CheckValidity(saved->uid_validity);
    fetch->restart = [keep] { keep->clear(); };
    fetch->start = [saved, keep, refine](Client& c) {
      imap::FetchRequest request;
      request.items = imap::kFetchInternalDate;
      if (refine.needs_sent_date()) request.sections.push_back({"HEADER.FIELDS (DATE)", 0, 0});
      c.StartUidFetch(SetOf(saved->uids), std::move(request),
                      [keep, refine](imap::FetchedMessage m) {
                        absl::optional<absl::Time> sent;
                        for (const imap::SectionData& d : m.sections) {
                          absl::string_view v = d.data;
                          size_t colon = v.find(':');
                          if (colon != absl::string_view::npos) {
                            sent = ParseMailDate(absl::StripAsciiWhitespace(v.substr(colon + 1)));
                          }
                        }
                        if (refine.Accepts(m.internal_time, sent)) keep->push_back(m.uid);
                      });
    };
    fetch->done = [saved, keep, once](absl::Status s) {
      if (!s.ok()) return (*once)(s);
      saved->uids = std::move(*keep);
      std::sort(saved->uids.begin(), saved->uids.end());
      (*once)(std::move(*saved));
    };
    Enqueue(target, std::move(fetch));
  };
  Enqueue(target, std::move(command));
}

// --- WatchMailbox ---

namespace {

bool FlagsEqual(const v1::Flags& a, const v1::Flags& b) {
  std::vector<std::string> x = FlagsToImap(a), y = FlagsToImap(b);
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  return x == y && a.recent() == b.recent();
}

v1::WatchMailboxResponse Event(v1::MailboxEventType type, std::string id = "") {
  v1::WatchMailboxResponse e;
  e.set_type(type);
  e.set_id(std::move(id));
  *e.mutable_time() = ToProtoTime(absl::Now());
  return e;
}

}  // namespace

void ImapBackend::Impl::SendEvent(State* st, v1::WatchMailboxResponse event) {
  for (const std::shared_ptr<Watch>& w : st->watches) {
    if (w->sink->Cancelled()) continue;
    v1::WatchMailboxResponse copy = event;
    if (w->view == v1::MESSAGE_VIEW_UNSPECIFIED) copy.clear_message();
    w->sink->Send(std::move(copy));
  }
}

void ImapBackend::Impl::WatchFailed(State* st, const absl::Status& s) {
  st->EndWatches(s);
  st->watch_baselined = false;
  st->watch_known.clear();
}

void ImapBackend::Impl::OnEvent(State* st, Client& c, const imap::MailboxEvent& e) {
  if (st->watches.empty() || st->selecting || !st->watch_baselined) return;
  if (!c.selected() || !SameFolder(c.mailbox().name, st->current)) return;
  auto wake = [st] { st->StopIdle(); };
  if (c.mailbox().uidvalidity != st->watch_validity) {
    st->watch_need_resync = true;
    return wake();
  }
  switch (e.kind) {
    case imap::MailboxEvent::Kind::kExists:
      st->watch_need_new = true;
      return wake();
    case imap::MailboxEvent::Kind::kExpunged:
    case imap::MailboxEvent::Kind::kVanished:
      if (e.uid == 0) {
        st->watch_need_resync = true;
        return wake();
      }
      if (st->watch_known.erase(e.uid) > 0) {
        SendEvent(st, Event(v1::MAILBOX_EVENT_TYPE_EXPUNGED,
                            IdOf(*st, st->current, st->watch_validity, e.uid)));
      }
      return;
    case imap::MailboxEvent::Kind::kFlags: {
      if (e.uid == 0) {
        st->watch_need_resync = true;
        return wake();
      }
      v1::Flags flags = FlagsFromImap(e.flags);
      auto it = st->watch_known.find(e.uid);
      if (it == st->watch_known.end() || FlagsEqual(it->second, flags)) return;
      it->second = flags;
      v1::WatchMailboxResponse event = Event(v1::MAILBOX_EVENT_TYPE_FLAGS_CHANGED,
                                             IdOf(*st, st->current, st->watch_validity, e.uid));
      *event.mutable_flags() = std::move(flags);
      SendEvent(st, std::move(event));
      return;
    }
  }
}

void ImapBackend::Impl::WatchStep(State* st) {
  CallTarget target = st->target;
  auto command = std::make_shared<Command>();
  command->want = WantFor(*st, "", false);
  if (!st->watch_baselined || st->watch_need_resync) {
    // Baseline (first turn) or resync: every UID and its flags.
    st->watch_need_resync = false;
    struct Snapshot {
      imap::MailboxState mailbox;
      absl::flat_hash_map<uint32_t, v1::Flags> flags;
    };
    auto snap = std::make_shared<Snapshot>();
    command->start = [snap](Client& c) {
      snap->mailbox = c.mailbox();
      imap::FetchRequest request;
      request.items = imap::kFetchFlags;
      c.StartUidFetch(AllUids(), std::move(request), [snap](imap::FetchedMessage m) {
        if (m.uid != 0) snap->flags[m.uid] = FlagsFromImap(m.flags);
      });
    };
    command->done = [this, target, snap](absl::Status s) {
      absl::StatusOr<Ctx> ctx = Lookup(target);
      if (!ctx.ok()) return;
      State* st = ctx->state;
      if (!s.ok()) return WatchFailed(st, s);
      uint32_t max_uid = 0;
      uint32_t unread = 0;

      for (const auto& [uid, f] : snap->flags) {
        max_uid = std::max(max_uid, uid);
        if (!f.seen()) ++unread;
      }
      v1::MailboxStatus status = StatusFrom(st->current, imap::MailboxStatus{}, &snap->mailbox);
      status.set_message_count(static_cast<uint32_t>(snap->flags.size()));
      status.set_unread_count(unread);
      bool reset = st->watch_baselined && snap->mailbox.uidvalidity != st->watch_validity;
      if (!st->watch_baselined || reset) {
        st->watch_known = std::move(snap->flags);
        st->watch_max_uid = max_uid;
        st->watch_validity = snap->mailbox.uidvalidity;
        v1::WatchMailboxResponse event =
            Event(reset ? v1::MAILBOX_EVENT_TYPE_RESET : v1::MAILBOX_EVENT_TYPE_READY);
        *event.mutable_status() = std::move(status);
        if (!st->watch_baselined) {
          // READY goes to the watches that have not had it (all of them at first).
          st->watch_baselined = true;
        }
        SendEvent(st, std::move(event));
        return;
      }
      // What changed while the watch could not hear it.
      std::vector<uint32_t> gone;
      for (const auto& [uid, f] : st->watch_known) {
        if (!snap->flags.contains(uid)) gone.push_back(uid);
      }
      std::sort(gone.begin(), gone.end());
      for (uint32_t uid : gone) {
        st->watch_known.erase(uid);
        SendEvent(st, Event(v1::MAILBOX_EVENT_TYPE_EXPUNGED,
                            IdOf(*st, st->current, st->watch_validity, uid)));
      }
      for (auto& [uid, f] : snap->flags) {
        if (uid > st->watch_max_uid) {
          st->watch_need_new = true;
          continue;
        }
        auto it = st->watch_known.find(uid);
        if (it == st->watch_known.end() || FlagsEqual(it->second, f)) continue;
        it->second = f;
        v1::WatchMailboxResponse event = Event(v1::MAILBOX_EVENT_TYPE_FLAGS_CHANGED,
                                               IdOf(*st, st->current, st->watch_validity, uid));
        *event.mutable_flags() = f;
        SendEvent(st, std::move(event));
      }
    };
  } else if (st->watch_need_new) {
    st->watch_need_new = false;
    v1::MessageView view = v1::MESSAGE_VIEW_BASIC;
    for (const auto& w : st->watches) view = std::max(view, w->view);
    auto buffer = std::make_shared<SectionBuffer>();
    buffer->cap = options_.max_message_bytes;
    auto fresh = std::make_shared<std::vector<v1::EmailMessage>>();
    std::string account = st->account, folder = st->current;
    uint32_t from = st->watch_max_uid + 1, validity = st->watch_validity;
    command->check = CheckValidity(validity);
    command->restart = [buffer, fresh] {
      buffer->Reset();
      fresh->clear();
    };
    command->start = [buffer, fresh, view, account, folder, from, validity](Client& c) {
      imap::FetchRequest request = FetchFor(view);
      if (!request.sections.empty()) request.sink = buffer->Sink(buffer);
      imap::UidSet set;
      set.AddRange(from, kMaxUid);
      c.StartUidFetch(
          set, std::move(request),
          [buffer, fresh, view, account, folder, validity](imap::FetchedMessage m) {
            if (m.uid == 0) return;
            fresh->push_back(MessageFrom(EncodeMessageId(account, {folder, validity, m.uid}),
                                         folder, m, view, buffer->Take(m.seq), 0));
          });
    };
    command->done = [this, target, fresh, from](absl::Status s) {
      absl::StatusOr<Ctx> ctx = Lookup(target);
      if (!ctx.ok()) return;
      State* st = ctx->state;
      if (GetPayloadText(s, kReasonPayload).value_or("") == "UIDVALIDITY_CHANGED") {
        st->watch_need_resync = true;  // RESET on the next turn
        return;
      }
      if (!s.ok()) return WatchFailed(st, s);
      std::sort(
          fresh->begin(), fresh->end(),
          [](const v1::EmailMessage& a, const v1::EmailMessage& b) { return a.uid() < b.uid(); });
      for (v1::EmailMessage& m : *fresh) {
        // "n:*" may answer the last message even when it is older than n.
        if (m.uid() < from || st->watch_known.contains(m.uid())) continue;
        st->watch_known[m.uid()] = m.flags();
        st->watch_max_uid = std::max(st->watch_max_uid, m.uid());
        v1::WatchMailboxResponse event = Event(v1::MAILBOX_EVENT_TYPE_NEW, m.id());
        *event.mutable_message() = std::move(m);
        SendEvent(st, std::move(event));
      }
    };
  } else if (!st->no_idle) {
    command->idle = true;
    absl::Duration reissue = std::min(options_.idle_reissue, st->silence_timeout * 4 / 5);
    command->start = [st, reissue](Client& c) {
      if (!c.HasCapability("IDLE")) {
        st->no_idle = true;
        c.StartNoop();
        return;
      }
      c.StartIdle();
      // RFC 2177: leave IDLE well before the server's 30-minute autologout.
      st->timer.Start(reissue, [st] { st->StopIdle(); });
    };
    command->done = [this, target](absl::Status s) {
      absl::StatusOr<Ctx> ctx = Lookup(target);
      if (!ctx.ok()) return;
      ctx->state->timer.Cancel();
      if (s.code() == absl::StatusCode::kUnimplemented) {
        ctx->state->no_idle = true;
      } else if (!s.ok()) {
        WatchFailed(ctx->state, s);
      }
    };
  } else {
    // No IDLE: a NOOP every poll interval; the events arrive with its answer.
    if (st->timer.armed()) return;
    st->timer.Start(st->poll_interval, [this, target] {
      auto noop = std::make_shared<Command>();
      absl::StatusOr<Ctx> ctx = Lookup(target);
      if (!ctx.ok()) return;
      noop->want = WantFor(*ctx->state, "", false);
      noop->start = [](Client& c) { c.StartNoop(); };
      noop->done = [](absl::Status) {};
      Enqueue(target, std::move(noop));
    });
    return;
  }
  Submit(st, st->link, std::move(command));
}

// --- The calls ---

ImapBackend::ImapBackend(net::EventLoop& loop, pool::Pool& pool, ImapBackendOptions options)
    : impl_(std::make_unique<Impl>(loop, pool, options)) {}
ImapBackend::~ImapBackend() = default;

void ImapBackend::GetMailboxStatus(const CallTarget& target,
                                   const v1::GetMailboxStatusRequest& request,
                                   Reply<v1::GetMailboxStatusResponse> done) {
  impl_->FolderStatus(target, request.folder(),
                      [done = std::move(done)](absl::StatusOr<v1::MailboxStatus> s) mutable {
                        if (!s.ok()) return done(s.status());
                        v1::GetMailboxStatusResponse response;
                        *response.mutable_status() = std::move(*s);
                        done(std::move(response));
                      });
}

void ImapBackend::ListMessages(const CallTarget& target, const v1::ListMessagesRequest& request,
                               Reply<v1::ListMessagesResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::ListMessagesResponse>>(std::move(done));
  v1::MessageView view =
      request.view() == v1::MESSAGE_VIEW_UNSPECIFIED ? v1::MESSAGE_VIEW_HEADERS : request.view();
  absl::StatusOr<size_t> page_size = PageSize(request.page_size(), view);
  if (!page_size.ok()) return (*once)(page_size.status());
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  std::string folder =
      request.folder().empty() ? ctx->state->current : NormalizeFolder(request.folder());
  bool newest_first = request.order() != v1::MESSAGE_ORDER_OLDEST_FIRST;
  bool unread = request.filter() == v1::MESSAGE_FILTER_UNREAD;
  std::vector<std::string> shape = {absl::StrCat(static_cast<int>(view)),
                                    newest_first ? "n" : "o",
                                    unread ? "u" : "a",
                                    absl::StrCat(*page_size),
                                    absl::StrCat(request.max_attachment_bytes()),
                                    request.mark_seen() ? "s" : "-",
                                    absl::StrCat(Fingerprint(folder))};
  uint32_t token_validity = 0, after = 0;
  if (!request.page_token().empty()) {
    absl::StatusOr<std::vector<std::string>> parts =
        DecodePageToken(request.page_token(), "l1", shape.size() + 2);
    if (!parts.ok()) return (*once)(parts.status());
    if (!std::equal(shape.begin(), shape.end(), parts->begin())) {
      return (*once)(
          InvalidField("page_token: the request's other fields differ from the first page's"));
    }
    if (!absl::SimpleAtoi((*parts)[shape.size()], &token_validity) ||
        !absl::SimpleAtoi((*parts)[shape.size() + 1], &after) || token_validity == 0) {
      return (*once)(InvalidField("page_token: not a token from a previous response"));
    }
  }
  auto uids = std::make_shared<std::vector<uint32_t>>();
  auto validity = std::make_shared<uint32_t>(0);
  auto command = std::make_shared<Command>();
  command->want = impl_->WantFor(*ctx->state, folder, false);
  impl_->Sync(target, *command->want);
  if (token_validity != 0) {
    command->check = [token_validity](Client& c) -> absl::Status {
      if (c.mailbox().uidvalidity != token_validity) {
        return ReasonError(absl::StatusCode::kFailedPrecondition, "STALE_PAGE_TOKEN",
                           "page_token: the folder's UIDVALIDITY changed since; list again");
      }
      return absl::OkStatus();
    };
  }
  command->start = [uids, validity, unread](Client& c) {
    *validity = c.mailbox().uidvalidity;
    c.StartUidSearch({imap::SearchArg::Atom(unread ? "UNSEEN" : "ALL")}, imap::SearchOptions{},
                     [uids](imap::SearchResult r) { *uids = std::move(r.uids); });
  };
  command->done = [this, target, once, uids, validity, shape, view, newest_first, after,
                   has_token = token_validity != 0, size = *page_size, folder,
                   max_attachment = request.max_attachment_bytes(),
                   mark_seen = request.mark_seen()](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    std::vector<uint32_t>& all = *uids;
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    // Positioned by UID: arrivals and expunges between pages shift nothing.
    std::vector<uint32_t> page;
    size_t remaining = 0;
    if (newest_first) {
      auto end = has_token ? std::lower_bound(all.begin(), all.end(), after) : all.end();
      size_t available = static_cast<size_t>(end - all.begin());
      for (size_t i = 0; i < available && page.size() < size; ++i) {
        page.push_back(all[available - 1 - i]);
      }
      remaining = available - page.size();
    } else {
      auto begin = has_token ? std::upper_bound(all.begin(), all.end(), after) : all.begin();
      for (auto it = begin; it != all.end() && page.size() < size; ++it) page.push_back(*it);
      remaining = static_cast<size_t>(all.end() - begin) - page.size();
    }
    auto response = std::make_shared<v1::ListMessagesResponse>();
    response->set_total_count(static_cast<uint32_t>(all.size()));
    if (remaining > 0 && !page.empty()) {
      std::vector<std::string> fields = shape;
      fields.push_back(absl::StrCat(*validity));
      fields.push_back(absl::StrCat(page.back()));
      response->set_next_page_token(EncodePageToken("l1", fields));
    }
    impl_->Fill(target, folder, *validity, std::move(page), view, max_attachment, mark_seen,
                /*folder_from_id=*/false, [once, response](Impl::Messages messages) {
                  if (!messages.ok()) return (*once)(messages.status());
                  for (auto& m : *messages) *response->add_messages() = std::move(m);
                  (*once)(std::move(*response));
                });
  };
  impl_->Enqueue(target, std::move(command));
}

void ImapBackend::GetMessage(const CallTarget& target, const v1::GetMessageRequest& request,
                             Reply<v1::GetMessageResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::GetMessageResponse>>(std::move(done));
  v1::MessageView view =
      request.view() == v1::MESSAGE_VIEW_UNSPECIFIED ? v1::MESSAGE_VIEW_FULL : request.view();
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  absl::StatusOr<MessageRef> ref = DecodeMessageId(ctx->state->account, request.id());
  if (!ref.ok()) return (*once)(ref.status());
  impl_->Fill(target, ref->folder, ref->uid_validity, {ref->uid}, view,
              request.max_attachment_bytes(), request.mark_seen(), /*folder_from_id=*/true,
              [once, id = request.id()](Impl::Messages messages) {
                if (!messages.ok()) return (*once)(messages.status());
                if (messages->empty()) return (*once)(MessageGone(id));
                v1::GetMessageResponse response;
                *response.mutable_message() = std::move(messages->front());
                (*once)(std::move(response));
              });
}

void ImapBackend::StreamMessage(const CallTarget& target, const v1::StreamMessageRequest& request,
                                std::shared_ptr<ChunkSink> sink, Done done) {
  auto once = MakeOnce<absl::Status>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  absl::StatusOr<MessageRef> ref = DecodeMessageId(ctx->state->account, request.id());
  if (!ref.ok()) return (*once)(ref.status());
  struct Stream {
    CallTarget target;
    MessageRef ref;
    std::string id;
    std::shared_ptr<ChunkSink> sink;
    uint32_t chunk = 0;
    uint32_t window = 0;
    uint64_t size = 0;
    uint64_t position = 0;  // next byte to fetch
    std::string pending;    // bytes not yet written (less than a chunk)
    uint64_t pending_at = 0;
    bool found = false;
    bool mark_seen = false;
  };
  auto stream = std::make_shared<Stream>();
  stream->target = target;
  stream->ref = *ref;
  stream->id = request.id();
  stream->sink = std::move(sink);
  stream->chunk = request.chunk_size() == 0 ? kDefaultChunk : request.chunk_size();
  // Whole chunks per window, so that chunks never straddle two FETCHes.
  uint32_t per_window = std::max<uint32_t>(1, impl_->options_.stream_window / stream->chunk);
  stream->window = per_window * stream->chunk;
  stream->position = request.offset();
  stream->pending_at = request.offset();
  stream->mark_seen = request.mark_seen();

  auto flush = [stream](bool all) {
    while (!stream->pending.empty() && (all || stream->pending.size() >= stream->chunk)) {
      size_t n = std::min<size_t>(stream->chunk, stream->pending.size());
      stream->sink->Write(stream->pending.substr(0, n), stream->pending_at);
      stream->pending.erase(0, n);
      stream->pending_at += n;
    }
  };
  // One window per turn on the connection; the next is asked once the caller has room.
  auto window = std::make_shared<absl::AnyInvocable<void()>>();
  *window = [this, stream, once, flush,
             weak = std::weak_ptr<absl::AnyInvocable<void()>>(window)]() {
    auto self = weak.lock();
    if (!self) return;
    if (stream->sink->Cancelled()) return (*once)(absl::OkStatus());
    if (stream->position >= stream->size) {
      flush(true);
      if (!stream->mark_seen) return (*once)(absl::OkStatus());
      Impl::Resolved r{"", stream->ref.folder, stream->ref.uid_validity, {stream->ref.uid}};
      return impl_->Store(stream->target, r, imap::StoreMode::kAdd, {"\\Seen"},
                          [once](absl::Status s) { (*once)(s); });
    }
    if (stream->sink->Full()) {
      stream->sink->OnDrained([self] { (*self)(); });
      return;
    }
    absl::StatusOr<Ctx> ctx = impl_->Lookup(stream->target);
    if (!ctx.ok()) return (*once)(ctx.status());
    auto received = std::make_shared<uint64_t>(0);
    auto command = std::make_shared<Command>();
    command->want = impl_->WantFor(*ctx->state, stream->ref.folder, false);
    command->folder_from_id = true;
    command->check = CheckValidity(stream->ref.uid_validity);
    // After a drop the window goes on where the lost connection stopped: what it delivered
    // has been written to the caller already.
    command->start = [stream, received, flush](Client& c) {
      imap::FetchRequest request;
      uint64_t from = stream->position + *received;
      if (*received >= stream->window || from >= stream->size) {
        return c.StartNoop();  // all of it arrived before the drop
      }
      uint64_t length = std::min<uint64_t>(stream->window - *received, stream->size - from);
      request.sections.push_back({"", from, static_cast<uint32_t>(length)});
      request.sink = [stream, received, flush](uint32_t, uint32_t, absl::string_view,
                                               absl::string_view piece, bool) {
        if (stream->sink->Cancelled()) return;  // drain; the session stays usable
        *received += piece.size();
        stream->pending.append(piece.data(), piece.size());
        flush(false);
      };
      imap::UidSet set;
      set.Add(stream->ref.uid);
      c.StartUidFetch(set, std::move(request), [](imap::FetchedMessage) {});
    };
    command->done = [stream, received, once, self](absl::Status s) {
      if (!s.ok()) return (*once)(s);
      if (*received == 0) {
        // The message vanished under the stream, or the server reports less than it said.
        return (*once)(stream->sink->Cancelled() ? absl::OkStatus() : MessageGone(stream->id));
      }
      stream->position += *received;
      (*self)();
    };
    impl_->Enqueue(stream->target, std::move(command));
  };
  // First turn: the size, and the ID checked against the folder.
  auto first = std::make_shared<Command>();
  first->want = impl_->WantFor(*ctx->state, ref->folder, false);
  first->folder_from_id = true;
  first->check = CheckValidity(ref->uid_validity);
  first->start = [stream](Client& c) {
    imap::FetchRequest request;
    request.items = imap::kFetchSize;
    imap::UidSet set;
    set.Add(stream->ref.uid);
    c.StartUidFetch(set, std::move(request), [stream](imap::FetchedMessage m) {
      stream->found = true;
      stream->size = m.size;
    });
  };
  first->done = [stream, once, window, offset = request.offset()](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    if (!stream->found) return (*once)(MessageGone(stream->id));
    if (offset > 0 && offset >= stream->size) {
      return (*once)(ReasonError(absl::StatusCode::kOutOfRange, "OFFSET_PAST_END",
                                 absl::StrCat("offset: the message has ", stream->size, " bytes")));
    }
    stream->sink->Begin(stream->size, nullptr);
    (*window)();
  };
  impl_->Enqueue(target, std::move(first));
}

void ImapBackend::GetAttachment(const CallTarget& target, const v1::GetAttachmentRequest& request,
                                std::shared_ptr<ChunkSink> sink, Done done) {
  auto once = MakeOnce<absl::Status>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  absl::StatusOr<MessageRef> ref = DecodeMessageId(ctx->state->account, request.id());
  if (!ref.ok()) return (*once)(ref.status());
  uint32_t chunk = request.chunk_size() == 0 ? kDefaultChunk : request.chunk_size();
  uint64_t cap = impl_->options_.max_message_bytes;
  // First turn: BODYSTRUCTURE, to find the part.
  auto structure = std::make_shared<std::unique_ptr<imap::BodyPart>>();
  auto first = std::make_shared<Command>();
  first->want = impl_->WantFor(*ctx->state, ref->folder, false);
  first->folder_from_id = true;
  first->check = CheckValidity(ref->uid_validity);
  first->start = [structure, uid = ref->uid](Client& c) {
    imap::FetchRequest fetch;
    fetch.items = imap::kFetchBodyStructure;
    imap::UidSet set;
    set.Add(uid);
    c.StartUidFetch(set, std::move(fetch), [structure](imap::FetchedMessage m) {
      if (m.body_structure) *structure = std::move(m.body_structure);
    });
  };
  first->done = [this, target, once, structure, ref = *ref, request, sink, chunk,
                 cap](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    if (!*structure) return (*once)(MessageGone(request.id()));
    const imap::BodyPart* part = FindPart(**structure, request, 0);
    if (part == nullptr) {
      return (*once)(ReasonError(absl::StatusCode::kNotFound, "PART_NOT_FOUND",
                                 "the message has no attachment with that part ID or "
                                 "Content-ID"));
    }
    if (part->size > cap) return (*once)(TooLarge(cap));
    std::string part_id = part->part.empty() ? "1" : part->part;
    // A single-part message has no separate MIME header: read it whole.
    bool whole = (*structure)->type != "multipart" && part == structure->get();
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    auto buffer = std::make_shared<SectionBuffer>();
    buffer->cap = cap;
    auto mime_header = std::make_shared<std::string>();
    auto body = std::make_shared<std::string>();
    auto fetch = std::make_shared<Command>();
    fetch->want = impl_->WantFor(*ctx->state, ref.folder, false);
    fetch->folder_from_id = true;
    fetch->check = CheckValidity(ref.uid_validity);
    fetch->restart = [mime_header, body] {
      mime_header->clear();
      body->clear();
    };
    fetch->start = [whole, part_id, uid = ref.uid, mime_header, body, cap](Client& c) {
      imap::FetchRequest request;
      if (whole) {
        request.sections.push_back({"", 0, 0});
      } else {
        request.sections.push_back({absl::StrCat(part_id, ".MIME"), 0, 0});
        request.sections.push_back({part_id, 0, 0});
      }
      request.sink = [mime_header, body, cap](uint32_t, uint32_t, absl::string_view section,
                                              absl::string_view piece, bool) {
        std::string* out = absl::EndsWith(section, ".MIME") ? mime_header.get() : body.get();
        if (mime_header->size() + body->size() + piece.size() > cap + 4096) return;
        out->append(piece.data(), piece.size());
      };
      imap::UidSet set;
      set.Add(uid);
      c.StartUidFetch(set, std::move(request), [](imap::FetchedMessage) {});
    };
    fetch->done = [once, sink, chunk, whole, part_id, mime_header, body](absl::Status s) {
      if (!s.ok()) return (*once)(s);
      // The part as a standalone entity (its MIME header, then its body), decoded by the
      // MIME layer like any message.
      std::string entity = whole ? std::move(*body) : absl::StrCat(*mime_header, *body);
      body->clear();
      mime::ParseOptions options;  // every attachment whole
      v1::EmailMessage parsed = ParseServerMessage(entity, options, nullptr);
      entity.clear();
      v1::Attachment found;
      bool have = false;
      for (v1::Attachment& a : *parsed.mutable_attachments()) {
        if (!whole || a.part_id() == part_id) {
          found = std::move(a);
          have = true;
          break;
        }
      }
      if (!have) {
        // A text part that the parser took for a body.
        found.set_content_type(parsed.html_body().empty() ? "text/plain; charset=utf-8"
                                                          : "text/html; charset=utf-8");
        found.set_content(parsed.html_body().empty() ? parsed.text_body() : parsed.html_body());
      }
      found.set_part_id(part_id);
      std::string content = std::move(*found.mutable_content());
      found.clear_content();
      found.set_size(content.size());
      found.set_content_omitted(false);
      sink->Begin(content.size(), &found);
      StreamString(sink, std::move(content), chunk, [once](absl::Status s) { (*once)(s); });
    };
    impl_->Enqueue(target, std::move(fetch));
  };
  impl_->Enqueue(target, std::move(first));
}

void ImapBackend::SearchMessages(const CallTarget& target, const v1::SearchMessagesRequest& request,
                                 Reply<v1::SearchMessagesResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::SearchMessagesResponse>>(std::move(done));
  absl::StatusOr<ImapSearch> search = TranslateCriteria(request.criteria());
  if (!search.ok()) return (*once)(search.status());
  v1::MessageView view =
      request.view() == v1::MESSAGE_VIEW_UNSPECIFIED ? v1::MESSAGE_VIEW_HEADERS : request.view();
  absl::StatusOr<size_t> page_size = PageSize(request.page_size(), view);
  if (!page_size.ok()) return (*once)(page_size.status());
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  std::string folder =
      request.folder().empty() ? ctx->state->current : NormalizeFolder(request.folder());
  bool newest_first = request.order() != v1::MESSAGE_ORDER_OLDEST_FIRST;
  std::vector<std::string> shape = {
      absl::StrCat(static_cast<int>(view)),
      newest_first ? "n" : "o",
      absl::StrCat(*page_size),
      absl::StrCat(request.max_attachment_bytes()),
      absl::StrCat(Fingerprint(request.criteria().SerializeAsString())),
      absl::StrCat(Fingerprint(folder))};
  // Serves one page of a saved search.
  auto serve = [this, target, once, view, newest_first, size = *page_size, shape,
                max_attachment = request.max_attachment_bytes()](uint64_t search_id,
                                                                 size_t offset) {
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    auto it = ctx->state->searches.find(search_id);
    if (it == ctx->state->searches.end()) {
      return (*once)(ReasonError(absl::StatusCode::kFailedPrecondition, "STALE_PAGE_TOKEN",
                                 "page_token: the saved search expired; search again"));
    }
    const SavedSearch& saved = it->second;
    std::vector<uint32_t> hits = saved.uids;
    if (newest_first) std::reverse(hits.begin(), hits.end());
    auto response = std::make_shared<v1::SearchMessagesResponse>();
    response->set_total_count(static_cast<uint32_t>(hits.size()));
    std::vector<uint32_t> page;
    for (size_t i = offset; i < hits.size() && page.size() < size; ++i) page.push_back(hits[i]);
    if (offset + page.size() < hits.size()) {
      std::vector<std::string> fields = shape;
      fields.push_back(absl::StrCat(search_id));
      fields.push_back(absl::StrCat(offset + page.size()));
      response->set_next_page_token(EncodePageToken("s1", fields));
    }
    impl_->Fill(target, saved.folder, saved.uid_validity, std::move(page), view, max_attachment,
                false, false, [once, response](Impl::Messages messages) {
                  if (!messages.ok()) return (*once)(messages.status());
                  for (auto& m : *messages) *response->add_messages() = std::move(m);
                  (*once)(std::move(*response));
                });
  };
  if (!request.page_token().empty()) {
    absl::StatusOr<std::vector<std::string>> parts =
        DecodePageToken(request.page_token(), "s1", shape.size() + 2);
    if (!parts.ok()) return (*once)(parts.status());
    if (!std::equal(shape.begin(), shape.end(), parts->begin())) {
      return (*once)(
          InvalidField("page_token: the request's other fields differ from the first page's"));
    }
    uint64_t search_id = 0;
    size_t offset = 0;
    if (!absl::SimpleAtoi((*parts)[shape.size()], &search_id) ||
        !absl::SimpleAtoi((*parts)[shape.size() + 1], &offset)) {
      return (*once)(InvalidField("page_token: not a token from a previous response"));
    }
    auto it = ctx->state->searches.find(search_id);
    if (it != ctx->state->searches.end() &&
        absl::Now() - it->second.created > impl_->options_.search_lifetime) {
      ctx->state->searches.erase(it);
    }
    return serve(search_id, offset);
  }
  impl_->Search(target, folder, std::move(search->args), search->refine,
                [this, target, once, serve](absl::StatusOr<SavedSearch> saved) mutable {
                  if (!saved.ok()) return (*once)(saved.status());
                  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
                  if (!ctx.ok()) return (*once)(ctx.status());
                  State& st = *ctx->state;
                  while (st.searches.size() >= impl_->options_.max_saved_searches) {
                    auto oldest = st.searches.begin();
                    for (auto it = st.searches.begin(); it != st.searches.end(); ++it) {
                      if (it->second.created < oldest->second.created) oldest = it;
                    }
                    st.searches.erase(oldest);
                  }
                  uint64_t id = st.next_search++;
                  st.searches[id] = std::move(*saved);
                  serve(id, 0);
                });
}

void ImapBackend::DeleteMessages(const CallTarget& target, const v1::DeleteMessagesRequest& request,
                                 Reply<v1::DeleteMessagesResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::DeleteMessagesResponse>>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  absl::StatusOr<Impl::Resolved> r = impl_->ResolveAll(*ctx->state, request.ids());
  if (!r.ok()) return (*once)(r.status());
  v1::DeleteMode mode =
      request.mode() == v1::DELETE_MODE_UNSPECIFIED ? v1::DELETE_MODE_EXPUNGE : request.mode();
  uint32_t count = static_cast<uint32_t>(r->uids.size());
  auto reply = [once, count](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    v1::DeleteMessagesResponse response;
    response.set_deleted_count(count);
    (*once)(std::move(response));
  };
  auto resolved = *r;
  impl_->Verify(
      target, resolved, request.ids(), true,
      [this, target, once, resolved, mode, reply, ids = request.ids()](absl::Status s) mutable {
        if (!s.ok()) return (*once)(s);
        switch (mode) {
          case v1::DELETE_MODE_FLAG_ONLY:
            return impl_->Store(target, resolved, imap::StoreMode::kAdd, {"\\Deleted"},
                                std::move(reply));
          case v1::DELETE_MODE_MOVE_TO_TRASH: {
            // The Trash folder by its SPECIAL-USE role.
            auto entries = std::make_shared<std::vector<imap::ListEntry>>();
            auto list = std::make_shared<Command>();
            list->start = [entries](Client& c) {
              c.StartList("*",
                          [entries](std::vector<imap::ListEntry> e) { *entries = std::move(e); });
            };
            list->done = [this, target, once, resolved, entries, reply,
                          ids = std::move(ids)](absl::Status s) mutable {
              if (!s.ok()) return (*once)(s);
              std::string trash;
              for (const imap::ListEntry& e : *entries) {
                if (RoleOf(e.name, e.special_use) == v1::FOLDER_ROLE_TRASH) trash = e.name;
              }
              if (trash.empty()) {
                return (*once)(ReasonError(absl::StatusCode::kFailedPrecondition, "NO_TRASH",
                                           "the account has no folder with the \\Trash role"));
              }
              if (SameFolder(trash, resolved.folder)) {
                return impl_->RemoveUids(target, resolved, std::move(reply));
              }
              impl_->Move(target, resolved, trash, false,
                          [this, target, once, resolved, ids = std::move(ids),
                           trash](absl::StatusOr<imap::CopyResult> moved) {
                            if (!moved.ok()) return (*once)(moved.status());
                            absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
                            if (!ctx.ok()) return (*once)(ctx.status());
                            absl::flat_hash_map<uint32_t, uint32_t> map(moved->mapping.begin(),
                                                                        moved->mapping.end());
                            v1::DeleteMessagesResponse response;
                            response.set_deleted_count(static_cast<uint32_t>(resolved.uids.size()));
                            for (const std::string& id : ids) {
                              v1::MessageIdMapping* m = response.add_trashed();
                              m->set_source_id(id);
                              absl::StatusOr<MessageRef> ref =
                                  DecodeMessageId(resolved.account, id);
                              auto it = ref.ok() ? map.find(ref->uid) : map.end();
                              if (it != map.end() && moved->uidvalidity != 0) {
                                m->set_new_id(impl_->IdOf(*ctx->state, NormalizeFolder(trash),
                                                          moved->uidvalidity, it->second));
                              }
                            }
                            (*once)(std::move(response));
                          });
            };
            return impl_->Enqueue(target, std::move(list));
          }
          default:
            return impl_->RemoveUids(target, resolved, std::move(reply));
        }
      });
}

void ImapBackend::Refresh(const CallTarget& target, const v1::RefreshRequest&,
                          Reply<v1::RefreshResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::RefreshResponse>>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  auto reply = std::make_shared<std::string>();
  auto noop = std::make_shared<Command>();
  noop->want = impl_->WantFor(*ctx->state, "", false);
  noop->start = [](Client& c) { c.StartNoop(); };
  noop->done = [this, target, once, reply](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    impl_->FolderStatus(
        target, "",
        [once, reply](absl::StatusOr<v1::MailboxStatus> status) {
          if (!status.ok()) return (*once)(status.status());
          v1::RefreshResponse response;
          *response.mutable_status() = std::move(*status);
          response.set_server_reply(SanitizeServerText(*reply));
          (*once)(std::move(response));
        },
        // The NOOP's reply, still the client's last one at the start of this turn.
        [reply](Client& c) { *reply = c.last_reply(); });
  };
  impl_->Enqueue(target, std::move(noop));
}

void ImapBackend::ListFolders(const CallTarget& target, const v1::ListFoldersRequest& request,
                              Reply<v1::ListFoldersResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::ListFoldersResponse>>(std::move(done));
  auto entries = std::make_shared<std::vector<imap::ListEntry>>();
  auto command = std::make_shared<Command>();
  command->start = [entries,
                    pattern = request.pattern().empty() ? "*" : request.pattern()](Client& c) {
    c.StartList(pattern, [entries](std::vector<imap::ListEntry> e) { *entries = std::move(e); });
  };
  command->done = [this, target, once, entries, subscribed_only = request.subscribed_only(),
                   include_status = request.include_status()](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    auto folders = std::make_shared<std::vector<v1::Folder>>();
    for (const imap::ListEntry& e : *entries) {
      if (subscribed_only && !e.subscribed) continue;
      folders->push_back(FolderFrom(e));
    }
    SortFolders(folders.get());
    auto finish = [once, folders]() {
      v1::ListFoldersResponse response;
      for (v1::Folder& f : *folders) *response.add_folders() = std::move(f);
      (*once)(std::move(response));
    };
    if (!include_status) return finish();
    // STATUS per selectable folder, one turn each.
    auto next = std::make_shared<size_t>(0);
    auto step = std::make_shared<absl::AnyInvocable<void()>>();
    *step = [this, target, once, folders, next, finish,
             weak = std::weak_ptr<absl::AnyInvocable<void()>>(step)]() mutable {
      auto self = weak.lock();
      if (!self) return;
      while (*next < folders->size() && !(*folders)[*next].selectable()) ++*next;
      if (*next == folders->size()) return finish();
      size_t i = (*next)++;
      impl_->FolderStatus(target, (*folders)[i].name(),
                          [once, folders, i, self](absl::StatusOr<v1::MailboxStatus> status) {
                            if (!status.ok()) return (*once)(status.status());
                            *(*folders)[i].mutable_status() = std::move(*status);
                            (*self)();
                          });
    };
    (*step)();
  };
  impl_->Enqueue(target, std::move(command));
}

void ImapBackend::SelectFolder(const CallTarget& target, const v1::SelectFolderRequest& request,
                               Reply<v1::SelectFolderResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::SelectFolderResponse>>(std::move(done));
  std::string folder = NormalizeFolder(request.folder());
  bool read_only = request.read_only();
  auto result = std::make_shared<v1::MailboxStatus>();
  auto command = std::make_shared<Command>();
  command->want = Want{folder, read_only ? Want::Mode::kReadOnly : Want::Mode::kReadWrite};
  command->start = [result, folder](Client& c) {
    auto selected = std::make_shared<imap::MailboxState>(c.mailbox());
    c.StartStatus(folder, [result, folder, selected](imap::MailboxStatus s) {
      *result = StatusFrom(folder, s, selected.get());
    });
  };
  command->done = [this, target, once, result, folder, read_only](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    impl_->SetCurrent(target, folder, read_only);
    v1::SelectFolderResponse response;
    *response.mutable_status() = std::move(*result);
    (*once)(std::move(response));
  };
  impl_->Enqueue(target, std::move(command));
}

void ImapBackend::CreateFolder(const CallTarget& target, const v1::CreateFolderRequest& request,
                               Reply<v1::CreateFolderResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::CreateFolderResponse>>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  if (request.role() != v1::FOLDER_ROLE_UNSPECIFIED) {
    if (!HasCapability(*ctx->link, "CREATE-SPECIAL-USE")) {
      return (*once)(ReasonError(absl::StatusCode::kFailedPrecondition, "NOT_OFFERED",
                                 "role: the server does not offer CREATE-SPECIAL-USE"));
    }
    return (*once)(ReasonError(absl::StatusCode::kUnimplemented, "NOT_IMPLEMENTED",
                               "role: creating a folder with a SPECIAL-USE role is not "
                               "implemented yet"));
  }
  std::string folder = NormalizeFolder(request.folder());
  auto command = std::make_shared<Command>();
  command->unsafe = true;  // repeated after a drop: "already exists"
  command->start = [folder](Client& c) { c.StartCreate(folder); };
  command->done = [this, target, once, folder, subscribe = request.subscribe()](absl::Status s) {
    if (!s.ok()) return impl_->RefusedOntoExisting(target, folder, std::move(s), once);
    auto list = [this, target, once, folder]() {
      impl_->FindFolder(target, folder, [once](absl::StatusOr<v1::Folder> f) {
        if (!f.ok()) return (*once)(f.status());
        v1::CreateFolderResponse response;
        *response.mutable_folder() = std::move(*f);
        (*once)(std::move(response));
      });
    };
    if (!subscribe) return list();
    auto sub = std::make_shared<Command>();
    sub->start = [folder](Client& c) { c.StartSubscribe(folder, true); };
    sub->done = [once, list](absl::Status s) mutable {
      if (!s.ok()) return (*once)(s);
      list();
    };
    impl_->Enqueue(target, std::move(sub));
  };
  impl_->Enqueue(target, std::move(command));
}

void ImapBackend::DeleteFolder(const CallTarget& target, const v1::DeleteFolderRequest& request,
                               Reply<v1::DeleteFolderResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::DeleteFolderResponse>>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  std::string folder = NormalizeFolder(request.folder());
  bool was_current = SameFolder(folder, ctx->state->current);
  if (was_current) impl_->SetCurrent(target, "INBOX", false);
  auto command = std::make_shared<Command>();
  // Never delete the selected folder from under the connection: select another first.
  command->want = impl_->WantFor(*ctx->state, "", false);
  command->unsafe = true;  // repeated after a drop: "no such folder"
  command->start = [folder](Client& c) { c.StartDelete(folder); };
  command->done = [once](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    (*once)(v1::DeleteFolderResponse());
  };
  impl_->Enqueue(target, std::move(command));
}

void ImapBackend::RenameFolder(const CallTarget& target, const v1::RenameFolderRequest& request,
                               Reply<v1::RenameFolderResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::RenameFolderResponse>>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  std::string from = NormalizeFolder(request.folder());
  std::string to = request.new_name();
  bool was_current = SameFolder(from, ctx->state->current);
  bool read_only = ctx->state->current_read_only;
  auto command = std::make_shared<Command>();
  // The renamed folder must not be the selected one while it is renamed.
  command->want =
      was_current ? Want{"INBOX", Want::Mode::kAny} : impl_->WantFor(*ctx->state, "", false);
  command->unsafe = true;  // repeated after a drop: "no such folder"
  command->start = [from, to](Client& c) { c.StartRename(from, to); };
  command->done = [this, target, once, to, was_current, read_only](absl::Status s) {
    if (!s.ok()) return impl_->RefusedOntoExisting(target, to, std::move(s), once);
    if (was_current) impl_->SetCurrent(target, to, read_only);
    impl_->FindFolder(target, to, [once](absl::StatusOr<v1::Folder> f) {
      if (!f.ok()) return (*once)(f.status());
      v1::RenameFolderResponse response;
      *response.mutable_folder() = std::move(*f);
      (*once)(std::move(response));
    });
  };
  impl_->Enqueue(target, std::move(command));
}

namespace {

// New IDs in request order from a COPYUID mapping.
std::vector<v1::MessageIdMapping> Mappings(
    const google::protobuf::RepeatedPtrField<std::string>& ids, const std::string& account,
    const std::string& destination, const imap::CopyResult& result) {
  absl::flat_hash_map<uint32_t, uint32_t> map(result.mapping.begin(), result.mapping.end());
  std::vector<v1::MessageIdMapping> out;
  for (const std::string& id : ids) {
    v1::MessageIdMapping m;
    m.set_source_id(id);
    absl::StatusOr<MessageRef> ref = DecodeMessageId(account, id);
    auto it = ref.ok() ? map.find(ref->uid) : map.end();
    if (it != map.end() && result.uidvalidity != 0) {
      m.set_new_id(
          EncodeMessageId(account, {NormalizeFolder(destination), result.uidvalidity, it->second}));
    }
    out.push_back(std::move(m));
  }
  return out;
}

// COPY and MOVE differ only in the command and in the response field the mappings go to.
void Transfer(ImapBackend::Impl& impl, const CallTarget& target,
              const google::protobuf::RepeatedPtrField<std::string>& ids,
              const std::string& destination, bool copy_only,
              Reply<std::vector<v1::MessageIdMapping>> done) {
  auto once = MakeOnce<absl::StatusOr<std::vector<v1::MessageIdMapping>>>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl.Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  absl::StatusOr<ImapBackend::Impl::Resolved> r = impl.ResolveAll(*ctx->state, ids);
  if (!r.ok()) return (*once)(r.status());
  impl.Verify(target, *r, ids, /*write=*/!copy_only,
              [&impl, target, once, r = *r, ids, destination, copy_only](absl::Status s) {
                if (!s.ok()) return (*once)(s);
                impl.Move(target, r, destination, copy_only,
                          [once, r, ids, destination](absl::StatusOr<imap::CopyResult> result) {
                            if (!result.ok()) return (*once)(result.status());
                            (*once)(Mappings(ids, r.account, destination, *result));
                          });
              });
}

}  // namespace

void ImapBackend::CopyMessages(const CallTarget& target, const v1::CopyMessagesRequest& request,
                               Reply<v1::CopyMessagesResponse> done) {
  Transfer(
      *impl_, target, request.ids(), request.destination_folder(), /*copy_only=*/true,
      [done = std::move(done)](absl::StatusOr<std::vector<v1::MessageIdMapping>> mappings) mutable {
        if (!mappings.ok()) return done(mappings.status());
        v1::CopyMessagesResponse response;
        for (auto& m : *mappings) *response.add_copies() = std::move(m);
        done(std::move(response));
      });
}

void ImapBackend::MoveMessages(const CallTarget& target, const v1::MoveMessagesRequest& request,
                               Reply<v1::MoveMessagesResponse> done) {
  Transfer(
      *impl_, target, request.ids(), request.destination_folder(), /*copy_only=*/false,
      [done = std::move(done)](absl::StatusOr<std::vector<v1::MessageIdMapping>> mappings) mutable {
        if (!mappings.ok()) return done(mappings.status());
        v1::MoveMessagesResponse response;
        for (auto& m : *mappings) *response.add_moves() = std::move(m);
        done(std::move(response));
      });
}

void ImapBackend::UpdateFlags(const CallTarget& target, const v1::UpdateFlagsRequest& request,
                              Reply<v1::UpdateFlagsResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::UpdateFlagsResponse>>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  absl::StatusOr<Impl::Resolved> r = impl_->ResolveAll(*ctx->state, request.ids());
  if (!r.ok()) return (*once)(r.status());
  imap::StoreMode mode = request.operation() == v1::FLAG_OPERATION_ADD ? imap::StoreMode::kAdd
                         : request.operation() == v1::FLAG_OPERATION_REMOVE
                             ? imap::StoreMode::kRemove
                             : imap::StoreMode::kReplace;
  std::vector<std::string> flags = FlagsToImap(request.flags());
  std::vector<std::string> keywords(request.flags().keywords().begin(),
                                    request.flags().keywords().end());
  bool skip_store = flags.empty() && mode != imap::StoreMode::kReplace;
  impl_->Verify(
      target, *r, request.ids(), true,
      [this, target, once, r = *r, mode, flags, keywords, skip_store,
       ids = request.ids()](absl::Status s) mutable {
        if (!s.ok()) return (*once)(s);
        // Then the resulting flags of each message.
        auto read_back = [this, target, once, r, ids]() {
          auto result = std::make_shared<absl::flat_hash_map<uint32_t, v1::Flags>>();
          absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
          if (!ctx.ok()) return (*once)(ctx.status());
          auto fetch = std::make_shared<Command>();
          fetch->want = impl_->WantFor(*ctx->state, r.folder, false);
          fetch->check = CheckValidity(r.uid_validity);
          fetch->start = [result, set = SetOf(r.uids)](Client& c) {
            imap::FetchRequest request;
            request.items = imap::kFetchFlags;
            c.StartUidFetch(set, std::move(request), [result](imap::FetchedMessage m) {
              (*result)[m.uid] = FlagsFromImap(m.flags);
            });
          };
          fetch->done = [this, target, once, result, r, ids](absl::Status s) {
            if (!s.ok()) return (*once)(s);
            v1::UpdateFlagsResponse response;
            for (const std::string& id : ids) {
              absl::StatusOr<MessageRef> ref = DecodeMessageId(r.account, id);
              v1::MessageFlags* m = response.add_messages();
              m->set_id(id);
              auto it = ref.ok() ? result->find(ref->uid) : result->end();
              if (it != result->end()) *m->mutable_flags() = it->second;
            }
            // Watches of this folder hear of our own changes too (STORE was silent).
            absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
            if (ctx.ok() && !ctx->state->watches.empty() && ctx->state->watch_baselined &&
                SameFolder(r.folder, ctx->state->current) &&
                r.uid_validity == ctx->state->watch_validity) {
              for (const auto& [uid, flags] : *result) {
                auto known = ctx->state->watch_known.find(uid);
                if (known == ctx->state->watch_known.end() || FlagsEqual(known->second, flags)) {
                  continue;
                }
                known->second = flags;
                v1::WatchMailboxResponse event =
                    Event(v1::MAILBOX_EVENT_TYPE_FLAGS_CHANGED,
                          impl_->IdOf(*ctx->state, r.folder, r.uid_validity, uid));
                *event.mutable_flags() = flags;
                impl_->SendEvent(ctx->state, std::move(event));
              }
            }
            (*once)(std::move(response));
          };
          impl_->Enqueue(target, std::move(fetch));
        };
        if (skip_store) return read_back();
        absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
        if (!ctx.ok()) return (*once)(ctx.status());
        auto store = std::make_shared<Command>();
        store->want = impl_->WantFor(*ctx->state, r.folder, true);
        store->folder_from_id = true;
        store->check = [uid_validity = r.uid_validity, keywords, mode](Client& c) -> absl::Status {
          MP_RETURN_IF_ERROR(CheckValidity(uid_validity, true)(c));
          if (mode == imap::StoreMode::kRemove) return absl::OkStatus();
          bool any = false;
          for (const std::string& f : c.mailbox().permanent_flags) any = any || f == "\\*";
          if (any) return absl::OkStatus();
          for (const std::string& k : keywords) {
            bool known = false;
            for (const std::string& f : c.mailbox().permanent_flags) {
              known = known || absl::EqualsIgnoreCase(f, k);
            }
            if (!known) {
              return ReasonError(absl::StatusCode::kFailedPrecondition, "KEYWORD_NOT_ALLOWED",
                                 absl::StrCat("flags.keywords: the folder does not accept the new "
                                              "keyword \"",
                                              k, "\" (no \\* in PERMANENTFLAGS)"));
            }
          }
          return absl::OkStatus();
        };
        store->start = [set = SetOf(r.uids), mode, flags](Client& c) {
          c.StartUidStore(set, mode, flags, /*silent=*/true, nullptr);
        };
        store->done = [once, read_back](absl::Status s) mutable {
          if (!s.ok()) return (*once)(s);
          read_back();
        };
        impl_->Enqueue(target, std::move(store));
      });
}

void ImapBackend::AppendMessage(const CallTarget& target, const v1::AppendMessageRequest& request,
                                Reply<v1::AppendMessageResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::AppendMessageResponse>>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  imap::AppendRequest append;
  if (request.has_message()) {
    std::string message_id;
    absl::StatusOr<std::string> built =
        mime::Build(request.message(), request.build_options(), &message_id);
    if (!built.ok()) return (*once)(built.status());
    append.message = std::move(*built);
  } else {
    append.message = ToCrlf(request.source());
  }
  if (append.message.size() > impl_->options_.max_message_bytes) {
    return (*once)(TooLarge(impl_->options_.max_message_bytes));
  }
  append.flags = FlagsToImap(request.flags());
  if (request.has_receive_time()) {
    append.internal_date = absl::FromUnixSeconds(request.receive_time().seconds());
  }
  uint64_t size = append.message.size();
  std::string folder = NormalizeFolder(request.folder());
  std::string account = ctx->state->account;
  auto result = std::make_shared<imap::AppendResult>();
  auto command = std::make_shared<Command>();
  command->unsafe = true;
  command->start = [folder, result, append = std::move(append)](Client& c) mutable {
    // A copy per start: a reconnect may start the command again.
    c.StartAppend(folder, append, [result](imap::AppendResult r) { *result = r; });
  };
  command->done = [once, result, size, folder, account](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    v1::AppendMessageResponse response;
    response.set_size(size);
    if (result->uidvalidity != 0 && result->uid != 0) {
      response.set_id(EncodeMessageId(account, {folder, result->uidvalidity, result->uid}));
    }
    (*once)(std::move(response));
  };
  impl_->Enqueue(target, std::move(command));
}

void ImapBackend::Expunge(const CallTarget& target, const v1::ExpungeRequest& request,
                          Reply<v1::ExpungeResponse> done) {
  auto once = MakeOnce<absl::StatusOr<v1::ExpungeResponse>>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  std::string folder =
      request.folder().empty() ? ctx->state->current : NormalizeFolder(request.folder());
  Impl::Resolved r;
  r.account = ctx->state->account;
  r.folder = folder;
  if (!request.ids().empty()) {
    absl::StatusOr<Impl::Resolved> resolved = impl_->ResolveAll(*ctx->state, request.ids());
    if (!resolved.ok()) return (*once)(resolved.status());
    if (!request.folder().empty() && !SameFolder(resolved->folder, folder)) {
      return (*once)(InvalidField("ids: the IDs name messages of another folder"));
    }
    r = *resolved;
  }
  // Which messages go: those flagged \Deleted (among the given ones).
  auto deleted = std::make_shared<std::vector<uint32_t>>();
  auto validity = std::make_shared<uint32_t>(r.uid_validity);
  auto search = std::make_shared<Command>();
  search->want = impl_->WantFor(*ctx->state, r.folder, true);
  search->folder_from_id = !request.ids().empty();
  search->check = r.uid_validity != 0 ? CheckValidity(r.uid_validity, true) : CheckWritable();
  search->start = [deleted, validity, r](Client& c) {
    *validity = c.mailbox().uidvalidity;
    std::vector<imap::SearchArg> args = {imap::SearchArg::Atom("DELETED")};
    if (!r.uids.empty()) {
      args.push_back(imap::SearchArg::Atom("UID"));
      args.push_back(imap::SearchArg::Set(SetOf(r.uids).ToString()));
    }
    c.StartUidSearch(std::move(args), imap::SearchOptions{},
                     [deleted](imap::SearchResult res) { *deleted = std::move(res.uids); });
  };
  search->done = [this, target, once, deleted, validity, r,
                  only_given = !request.ids().empty()](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    auto reply = [once, deleted, validity, r]() {
      v1::ExpungeResponse response;
      std::sort(deleted->begin(), deleted->end());
      for (uint32_t uid : *deleted) {
        *response.add_expunged_ids() = EncodeMessageId(r.account, {r.folder, *validity, uid});
      }
      (*once)(std::move(response));
    };
    if (deleted->empty()) return reply();
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    auto expunge = std::make_shared<Command>();
    expunge->want = impl_->WantFor(*ctx->state, r.folder, true);
    expunge->check = CheckValidity(*validity, true);
    expunge->start = [only_given, set = SetOf(*deleted)](Client& c) {
      if (only_given) {
        c.StartUidExpunge(set);
      } else {
        c.StartExpunge();
      }
    };
    expunge->done = [once, reply](absl::Status s) mutable {
      if (!s.ok()) return (*once)(NotOfferedToPrecondition(s));
      reply();
    };
    impl_->Enqueue(target, std::move(expunge));
  };
  impl_->Enqueue(target, std::move(search));
}

void ImapBackend::WatchMailbox(const CallTarget& target, const v1::WatchMailboxRequest& request,
                               std::shared_ptr<EventSink> sink, Done done) {
  auto once = MakeOnce<absl::Status>(std::move(done));
  absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
  if (!ctx.ok()) return (*once)(ctx.status());
  State* st = ctx->state;
  if (!request.folder().empty() && !SameFolder(request.folder(), st->current)) {
    return (*once)(ReasonError(absl::StatusCode::kFailedPrecondition, "NOT_CURRENT_FOLDER",
                               "folder: only the current folder can be watched; select it "
                               "first, or use another session"));
  }
  auto watch = std::make_shared<Watch>();
  watch->id = st->next_watch++;
  watch->sink = sink;
  watch->done = once;
  watch->view = request.view();
  if (request.has_poll_interval() && request.poll_interval().seconds() > 0) {
    st->poll_interval = absl::Seconds(request.poll_interval().seconds());
  }
  bool baselined = st->watch_baselined;
  st->watches.push_back(watch);
  sink->OnCancel([this, target, id = watch->id] {
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return;
    State* st = ctx->state;
    for (auto it = st->watches.begin(); it != st->watches.end(); ++it) {
      if ((*it)->id != id) continue;
      std::shared_ptr<Watch> w = *it;
      st->watches.erase(it);
      (*w->done)(absl::OkStatus());
      break;
    }
    if (st->watches.empty()) {
      // Nothing left to hear: leave IDLE (DONE) so the session is plainly usable.
      st->timer.Cancel();
      st->watch_baselined = false;
      st->watch_known.clear();
      st->StopIdle();
    }
  });
  if (baselined) {
    // Already watching: this watch's READY carries the folder's status now.
    impl_->FolderStatus(target, "", [sink](absl::StatusOr<v1::MailboxStatus> status) {
      if (!status.ok()) return;
      v1::WatchMailboxResponse ready = Event(v1::MAILBOX_EVENT_TYPE_READY);
      *ready.mutable_status() = std::move(*status);
      sink->Send(std::move(ready));
    });
    return;
  }
  impl_->MaybeWatch(st, ctx->link);
}

}  // namespace mailpool::mailbox
