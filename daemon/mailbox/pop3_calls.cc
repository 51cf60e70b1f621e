// The POP3 backend's MailboxBackend calls (pop3_backend.h) on top of Impl.
#include "mailbox/pop3_internal.h"

namespace mailpool::mailbox {

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
  // mailbox.proto: on POP3 "unread" is "not yet retrieved by this session" (Flags.seen).
  const bool unread_only = request.filter() == v1::MESSAGE_FILTER_UNREAD;
  v1::MessageView view =
      request.view() == v1::MESSAGE_VIEW_UNSPECIFIED ? v1::MESSAGE_VIEW_HEADERS : request.view();
  absl::StatusOr<size_t> page_size = PageSize(request.page_size(), view);
  if (!page_size.ok()) return done(page_size.status());
  bool newest_first = request.order() != v1::MESSAGE_ORDER_OLDEST_FIRST;
  auto once = MakeOnce<absl::StatusOr<v1::ListMessagesResponse>>(std::move(done));
  impl_->EnsureLoaded(target, [this, target, once, view, newest_first, unread_only,
                               size = *page_size, token = request.page_token(),
                               max_attachment = request.max_attachment_bytes()](absl::Status s) {
    if (!s.ok()) return (*once)(s);
    absl::StatusOr<Ctx> ctx = impl_->Lookup(target);
    if (!ctx.ok()) return (*once)(ctx.status());
    State& state = *ctx->state;
    std::vector<std::string> shape = {absl::StrCat(static_cast<int>(view)),
                                      newest_first ? "n" : "o", absl::StrCat(size),
                                      absl::StrCat(max_attachment), unread_only ? "u" : "a"};
    uint32_t after = 0;
    bool has_after = false;
    if (!token.empty()) {
      absl::StatusOr<std::vector<std::string>> parts = DecodeToken(token, 8, "l1");
      if (!parts.ok()) return (*once)(parts.status());
      if (!std::equal(shape.begin(), shape.end(), parts->begin() + 1)) {
        return (*once)(
            InvalidField("page_token: the request's other fields differ from the first page's"));
      }
      if ((*parts)[6] != absl::StrCat(state.generation)) {
        return (*once)(ReasonError(absl::StatusCode::kFailedPrecondition, "STALE_PAGE_TOKEN",
                                   "page_token: the mailbox was refreshed since; list again"));
      }
      if (!absl::SimpleAtoi((*parts)[7], &after)) {
        return (*once)(InvalidField("page_token: not a token from a previous response"));
      }
      has_after = true;
    }
    std::vector<const Message*> visible = impl_->Visible(state, newest_first);
    if (unread_only) {
      std::erase_if(visible, [&](const Message* m) { return state.seen.contains(state.Key(*m)); });
    }
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
