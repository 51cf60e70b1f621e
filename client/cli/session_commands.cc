// CLI commands for sessions and the daemon: start, sessions, show, close, update, timeout,
// health.
//
//   mailpool start imap --host imap.example.org --user alice --password-env MAIL_PASSWORD
//   mailpool sessions
//   mailpool update alice --password-env NEW_PASSWORD
//   mailpool timeout --session alice 2m
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "mailpool/v1/session.grpc.pb.h"

namespace mailpool::cli {
namespace {

std::string ReadSecret(const Args& args, const std::string& kind) {
  if (args.Has(kind)) return args.Get(kind);
  if (args.Has(kind + "-env")) {
    const char* v = std::getenv(args.Get(kind + "-env").c_str());
    if (v == nullptr) {
      Usage(absl::StrCat("environment variable ", args.Get(kind + "-env"), " is not set"));
    }
    return v;
  }
  if (args.Has(kind + "-file")) {
    std::string s = ReadFile(args.Get(kind + "-file"));
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
      {"auto", v1::AUTH_MECHANISM_UNSPECIFIED},
      {"command", v1::AUTH_MECHANISM_COMMAND},
      {"plain", v1::AUTH_MECHANISM_PLAIN},
      {"login", v1::AUTH_MECHANISM_LOGIN},
      {"cram-md5", v1::AUTH_MECHANISM_CRAM_MD5},
      {"apop", v1::AUTH_MECHANISM_APOP},
      {"xoauth2", v1::AUTH_MECHANISM_XOAUTH2},
      {"oauthbearer", v1::AUTH_MECHANISM_OAUTHBEARER},
      {"none", v1::AUTH_MECHANISM_NONE},
      {"scram-sha-1", v1::AUTH_MECHANISM_SCRAM_SHA_1},
      {"scram-sha-256", v1::AUTH_MECHANISM_SCRAM_SHA_256}};
  auto it = kNames.find(absl::AsciiStrToLower(s.empty() ? "auto" : s));
  if (it == kNames.end()) Usage(absl::StrCat("unknown mechanism: ", s));
  return it->second;
}

v1::ServerEndpoint Endpoint(const Args& args, const std::string& prefix) {
  v1::ServerEndpoint e;
  e.set_host(args.Get(prefix + "host"));
  if (args.Has(prefix + "port")) {
    e.set_port(ParseInt(args.Get(prefix + "port"), (prefix + "port").c_str(), 1, 65535));
  }
  e.set_security(ParseSecurity(args.Get(prefix + "security")));
  if (args.Has("ca")) e.mutable_tls()->set_ca_pem(ReadFile(args.Get("ca")));
  e.mutable_tls()->set_server_name(args.Get("server-name"));
  e.mutable_tls()->set_dangerously_skip_verification(args.Has("dangerously-skip-verify"));
  if (args.Has("connect-timeout")) {
    SetDuration(args.Get("connect-timeout"), "connect-timeout", e.mutable_connect_timeout());
  }
  return e;
}

// Whether any of --KIND, --KIND-env, --KIND-file is given, for each KIND.
bool HasSecretSource(const Args& args, std::initializer_list<const char*> kinds = {
                                           "password", "token", "refresh-token"}) {
  for (const char* kind : kinds) {
    for (const char* how : {"", "-env", "-file"}) {
      if (args.Has(absl::StrCat(kind, how))) return true;
    }
  }
  return false;
}

v1::Credentials Credentials(const Args& args) {
  v1::Credentials c;
  c.set_user(args.Get("user"));
  std::string password = ReadSecret(args, "password");
  std::string token = ReadSecret(args, "token");
  std::string refresh = ReadSecret(args, "refresh-token");
  if (!password.empty() + !token.empty() + !refresh.empty() > 1) {
    Usage("give one of a password, a token or a refresh token");
  }
  // A user with no secret source: ask on the terminal (no echo), as mail tools do.
  if (password.empty() && token.empty() && refresh.empty() && !c.user().empty() &&
      args.Get("mechanism") != "none" && !HasSecretSource(args)) {
    password = PromptSecret(absl::StrCat("Password for ", c.user(), ": "));
  }
  if (!password.empty()) c.set_password(password);
  if (!token.empty()) c.set_oauth2_token(token);
  bool oauth2_client = args.Has("oauth2-provider") || args.Has("token-endpoint") ||
                       args.Has("client-id") || HasSecretSource(args, {"client-secret"}) ||
                       args.Has("scopes");
  if (!refresh.empty()) {
    if (!args.Has("oauth2-provider") && !args.Has("token-endpoint")) {
      Usage("a refresh token needs --oauth2-provider NAME or --token-endpoint URL --client-id ID");
    }
    v1::OAuth2Refresh* r = c.mutable_oauth2_refresh();
    r->set_refresh_token(refresh);
    r->set_provider(args.Get("oauth2-provider"));
    r->set_token_endpoint(args.Get("token-endpoint"));
    r->set_client_id(args.Get("client-id"));
    r->set_client_secret(ReadSecret(args, "client-secret"));
    r->set_scopes(args.Get("scopes"));
  } else if (oauth2_client) {
    Usage(
        "--oauth2-provider, --token-endpoint, --client-id, --client-secret* and --scopes go "
        "with --refresh-token-env VAR (or --refresh-token-file FILE)");
  }
  c.set_mechanism(ParseMechanism(args.Get("mechanism")));
  c.set_allow_insecure_auth(args.Has("allow-insecure-auth"));
  return c;
}

std::string Short(v1::Protocol p) { return ShortName(v1::Protocol_Name(p), "PROTOCOL_"); }
std::string Short(v1::SessionState s) {
  return ShortName(v1::SessionState_Name(s), "SESSION_STATE_");
}

void PrintSession(const Env& env, const v1::Session& s) {
  if (env.json) return PrintJson(s);
  printf("id:        %s\n", s.id().c_str());
  if (!s.name().empty()) printf("name:      %s\n", s.name().c_str());
  printf("protocol:  %s\n", Short(s.protocol()).c_str());
  printf("state:     %s\n", Short(s.state()).c_str());
  printf("user:      %s\n", s.user().c_str());
  if (!s.owner().empty()) printf("owner:     %s\n", s.owner().c_str());
  if (!s.current_folder().empty()) printf("folder:    %s\n", s.current_folder().c_str());
  printf("timeout:   %llds%s\n", static_cast<long long>(s.timeout().seconds()),
         s.timeout_overridden() ? "" : " (daemon default)");
  if (!s.last_error().empty()) printf("error:     %s\n", s.last_error().c_str());
  for (const auto& c : s.connections()) {
    std::string tls =
        c.tls_version().empty()
            ? "no TLS"
            : absl::StrCat(c.tls_version(), c.tls_verified() ? " verified" : " UNVERIFIED");
    printf("%-5s      %s:%u  %s  auth=%s\n", Short(c.protocol()).c_str(), c.host().c_str(),
           c.port(), tls.c_str(),
           ShortName(v1::AuthMechanism_Name(c.mechanism()), "AUTH_MECHANISM_").c_str());
    printf("           greeting: %s\n", c.greeting().c_str());
  }
}

int Start(const Env& env, const Args& args) {
  const std::string& protocol = Positional(args, 0, "protocol: imap, pop3, smtp, pop3-smtp");
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
    Usage(absl::StrCat("unknown protocol: ", protocol, " (imap, pop3, smtp, pop3-smtp)"));
  }
  auto stub = v1::SessionService::NewStub(env.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 120);
  v1::StartSessionResponse response;
  grpc::Status status = stub->StartSession(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  PrintSession(env, response.session());
  return kExitOk;
}

int Sessions(const Env& env, const Args& args) {
  bool all_callers = args.Has("all-callers");
  auto stub = v1::SessionService::NewStub(env.channel);
  v1::ListSessionsResponse all;
  std::string token;
  do {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 30);
    v1::ListSessionsRequest request;
    request.set_page_token(token);
    request.set_all_callers(all_callers);
    v1::ListSessionsResponse page;
    grpc::Status status = stub->ListSessions(&ctx, request, &page);
    if (!status.ok()) return Fail(env, status, ctx);
    for (const auto& s : page.sessions()) *all.add_sessions() = s;
    token = page.next_page_token();
  } while (!token.empty());
  if (env.json) {
    PrintJson(all);
    return kExitOk;
  }
  std::vector<std::string> headers = {"ID", "NAME", "PROTOCOL", "STATE", "USER", "SERVER"};
  if (all_callers) headers.insert(headers.begin() + 1, "OWNER");
  Table t(headers);
  for (const auto& s : all.sessions()) {
    std::string server;
    if (s.connections_size() > 0) {
      server = absl::StrCat(s.connections(0).host(), ":", s.connections(0).port());
    }
    std::vector<std::string> row = {
        s.id(), s.name().empty() ? "-" : s.name(), Short(s.protocol()), Short(s.state()), s.user(),
        server};
    if (all_callers) row.insert(row.begin() + 1, s.owner());
    t.Add(row);
  }
  t.Print();
  return kExitOk;
}

int Show(const Env& env, const Args& args) {
  auto stub = v1::SessionService::NewStub(env.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 60);
  v1::GetSessionRequest request;
  request.set_session(Positional(args, 0, "session ID or name"));
  v1::GetSessionResponse response;
  grpc::Status status = stub->GetSession(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  PrintSession(env, response.session());
  return kExitOk;
}

int Close(const Env& env, const Args& args) {
  auto stub = v1::SessionService::NewStub(env.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 60);
  v1::CloseSessionRequest request;
  request.set_session(Positional(args, 0, "session ID or name"));
  v1::CloseSessionResponse response;
  grpc::Status status = stub->CloseSession(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(response);
  } else {
    printf("closed %s: %s\n", request.session().c_str(), response.server_reply().c_str());
  }
  return kExitOk;
}

int Timeout(const Env& env, const Args& args) {
  auto stub = v1::SessionService::NewStub(env.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 30);
  grpc::Status status;
  if (args.Has("session")) {
    // One session's own timeout (UpdateSession); 0 follows the daemon default again.
    v1::UpdateSessionRequest request;
    request.set_session(args.Get("session"));
    SetDuration(Positional(args, 0, "timeout (e.g. 5m, or 0 for the daemon default)"), "timeout",
                request.mutable_timeout());
    v1::UpdateSessionResponse response;
    status = stub->UpdateSession(&ctx, request, &response);
    if (!status.ok()) return Fail(env, status, ctx);
    if (env.json) {
      PrintJson(response.session());
    } else {
      printf("%llds%s\n", static_cast<long long>(response.session().timeout().seconds()),
             response.session().timeout_overridden() ? "" : " (daemon default)");
    }
    return kExitOk;
  }
  google::protobuf::Duration timeout;
  if (!args.positional.empty()) {
    v1::SetDefaultTimeoutRequest request;
    SetDuration(args.positional[0], "timeout", request.mutable_timeout());
    v1::SetDefaultTimeoutResponse response;
    status = stub->SetDefaultTimeout(&ctx, request, &response);
    timeout = response.timeout();
  } else {
    v1::GetDefaultTimeoutResponse response;
    status = stub->GetDefaultTimeout(&ctx, {}, &response);
    timeout = response.timeout();
  }
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(timeout);
  } else {
    printf("%llds\n", static_cast<long long>(timeout.seconds()));
  }
  return kExitOk;
}

// New credentials (and/or the session's own timeout) for a running session.
int Update(const Env& env, const Args& args) {
  const std::string& session = Positional(args, 0, "session ID or name");
  bool new_secret = HasSecretSource(args);
  if (!new_secret && !args.Has("timeout")) {
    Usage("update needs a new password or token (--password-env, --token-env, ...) or --timeout");
  }
  if (!new_secret &&
      (args.Has("user") || args.Has("mechanism") || args.Has("allow-insecure-auth"))) {
    Usage("--user, --mechanism and --allow-insecure-auth go with a new password or token");
  }
  auto stub = v1::SessionService::NewStub(env.channel);
  v1::UpdateSessionRequest request;
  request.set_session(session);
  if (args.Has("timeout")) SetDuration(args.Get("timeout"), "timeout", request.mutable_timeout());
  if (new_secret) {
    v1::Credentials credentials = Credentials(args);
    if (credentials.secret_case() == v1::Credentials::SECRET_NOT_SET) {
      Usage("the new password or token is empty");
    }
    if (!args.Has("user")) {
      // The session is one account: its own user, as the daemon requires.
      grpc::ClientContext ctx;
      SetDeadline(&ctx, 30);
      v1::GetSessionRequest get;
      get.set_session(session);
      v1::GetSessionResponse found;
      grpc::Status status = stub->GetSession(&ctx, get, &found);
      if (!status.ok()) return Fail(env, status, ctx);
      credentials.set_user(found.session().user());
    }
    *request.mutable_credentials() = std::move(credentials);
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 120);  // a refused session logs in again within the call
  v1::UpdateSessionResponse response;
  grpc::Status status = stub->UpdateSession(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  PrintSession(env, response.session());
  return kExitOk;
}

int Health(const Env& env, const Args&) {
  auto health = grpc::health::v1::Health::NewStub(env.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 5);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health->Check(&ctx, request, &response);
  if (!status.ok()) return Fail(env, status, ctx);
  if (env.json) {
    PrintJson(response);
  } else {
    puts(grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()).c_str());
  }
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                             : kExitNegative;
}

constexpr char kStartUsage[] =
    R"(Usage: mailpool start imap|pop3|smtp|pop3-smtp --host HOST [options]

Opens a session: connects, secures and logs in, then prints the session (its ID or
--name addresses it in later commands).

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
  --refresh-token-env VAR | --refresh-token-file FILE   OAuth2 refresh token: the daemon
                            gets and renews the access tokens itself, from
  --oauth2-provider NAME    a provider of the daemon's --oauth2_providers_file, or
  --token-endpoint URL --client-id ID [--client-secret-env VAR | --client-secret-file F]
  --scopes "S1 S2"          scopes to ask for (default: the grant's own)
  --mechanism M             auto (default), command, plain, login, cram-md5, apop,
                            scram-sha-1, scram-sha-256, xoauth2, oauthbearer, none
  --allow-insecure-auth     allow credentials over an unencrypted link
Session:
  --name NAME               address the session by this name later
  --timeout DUR             server-silence timeout (default: the daemon's)
  --folder NAME             IMAP: folder to select (default INBOX)
  --ehlo NAME               SMTP: EHLO name
  --async                   SMTP: queue sends in the daemon's outbox (asynchronous)
  --smtp-host H --smtp-port N --smtp-security MODE   pop3-smtp: the SMTP side
)";

}  // namespace

std::vector<Command> SessionCommands() {
  return {
      {"start",
       "open a session (imap, pop3, smtp or pop3-smtp)",
       kStartUsage,
       {"host=",
        "port=",
        "security=",
        "ca=",
        "server-name=",
        "dangerously-skip-verify",
        "connect-timeout=",
        "user=",
        "password=",
        "password-env=",
        "password-file=",
        "token=",
        "token-env=",
        "token-file=",
        "refresh-token-env=",
        "refresh-token-file=",
        "oauth2-provider=",
        "token-endpoint=",
        "client-id=",
        "client-secret-env=",
        "client-secret-file=",
        "scopes=",
        "mechanism=",
        "allow-insecure-auth",
        "name=",
        "timeout=",
        "folder=",
        "ehlo=",
        "async",
        "smtp-host=",
        "smtp-port=",
        "smtp-security="},
       Start},
      {"sessions",
       "list your sessions",
       "Usage: mailpool sessions [--all-callers]\n\nLists your sessions (the daemon's caller "
       "identity: token, Unix user or client\ncertificate). --all-callers: every caller's, "
       "with an OWNER column (admin callers only).\n",
       {"all-callers"},
       Sessions},
      {"show",
       "show one session",
       "Usage: mailpool show SESSION\n\nShows one session (by ID or name): state, folder, "
       "connections, TLS, greeting.\n",
       {},
       Show},
      {"close",
       "log out and forget a session",
       "Usage: mailpool close SESSION\n\nLogs out (POP3: commits deletions) and forgets the "
       "session.\n",
       {},
       Close},
      {"timeout",
       "show or set the server-silence timeout",
       R"(Usage: mailpool timeout [DUR]
       mailpool timeout --session SESSION DUR

Without --session: shows or sets the daemon's default server-silence timeout (e.g. 5m).
With --session: sets one session's own timeout; 0 makes it follow the default again.
)",
       {"session="},
       Timeout},
      {"update",
       "give a session new credentials (changed password, refreshed token)",
       R"(Usage: mailpool update SESSION --password-env VAR [options]
       mailpool update SESSION --token-file FILE [options]
       mailpool update SESSION --timeout DUR

Gives a running session new credentials (UpdateSession), used for every later login:
connections that are logged in stay as they are. A session whose login was refused
(state broken, UNAUTHENTICATED) logs in again now: the command then fails with that
login's error (exit 26 for wrong credentials) or shows the session ready.

Credentials (the secret is never echoed):
  --password-env VAR | --password-file FILE | --password PASS (visible in ps!)
  --token-env VAR | --token-file FILE | --token TOKEN   OAuth2 access token
  --refresh-token-env VAR | --refresh-token-file FILE   OAuth2 refresh token, with
  --oauth2-provider NAME | --token-endpoint URL --client-id ID [--client-secret-env VAR]
  --user NAME               must be the session's user (default: the session's)
  --mechanism M             auto (default), command, plain, login, cram-md5, apop,
                            scram-sha-1, scram-sha-256, xoauth2, oauthbearer
  --allow-insecure-auth     allow credentials over an unencrypted link
Session:
  --timeout DUR             the session's own server-silence timeout; 0: the daemon's
)",
       {"user=", "password=", "password-env=", "password-file=", "token=", "token-env=",
        "token-file=", "refresh-token-env=", "refresh-token-file=", "oauth2-provider=",
        "token-endpoint=", "client-id=", "client-secret-env=", "client-secret-file=", "scopes=",
        "mechanism=", "allow-insecure-auth", "timeout="},
       Update},
      {"health",
       "check that the daemon serves",
       "Usage: mailpool health\n\nPrints SERVING and exits 0 when the daemon serves; exits 3 "
       "otherwise.\n",
       {},
       Health},
  };
}

}  // namespace mailpool::cli
