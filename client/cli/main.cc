// mailpool: command-line client for mailpoold. One subcommand per call of the API, named
// like mail tools; the commands live in *_commands.cc, shared pieces in cli.h.
//
//   mailpool start imap --host imap.example.org --user alice --password-env MAIL_PASSWORD
//       --name alice     (one line)
//   mailpool ls alice --limit 10
//   mailpool --json sessions | jq .
//
// Exit codes: 0 success, 1 local failure, 2 usage error, 3 negative answer (a refused
// recipient, a failed send, an invalid address), 10 + the gRPC status code when the daemon
// refused the call (e.g. 22 = 10 + UNIMPLEMENTED(12), 26 = 10 + UNAUTHENTICATED(16)).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "cli.h"
#include "mailpool/client.h"

namespace mailpool::cli {
namespace {

constexpr char kSynopsis[] =
    R"(mailpool [--addr HOST:PORT|unix:PATH] [--context NAME] [--daemon-token-file F]
         [--daemon-ca F] [--json] COMMAND [arguments] [options]
mailpool COMMAND --help
)";

constexpr char kUsageTail[] = R"(
SESSION is a session ID or the --name given to `start`.

Global options (anywhere on the line):
  --addr HOST:PORT  daemon address (default $MAILPOOL_ADDR, the context's, or
                    127.0.0.1:50551); unix:/path/to.sock for the daemon's Unix socket
  --context NAME    the config file's context NAME (default $MAILPOOL_CONTEXT, else the
                    file's current-context; see `mailpool contexts --help`)
  --config FILE     the config file (default $MAILPOOL_CONFIG, else
                    ~/.config/mailpool/config)
Connecting to the daemon (the --daemon- options are about mailpoold itself; `start`'s
--ca and --token-file are about the mail server):
  --daemon-token-file F  caller token file, sent as `authorization: Bearer` on every call
                    (default: the token in $MAILPOOL_TOKEN, else the file
                    $MAILPOOL_TOKEN_FILE); the token is never printed
  --daemon-ca F     TLS to the daemon, trusting the CA certificate(s) in PEM file F
  --daemon-tls      TLS to the daemon with the system's CAs
  --daemon-cert F, --daemon-key F   client certificate and key (PEM) for mutual TLS
  --daemon-server-name N   name to verify in the daemon's certificate (default: its host)
  --json            JSON for scripts (streams: one object per line; errors: a JSON
                    object on stderr)
  --call-timeout D  deadline of each call (e.g. 30s, 2m; default: each command's own,
                    30 s for most, longer for sending and transfers; streams: none).
  --timeout D       the same, before the command name or after a command without a
                    --timeout of its own (`start --timeout` and `update --timeout` are
                    the mail server's silence timeout, not the call's)
  (a password prompt: `start --user U` without --password*/--token* asks for the
  password on the terminal, without echo, when stdin is one)
  --progress        draw progress bars on stderr even when it is not a terminal
  --version         the CLI's version
  --help            this text, or a command's

Exit codes: 0 ok, 1 local failure (a file), 2 usage error, 3 negative answer (a
recipient refused, a send that failed or was cancelled, an address not VALID, the daemon
not SERVING), 4 the daemon not reachable (refused, TLS failed, no answer), 10 + the gRPC
code when the daemon refused the call: 13 INVALID_ARGUMENT,
15 NOT_FOUND, 16 ALREADY_EXISTS, 19 FAILED_PRECONDITION, 22 UNIMPLEMENTED,
24 UNAVAILABLE, 26 UNAUTHENTICATED.
)";

void PrintUsage(FILE* out, const std::vector<Command>& commands) {
  fputs("mailpool - command-line client for mailpoold\n\nUsage: ", out);
  bool first = true;
  for (absl::string_view line : absl::StrSplit(absl::StripSuffix(kSynopsis, "\n"), '\n')) {
    fprintf(out, "%s%s\n", first ? "" : "       ", std::string(line).c_str());
    first = false;
  }
  fputs("\nCommands:\n", out);
  for (const auto& c : commands) fprintf(out, "  %-14s %s\n", c.name, c.summary);
  fputs(kUsageTail, out);
}

// One connection setting: the option, else the explicitly chosen context's (--context,
// $MAILPOOL_CONTEXT), else the environment's (`from_env`, "" when unset), else the file's
// current context's.
std::string Setting(const Args& args, const char* option, const Context* context,
                    bool explicit_context, const char* key, const std::string& from_env) {
  if (args.Has(option)) return args.Get(option);
  std::string from_context;
  if (context != nullptr) {
    auto it = context->values.find(key);
    if (it != context->values.end()) from_context = it->second;
  }
  if (explicit_context && !from_context.empty()) return from_context;
  if (!from_env.empty()) return from_env;
  return from_context;
}

std::string Getenv(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

bool IsMeta(const Command& c) {
  return std::string(c.name) == "completion" || std::string(c.name) == "manpage" ||
         std::string(c.name) == "contexts";
}

}  // namespace

std::vector<Command> AllCommands() {
  std::vector<Command> all;
  for (auto family :
       {SessionCommands, MailboxCommands, TransferCommands, SendCommands, MetaCommands}) {
    for (auto& c : family()) all.push_back(std::move(c));
  }
  return all;
}

std::string UsageSynopsis() { return kSynopsis; }
std::string UsageOptions() { return std::string(absl::StripPrefix(kUsageTail, "\n")); }
const char* CliVersion() { return MAILPOOL_VERSION; }

namespace {

int Main(int argc, char** argv) {
  const std::vector<Command> commands = AllCommands();
  const Command* command = nullptr;
  Args args;
  try {
    ParseCommandLine(argc, argv, commands, &command, &args);
    if (args.Has("version")) {
      printf("mailpool %s\n", MAILPOOL_VERSION);
      return kExitOk;
    }
    if (command == nullptr) {
      PrintUsage(args.Has("help") ? stdout : stderr, commands);
      return args.Has("help") ? kExitOk : kExitUsage;
    }
    if (args.Has("help")) {
      fputs(command->usage, stdout);
      return kExitOk;
    }
    if (args.Has("call-timeout")) {
      absl::Duration d;
      if (!absl::ParseDuration(args.Get("call-timeout"), &d) || d <= absl::ZeroDuration()) {
        Usage("--call-timeout / --timeout: not a duration (e.g. 30s, 2m)");
      }
      SetTimeoutOverride(std::chrono::milliseconds(absl::ToInt64Milliseconds(d)));
    }
    Env env;
    env.json = args.Has("json");
    env.progress = args.Has("progress") || (!env.json && isatty(STDERR_FILENO));
    if (IsMeta(*command)) return command->run(env, args);
    // The context: --context, else $MAILPOOL_CONTEXT (both explicit), else current-context.
    Config config = LoadConfig(args);
    std::string context_name = args.Get("context", Getenv("MAILPOOL_CONTEXT"));
    bool explicit_context = !context_name.empty();
    if (!explicit_context) context_name = config.current;
    const Context* context = nullptr;
    if (!context_name.empty()) {
      context = config.Find(context_name);
      if (context == nullptr) {
        Usage(absl::StrCat("no context ", context_name, " in ", config.path));
      }
    }
    auto setting = [&](const char* option, const char* key, const std::string& from_env = "") {
      return Setting(args, option, context, explicit_context, key, from_env);
    };
    std::string addr = setting("addr", "addr", Getenv("MAILPOOL_ADDR"));
    if (addr.empty()) addr = "127.0.0.1:50551";
    mailpool::ConnectOptions connect;
    // A token in the environment beats the current context's token file, not a chosen one's.
    bool env_token = !Getenv("MAILPOOL_TOKEN").empty() || !Getenv("MAILPOOL_TOKEN_FILE").empty();
    connect.token_file = args.Get("daemon-token-file");
    if (connect.token_file.empty() && context != nullptr && context->values.count("token-file") &&
        (explicit_context || !env_token)) {
      connect.token_file = context->values.at("token-file");
    }
    connect.tls = args.Has("daemon-tls") || (context != nullptr && context->values.count("tls") &&
                                             context->values.at("tls") == "true");
    connect.ca_file = setting("daemon-ca", "ca");
    connect.cert_file = setting("daemon-cert", "cert");
    connect.key_file = setting("daemon-key", "key");
    connect.tls_server_name = setting("daemon-server-name", "server-name");
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = mailpool::CreateChannel(addr, connect);
    if (!channel.ok()) {
      fprintf(stderr, "mailpool: %s\n", std::string(channel.status().message()).c_str());
      return kExitFailure;
    }
    env.channel = *std::move(channel);
    return command->run(env, args);
  } catch (const UsageError& e) {
    fprintf(stderr, "mailpool: %s (see mailpool %s--help)\n", e.message.c_str(),
            command ? absl::StrCat(command->name, " ").c_str() : "");
    return kExitUsage;
  } catch (const std::exception& e) {
    fprintf(stderr, "mailpool: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace
}  // namespace mailpool::cli

int main(int argc, char** argv) { return mailpool::cli::Main(argc, argv); }
