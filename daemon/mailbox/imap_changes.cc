// Changing messages (imap_internal.h): flags, deletion, copy and move, append, expunge.
#include "absl/strings/str_split.h"
#include "mailbox/imap_internal.h"

namespace mailpool::mailbox {

namespace {

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

// The Message-ID of a message's header ("<...>" as written), or empty.
std::string HeaderMessageId(absl::string_view message) {
  size_t end = message.find("\r\n\r\n");
  absl::string_view header = message.substr(0, end);
  for (absl::string_view line : absl::StrSplit(header, "\r\n")) {
    if (line.size() > 11 && absl::StartsWithIgnoreCase(line, "Message-ID:")) {
      absl::string_view value = absl::StripAsciiWhitespace(line.substr(11));
      if (value.size() > 2 && value.size() <= 998 && value.front() == '<' && value.back() == '>') {
        return std::string(value);
      }
    }
  }
  return "";
}

}  // namespace

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
                impl_->watcher_.SendEvent(ctx->state, std::move(event));
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
    std::string built_id;
    absl::StatusOr<std::string> built =
        mime::Build(request.message(), request.build_options(), &built_id);
    if (!built.ok()) return (*once)(built.status());
    append.message = std::move(*built);
  } else {
    append.message = ToCrlf(request.source());
  }
  // Finds the new message on a server without UIDPLUS.
  std::string message_id = HeaderMessageId(append.message);
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
  command->done = [impl = impl_.get(), target, once, result, size, folder, account,
                   message_id](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    v1::AppendMessageResponse response;
    response.set_size(size);
    if (result->uidvalidity != 0 && result->uid != 0) {
      response.set_id(EncodeMessageId(account, {folder, result->uidvalidity, result->uid}));
      return (*once)(std::move(response));
    }
    // No APPENDUID (a server without UIDPLUS): the newest message of the folder with this
    // Message-ID is the one appended. Without a Message-ID the answer has no ID, nor when
    // the folder was selected and the server shows new messages only to a new SELECT
    // (imap4d, even after a NOOP).
    absl::StatusOr<Ctx> ctx = impl->Lookup(target);
    if (message_id.empty() || !ctx.ok()) return (*once)(std::move(response));
    struct Found {
      uint32_t uidvalidity = 0;
      uint32_t uid = 0;
    };
    auto found = std::make_shared<Found>();
    auto search = std::make_shared<Command>();
    search->want = impl->WantFor(*ctx->state, folder, false);
    search->start = [found, message_id](Client& c) {
      found->uidvalidity = c.mailbox().uidvalidity;
      c.StartUidSearch({imap::SearchArg::Atom("HEADER"), imap::SearchArg::String("Message-ID"),
                        imap::SearchArg::String(message_id)},
                       imap::SearchOptions{}, [found](imap::SearchResult r) {
                         for (uint32_t uid : r.uids) found->uid = std::max(found->uid, uid);
                       });
    };
    search->done = [once, found, folder, account,
                    response = std::move(response)](absl::Status s) mutable {
      // The message is in the folder whatever the search says: the answer stays OK.
      if (s.ok() && found->uidvalidity != 0 && found->uid != 0) {
        response.set_id(EncodeMessageId(account, {folder, found->uidvalidity, found->uid}));
      }
      (*once)(std::move(response));
    };
    impl->Enqueue(target, std::move(search));
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

}  // namespace mailpool::mailbox
