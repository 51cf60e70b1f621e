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
#include "absl/time/time.h"
#include "cli.h"
#include "mailpool/client.h"

namespace mailpool::cli {
namespace {

constexpr char kUsageHead[] = R"(mailpool - command-line client for mailpoold

Usage: mailpool [--addr HOST:PORT|unix:PATH] [--daemon-token-file F] [--daemon-ca F]
                [--json] COMMAND [arguments] [options]
       mailpool COMMAND --help

Commands:
)";

constexpr char kUsageTail[] = R"(
SESSION is a session ID or the --name given to `start`.

Global options (anywhere on the line):
  --addr HOST:PORT  daemon address (default $MAILPOOL_ADDR or 127.0.0.1:50551);
                    unix:/path/to.sock for the daemon's Unix socket
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
                    30 s for most, longer for sending and transfers; streams: none)
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

std::vector<Command> AllCommands() {
  std::vector<Command> all;
  for (auto family : {SessionCommands, MailboxCommands, TransferCommands, SendCommands}) {
    for (auto& c : family()) all.push_back(std::move(c));
  }
  return all;
}

void PrintUsage(FILE* out, const std::vector<Command>& commands) {
  fputs(kUsageHead, out);
  for (const auto& c : commands) fprintf(out, "  %-14s %s\n", c.name, c.summary);
  fputs(kUsageTail, out);
}

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
        Usage("--call-timeout: not a duration (e.g. 30s, 2m)");
      }
      SetTimeoutOverride(std::chrono::milliseconds(absl::ToInt64Milliseconds(d)));
    }
    Env env;
    env.json = args.Has("json");
    env.progress = args.Has("progress") || (!env.json && isatty(STDERR_FILENO));
    const char* env_addr = std::getenv("MAILPOOL_ADDR");
    std::string addr = args.Get("addr", env_addr ? env_addr : "127.0.0.1:50551");
    mailpool::ConnectOptions connect;
    connect.token_file = args.Get("daemon-token-file");
    connect.tls = args.Has("daemon-tls");
    connect.ca_file = args.Get("daemon-ca");
    connect.cert_file = args.Get("daemon-cert");
    connect.key_file = args.Get("daemon-key");
    connect.tls_server_name = args.Get("daemon-server-name");
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
