// CLI commands for sending and messages: send, outbox, status, check-address, build, parse.
//
//   mailpool send alice-smtp --from alice@example.org --to bob@example.org --subject Hi
//       --text "Hello Bob" --attach report.pdf     (one line)
//   mailpool send alice-smtp message.eml
//   mailpool status --watch SEND_ID
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli.h"
#include "mailpool/v1/message.grpc.pb.h"
#include "mailpool/v1/send.grpc.pb.h"

namespace mailpool::cli {
namespace {

std::string Short(v1::SendState s) { return ShortName(v1::SendState_Name(s), "SEND_STATE_"); }

bool Final(v1::SendState s) {
  return s == v1::SEND_STATE_SENT || s == v1::SEND_STATE_ERROR || s == v1::SEND_STATE_CANCELLED;
}

// The structured message from --from, --to, ... (shared by send and build).
v1::EmailMessage MessageFromFlags(const Args& args) {
  v1::EmailMessage m;
  if (!args.Has("from")) Usage("needs --from (or a message file)");
  *m.mutable_from() = ParseAddress(args.Get("from"));
  for (const auto& a : args.All("to")) *m.add_to() = ParseAddress(a);
  for (const auto& a : args.All("cc")) *m.add_cc() = ParseAddress(a);
  for (const auto& a : args.All("bcc")) *m.add_bcc() = ParseAddress(a);
  for (const auto& a : args.All("reply-to")) *m.add_reply_to() = ParseAddress(a);
  m.set_subject(args.Get("subject"));
  if (args.Has("text") && args.Has("text-file")) Usage("--text or --text-file, not both");
  if (args.Has("html") && args.Has("html-file")) Usage("--html or --html-file, not both");
  m.set_text_body(args.Has("text-file") ? ReadFile(args.Get("text-file")) : args.Get("text"));
  m.set_html_body(args.Has("html-file") ? ReadFile(args.Get("html-file")) : args.Get("html"));
  for (const auto& path : args.All("attach")) {
    auto* a = m.add_attachments();
    a->set_file_name(BaseName(path));  // content type: guessed by the daemon from the name
    a->set_content(ReadFile(path));
  }
  for (const auto& h : args.All("header")) {
    std::pair<std::string, std::string> kv = absl::StrSplit(h, absl::MaxSplits(':', 1));
    if (kv.first.empty() || h.find(':') == std::string::npos) {
      Usage(absl::StrCat("--header: \"Name: value\", not ", h));
    }
    auto* header = m.add_headers();
    header->set_name(std::string(absl::StripAsciiWhitespace(kv.first)));
    header->set_value(std::string(absl::StripAsciiWhitespace(kv.second)));
  }
  if (args.Has("priority")) {
    std::string p = args.Get("priority");
    if (p == "high") {
      m.set_priority(v1::PRIORITY_HIGH);
    } else if (p == "normal") {
      m.set_priority(v1::PRIORITY_NORMAL);
    } else if (p == "low") {
      m.set_priority(v1::PRIORITY_LOW);
    } else {
      Usage("--priority: high, normal or low");
    }
  }
  m.set_delivery_receipt(args.Has("delivery-receipt"));
  m.set_read_receipt(args.Has("read-receipt"));
  return m;
}

void PrintRecipients(const google::protobuf::RepeatedPtrField<v1::RecipientResult>& rcpts) {
  Table t({"RECIPIENT", "RESULT", "CODE", "SERVER REPLY"});
  for (const auto& r : rcpts) {
    t.Add({r.address(), r.accepted() ? "accepted" : "REFUSED",
           r.reply_code() == 0 ? "-" : std::to_string(r.reply_code()), r.server_reply()});
  }
  t.Print();
}

// send SESSION [FILE] [message flags]
int Send(const Env& env, const Args& args) {
  v1::SendMessageRequest request;
  request.set_session(Positional(args, 0, "session ID or name"));
  if (args.positional.size() > 2) Usage("send takes one message file");
  if (args.positional.size() == 2) {
    for (const char* f : {"from", "to", "cc", "bcc", "subject", "text", "html", "attach"}) {
      if (args.Has(f)) Usage(absl::StrCat("--", f, " builds a message: not with a message file"));
    }
    request.set_source(ReadFile(args.positional[1]));
  } else {
    *request.mutable_message() = MessageFromFlags(args);
    if (request.message().to_size() + request.message().cc_size() + request.message().bcc_size() ==
            0 &&
        !args.Has("rcpt")) {
      Usage("send needs a recipient (--to, --cc, --bcc or --rcpt)");
    }
  }
  if (args.Has("envelope-from") || args.Has("rcpt") || args.Has("dsn")) {
    auto* e = request.mutable_envelope();
    e->set_mail_from(args.Get("envelope-from"));
    for (const auto& r : args.All("rcpt")) e->add_rcpt_to(r);
    e->set_request_dsn(args.Has("dsn"));
  }
  request.set_idempotency_key(args.Get("idempotency-key"));
  request.set_require_all_recipients(args.Has("require-all"));
  auto stub = v1::SendService::NewStub(env.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 600);
  v1::SendMessageResponse response;
  grpc::Status status = stub->SendMessage(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  bool refused = false;
  for (const auto& r : response.recipients()) refused |= !r.accepted();
  if (env.json) {
    PrintJson(response);
  } else if (response.state() == v1::SEND_STATE_QUEUED) {
    printf("QUEUED %s\n", response.send_id().c_str());
    printf("message-id: %s\n", response.message_id().c_str());
  } else {
    printf("%s  %s  (%s)\n", absl::AsciiStrToUpper(Short(response.state())).c_str(),
           response.server_reply().c_str(), FormatBytes(response.size()).c_str());
    printf("message-id: %s\n", response.message_id().c_str());
    PrintRecipients(response.recipients());
  }
  return refused ? kExitNegative : kExitOk;
}

void PrintSends(const google::protobuf::RepeatedPtrField<v1::SendStatus>& sends) {
  Table t({"SEND ID", "STATE", "TRIES", "UPDATED", "SUBJECT", "DETAIL"});
  for (const auto& s : sends) {
    t.Add({s.send_id(), Short(s.state()), std::to_string(s.attempts()), FormatTime(s.update_time()),
           s.subject(), s.detail()});
  }
  t.Print();
}

void PrintSend(const v1::SendStatus& s) {
  printf("send id:    %s\n", s.send_id().c_str());
  printf("state:      %s\n", Short(s.state()).c_str());
  printf("session:    %s\n", s.session_id().c_str());
  printf("subject:    %s\n", s.subject().c_str());
  printf("message-id: %s\n", s.message_id().c_str());
  printf("attempts:   %u\n", s.attempts());
  printf("queued:     %s\n", FormatTime(s.create_time()).c_str());
  printf("updated:    %s\n", FormatTime(s.update_time()).c_str());
  if (s.has_next_attempt_time()) {
    printf("next try:   %s\n", FormatTime(s.next_attempt_time()).c_str());
  }
  if (!s.detail().empty()) printf("detail:     %s\n", s.detail().c_str());
  if (!s.server_reply().empty()) printf("reply:      %s\n", s.server_reply().c_str());
  if (s.possibly_sent_before_crash()) {
    printf("WARNING:    the daemon stopped mid-send: it may have been delivered\n");
  }
  if (s.recipients_size() > 0) PrintRecipients(s.recipients());
}

v1::SendState ParseState(const std::string& s) {
  v1::SendState state;
  if (!v1::SendState_Parse("SEND_STATE_" + absl::AsciiStrToUpper(s), &state) ||
      state == v1::SEND_STATE_UNSPECIFIED) {
    Usage("--state: queued, pending, sent, error or cancelled");
  }
  return state;
}

// outbox [--session S] [--state STATES]    |    outbox cancel SEND_ID [--session S]
int Outbox(const Env& env, const Args& args) {
  auto stub = v1::SendService::NewStub(env.channel);
  if (!args.positional.empty()) {
    if (args.positional[0] != "cancel") {
      Usage(absl::StrCat("unknown outbox action: ", args.positional[0], " (cancel)"));
    }
    v1::CancelSendRequest request;
    request.set_session(args.Get("session"));
    request.set_send_id(Positional(args, 1, "send ID"));
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    v1::CancelSendResponse response;
    grpc::Status status = stub->CancelSend(&ctx, request, &response);
    if (!status.ok()) return Fail(env, status, ctx);
    if (env.json) {
      PrintJson(response);
    } else {
      printf("%s %s\n", Short(response.send().state()).c_str(), request.send_id().c_str());
    }
    return kExitOk;
  }
  v1::ListOutboxResponse all;
  std::string token;
  do {
    v1::ListOutboxRequest request;
    request.set_session(args.Get("session"));
    for (const auto& l : args.All("state")) {
      for (absl::string_view s : absl::StrSplit(l, ',', absl::SkipWhitespace())) {
        request.add_states(ParseState(std::string(s)));
      }
    }
    request.set_page_size(1000);
    request.set_page_token(token);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    v1::ListOutboxResponse page;
    grpc::Status status = stub->ListOutbox(&ctx, request, &page);
    if (!status.ok()) return Fail(env, status, ctx);
    for (auto& s : *page.mutable_sends()) *all.add_sends() = std::move(s);
    token = page.next_page_token();
  } while (!token.empty());
  if (env.json) {
    PrintJson(all);
  } else {
    PrintSends(all.sends());
  }
  return kExitOk;
}

// status SEND_ID [--session S]    |    status --watch [SEND_ID...] [--session S] [--current]
int Status(const Env& env, const Args& args) {
  auto stub = v1::SendService::NewStub(env.channel);
  if (!args.Has("watch")) {
    if (args.positional.size() != 1) Usage("status needs one send ID (or --watch)");
    v1::GetSendStatusRequest request;
    request.set_session(args.Get("session"));
    request.set_send_id(args.positional[0]);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    v1::GetSendStatusResponse response;
    grpc::Status status = stub->GetSendStatus(&ctx, request, &response);
    if (!status.ok()) return Fail(env, status, ctx);
    if (env.json) {
      PrintJson(response.send());
    } else {
      PrintSend(response.send());
    }
    v1::SendState s = response.send().state();
    return s == v1::SEND_STATE_ERROR || s == v1::SEND_STATE_CANCELLED ? kExitNegative : kExitOk;
  }
  v1::WatchSendStatusRequest request;
  request.set_session(args.Get("session"));
  for (const auto& id : args.positional) request.add_send_ids(id);
  request.set_include_current(args.Has("current") || !args.positional.empty());
  grpc::ClientContext ctx;
  if (args.Has("for")) {
    google::protobuf::Duration d;
    SetDuration(args.Get("for"), "for", &d);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(d.seconds()));
  }
  CancelOnSignal cancel(&ctx);
  auto reader = stub->WatchSendStatus(&ctx, request);
  v1::WatchSendStatusResponse event;
  std::map<std::string, v1::SendState> last;
  while (reader->Read(&event)) {
    const auto& s = event.send();
    last[s.send_id()] = s.state();
    if (env.json) {
      PrintJson(event, /*compact=*/true);
    } else {
      printf("%s  %-9s %s  %s\n", FormatTime(s.update_time()).c_str(), Short(s.state()).c_str(),
             s.send_id().c_str(), s.detail().c_str());
      fflush(stdout);
    }
  }
  grpc::Status status = reader->Finish();
  if (!EndedOnPurpose(status, cancel.signalled())) return Fail(env, status, ctx);
  // Given sends that are not final when --for runs out: scripts must not take that for done.
  for (const auto& id : args.positional) {
    auto it = last.find(id);
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
        (it == last.end() || !Final(it->second))) {
      return Fail(env, status, ctx);
    }
  }
  for (const auto& [id, state] : last) {
    if (Final(state) && state != v1::SEND_STATE_SENT) return kExitNegative;
  }
  return kExitOk;
}

int CheckAddress(const Env& env, const Args& args) {
  v1::CheckAddressRequest request;
  request.set_address(Positional(args, 0, "address"));
  if (args.positional.size() > 1) Usage("check-address checks one address");
  std::string mode = args.Get("mode", args.Has("session") ? "server" : "syntax");
  if (mode == "syntax") {
    request.set_mode(v1::CHECK_MODE_SYNTAX);
  } else if (mode == "strict") {
    request.set_mode(v1::CHECK_MODE_STRICT);
  } else if (mode == "server") {
    if (!args.Has("session")) Usage("--mode server needs --session (an SMTP session)");
    request.set_mode(v1::CHECK_MODE_SERVER);
  } else {
    Usage("--mode: syntax, strict or server");
  }
  request.set_session(args.Get("session"));
  request.set_allow_vrfy(args.Has("vrfy"));
  auto stub = v1::SendService::NewStub(env.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 120);
  v1::CheckAddressResponse response;
  grpc::Status status = stub->CheckAddress(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(response);
  } else {
    std::string line =
        absl::AsciiStrToUpper(ShortName(v1::CheckResult_Name(response.result()), "CHECK_RESULT_"));
    if (!response.reason().empty()) absl::StrAppend(&line, "  ", response.reason());
    // The reason often quotes the server's reply already: print it once.
    if (!response.server_reply().empty() &&
        !absl::StrContains(response.reason(), response.server_reply())) {
      absl::StrAppend(&line, "  (", response.server_reply(), ")");
    }
    puts(line.c_str());
  }
  return response.result() == v1::CHECK_RESULT_VALID ? kExitOk : kExitNegative;
}

int Build(const Env& env, const Args& args) {
  if (!args.positional.empty()) Usage("build takes no arguments besides options");
  v1::BuildSourceRequest request;
  *request.mutable_message() = MessageFromFlags(args);
  auto stub = v1::MessageService::NewStub(env.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 120);
  v1::BuildSourceResponse response;
  grpc::Status status = stub->BuildSource(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(response);
  } else {
    fwrite(response.source().data(), 1, response.source().size(), stdout);
  }
  return kExitOk;
}

int Parse(const Env& env, const Args& args) {
  v1::ParseSourceRequest request;
  request.set_source(ReadFile(Positional(args, 0, "file (or - for stdin)")));
  auto stub = v1::MessageService::NewStub(env.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 120);
  v1::ParseSourceResponse response;
  grpc::Status status = stub->ParseSource(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(response);
    return kExitOk;
  }
  const auto& m = response.message();
  printf("From:    %s\n", FormatAddress(m.from()).c_str());
  std::vector<std::string> to;
  for (const auto& a : m.to()) to.push_back(FormatAddress(a));
  printf("To:      %s\n", absl::StrJoin(to, ", ").c_str());
  printf("Subject: %s\n", m.subject().c_str());
  printf("Date:    %s\n", FormatTime(m.date()).c_str());
  for (const auto& a : m.attachments()) {
    printf("Attach:  %s (%s, %llu bytes)\n", a.file_name().c_str(), a.content_type().c_str(),
           static_cast<unsigned long long>(a.size()));
  }
  for (const auto& w : response.warnings()) printf("Warning: %s\n", w.c_str());
  if (!m.text_body().empty()) printf("\n%s\n", m.text_body().c_str());
  return kExitOk;
}

const std::vector<std::string> kMessageOptions = {
    "from=",       "to=",   "cc=",        "bcc=",    "reply-to=", "subject=",  "text=",
    "text-file=",  "html=", "html-file=", "attach=", "header=",   "priority=", "delivery-receipt",
    "read-receipt"};

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

constexpr char kMessageHelp[] =
    R"(Message (repeatable: --to --cc --bcc --reply-to --attach --header):
  --from ADDR --to ADDR --cc ADDR --bcc ADDR --reply-to ADDR   ("Name <a@b>" or a@b)
  --subject S   --text T | --text-file F   --html H | --html-file F
  --attach FILE   --header "Name: value"   --priority high|normal|low
  --delivery-receipt   --read-receipt
)";

}  // namespace

std::vector<Command> SendCommands() {
  static const std::string send_usage = absl::StrCat(
      R"(Usage: mailpool send SESSION --from ADDR --to ADDR [message options] [send options]
       mailpool send SESSION FILE.eml [send options]      (- for stdin)

Sends over an SMTP (or pop3-smtp) session. Synchronous sessions: prints the result per
recipient; exits 3 when a recipient was refused. Asynchronous sessions (start --async):
prints QUEUED and the send ID (follow it with `status --watch ID`).
)",
      kMessageHelp, R"(Send:
  --envelope-from ADDR  --rcpt ADDR (repeatable; replaces the recipients)  --dsn
  --idempotency-key K   --require-all (refuse a partial send)
)");
  static const std::string build_usage = absl::StrCat(
      "Usage: mailpool build --from ADDR [message options]\n\nPrints the RFC 5322 "
      "source the daemon builds (--json: with its Message-ID).\n",
      kMessageHelp);
  return {
      {"send", "send a message (from options or a .eml file)", send_usage.c_str(),
       With(kMessageOptions, {"envelope-from=", "rcpt=", "dsn", "idempotency-key=", "require-all"}),
       Send},
      {"outbox",
       "list asynchronous sends; outbox cancel ID",
       R"(Usage: mailpool outbox [--session S] [--state STATES]
       mailpool outbox cancel SEND_ID [--session S]

Lists your asynchronous sends, oldest first (--state: a comma list of queued, pending,
sent, error, cancelled). cancel: cancels a send that has not gone out.
)",
       {"session=", "state="},
       Outbox},
      {"status",
       "state of an asynchronous send; --watch streams changes",
       R"(Usage: mailpool status SEND_ID [--session S]
       mailpool status --watch [SEND_ID...] [--session S] [--current] [--for DUR]

Shows one send (exit 3 when it ended in error or was cancelled). --watch: prints state
changes as they happen, of the given sends (until all are final) or of every send (until
Ctrl-C; --current: first the sends in progress). --for DUR stops watching after DUR (exit
14, DEADLINE_EXCEEDED, when a given send is not final by then). --json: one JSON object per
line.
)",
       {"session=", "watch", "current", "for="},
       Status},
      {"check-address",
       "check an e-mail address (syntax, strict, or ask the server)",
       R"(Usage: mailpool check-address ADDRESS [--mode syntax|strict|server] [--session S] [--vrfy]

Prints VALID, INVALID or UNKNOWN with the reason; exits 0 only when VALID (3 otherwise).
--session S (an SMTP session) implies --mode server: RCPT TO then RSET (VRFY first with
--vrfy); nothing is sent.
)",
       {"mode=", "session=", "vrfy"},
       CheckAddress},
      {"build", "print the RFC 5322 source of a message", build_usage.c_str(), kMessageOptions,
       Build},
      {"parse",
       "parse a .eml file",
       "Usage: mailpool parse FILE\n\nParses RFC 5322 source (- for stdin) and shows the "
       "message and any warnings.\n",
       {},
       Parse},
  };
}

}  // namespace mailpool::cli
