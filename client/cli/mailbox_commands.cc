// CLI commands that read and change a mailbox: mailbox, ls, cat, attachment, search, rm,
// refresh, folders, flag, mv, cp, expunge, watch.
//
//   mailpool ls alice --limit 10
//   mailpool flag alice ID --add flagged --read
//   mailpool mv alice ID1 ID2 Archive
//   mailpool watch alice --view headers
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cli.h"
#include "mailpool/v1/mailbox.grpc.pb.h"

namespace mailpool::cli {
namespace {

std::unique_ptr<v1::MailboxService::Stub> Stub(const Env& env) {
  return v1::MailboxService::NewStub(env.channel);
}

v1::MessageView ParseView(const std::string& s, v1::MessageView def) {
  if (s.empty()) return def;
  if (s == "basic") return v1::MESSAGE_VIEW_BASIC;
  if (s == "headers") return v1::MESSAGE_VIEW_HEADERS;
  if (s == "full") return v1::MESSAGE_VIEW_FULL;
  if (s == "raw") return v1::MESSAGE_VIEW_RAW;
  Usage(absl::StrCat("--view: basic, headers, full or raw, not ", s));
}

void PrintStatus(const v1::MailboxStatus& st) {
  if (!st.folder().empty())
    printf("folder:   %s%s\n", st.folder().c_str(), st.read_only() ? " (read-only)" : "");
  printf("messages: %u\n", st.message_count());
  printf("unread:   %u\n", st.unread_count());
  if (st.has_size()) printf("size:     %llu\n", static_cast<unsigned long long>(st.size()));
  if (st.has_snapshot_time()) printf("snapshot: %s\n", FormatTime(st.snapshot_time()).c_str());
  if (st.pending_deletions() > 0) printf("pending deletions: %u\n", st.pending_deletions());
  if (st.uid_validity() != 0) printf("uidvalidity: %u\n", st.uid_validity());
}

std::vector<std::string> MessageRow(const v1::EmailMessage& m) {
  std::string subject = m.subject();
  subject = Ellipsize(subject, 60);
  const auto& when = m.has_date() ? m.date() : m.receive_time();
  return {m.id(), FormatTime(when), Ellipsize(FormatAddress(m.from()), 32),
          std::to_string(m.size()), subject};
}

void PrintMessage(const v1::EmailMessage& m) {
  printf("ID:      %s\n", m.id().c_str());
  printf("From:    %s\n", FormatAddress(m.from()).c_str());
  std::vector<std::string> to;
  for (const auto& a : m.to()) to.push_back(FormatAddress(a));
  printf("To:      %s\n", absl::StrJoin(to, ", ").c_str());
  if (m.cc_size() > 0) {
    std::vector<std::string> cc;
    for (const auto& a : m.cc()) cc.push_back(FormatAddress(a));
    printf("Cc:      %s\n", absl::StrJoin(cc, ", ").c_str());
  }
  printf("Subject: %s\n", m.subject().c_str());
  printf("Date:    %s\n", FormatTime(m.date()).c_str());
  if (m.has_flags()) printf("Flags:   %s\n", FormatFlags(m.flags()).c_str());
  for (const auto& a : m.attachments()) {
    printf("Attach:  %s %s (%s, %llu bytes)\n", a.part_id().c_str(), a.file_name().c_str(),
           a.content_type().c_str(), static_cast<unsigned long long>(a.size()));
  }
  if (!m.text_body().empty()) printf("\n%s\n", m.text_body().c_str());
}

int Mailbox(const Env& env, const Args& args) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 120);
  v1::GetMailboxStatusRequest request;
  request.set_session(Positional(args, 0, "session ID or name"));
  request.set_folder(args.Get("folder"));
  v1::GetMailboxStatusResponse response;
  grpc::Status status = Stub(env)->GetMailboxStatus(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(response.status());
  } else {
    PrintStatus(response.status());
  }
  return kExitOk;
}

// --FLAG YYYY-MM-DD as Unix seconds, local midnight.
int64_t ParseDate(const Args& args, const char* flag) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%Y-%m-%d", args.Get(flag), absl::LocalTimeZone(), &t, &err)) {
    Usage(absl::StrCat("--", flag, ": a date like 2024-12-31"));
  }
  return absl::ToUnixSeconds(t);
}

// ls and search: at most --limit messages, over as many pages as that takes.
int ListOrSearch(const Env& env, const Args& args, bool search) {
  const std::string& session = Positional(args, 0, "session ID or name");
  int limit = args.Has("limit") ? ParseInt(args.Get("limit"), "limit", 1, 1000000) : 50;
  v1::MessageView view = ParseView(args.Get("view"), v1::MESSAGE_VIEW_HEADERS);
  v1::MessageOrder order =
      args.Has("oldest-first") ? v1::MESSAGE_ORDER_OLDEST_FIRST : v1::MESSAGE_ORDER_NEWEST_FIRST;
  int page_size =
      std::min(limit, view == v1::MESSAGE_VIEW_FULL || view == v1::MESSAGE_VIEW_RAW ? 100 : 1000);
  auto stub = Stub(env);
  v1::ListMessagesResponse out;
  std::string token;
  do {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 600);
    grpc::Status status;
    if (!search) {
      v1::ListMessagesRequest request;
      request.set_session(session);
      request.set_folder(args.Get("folder"));
      request.set_view(view);
      request.set_order(order);
      request.set_filter(args.Has("unread") ? v1::MESSAGE_FILTER_UNREAD : v1::MESSAGE_FILTER_ALL);
      request.set_page_size(page_size);
      request.set_page_token(token);
      v1::ListMessagesResponse page;
      status = stub->ListMessages(&ctx, request, &page);
      for (auto& m : *page.mutable_messages()) *out.add_messages() = std::move(m);
      out.set_total_count(page.total_count());
      token = page.next_page_token();
    } else {
      v1::SearchMessagesRequest request;
      request.set_session(session);
      request.set_folder(args.Get("folder"));
      request.set_view(view);
      request.set_order(order);
      request.set_page_size(page_size);
      request.set_page_token(token);
      auto* c = request.mutable_criteria();
      c->set_subject(args.Get("subject"));
      c->set_from(args.Get("from"));
      c->set_to(args.Get("to"));
      c->set_body(args.Get("body"));
      c->set_text(args.Get("text"));
      c->set_message_id(args.Get("message-id"));
      c->set_unread(args.Has("unread"));
      if (args.Has("flagged")) c->mutable_flags_set()->set_flagged(true);
      if (args.Has("larger")) c->set_larger(ParseInt(args.Get("larger"), "larger", 0, INT32_MAX));
      if (args.Has("smaller")) {
        c->set_smaller(ParseInt(args.Get("smaller"), "smaller", 0, INT32_MAX));
      }
      if (args.Has("since")) c->mutable_since()->set_seconds(ParseDate(args, "since"));
      if (args.Has("before")) c->mutable_before()->set_seconds(ParseDate(args, "before"));
      v1::SearchMessagesResponse page;
      status = stub->SearchMessages(&ctx, request, &page);
      for (auto& m : *page.mutable_messages()) *out.add_messages() = std::move(m);
      out.set_total_count(page.total_count());
      token = page.next_page_token();
    }
    if (!status.ok()) return Fail(env, status, ctx);
  } while (!token.empty() && out.messages_size() < limit);
  while (out.messages_size() > limit) out.mutable_messages()->RemoveLast();
  if (env.json) {
    PrintJson(out);
    return kExitOk;
  }
  Table t({"ID", "DATE", "FROM", "SIZE", "SUBJECT"});
  for (const auto& m : out.messages()) t.Add(MessageRow(m));
  t.Print();
  return kExitOk;
}

int Ls(const Env& env, const Args& args) { return ListOrSearch(env, args, false); }
int Search(const Env& env, const Args& args) { return ListOrSearch(env, args, true); }

int Cat(const Env& env, const Args& args) {
  const std::string& session = Positional(args, 0, "session ID or name");
  const std::string& id = Positional(args, 1, "message ID");
  auto stub = Stub(env);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 600);
  if (args.Has("raw") && !env.json) {
    v1::StreamMessageRequest request;
    request.set_session(session);
    request.set_id(id);
    request.set_mark_seen(args.Has("mark-seen"));
    auto reader = stub->StreamMessage(&ctx, request);
    v1::StreamMessageResponse chunk;
    while (reader->Read(&chunk)) fwrite(chunk.data().data(), 1, chunk.data().size(), stdout);
    grpc::Status status = reader->Finish();
    if (!status.ok()) return Fail(env, status, ctx);
    return kExitOk;
  }
  v1::GetMessageRequest request;
  request.set_session(session);
  request.set_id(id);
  request.set_view(args.Has("headers") ? v1::MESSAGE_VIEW_HEADERS
                   : args.Has("raw")   ? v1::MESSAGE_VIEW_RAW
                                       : v1::MESSAGE_VIEW_FULL);
  request.set_mark_seen(args.Has("mark-seen"));
  v1::GetMessageResponse response;
  grpc::Status status = stub->GetMessage(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(response.message());
  } else {
    PrintMessage(response.message());
  }
  return kExitOk;
}

int Attachment(const Env& env, const Args& args) {
  v1::GetAttachmentRequest request;
  request.set_session(Positional(args, 0, "session ID or name"));
  request.set_id(Positional(args, 1, "message ID"));
  if (args.Has("cid")) {
    request.set_content_id(args.Get("cid"));
  } else {
    request.set_part_id(Positional(args, 2, "part ID (e.g. 2, see cat) or --cid"));
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 600);
  auto reader = Stub(env)->GetAttachment(&ctx, request);
  v1::GetAttachmentResponse chunk;
  v1::Attachment whole;  // --json: metadata and content (base64 in JSON)
  while (reader->Read(&chunk)) {
    if (chunk.has_attachment()) whole.MergeFrom(chunk.attachment());
    if (env.json) {
      whole.mutable_content()->append(chunk.data());
    } else {
      fwrite(chunk.data().data(), 1, chunk.data().size(), stdout);
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) PrintJson(whole);
  return kExitOk;
}

int Rm(const Env& env, const Args& args) {
  v1::DeleteMessagesRequest request;
  request.set_session(Positional(args, 0, "session ID or name"));
  Positional(args, 1, "message IDs");
  for (size_t i = 1; i < args.positional.size(); ++i) request.add_ids(args.positional[i]);
  std::string mode = args.Get("mode");
  if (mode == "expunge") {
    request.set_mode(v1::DELETE_MODE_EXPUNGE);
  } else if (mode == "flag") {
    request.set_mode(v1::DELETE_MODE_FLAG_ONLY);
  } else if (mode == "trash") {
    request.set_mode(v1::DELETE_MODE_MOVE_TO_TRASH);
  } else if (!mode.empty()) {
    Usage("--mode: expunge, flag or trash");
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 600);
  v1::DeleteMessagesResponse response;
  grpc::Status status = Stub(env)->DeleteMessages(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(response);
  } else {
    printf("deleted %u%s\n", response.deleted_count(),
           response.pending_until_quit() ? " (POP3: committed at close or refresh)" : "");
  }
  return kExitOk;
}

int Refresh(const Env& env, const Args& args) {
  v1::RefreshRequest request;
  request.set_session(Positional(args, 0, "session ID or name"));
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 120);
  v1::RefreshResponse response;
  grpc::Status status = Stub(env)->Refresh(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(response);
  } else {
    printf("refreshed: %u messages, %u deletions committed\n", response.status().message_count(),
           response.committed_deletions());
  }
  return kExitOk;
}

v1::FolderRole ParseRole(const std::string& s) {
  v1::FolderRole role;
  if (s.empty()) return v1::FOLDER_ROLE_UNSPECIFIED;
  if (!v1::FolderRole_Parse("FOLDER_ROLE_" + absl::AsciiStrToUpper(s), &role)) {
    Usage("--role: archive, drafts, junk, sent, trash, all, flagged or important");
  }
  return role;
}

void PrintFolders(const google::protobuf::RepeatedPtrField<v1::Folder>& folders) {
  Table t({"FOLDER", "ROLE", "SUBSCRIBED", "MESSAGES", "UNREAD", "ATTRIBUTES"});
  for (const auto& f : folders) {
    std::string role = f.role() == v1::FOLDER_ROLE_UNSPECIFIED
                           ? "-"
                           : ShortName(v1::FolderRole_Name(f.role()), "FOLDER_ROLE_");
    bool counted = f.has_status();
    t.Add({f.name(), role, f.subscribed() ? "yes" : "no",
           counted ? std::to_string(f.status().message_count()) : "",
           counted ? std::to_string(f.status().unread_count()) : "",
           absl::StrJoin(f.attributes(), " ")});
  }
  t.Print();
}

// folders SESSION [list|create|delete|rename|select] ...
int Folders(const Env& env, const Args& args) {
  const std::string& session = Positional(args, 0, "session ID or name");
  std::string action = args.positional.size() > 1 ? args.positional[1] : "list";
  auto stub = Stub(env);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 300);
  grpc::Status status;
  if (action == "list") {
    if (args.positional.size() > 2) Usage("folders list takes no more arguments");
    v1::ListFoldersRequest request;
    request.set_session(session);
    request.set_pattern(args.Get("pattern"));
    request.set_subscribed_only(args.Has("subscribed"));
    request.set_include_status(args.Has("status"));
    v1::ListFoldersResponse response;
    status = stub->ListFolders(&ctx, request, &response);
    if (!status.ok()) return Fail(env, status, ctx);
    if (env.json) {
      PrintJson(response);
    } else {
      PrintFolders(response.folders());
    }
    return kExitOk;
  }
  const std::string& folder = Positional(args, 2, "folder name");
  if (action == "create") {
    v1::CreateFolderRequest request;
    request.set_session(session);
    request.set_folder(folder);
    request.set_subscribe(args.Has("subscribe"));
    request.set_role(ParseRole(args.Get("role")));
    v1::CreateFolderResponse response;
    status = stub->CreateFolder(&ctx, request, &response);
    if (!status.ok()) return Fail(env, status, ctx);
    Output(env, response, [&] { printf("created %s\n", response.folder().name().c_str()); });
  } else if (action == "delete") {
    v1::DeleteFolderRequest request;
    request.set_session(session);
    request.set_folder(folder);
    v1::DeleteFolderResponse response;
    status = stub->DeleteFolder(&ctx, request, &response);
    if (!status.ok()) return Fail(env, status, ctx);
    Output(env, response, [&] { printf("deleted %s\n", folder.c_str()); });
  } else if (action == "rename") {
    v1::RenameFolderRequest request;
    request.set_session(session);
    request.set_folder(folder);
    request.set_new_name(Positional(args, 3, "new folder name"));
    v1::RenameFolderResponse response;
    status = stub->RenameFolder(&ctx, request, &response);
    if (!status.ok()) return Fail(env, status, ctx);
    Output(env, response,
           [&] { printf("renamed %s to %s\n", folder.c_str(), response.folder().name().c_str()); });
  } else if (action == "select") {
    v1::SelectFolderRequest request;
    request.set_session(session);
    request.set_folder(folder);
    request.set_read_only(args.Has("read-only"));
    v1::SelectFolderResponse response;
    status = stub->SelectFolder(&ctx, request, &response);
    if (!status.ok()) return Fail(env, status, ctx);
    Output(env, response, [&] { PrintStatus(response.status()); });
  } else {
    Usage(absl::StrCat("unknown folders action: ", action,
                       " (list, create, delete, rename, select)"));
  }
  return kExitOk;
}

void PrintFlagged(const Env& env, const v1::UpdateFlagsResponse& response) {
  if (env.json) return PrintJson(response);
  Table t({"ID", "FLAGS"});
  for (const auto& m : response.messages()) t.Add({m.id(), FormatFlags(m.flags())});
  t.Print();
}

// flag SESSION ID... [--add L] [--remove L] [--set L] [--read] [--unread]
int Flag(const Env& env, const Args& args) {
  const std::string& session = Positional(args, 0, "session ID or name");
  Positional(args, 1, "message IDs");
  std::vector<std::string> ids(args.positional.begin() + 1, args.positional.end());
  v1::Flags add, remove;
  for (const auto& l : args.All("add")) MergeFlags(ParseFlags(l, "add"), &add);
  for (const auto& l : args.All("remove")) MergeFlags(ParseFlags(l, "remove"), &remove);
  if (args.Has("read")) add.set_seen(true);
  if (args.Has("unread")) remove.set_seen(true);
  bool has_add = add.ByteSizeLong() > 0, has_remove = remove.ByteSizeLong() > 0;
  if (args.Has("set") && (has_add || has_remove)) {
    Usage("--set replaces every flag: not with --add, --remove, --read or --unread");
  }
  if (!args.Has("set") && !has_add && !has_remove) {
    Usage("flag needs --add, --remove, --set, --read or --unread");
  }
  if (add.seen() && remove.seen()) Usage("--read and --unread together");
  std::vector<std::pair<v1::FlagOperation, v1::Flags>> ops;
  if (args.Has("set")) {
    ops.emplace_back(v1::FLAG_OPERATION_REPLACE, ParseFlags(args.Get("set"), "set"));
  }
  if (has_add) ops.emplace_back(v1::FLAG_OPERATION_ADD, add);
  if (has_remove) ops.emplace_back(v1::FLAG_OPERATION_REMOVE, remove);
  auto stub = Stub(env);
  v1::UpdateFlagsResponse response;
  for (const auto& [op, flags] : ops) {
    v1::UpdateFlagsRequest request;
    request.set_session(session);
    for (const auto& id : ids) request.add_ids(id);
    request.set_operation(op);
    *request.mutable_flags() = flags;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 300);
    grpc::Status status = stub->UpdateFlags(&ctx, request, &response);
    if (!status.ok()) return Fail(env, status, ctx);
  }
  PrintFlagged(env, response);
  return kExitOk;
}

// mv/cp SESSION ID... FOLDER
int MoveOrCopy(const Env& env, const Args& args, bool move) {
  const std::string& session = Positional(args, 0, "session ID or name");
  Positional(args, 2, "message IDs and a destination folder");
  const std::string& dest = args.positional.back();
  auto stub = Stub(env);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 600);
  grpc::Status status;
  google::protobuf::RepeatedPtrField<v1::MessageIdMapping> mappings;
  if (move) {
    v1::MoveMessagesRequest request;
    request.set_session(session);
    for (size_t i = 1; i + 1 < args.positional.size(); ++i) request.add_ids(args.positional[i]);
    request.set_destination_folder(dest);
    v1::MoveMessagesResponse response;
    status = stub->MoveMessages(&ctx, request, &response);
    if (status.ok() && env.json) PrintJson(response);
    mappings = response.moves();
  } else {
    v1::CopyMessagesRequest request;
    request.set_session(session);
    for (size_t i = 1; i + 1 < args.positional.size(); ++i) request.add_ids(args.positional[i]);
    request.set_destination_folder(dest);
    v1::CopyMessagesResponse response;
    status = stub->CopyMessages(&ctx, request, &response);
    if (status.ok() && env.json) PrintJson(response);
    mappings = response.copies();
  }
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) return kExitOk;
  Table t({"ID", absl::StrCat("NEW ID (", dest, ")")});
  for (const auto& m : mappings) t.Add({m.source_id(), m.new_id().empty() ? "?" : m.new_id()});
  t.Print();
  return kExitOk;
}

int Mv(const Env& env, const Args& args) { return MoveOrCopy(env, args, true); }
int Cp(const Env& env, const Args& args) { return MoveOrCopy(env, args, false); }

int Expunge(const Env& env, const Args& args) {
  v1::ExpungeRequest request;
  request.set_session(Positional(args, 0, "session ID or name"));
  request.set_folder(args.Get("folder"));
  for (size_t i = 1; i < args.positional.size(); ++i) request.add_ids(args.positional[i]);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 300);
  v1::ExpungeResponse response;
  grpc::Status status = Stub(env)->Expunge(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(response);
  } else {
    printf("expunged %d\n", response.expunged_ids_size());
    for (const auto& id : response.expunged_ids()) printf("  %s\n", id.c_str());
  }
  return kExitOk;
}

// Streams mailbox events until Ctrl-C, --count events or --for elapses.
int Watch(const Env& env, const Args& args) {
  v1::WatchMailboxRequest request;
  request.set_session(Positional(args, 0, "session ID or name"));
  request.set_folder(args.Get("folder"));
  request.set_view(ParseView(args.Get("view"), v1::MESSAGE_VIEW_UNSPECIFIED));
  if (args.Has("poll")) SetDuration(args.Get("poll"), "poll", request.mutable_poll_interval());
  int count = args.Has("count") ? ParseInt(args.Get("count"), "count", 1, INT32_MAX) : 0;
  grpc::ClientContext ctx;
  if (args.Has("for")) {
    google::protobuf::Duration d;
    SetDuration(args.Get("for"), "for", &d);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(d.seconds()) +
                     std::chrono::nanoseconds(d.nanos()));
  }
  CancelOnSignal cancel(&ctx);
  auto reader = Stub(env)->WatchMailbox(&ctx, request);
  v1::WatchMailboxResponse event;
  int seen = 0;
  while (reader->Read(&event)) {
    if (env.json) {
      PrintJson(event, /*compact=*/true);
    } else {
      std::string what = ShortName(v1::MailboxEventType_Name(event.type()), "MAILBOX_EVENT_TYPE_");
      std::string detail;
      if (event.has_status()) {
        detail = absl::StrCat(event.status().folder(), ": ", event.status().message_count(),
                              " messages");
      } else if (event.has_flags()) {
        detail = FormatFlags(event.flags());
      } else if (event.has_message()) {
        detail =
            absl::StrCat(FormatAddress(event.message().from()), "  ", event.message().subject());
      }
      printf("%s  %-13s %s  %s\n", FormatTime(event.time()).c_str(), what.c_str(),
             event.id().c_str(), detail.c_str());
      fflush(stdout);
    }
    if (count > 0 && ++seen >= count) ctx.TryCancel();
  }
  grpc::Status status = reader->Finish();
  if (count > 0 && seen >= count) return kExitOk;
  if (EndedOnPurpose(status, cancel.signalled())) return kExitOk;
  return Fail(env, status, ctx);
}

constexpr char kLsUsage[] = R"(Usage: mailpool ls SESSION [options]

Lists messages, newest first.
  --folder F        another folder than the session's current one (IMAP)
  --limit N         at most N messages (default 50; pages through the daemon as needed)
  --oldest-first    oldest first
  --unread          only unread messages
  --view V          basic, headers (default), full or raw (what --json carries)
)";

constexpr char kSearchUsage[] = R"(Usage: mailpool search SESSION [criteria] [options]

Finds messages; every given criterion must match (case-insensitive substrings).
  --subject S --from S --to S --body S --text S --message-id ID
  --unread          only unread      --flagged   only flagged (IMAP)
  --since DATE --before DATE         received on/after, before (YYYY-MM-DD)
  --larger N --smaller N             size in bytes
Options: --folder F, --limit N, --oldest-first, --view V (as for ls).
)";

constexpr char kFoldersUsage[] =
    R"(Usage: mailpool folders SESSION [list] [--pattern P] [--subscribed] [--status]
       mailpool folders SESSION create NAME [--subscribe] [--role ROLE]
       mailpool folders SESSION delete NAME
       mailpool folders SESSION rename NAME NEW-NAME
       mailpool folders SESSION select NAME [--read-only]

IMAP folders. list: every folder (--pattern: IMAP LIST pattern, '*' and '%'), with
message counts when --status. create --role: archive, drafts, junk, sent, trash.
select: makes NAME the session's current folder (--read-only: EXAMINE).
)";

constexpr char kFlagUsage[] =
    R"(Usage: mailpool flag SESSION ID... [--add FLAGS] [--remove FLAGS] [--read] [--unread]
       mailpool flag SESSION ID... --set FLAGS

Changes IMAP flags and prints each message's flags afterwards. FLAGS is a comma list of
seen, answered, flagged, deleted, draft and keywords ($Forwarded, Work); "" with --set
clears them all. --read/--unread add/remove seen. --add and --remove may be repeated.
)";

}  // namespace

std::vector<Command> MailboxCommands() {
  return {
      {"mailbox",
       "message count, unread, size of a folder",
       "Usage: mailpool mailbox SESSION [--folder F]\n\nCounts and size of the current folder "
       "(or --folder).\n",
       {"folder="},
       Mailbox},
      {"ls",
       "list messages",
       kLsUsage,
       {"folder=", "limit=", "oldest-first", "unread", "view="},
       Ls},
      {"cat",
       "show one message",
       R"(Usage: mailpool cat SESSION ID [--raw|--headers] [--mark-seen]

Shows one message: headers, attachments (with their part IDs) and the text body.
  --raw        the RFC 5322 source, streamed (with --json: the RAW view)
  --headers    headers only
  --mark-seen  IMAP: set \Seen (reading does not change flags otherwise)
)",
       {"raw", "headers", "mark-seen"},
       Cat},
      {"attachment",
       "write one attachment to stdout",
       "Usage: mailpool attachment SESSION ID PART\n       mailpool attachment SESSION ID "
       "--cid CONTENT-ID\n\nWrites the decoded part (PART from `cat`) to stdout, streamed. "
       "With --json: its\nmetadata and content (base64).\n",
       {"cid="},
       Attachment},
      {"search",
       "find messages",
       kSearchUsage,
       {"folder=", "limit=", "oldest-first", "view=", "subject=", "from=", "to=", "body=", "text=",
        "message-id=", "unread", "flagged", "since=", "before=", "larger=", "smaller="},
       Search},
      {"rm",
       "delete messages",
       R"(Usage: mailpool rm SESSION ID... [--mode expunge|flag|trash]

Deletes messages. POP3: committed at close or refresh. IMAP --mode: expunge (default:
flag \Deleted and expunge exactly these), flag (only flag \Deleted), trash (move to Trash).
)",
       {"mode="},
       Rm},
      {"refresh",
       "bring the session's view up to date",
       "Usage: mailpool refresh SESSION\n\nPOP3: QUIT (commits deletions) and log in again, so "
       "new mail shows. IMAP: NOOP.\n",
       {},
       Refresh},
      {"folders",
       "list, create, delete, rename, select folders (IMAP)",
       kFoldersUsage,
       {"pattern=", "subscribed", "status", "subscribe", "role=", "read-only"},
       Folders},
      {"flag",
       "add, remove or set flags; mark read/unread (IMAP)",
       kFlagUsage,
       {"add=", "remove=", "set=", "read", "unread"},
       Flag},
      {"mv",
       "move messages to a folder (IMAP)",
       "Usage: mailpool mv SESSION ID... FOLDER\n\nMoves messages and prints their new IDs.\n",
       {},
       Mv},
      {"cp",
       "copy messages to a folder (IMAP)",
       "Usage: mailpool cp SESSION ID... FOLDER\n\nCopies messages and prints the copies' "
       "IDs.\n",
       {},
       Cp},
      {"expunge",
       "remove messages flagged deleted (IMAP)",
       "Usage: mailpool expunge SESSION [ID...] [--folder F]\n\nRemoves the messages flagged "
       "\\Deleted (only the given ones, if any).\n",
       {"folder="},
       Expunge},
      {"watch",
       "stream mailbox events until Ctrl-C (IMAP)",
       R"(Usage: mailpool watch SESSION [--view basic|headers] [--poll DUR] [--count N] [--for DUR]

Prints new, expunged and re-flagged messages of the current folder as they happen
(IMAP IDLE, or NOOP every --poll). The first event is "ready". Stops on Ctrl-C (exit 0),
after --count events, or when --for elapses. --json: one JSON object per line.
)",
       {"folder=", "view=", "poll=", "count=", "for="},
       Watch},
  };
}

}  // namespace mailpool::cli
