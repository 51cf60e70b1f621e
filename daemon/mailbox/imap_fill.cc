// Reading messages (imap_internal.h): a view from FETCH and BODYSTRUCTURE, ListMessages,
// GetMessage, SearchMessages, StreamMessage in windows, GetAttachment.
#include "mailbox/imap_internal.h"

namespace mailpool::mailbox {

namespace {

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

}  // namespace

namespace imap_detail {

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
        // BODYSTRUCTURE's file names, types and IDs are server bytes too.
        for (v1::Attachment& a : *out.mutable_attachments()) SanitizeUtf8(&a);
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

}  // namespace imap_detail

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

}  // namespace mailpool::mailbox
