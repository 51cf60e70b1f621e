// Shared pieces of the `mailpool` CLI: the command table, argument parsing, output (tables,
// JSON, progress bar), error reporting and the exit-code convention.
//
// Each command family lives in its own file and contributes a list of Commands:
//
//   std::vector<Command> SessionCommands() {
//     return {{"sessions", "list your sessions", "Usage: mailpool sessions\n", {},
//              [](const Env& env, const Args& args) -> int { ... return kExitOk; }}};
//   }
//
// Handlers throw UsageError (via Usage()) for bad arguments and return Fail(status, ctx)
// when the daemon refuses a call. The gRPC and protobuf headers are included here on
// purpose: this header is only used by the CLI's own files.
#ifndef MAILPOOL_CLIENT_CLI_CLI_H_
#define MAILPOOL_CLIENT_CLI_CLI_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "mailpool/v1/mailbox.pb.h"
#include "mailpool/v1/message.pb.h"

namespace mailpool::cli {

namespace v1 = mailpool::v1;

// Exit codes (documented in `mailpool --help` and the README).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // local failure (a file, the network before a call)
inline constexpr int kExitUsage = 2;
// The call worked but the answer is negative: a recipient refused, a send that ended in
// ERROR or CANCELLED, an address that is not VALID, a daemon that is not SERVING.
inline constexpr int kExitNegative = 3;
// The daemon itself could not be reached (connection refused, TLS handshake failed, no
// answer): UNAVAILABLE without the daemon's error details. UNAVAILABLE from the daemon
// (a mail server unreachable) stays 10 + 14 = 24.
inline constexpr int kExitDaemonUnreachable = 4;
inline constexpr int kExitGrpcBase = 10;  // 10 + the gRPC status code the daemon returned

// The parsed command line after the command name.
struct Args {
  std::vector<std::string> positional;
  // --key value (repeatable: every value in order) or --switch (one empty value).
  std::map<std::string, std::vector<std::string>> options;

  bool Has(const std::string& key) const { return options.count(key) > 0; }
  // The last value given for `key`, or `def`.
  std::string Get(const std::string& key, const std::string& def = "") const;
  // Every value given for `key`, in order.
  std::vector<std::string> All(const std::string& key) const;
};

// What every handler gets besides its arguments.
struct Env {
  std::shared_ptr<grpc::Channel> channel;
  bool json = false;
  // Draw a progress bar on stderr (stderr is a TTY and no --json, or --progress).
  bool progress = false;
};

using Handler = int (*)(const Env& env, const Args& args);

struct Command {
  const char* name;
  const char* summary;  // one line for `mailpool --help`
  const char* usage;    // the whole `mailpool COMMAND --help` text
  // Options the command accepts besides the global ones: "name=" takes a value (and may be
  // repeated), "name" is a switch.
  std::vector<std::string> options;
  Handler run;
};

std::vector<Command> SessionCommands();
std::vector<Command> MailboxCommands();
std::vector<Command> TransferCommands();
std::vector<Command> SendCommands();
std::vector<Command> MetaCommands();  // completion, manpage, contexts (no daemon call)

// Every command, in `mailpool --help` order.
std::vector<Command> AllCommands();
// Options every command accepts ("name=" takes a value).
const std::vector<std::string>& GlobalOptions();
// Pieces of `mailpool --help`, for the man page.
std::string UsageSynopsis();
std::string UsageOptions();
const char* CliVersion();

// The config file: named contexts that say how to reach a daemon (see kConfigHelp).
extern const char kConfigHelp[];
struct Context {
  std::string name;
  // addr, token-file, ca, cert, key, server-name, tls; file paths already resolved
  // (~/ and relative to the config file's directory).
  std::map<std::string, std::string> values;
};
struct Config {
  std::string path;     // where it was looked for (may not exist)
  std::string current;  // its current-context ("" when none)
  std::vector<Context> contexts;
  const Context* Find(const std::string& name) const;
};
// Reads the config file --config / $MAILPOOL_CONFIG / the XDG default names. A missing file
// is an empty config unless it was named explicitly; a malformed one is a usage error
// (file:line).
Config LoadConfig(const Args& args);
// Makes `name` the file's current-context (rewrites the file through a temporary one).
void SetCurrentContext(const std::string& path, const std::string& name);

// Asks for a secret on the terminal without echo, when stdin is one; "" when it is not.
std::string PromptSecret(const std::string& prompt);

// A bad command line: reported with a pointer to --help, exit kExitUsage.
struct UsageError {
  std::string message;
};
[[noreturn]] void Usage(const std::string& message);

// Parses argv against the command table. Sets *command (nullptr when none was given) and
// *args; global options land in args too. Throws UsageError.
void ParseCommandLine(int argc, char** argv, const std::vector<Command>& commands,
                      const Command** command, Args* args);

// Reports a failed call on stderr (as JSON with --json) and returns 10 + its gRPC code.
int Fail(const Env& env, const grpc::Status& status, const grpc::ClientContext& context);

// Sets the call's deadline: `seconds` from now, or the global --timeout when one was given.
void SetDeadline(grpc::ClientContext* ctx, int seconds);
// The global --timeout (zero: each command's own default).
void SetTimeoutOverride(std::chrono::milliseconds timeout);

// Exactly one positional argument named `what`, or a usage error.
const std::string& Positional(const Args& args, size_t index, const char* what);

// Protobuf message as JSON (proto field names; `compact` = one line, for JSON Lines).
std::string Json(const google::protobuf::Message& m, bool compact = false);
void PrintJson(const google::protobuf::Message& m, bool compact = false);
// With --json prints `m` as JSON, else runs `text` (which prints the readable form).
template <typename TextFn>
void Output(const Env& env, const google::protobuf::Message& m, TextFn text) {
  if (env.json) {
    PrintJson(m);
  } else {
    text();
  }
}
// A JSON object built field by field, for outputs that are not one proto message.
class JsonObject {
 public:
  JsonObject& Set(const std::string& key, const std::string& value);
  JsonObject& Set(const std::string& key, const char* value) {
    return Set(key, std::string(value));
  }
  JsonObject& Set(const std::string& key, double value);
  JsonObject& Set(const std::string& key, bool value);
  JsonObject& Set(const std::string& key, const JsonObject& value);
  JsonObject& Set(const std::string& key, const google::protobuf::Message& value);
  JsonObject& Set(const std::string& key, const std::vector<JsonObject>& values);
  void Print() const { PrintJson(s_); }
  const google::protobuf::Struct& proto() const { return s_; }

 private:
  google::protobuf::Struct s_;
};

// A plain-text table: columns padded to their widest cell (the last one is not padded).
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void Add(std::vector<std::string> row);
  void Print() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// A one-line progress bar on stderr, redrawn at most every 100 ms; nothing when disabled.
// It shows the count, the bytes, the rate (bytes and items per second) and, while running,
// the time left at that rate ("ETA 1:05", "ETA --" before the first item); the final line
// shows the average rate and the time taken ("in 0:12").
class Progress {
 public:
  Progress(bool enabled, std::string label, uint64_t total);
  ~Progress();
  void SetTotal(uint64_t total) { total_ = total; }
  // `done` items so far, `bytes` transferred so far.
  void Update(uint64_t done, uint64_t bytes);
  // Draws the final state and ends the line.
  void Finish();

 private:
  void Draw();
  bool enabled_;
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  uint64_t bytes_ = 0;
  bool drawn_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_;
};

// "0:07", "12:03", "1:02:03" (whole seconds).
std::string FormatClock(double seconds);

// Cancels a streaming call on SIGINT/SIGTERM (Ctrl-C), so the handler can finish it
// cleanly. Lives for the duration of the stream.
class CancelOnSignal {
 public:
  explicit CancelOnSignal(grpc::ClientContext* ctx);
  ~CancelOnSignal();
  bool signalled() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Parsing and formatting of common values.
void SetDuration(const std::string& text, const char* flag, google::protobuf::Duration* out);
int ParseInt(const std::string& text, const char* flag, int min, int max);
std::string ReadFile(const std::string& path);  // "-" is stdin; Usage() when unreadable
std::string BaseName(const std::string& path);
v1::Address ParseAddress(const std::string& text);  // "Name <a@b>" or "a@b"
std::string FormatAddress(const v1::Address& a);
std::string FormatTime(const google::protobuf::Timestamp& t);
std::string FormatBytes(uint64_t bytes);
// `text` cut to at most `max` code points, ending with "…" when cut (never inside a UTF-8
// sequence).
std::string Ellipsize(const std::string& text, size_t max);
// "seen,flagged,$Work" (also "\Seen"); Usage() on an empty or malformed name.
v1::Flags ParseFlags(const std::string& list, const char* flag);
void MergeFlags(const v1::Flags& from, v1::Flags* into);
std::string FormatFlags(const v1::Flags& f);
// Lower-case enum value name without its prefix: Short(v1::SEND_STATE_QUEUED, "SEND_STATE_").
std::string ShortName(const std::string& full, const char* prefix);
// Status of a watched stream that the user or a deadline ended on purpose.
bool EndedOnPurpose(const grpc::Status& status, bool signalled);

}  // namespace mailpool::cli

#endif  // MAILPOOL_CLIENT_CLI_CLI_H_
