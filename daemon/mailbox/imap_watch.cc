// WatchMailbox (imap_internal.h): the MailboxWatcher and the call.
#include "mailbox/imap_internal.h"

namespace mailpool::mailbox {
namespace imap_detail {

bool FlagsEqual(const v1::Flags& a, const v1::Flags& b) {
  std::vector<std::string> x = FlagsToImap(a), y = FlagsToImap(b);
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  return x == y && a.recent() == b.recent();
}

v1::WatchMailboxResponse Event(v1::MailboxEventType type, std::string id) {
  v1::WatchMailboxResponse e;
  e.set_type(type);
  e.set_id(std::move(id));
  *e.mutable_time() = ToProtoTime(absl::Now());
  return e;
}

// Every UID of the folder and its flags, with what SELECT said of the folder.
struct MailboxWatcher::Snapshot {
  imap::MailboxState mailbox;
  absl::flat_hash_map<uint32_t, v1::Flags> flags;
};

void MailboxWatcher::SendEvent(State* st, v1::WatchMailboxResponse event) {
  for (const std::shared_ptr<Watch>& w : st->watches) {
    if (w->sink->Cancelled()) continue;
    v1::WatchMailboxResponse copy = event;
    if (w->view == v1::MESSAGE_VIEW_UNSPECIFIED) copy.clear_message();
    w->sink->Send(std::move(copy));
  }
}

void MailboxWatcher::Failed(State* st, const absl::Status& s) {
  st->EndWatches(s);
  st->watch_baselined = false;
  st->watch_known.clear();
}

void MailboxWatcher::OnEvent(State* st, Client& c, const imap::MailboxEvent& e) {
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
                            impl_.IdOf(*st, st->current, st->watch_validity, e.uid)));
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
      v1::WatchMailboxResponse event =
          Event(v1::MAILBOX_EVENT_TYPE_FLAGS_CHANGED,
                impl_.IdOf(*st, st->current, st->watch_validity, e.uid));
      *event.mutable_flags() = std::move(flags);
      SendEvent(st, std::move(event));
      return;
    }
  }
}

void MailboxWatcher::Step(State* st) {
  std::shared_ptr<Command> command;
  if (!st->watch_baselined || st->watch_need_resync) {
    command = Baseline(st);
  } else if (st->watch_need_new) {
    command = FetchNew(st);
  } else if (!st->no_idle) {
    command = Idle(st);
  } else {
    return SchedulePoll(st);
  }
  impl_.Submit(st, st->link, std::move(command));
}

std::shared_ptr<Command> MailboxWatcher::NewTurn(State* st) {
  auto command = std::make_shared<Command>();
  command->want = impl_.WantFor(*st, "", false);
  return command;
}

// Baseline (first turn) or resync: every UID and its flags.
std::shared_ptr<Command> MailboxWatcher::Baseline(State* st) {
  std::shared_ptr<Command> command = NewTurn(st);
  st->watch_need_resync = false;
  auto snap = std::make_shared<Snapshot>();
  command->start = [snap](Client& c) {
    snap->mailbox = c.mailbox();
    imap::FetchRequest request;
    request.items = imap::kFetchFlags;
    c.StartUidFetch(AllUids(), std::move(request), [snap](imap::FetchedMessage m) {
      if (m.uid != 0) snap->flags[m.uid] = FlagsFromImap(m.flags);
    });
  };
  command->done = [this, target = st->target, snap](absl::Status s) {
    absl::StatusOr<Ctx> ctx = impl_.Lookup(target);
    if (!ctx.ok()) return;
    State* st = ctx->state;
    if (!s.ok()) return Failed(st, s);
    OnSnapshot(st, *snap);
  };
  return command;
}

// The first baseline is READY; one of a new incarnation of the folder is RESET; any other
// is a resync.
void MailboxWatcher::OnSnapshot(State* st, Snapshot& snap) {
  uint32_t max_uid = 0;
  uint32_t unread = 0;
  for (const auto& [uid, f] : snap.flags) {
    max_uid = std::max(max_uid, uid);
    if (!f.seen()) ++unread;
  }
  v1::MailboxStatus status = StatusFrom(st->current, imap::MailboxStatus{}, &snap.mailbox);
  status.set_message_count(static_cast<uint32_t>(snap.flags.size()));
  status.set_unread_count(unread);
  bool reset = st->watch_baselined && snap.mailbox.uidvalidity != st->watch_validity;
  if (st->watch_baselined && !reset) return Reconcile(st, snap);
  st->watch_known = std::move(snap.flags);
  st->watch_max_uid = max_uid;
  st->watch_validity = snap.mailbox.uidvalidity;
  v1::WatchMailboxResponse event =
      Event(reset ? v1::MAILBOX_EVENT_TYPE_RESET : v1::MAILBOX_EVENT_TYPE_READY);
  *event.mutable_status() = std::move(status);
  if (!st->watch_baselined) {
    // READY goes to the watches that have not had it (all of them at first).
    st->watch_baselined = true;
  }
  SendEvent(st, std::move(event));
}

// What changed while the watch could not hear it.
void MailboxWatcher::Reconcile(State* st, Snapshot& snap) {
  std::vector<uint32_t> gone;
  for (const auto& [uid, f] : st->watch_known) {
    if (!snap.flags.contains(uid)) gone.push_back(uid);
  }
  std::sort(gone.begin(), gone.end());
  for (uint32_t uid : gone) {
    st->watch_known.erase(uid);
    SendEvent(st, Event(v1::MAILBOX_EVENT_TYPE_EXPUNGED,
                        impl_.IdOf(*st, st->current, st->watch_validity, uid)));
  }
  for (auto& [uid, f] : snap.flags) {
    if (uid > st->watch_max_uid) {
      st->watch_need_new = true;
      continue;
    }
    auto it = st->watch_known.find(uid);
    if (it == st->watch_known.end() || FlagsEqual(it->second, f)) continue;
    it->second = f;
    v1::WatchMailboxResponse event = Event(v1::MAILBOX_EVENT_TYPE_FLAGS_CHANGED,
                                           impl_.IdOf(*st, st->current, st->watch_validity, uid));
    *event.mutable_flags() = f;
    SendEvent(st, std::move(event));
  }
}

// After EXISTS: the messages above the highest UID known, in the largest view any watch
// asked for.
std::shared_ptr<Command> MailboxWatcher::FetchNew(State* st) {
  std::shared_ptr<Command> command = NewTurn(st);
  st->watch_need_new = false;
  v1::MessageView view = v1::MESSAGE_VIEW_BASIC;
  for (const auto& w : st->watches) view = std::max(view, w->view);
  auto buffer = std::make_shared<SectionBuffer>();
  buffer->cap = impl_.options_.max_message_bytes;
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
          fresh->push_back(MessageFrom(EncodeMessageId(account, {folder, validity, m.uid}), folder,
                                       m, view, buffer->Take(m.seq), 0));
        });
  };
  command->done = [this, target = st->target, fresh, from](absl::Status s) {
    absl::StatusOr<Ctx> ctx = impl_.Lookup(target);
    if (!ctx.ok()) return;
    State* st = ctx->state;
    if (GetPayloadText(s, kReasonPayload).value_or("") == "UIDVALIDITY_CHANGED") {
      st->watch_need_resync = true;  // RESET on the next turn
      return;
    }
    if (!s.ok()) return Failed(st, s);
    OnNew(st, *fresh, from);
  };
  return command;
}

void MailboxWatcher::OnNew(State* st, std::vector<v1::EmailMessage>& fresh, uint32_t from) {
  std::sort(fresh.begin(), fresh.end(),
            [](const v1::EmailMessage& a, const v1::EmailMessage& b) { return a.uid() < b.uid(); });
  for (v1::EmailMessage& m : fresh) {
    // "n:*" may answer the last message even when it is older than n.
    if (m.uid() < from || st->watch_known.contains(m.uid())) continue;
    st->watch_known[m.uid()] = m.flags();
    st->watch_max_uid = std::max(st->watch_max_uid, m.uid());
    v1::WatchMailboxResponse event = Event(v1::MAILBOX_EVENT_TYPE_NEW, m.id());
    *event.mutable_message() = std::move(m);
    SendEvent(st, std::move(event));
  }
}

// IDLE until the server reports something, other work queues, or the re-issue timer.
std::shared_ptr<Command> MailboxWatcher::Idle(State* st) {
  std::shared_ptr<Command> command = NewTurn(st);
  command->idle = true;
  absl::Duration reissue = std::min(impl_.options_.idle_reissue, st->silence_timeout * 4 / 5);
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
  command->done = [this, target = st->target](absl::Status s) {
    absl::StatusOr<Ctx> ctx = impl_.Lookup(target);
    if (!ctx.ok()) return;
    ctx->state->timer.Cancel();
    if (s.code() == absl::StatusCode::kUnimplemented) {
      ctx->state->no_idle = true;
    } else if (!s.ok()) {
      Failed(ctx->state, s);
    }
  };
  return command;
}

// No IDLE: a NOOP every poll interval; the events arrive with its answer.
void MailboxWatcher::SchedulePoll(State* st) {
  if (st->timer.armed()) return;
  st->timer.Start(st->poll_interval, [this, target = st->target] {
    auto noop = std::make_shared<Command>();
    absl::StatusOr<Ctx> ctx = impl_.Lookup(target);
    if (!ctx.ok()) return;
    noop->want = impl_.WantFor(*ctx->state, "", false);
    noop->start = [](Client& c) { c.StartNoop(); };
    noop->done = [](absl::Status) {};
    impl_.Enqueue(target, std::move(noop));
  });
}

}  // namespace imap_detail

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
