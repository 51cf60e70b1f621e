// mailpool: command-line client for mailpoold.
//
//   mailpool start imap --host imap.example.org --user alice --password-env MAIL_PASSWORD
//   mailpool sessions
//   mailpool show alice-inbox
//   mailpool close alice-inbox
//
// Exit codes: 0 success, 2 usage error, 10 + the gRPC status code when the daemon refused
// (e.g. 26 = 10 + UNAUTHENTICATED(16)), 1 other failures.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "mailpool/v1/errors.pb.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "mailpool/v1/message.grpc.pb.h"
#include "mailpool/v1/session.grpc.pb.h"

namespace {

namespace v1 = mailpool::v1;

constexpr char kUsage[] = R"(mailpool - command-line client for mailpoold

Usage: mailpool [--addr HOST:PORT] [--json] COMMAND [options]

Commands:
  start PROTOCOL    open a session; PROTOCOL is imap, pop3, smtp or pop3-smtp
  sessions          list your sessions
  show SESSION      show one session (by ID or name)
  close SESSION     log out and forget a session
  timeout [DUR]     show or set the daemon's default server-silence timeout (e.g. 5m)
  health            check that the daemon serves (exit 0 when SERVING)

Mailbox (POP3 sessions today; IMAP answers UNIMPLEMENTED until it lands):
  mailbox SESSION               message count, size, snapshot time
  ls SESSION [--oldest-first] [--limit N]   list messages (newest first)
  cat SESSION ID [--raw|--headers]   show one message (--raw streams the source)
  search SESSION [--subject S] [--from S] [--to S] [--body S] [--text S]
  attachment SESSION ID PART    write one attachment (part ID, e.g. 2, from cat --json) to stdout
  rm SESSION ID...              delete (POP3: committed at close or refresh)
  refresh SESSION               POP3: QUIT and log in again (commits deletions, new mail)
Messages (no session):
  build --from A --to A [--subject S] [--text T] [--html H] [--attach FILE]
                                print RFC 5322 source
  parse FILE                    parse a .eml file (use - for stdin)

Global options:
  --addr HOST:PORT  daemon address (default $MAILPOOL_ADDR or 127.0.0.1:50551)
  --json            print JSON instead of tables
  --help            this text (also: mailpool COMMAND --help)

Exit codes: 0 ok, 2 usage error, 10 + gRPC code when the daemon refused the call
(13 INVALID_ARGUMENT, 15 NOT_FOUND, 19 FAILED_PRECONDITION, 24 UNAVAILABLE,
26 UNAUTHENTICATED), 1 otherwise.
)";

constexpr char kStartUsage[] =
    R"(Usage: mailpool start imap|pop3|smtp|pop3-smtp --host HOST [options]

Server:
  --host HOST               mail server host (required)
  --port N                  port (default: per protocol and security)
  --security MODE           plain, starttls (default) or tls (implicit TLS)
  --ca FILE                 extra trusted CA certificate(s), PEM
  --server-name NAME        TLS name to verify (default: --host)
  --dangerously-skip-verify accept any certificate (tests only!)
  --connect-timeout DUR     TCP connect timeout (default 30s)
Credentials (the secret is never echoed):
  --user NAME
  --password-env VAR | --password-file FILE | --password PASS (visible in ps!)
  --token-env VAR | --token-file FILE | --token TOKEN   OAuth2 access token
  --mechanism M             auto (default), command, plain, login, cram-md5, apop,
                            xoauth2, oauthbearer, none
  --allow-insecure-auth     allow credentials over an unencrypted link
Session:
  --name NAME               address the session by this name later
  --timeout DUR             server-silence timeout (default: the daemon's)
  --folder NAME             IMAP: folder to select (default INBOX)
  --ehlo NAME               SMTP: EHLO name
  --async                   SMTP: queue sends (asynchronous mode)
  --smtp-host H --smtp-port N --smtp-security MODE   pop3-smtp: the SMTP side
)";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // --key value (or "" for switches)
  bool Has(const std::string& k) const { return options.count(k) > 0; }
  std::string Get(const std::string& k, const std::string& def = "") const {
    auto it = options.find(k);
    return it == options.end() ? def : it->second;
  }
};

const std::vector<std::string> kSwitches = {
    "json", "help",   "dangerously-skip-verify", "allow-insecure-auth", "async", "oldest-first",
    "raw",  "headers"};

bool IsSwitch(const std::string& name) {
  for (const auto& s : kSwitches) {
    if (s == name) return true;
  }
  return false;
}

bool Parse(int argc, char** argv, Args* args, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (absl::StartsWith(a, "--")) {
      std::string key = a.substr(2);
      std::string value;
      size_t eq = key.find('=');
      if (eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else if (!IsSwitch(key)) {
        if (i + 1 >= argc) {
          *error = absl::StrCat("--", key, " needs a value");
          return false;
        }
        value = argv[++i];
      }
      args->options[key] = value;
    } else {
      args->positional.push_back(a);
    }
  }
  return true;
}

struct UsageError {
  std::string message;
};

[[noreturn]] void Usage(const std::string& message) { throw UsageError{message}; }

std::string ReadSecret(const Args& args, const std::string& kind) {
  if (args.Has(kind)) return args.Get(kind);
  if (args.Has(kind + "-env")) {
    const char* v = std::getenv(args.Get(kind + "-env").c_str());
    if (v == nullptr)
      Usage(absl::StrCat("environment variable ", args.Get(kind + "-env"), " is not set"));
    return v;
  }
  if (args.Has(kind + "-file")) {
    std::ifstream in(args.Get(kind + "-file"));
    if (!in) Usage(absl::StrCat("cannot read ", args.Get(kind + "-file")));
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  }
  return "";
}

v1::Security ParseSecurity(const std::string& s) {
  if (s.empty() || s == "starttls") return v1::SECURITY_STARTTLS;
  if (s == "plain") return v1::SECURITY_PLAIN;
  if (s == "tls" || s == "ssl" || s == "implicit-tls") return v1::SECURITY_IMPLICIT_TLS;
  Usage(absl::StrCat("unknown security mode: ", s, " (plain, starttls, tls)"));
}

v1::AuthMechanism ParseMechanism(const std::string& s) {
  static const std::map<std::string, v1::AuthMechanism> kNames = {
      {"auto", v1::AUTH_MECHANISM_UNSPECIFIED},  {"command", v1::AUTH_MECHANISM_COMMAND},
      {"plain", v1::AUTH_MECHANISM_PLAIN},       {"login", v1::AUTH_MECHANISM_LOGIN},
      {"cram-md5", v1::AUTH_MECHANISM_CRAM_MD5}, {"apop", v1::AUTH_MECHANISM_APOP},
      {"xoauth2", v1::AUTH_MECHANISM_XOAUTH2},   {"oauthbearer", v1::AUTH_MECHANISM_OAUTHBEARER},
      {"none", v1::AUTH_MECHANISM_NONE}};
  auto it = kNames.find(absl::AsciiStrToLower(s.empty() ? "auto" : s));
  if (it == kNames.end()) Usage(absl::StrCat("unknown mechanism: ", s));
  return it->second;
}

void SetDuration(const std::string& text, const char* flag, google::protobuf::Duration* out) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration()) {
    Usage(absl::StrCat("--", flag, ": not a duration (e.g. 30s, 5m): ", text));
  }
  out->set_seconds(absl::ToInt64Seconds(d));
  out->set_nanos(static_cast<int>(absl::ToInt64Nanoseconds(d - absl::Seconds(out->seconds()))));
}

v1::ServerEndpoint Endpoint(const Args& args, const std::string& prefix) {
  v1::ServerEndpoint e;
  e.set_host(args.Get(prefix + "host"));
  if (args.Has(prefix + "port")) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(args.Get(prefix + "port"), &port) || port > 65535) {
      Usage(absl::StrCat("--", prefix, "port: not a port number"));
    }
    e.set_port(port);
  }
  e.set_security(ParseSecurity(args.Get(prefix + "security")));
  if (args.Has("ca")) {
    std::ifstream in(args.Get("ca"));
    if (!in) Usage(absl::StrCat("cannot read ", args.Get("ca")));
    e.mutable_tls()->set_ca_pem(
        std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  }
  e.mutable_tls()->set_server_name(args.Get("server-name"));
  e.mutable_tls()->set_dangerously_skip_verification(args.Has("dangerously-skip-verify"));
  if (args.Has("connect-timeout")) {
    SetDuration(args.Get("connect-timeout"), "connect-timeout", e.mutable_connect_timeout());
  }
  return e;
}

v1::Credentials Credentials(const Args& args) {
  v1::Credentials c;
  c.set_user(args.Get("user"));
  std::string password = ReadSecret(args, "password");
  std::string token = ReadSecret(args, "token");
  if (!password.empty() && !token.empty()) Usage("give a password or a token, not both");
  if (!password.empty()) c.set_password(password);
  if (!token.empty()) c.set_oauth2_token(token);
  c.set_mechanism(ParseMechanism(args.Get("mechanism")));
  c.set_allow_insecure_auth(args.Has("allow-insecure-auth"));
  return c;
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

std::string Short(v1::Protocol p) {
  std::string s = v1::Protocol_Name(p);
  return absl::AsciiStrToLower(s.substr(sizeof("PROTOCOL_") - 1));
}

std::string Short(v1::SessionState s) {
  return absl::AsciiStrToLower(v1::SessionState_Name(s).substr(sizeof("SESSION_STATE_") - 1));
}

void PrintSession(const v1::Session& s) {
  printf("id:        %s\n", s.id().c_str());
  if (!s.name().empty()) printf("name:      %s\n", s.name().c_str());
  printf("protocol:  %s\n", Short(s.protocol()).c_str());
  printf("state:     %s\n", Short(s.state()).c_str());
  printf("user:      %s\n", s.user().c_str());
  if (!s.current_folder().empty()) printf("folder:    %s\n", s.current_folder().c_str());
  printf("timeout:   %llds%s\n", static_cast<long long>(s.timeout().seconds()),
         s.timeout_overridden() ? "" : " (daemon default)");
  if (!s.last_error().empty()) printf("error:     %s\n", s.last_error().c_str());
  for (const auto& c : s.connections()) {
    std::string mech = v1::AuthMechanism_Name(c.mechanism()).substr(sizeof("AUTH_MECHANISM_") - 1);
    printf(
        "%-5s      %s:%u  %s  auth=%s\n", Short(c.protocol()).c_str(), c.host().c_str(), c.port(),
        c.tls_version().empty()
            ? "no TLS"
            : absl::StrCat(c.tls_version(), c.tls_verified() ? " verified" : " UNVERIFIED").c_str(),
        mech.c_str());
    printf("           greeting: %s\n", c.greeting().c_str());
  }
}

int Fail(const grpc::Status& status, const grpc::ClientContext& context) {
  fprintf(stderr, "mailpool: %s: %s\n",
          absl::AsciiStrToLower(std::to_string(status.error_code())).c_str(),
          status.error_message().c_str());
  auto it = context.GetServerTrailingMetadata().find("mailpool-error-bin");
  if (it != context.GetServerTrailingMetadata().end()) {
    v1::ErrorDetail detail;
    if (detail.ParseFromString(std::string(it->second.data(), it->second.size())) &&
        !detail.reason().empty()) {
      fprintf(stderr, "  reason: %s\n", detail.reason().c_str());
      if (!detail.command().empty()) fprintf(stderr, "  command: %s\n", detail.command().c_str());
    }
  }
  return 10 + static_cast<int>(status.error_code());
}

void SetDeadline(grpc::ClientContext* ctx, int seconds) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

std::string ReadAll(const std::string& path) {
  if (path == "-") {
    return std::string((std::istreambuf_iterator<char>(std::cin)),
                       std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) Usage(absl::StrCat("cannot read ", path));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string FormatAddress(const v1::Address& a) {
  if (a.name().empty()) return a.address();
  return absl::StrCat(a.name(), " <", a.address(), ">");
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0) return "";
  return absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixSeconds(t.seconds()),
                          absl::LocalTimeZone());
}

void PrintMessageRow(const v1::EmailMessage& m) {
  std::string subject = m.subject();
  if (subject.size() > 50) subject = subject.substr(0, 47) + "...";
  printf("%-36s %-16s %-28s %8llu  %s\n", m.id().c_str(), FormatTime(m.date()).c_str(),
         FormatAddress(m.from()).substr(0, 28).c_str(), static_cast<unsigned long long>(m.size()),
         subject.c_str());
}

void PrintMessage(const v1::EmailMessage& m) {
  printf("ID:      %s\n", m.id().c_str());
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
  if (!m.text_body().empty()) printf("\n%s\n", m.text_body().c_str());
}

int Run(const Args& args) {
  bool json = args.Has("json");
  if (args.positional.empty()) {
    fputs(kUsage, args.Has("help") ? stdout : stderr);
    return args.Has("help") ? 0 : 2;
  }
  const std::string& command = args.positional[0];
  if (args.Has("help")) {
    fputs(command == "start" ? kStartUsage : kUsage, stdout);
    return 0;
  }
  const char* env_addr = std::getenv("MAILPOOL_ADDR");
  std::string addr = args.Get("addr", env_addr ? env_addr : "127.0.0.1:50551");
  auto channel = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  auto stub = v1::SessionService::NewStub(channel);

  if (command == "start") {
    if (args.positional.size() != 2) Usage("start needs a protocol: imap, pop3, smtp, pop3-smtp");
    const std::string& protocol = args.positional[1];
    if (!args.Has("host")) Usage("start needs --host");
    v1::StartSessionRequest request;
    request.set_name(args.Get("name"));
    if (args.Has("timeout")) SetDuration(args.Get("timeout"), "timeout", request.mutable_timeout());
    if (protocol == "imap") {
      *request.mutable_imap()->mutable_server() = Endpoint(args, "");
      *request.mutable_imap()->mutable_credentials() = Credentials(args);
      request.mutable_imap()->set_initial_folder(args.Get("folder"));
    } else if (protocol == "pop3") {
      *request.mutable_pop3()->mutable_server() = Endpoint(args, "");
      *request.mutable_pop3()->mutable_credentials() = Credentials(args);
    } else if (protocol == "smtp") {
      *request.mutable_smtp()->mutable_server() = Endpoint(args, "");
      *request.mutable_smtp()->mutable_credentials() = Credentials(args);
      request.mutable_smtp()->set_ehlo_name(args.Get("ehlo"));
      request.mutable_smtp()->set_asynchronous(args.Has("async"));
    } else if (protocol == "pop3-smtp") {
      auto* o = request.mutable_pop3_smtp();
      *o->mutable_pop3() = Endpoint(args, "");
      *o->mutable_smtp() = Endpoint(args, "smtp-");
      o->mutable_smtp()->mutable_tls()->set_ca_pem(o->pop3().tls().ca_pem());
      *o->mutable_credentials() = Credentials(args);
      o->set_ehlo_name(args.Get("ehlo"));
      o->set_asynchronous(args.Has("async"));
    } else {
      Usage(absl::StrCat("unknown protocol: ", protocol));
    }
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120);
    v1::StartSessionResponse response;
    grpc::Status status = stub->StartSession(&ctx, request, &response);
    if (!status.ok()) return Fail(status, ctx);
    if (json) {
      puts(Json(response.session()).c_str());
    } else {
      PrintSession(response.session());
    }
    return 0;
  }
  if (command == "sessions") {
    v1::ListSessionsResponse all;
    std::string token;
    do {
      grpc::ClientContext ctx;
      SetDeadline(&ctx, 30);
      v1::ListSessionsRequest request;
      request.set_page_token(token);
      v1::ListSessionsResponse page;
      grpc::Status status = stub->ListSessions(&ctx, request, &page);
      if (!status.ok()) return Fail(status, ctx);
      for (const auto& s : page.sessions()) *all.add_sessions() = s;
      token = page.next_page_token();
    } while (!token.empty());
    if (json) {
      puts(Json(all).c_str());
      return 0;
    }
    printf("%-40s %-16s %-9s %-10s %-24s %s\n", "ID", "NAME", "PROTOCOL", "STATE", "USER",
           "SERVER");
    for (const auto& s : all.sessions()) {
      std::string server;
      if (s.connections_size() > 0) {
        server = absl::StrCat(s.connections(0).host(), ":", s.connections(0).port());
      }
      printf("%-40s %-16s %-9s %-10s %-24s %s\n", s.id().c_str(), s.name().c_str(),
             Short(s.protocol()).c_str(), Short(s.state()).c_str(), s.user().c_str(),
             server.c_str());
    }
    return 0;
  }
  if (command == "show" || command == "close") {
    if (args.positional.size() != 2) Usage(absl::StrCat(command, " needs a session ID or name"));
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    if (command == "show") {
      v1::GetSessionRequest request;
      request.set_session(args.positional[1]);
      v1::GetSessionResponse response;
      grpc::Status status = stub->GetSession(&ctx, request, &response);
      if (!status.ok()) return Fail(status, ctx);
      if (json) {
        puts(Json(response.session()).c_str());
      } else {
        PrintSession(response.session());
      }
      return 0;
    }
    v1::CloseSessionRequest request;
    request.set_session(args.positional[1]);
    v1::CloseSessionResponse response;
    grpc::Status status = stub->CloseSession(&ctx, request, &response);
    if (!status.ok()) return Fail(status, ctx);
    if (json) {
      puts(Json(response).c_str());
    } else {
      printf("closed %s: %s\n", args.positional[1].c_str(), response.server_reply().c_str());
    }
    return 0;
  }
  if (command == "timeout") {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 30);
    google::protobuf::Duration timeout;
    if (args.positional.size() == 2) {
      v1::SetDefaultTimeoutRequest request;
      SetDuration(args.positional[1], "timeout", request.mutable_timeout());
      v1::SetDefaultTimeoutResponse response;
      grpc::Status status = stub->SetDefaultTimeout(&ctx, request, &response);
      if (!status.ok()) return Fail(status, ctx);
      timeout = response.timeout();
    } else {
      v1::GetDefaultTimeoutResponse response;
      grpc::Status status = stub->GetDefaultTimeout(&ctx, {}, &response);
      if (!status.ok()) return Fail(status, ctx);
      timeout = response.timeout();
    }
    if (json) {
      puts(Json(timeout).c_str());
    } else {
      printf("%llds\n", static_cast<long long>(timeout.seconds()));
    }
    return 0;
  }

  if (command == "mailbox" || command == "ls" || command == "cat" || command == "search" ||
      command == "rm" || command == "refresh" || command == "attachment") {
    if (args.positional.size() < 2) Usage(absl::StrCat(command, " needs a session ID or name"));
    const std::string& session = args.positional[1];
    auto mailbox = v1::MailboxService::NewStub(channel);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 600);
    if (command == "mailbox") {
      v1::GetMailboxStatusRequest request;
      request.set_session(session);
      v1::GetMailboxStatusResponse response;
      grpc::Status status = mailbox->GetMailboxStatus(&ctx, request, &response);
      if (!status.ok()) return Fail(status, ctx);
      if (json) {
        puts(Json(response.status()).c_str());
      } else {
        const auto& st = response.status();
        printf("messages: %u\nsize:     %llu\n", st.message_count(),
               static_cast<unsigned long long>(st.size()));
        if (st.has_snapshot_time())
          printf("snapshot: %s\n", FormatTime(st.snapshot_time()).c_str());
        if (st.pending_deletions() > 0) printf("pending deletions: %u\n", st.pending_deletions());
      }
      return 0;
    }
    if (command == "ls" || command == "search") {
      int limit = 50;
      if (args.Has("limit") && !absl::SimpleAtoi(args.Get("limit"), &limit)) {
        Usage("--limit: not a number");
      }
      v1::MessageView view = v1::MESSAGE_VIEW_HEADERS;
      v1::MessageOrder order = args.Has("oldest-first") ? v1::MESSAGE_ORDER_OLDEST_FIRST
                                                        : v1::MESSAGE_ORDER_NEWEST_FIRST;
      google::protobuf::RepeatedPtrField<v1::EmailMessage> messages;
      grpc::Status status;
      if (command == "ls") {
        v1::ListMessagesRequest request;
        request.set_session(session);
        request.set_view(view);
        request.set_order(order);
        request.set_page_size(limit);
        v1::ListMessagesResponse response;
        status = mailbox->ListMessages(&ctx, request, &response);
        messages = response.messages();
      } else {
        v1::SearchMessagesRequest request;
        request.set_session(session);
        request.set_view(view);
        request.set_order(order);
        request.set_page_size(limit);
        auto* c = request.mutable_criteria();
        c->set_subject(args.Get("subject"));
        c->set_from(args.Get("from"));
        c->set_to(args.Get("to"));
        c->set_body(args.Get("body"));
        c->set_text(args.Get("text"));
        v1::SearchMessagesResponse response;
        status = mailbox->SearchMessages(&ctx, request, &response);
        messages = response.messages();
      }
      if (!status.ok()) return Fail(status, ctx);
      if (json) {
        v1::ListMessagesResponse out;
        *out.mutable_messages() = messages;
        puts(Json(out).c_str());
        return 0;
      }
      printf("%-36s %-16s %-28s %8s  %s\n", "ID", "DATE", "FROM", "SIZE", "SUBJECT");
      for (const auto& m : messages) PrintMessageRow(m);
      return 0;
    }
    if (command == "cat") {
      if (args.positional.size() != 3) Usage("cat needs SESSION and a message ID");
      if (args.Has("raw") && !json) {
        v1::StreamMessageRequest request;
        request.set_session(session);
        request.set_id(args.positional[2]);
        auto reader = mailbox->StreamMessage(&ctx, request);
        v1::StreamMessageResponse chunk;
        while (reader->Read(&chunk)) fwrite(chunk.data().data(), 1, chunk.data().size(), stdout);
        grpc::Status status = reader->Finish();
        if (!status.ok()) return Fail(status, ctx);
        return 0;
      }
      v1::GetMessageRequest request;
      request.set_session(session);
      request.set_id(args.positional[2]);
      request.set_view(args.Has("headers") ? v1::MESSAGE_VIEW_HEADERS : v1::MESSAGE_VIEW_FULL);
      v1::GetMessageResponse response;
      grpc::Status status = mailbox->GetMessage(&ctx, request, &response);
      if (!status.ok()) return Fail(status, ctx);
      if (json) {
        puts(Json(response.message()).c_str());
      } else {
        PrintMessage(response.message());
      }
      return 0;
    }
    if (command == "attachment") {
      if (args.positional.size() != 4)
        Usage("attachment needs SESSION, a message ID and a part ID");
      v1::GetAttachmentRequest request;
      request.set_session(session);
      request.set_id(args.positional[2]);
      request.set_part_id(args.positional[3]);
      auto reader = mailbox->GetAttachment(&ctx, request);
      v1::GetAttachmentResponse chunk;
      while (reader->Read(&chunk)) fwrite(chunk.data().data(), 1, chunk.data().size(), stdout);
      grpc::Status status = reader->Finish();
      if (!status.ok()) return Fail(status, ctx);
      return 0;
    }
    if (command == "rm") {
      if (args.positional.size() < 3) Usage("rm needs SESSION and message IDs");
      v1::DeleteMessagesRequest request;
      request.set_session(session);
      for (size_t i = 2; i < args.positional.size(); ++i) request.add_ids(args.positional[i]);
      v1::DeleteMessagesResponse response;
      grpc::Status status = mailbox->DeleteMessages(&ctx, request, &response);
      if (!status.ok()) return Fail(status, ctx);
      if (json) {
        puts(Json(response).c_str());
      } else {
        printf("deleted %u%s\n", response.deleted_count(),
               response.pending_until_quit() ? " (POP3: committed at close or refresh)" : "");
      }
      return 0;
    }
    v1::RefreshRequest request;
    request.set_session(session);
    v1::RefreshResponse response;
    grpc::Status status = mailbox->Refresh(&ctx, request, &response);
    if (!status.ok()) return Fail(status, ctx);
    if (json) {
      puts(Json(response).c_str());
    } else {
      printf("refreshed: %u messages, %u deletions committed\n", response.status().message_count(),
             response.committed_deletions());
    }
    return 0;
  }
  if (command == "build" || command == "parse") {
    auto messages = v1::MessageService::NewStub(channel);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120);
    if (command == "parse") {
      if (args.positional.size() != 2) Usage("parse needs a file (or -)");
      v1::ParseSourceRequest request;
      request.set_source(ReadAll(args.positional[1]));
      v1::ParseSourceResponse response;
      grpc::Status status = messages->ParseSource(&ctx, request, &response);
      if (!status.ok()) return Fail(status, ctx);
      if (json) {
        puts(Json(response).c_str());
      } else {
        PrintMessage(response.message());
      }
      return 0;
    }
    v1::BuildSourceRequest request;
    auto* m = request.mutable_message();
    m->mutable_from()->set_address(args.Get("from"));
    if (args.Has("to")) m->add_to()->set_address(args.Get("to"));
    m->set_subject(args.Get("subject"));
    m->set_text_body(args.Get("text"));
    m->set_html_body(args.Get("html"));
    if (args.Has("attach")) {
      auto* a = m->add_attachments();
      std::string path = args.Get("attach");
      a->set_file_name(path.substr(path.find_last_of('/') + 1));
      a->set_content_type("application/octet-stream");
      a->set_content(ReadAll(path));
    }
    v1::BuildSourceResponse response;
    grpc::Status status = messages->BuildSource(&ctx, request, &response);
    if (!status.ok()) return Fail(status, ctx);
    fwrite(response.source().data(), 1, response.source().size(), stdout);
    return 0;
  }
  if (command == "health") {
    auto health = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 5);
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = health->Check(&ctx, request, &response);
    if (!status.ok()) return Fail(status, ctx);
    std::string state =
        grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
    if (json) {
      puts(Json(response).c_str());
    } else {
      puts(state.c_str());
    }
    return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
  }
  Usage(absl::StrCat("unknown command: ", command));
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  std::string error;
  if (!Parse(argc, argv, &args, &error)) {
    fprintf(stderr, "mailpool: %s\n", error.c_str());
    return 2;
  }
  try {
    return Run(args);
  } catch (const UsageError& e) {
    fprintf(stderr, "mailpool: %s (see mailpool --help)\n", e.message.c_str());
    return 2;
  }
}
