// Folders (imap_internal.h): status, listing, selection of the current folder, create,
// delete and rename.
#include "mailbox/imap_internal.h"

namespace mailpool::mailbox {

namespace {

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

}  // namespace

namespace imap_detail {

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

}  // namespace imap_detail

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

}  // namespace mailpool::mailbox
