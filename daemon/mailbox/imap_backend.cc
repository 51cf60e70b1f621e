// The IMAP backend's turns on the session's link (imap_internal.h): per-session state,
// SELECT before a command, the checks, NOOP sync, and message IDs resolved and verified.
#include "mailbox/imap_internal.h"

namespace mailpool::mailbox {

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
  watcher_.Step(st);
}

void ImapBackend::Impl::Hook(State* st, Client& c) {
  // Set on every turn: after a reconnect the link has a new client.
  c.SetEventCallback(
      [this, st, client = &c](const imap::MailboxEvent& e) { watcher_.OnEvent(st, *client, e); });
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

ImapBackend::ImapBackend(net::EventLoop& loop, pool::Pool& pool, ImapBackendOptions options)
    : impl_(std::make_unique<Impl>(loop, pool, options)) {}
ImapBackend::~ImapBackend() = default;

}  // namespace mailpool::mailbox
