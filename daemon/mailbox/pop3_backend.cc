// The POP3 backend's snapshot, turns on the link, retrieval, fill and search.
#include "mailbox/pop3_internal.h"

namespace mailpool::mailbox {

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

}  // namespace mailpool::mailbox
