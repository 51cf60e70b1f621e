// Shared pieces of the `mailpool` CLI (see cli.h): argument parsing, output, errors.
//
//   mailpool::cli::Table t({"ID", "STATE"});
//   t.Add({"ms1_abc", "ready"});
//   t.Print();
#include "cli.h"

#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "mailpool/client.h"
#include "mailpool/v1/errors.pb.h"

namespace mailpool::cli {

namespace {

// Options every command accepts.
const std::vector<std::string> kGlobalOptions = {
    "addr=",         "json",       "help",         "progress",    "daemon-token-file=",
    "daemon-ca=",    "daemon-tls", "daemon-cert=", "daemon-key=", "daemon-server-name=",
    "call-timeout=", "version",    "context=",     "config="};

std::chrono::milliseconds g_timeout_override{0};

// Finds `name` in `options` (entries "name" or "name="). Returns false when absent.
bool LookupOption(const std::vector<std::string>& options, const std::string& name,
                  bool* takes_value) {
  for (const auto& o : options) {
    if (o == name || o == name + "=") {
      *takes_value = absl::EndsWith(o, "=");
      return true;
    }
  }
  return false;
}

const char* CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

// Display width of UTF-8 text: code points, not bytes (good enough for a table).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

const std::vector<std::string>& GlobalOptions() { return kGlobalOptions; }

std::string Args::Get(const std::string& key, const std::string& def) const {
  auto it = options.find(key);
  return it == options.end() || it->second.empty() ? def : it->second.back();
}

std::vector<std::string> Args::All(const std::string& key) const {
  auto it = options.find(key);
  return it == options.end() ? std::vector<std::string>{} : it->second;
}

void Usage(const std::string& message) { throw UsageError{message}; }

void ParseCommandLine(int argc, char** argv, const std::vector<Command>& commands,
                      const Command** command, Args* args) {
  *command = nullptr;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (!options_done && a == "--") {
      options_done = true;
      continue;
    }
    if (!options_done && (a == "-h")) a = "--help";
    if (options_done || !absl::StartsWith(a, "--")) {
      if (*command != nullptr) {
        args->positional.push_back(a);
        continue;
      }
      for (const auto& c : commands) {
        if (a == c.name) *command = &c;
      }
      if (*command == nullptr) Usage(absl::StrCat("unknown command: ", a));
      continue;
    }
    std::string key = a.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key.resize(eq);
      has_value = true;
    }
    bool takes_value = false;
    // --timeout is --call-timeout's alias, except after a command that has a --timeout of
    // its own (start, update: the mail server's silence timeout).
    if (key == "timeout" &&
        (*command == nullptr || !LookupOption((*command)->options, key, &takes_value))) {
      key = "call-timeout";
    }
    if (!LookupOption(kGlobalOptions, key, &takes_value) &&
        (*command == nullptr || !LookupOption((*command)->options, key, &takes_value))) {
      Usage(*command == nullptr
                ? absl::StrCat("unknown option --", key, " (options of a command go after it)")
                : absl::StrCat("unknown option --", key, " for ", (*command)->name));
    }
    if (takes_value && !has_value) {
      if (i + 1 >= argc) Usage(absl::StrCat("--", key, " needs a value"));
      value = argv[++i];
    } else if (!takes_value && has_value) {
      Usage(absl::StrCat("--", key, " takes no value"));
    }
    args->options[key].push_back(value);
  }
}

int Fail(const Env& env, const grpc::Status& status, const grpc::ClientContext& context) {
  // One decoding of the trailers, the C++ client's: the ErrorDetail and the standard
  // google.rpc details (ErrorInfo, RetryInfo, BadRequest).
  absl::Status st = mailpool::FromGrpc(status, context);
  std::optional<v1::ErrorDetail> detail = mailpool::ErrorDetailOf(st);
  std::optional<google::rpc::ErrorInfo> info = mailpool::ErrorInfoOf(st);
  std::optional<absl::Duration> retry = mailpool::RetryDelayOf(st);
  std::vector<google::rpc::BadRequest::FieldViolation> violations = mailpool::FieldViolationsOf(st);
  int exit_code = kExitGrpcBase + static_cast<int>(status.error_code());
  // Every refusal of the daemon carries its ErrorInfo (domain mailpool.dev); UNAVAILABLE
  // without one was said by gRPC itself: the daemon was not reached.
  bool from_daemon = info && info->domain() == "mailpool.dev";
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !from_daemon) {
    exit_code = kExitDaemonUnreachable;
  }
  if (env.json) {
    JsonObject error;
    error.Set("code", std::string(CodeName(status.error_code())))
        .Set("exit_code", static_cast<double>(exit_code))
        .Set("message", status.error_message());
    if (detail) error.Set("detail", *detail);
    if (info) error.Set("error_info", *info);
    if (retry) error.Set("retry_delay_seconds", absl::ToDoubleSeconds(*retry));
    if (!violations.empty()) {
      std::vector<JsonObject> list;
      for (const auto& v : violations) {
        list.push_back(JsonObject().Set("field", v.field()).Set("description", v.description()));
      }
      error.Set("field_violations", list);
    }
    JsonObject out;
    out.Set("error", error);
    fprintf(stderr, "%s\n", Json(out.proto(), /*compact=*/true).c_str());
    return exit_code;
  }
  fprintf(stderr, "mailpool: %s: %s\n", CodeName(status.error_code()),
          status.error_message().c_str());
  if (exit_code == kExitDaemonUnreachable) {
    fprintf(stderr, "  the daemon could not be reached (see --addr and the --daemon-* options)\n");
  }
  std::string reason = detail && !detail->reason().empty() ? detail->reason()
                       : info                              ? info->reason()
                                                           : "";
  if (!reason.empty() && reason != CodeName(status.error_code())) {
    fprintf(stderr, "  reason: %s\n", reason.c_str());
  }
  std::string command = detail ? detail->command() : "";
  if (command.empty() && info && info->metadata().count("command")) {
    command = info->metadata().at("command");
  }
  if (!command.empty()) fprintf(stderr, "  command: %s\n", command.c_str());
  for (const auto& v : violations) {
    fprintf(stderr, "  field %s: %s\n", v.field().c_str(), v.description().c_str());
  }
  if (retry) fprintf(stderr, "  retry after: %s\n", absl::FormatDuration(*retry).c_str());
  return exit_code;
}

void SetDeadline(grpc::ClientContext* ctx, int seconds) {
  std::chrono::milliseconds d = g_timeout_override.count() > 0
                                    ? g_timeout_override
                                    : std::chrono::milliseconds(std::chrono::seconds(seconds));
  ctx->set_deadline(std::chrono::system_clock::now() + d);
}

void SetTimeoutOverride(std::chrono::milliseconds timeout) { g_timeout_override = timeout; }

const std::string& Positional(const Args& args, size_t index, const char* what) {
  if (args.positional.size() <= index) Usage(absl::StrCat("missing ", what));
  return args.positional[index];
}

std::string Json(const google::protobuf::Message& m, bool compact) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = !compact;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  if (!compact && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void PrintJson(const google::protobuf::Message& m, bool compact) {
  std::string s = Json(m, compact);
  fwrite(s.data(), 1, s.size(), stdout);
  fputc('\n', stdout);
  if (compact) fflush(stdout);  // JSON Lines streams are read as they come
}

JsonObject& JsonObject::Set(const std::string& key, const std::string& value) {
  (*s_.mutable_fields())[key].set_string_value(value);
  return *this;
}
JsonObject& JsonObject::Set(const std::string& key, double value) {
  (*s_.mutable_fields())[key].set_number_value(value);
  return *this;
}
JsonObject& JsonObject::Set(const std::string& key, bool value) {
  (*s_.mutable_fields())[key].set_bool_value(value);
  return *this;
}
JsonObject& JsonObject::Set(const std::string& key, const JsonObject& value) {
  *(*s_.mutable_fields())[key].mutable_struct_value() = value.s_;
  return *this;
}
JsonObject& JsonObject::Set(const std::string& key, const google::protobuf::Message& value) {
  // Through JSON, so the embedded message reads exactly as Json(value) would.
  (void)google::protobuf::util::JsonStringToMessage(
      Json(value, true), (*s_.mutable_fields())[key].mutable_struct_value());
  return *this;
}
JsonObject& JsonObject::Set(const std::string& key, const std::vector<JsonObject>& values) {
  auto* list = (*s_.mutable_fields())[key].mutable_list_value();
  for (const auto& v : values) *list->add_values()->mutable_struct_value() = v.s_;
  return *this;
}

Table::Table(std::vector<std::string> headers) { rows_.push_back(std::move(headers)); }

void Table::Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

std::string Ellipsize(const std::string& text, size_t max) {
  if (max == 0 || Width(text) <= max) return text;
  size_t points = 0, i = 0;
  for (; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (points == max - 1) break;  // room for the ellipsis
      ++points;
    }
  }
  return text.substr(0, i) + "\xE2\x80\xA6";  // U+2026
}

void Table::Print() const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], Width(row[i]));
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - Width(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    puts(line.c_str());
  }
}

Progress::Progress(bool enabled, std::string label, uint64_t total)
    : enabled_(enabled), label_(std::move(label)), total_(total) {}

Progress::~Progress() {
  if (drawn_ && !finished_) fputc('\n', stderr);  // leave the shell prompt on a fresh line
}

void Progress::Update(uint64_t done, uint64_t bytes) {
  done_ = done;
  bytes_ = bytes;
  if (done_ >= total_ && total_ > 0) return;  // Finish() draws the final state
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  Draw();
}

void Progress::Finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  Draw();
  fputc('\n', stderr);
}

void Progress::Draw() {
  if (!enabled_) return;
  constexpr int kBar = 30;
  int filled = total_ == 0 ? kBar : static_cast<int>(kBar * std::min(done_, total_) / total_);
  std::string bar = std::string(filled, '#') + std::string(kBar - filled, '-');
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string rate;
  if (elapsed > 0) {
    rate = absl::StrFormat("  %s/s %.1f/s", FormatBytes(static_cast<uint64_t>(bytes_ / elapsed)),
                           done_ / elapsed);
  }
  // The final line says how long it took; before that, the time left at the rate so far.
  std::string when;
  if (finished_ || (total_ > 0 && done_ >= total_)) {
    when = "  in " + FormatClock(elapsed);
  } else if (done_ > 0 && total_ > done_) {
    when = "  ETA " + FormatClock(elapsed * static_cast<double>(total_ - done_) / done_);
  } else {
    when = "  ETA --";
  }
  // On a terminal, erase what a longer previous line left; in a file, just a space.
  fprintf(stderr, "\r%s [%s] %llu/%llu  %s%s%s%s", label_.c_str(), bar.c_str(),
          static_cast<unsigned long long>(done_), static_cast<unsigned long long>(total_),
          FormatBytes(bytes_).c_str(), rate.c_str(), when.c_str(),
          isatty(STDERR_FILENO) ? "\x1b[K" : " ");
  fflush(stderr);
  drawn_ = true;
}

std::string FormatClock(double seconds) {
  long long s = seconds < 0 ? 0 : static_cast<long long>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return absl::StrFormat("%lld:%02lld", s / 60, s % 60);
}

// A self-pipe: the signal handler writes a byte (async-signal-safe), a thread reads it and
// cancels the call (TryCancel is not safe inside a signal handler).
struct CancelOnSignal::State {
  int pipe[2] = {-1, -1};
  std::thread thread;
  bool signalled = false;
  struct sigaction old_int {};
  struct sigaction old_term {};
};

namespace {
int g_signal_fd = -1;
void OnSignal(int) {
  char c = 's';
  if (g_signal_fd >= 0) (void)!write(g_signal_fd, &c, 1);
}
}  // namespace

CancelOnSignal::CancelOnSignal(grpc::ClientContext* ctx) : state_(new State) {
  if (pipe2(state_->pipe, O_CLOEXEC) != 0) return;
  g_signal_fd = state_->pipe[1];
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &state_->old_int);
  sigaction(SIGTERM, &sa, &state_->old_term);
  State* s = state_.get();
  state_->thread = std::thread([s, ctx] {
    char c = 0;
    while (read(s->pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    if (c == 's') {
      s->signalled = true;
      ctx->TryCancel();
    }
  });
}

CancelOnSignal::~CancelOnSignal() {
  if (state_->pipe[0] < 0) return;
  sigaction(SIGINT, &state_->old_int, nullptr);
  sigaction(SIGTERM, &state_->old_term, nullptr);
  g_signal_fd = -1;
  char c = 'q';
  (void)!write(state_->pipe[1], &c, 1);
  state_->thread.join();
  close(state_->pipe[0]);
  close(state_->pipe[1]);
}

bool CancelOnSignal::signalled() const { return state_->signalled; }

std::string PromptSecret(const std::string& prompt) {
  if (!isatty(STDIN_FILENO)) return "";
  struct termios old {};
  if (tcgetattr(STDIN_FILENO, &old) != 0) return "";
  struct termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL);
  quiet.c_lflag |= ICANON;
  // Echo goes off before the prompt is shown (so nothing typed at it is echoed), and comes
  // back whatever happens.
  if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) return "";
  fputs(prompt.c_str(), stderr);
  fflush(stderr);
  std::string secret;
  char c;
  while (read(STDIN_FILENO, &c, 1) == 1 && c != '\n' && c != '\r') secret.push_back(c);
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
  fputc('\n', stderr);
  return secret;
}

bool EndedOnPurpose(const grpc::Status& status, bool signalled) {
  return status.ok() || (signalled && status.error_code() == grpc::StatusCode::CANCELLED) ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

void SetDuration(const std::string& text, const char* flag, google::protobuf::Duration* out) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration()) {
    Usage(absl::StrCat("--", flag, ": not a duration (e.g. 30s, 5m): ", text));
  }
  out->set_seconds(absl::ToInt64Seconds(d));
  out->set_nanos(static_cast<int>(absl::ToInt64Nanoseconds(d - absl::Seconds(out->seconds()))));
}

int ParseInt(const std::string& text, const char* flag, int min, int max) {
  int n = 0;
  if (!absl::SimpleAtoi(text, &n) || n < min || n > max) {
    Usage(absl::StrCat("--", flag, ": not a number in ", min, "..", max, ": ", text));
  }
  return n;
}

std::string ReadFile(const std::string& path) {
  if (path == "-") {
    return std::string((std::istreambuf_iterator<char>(std::cin)),
                       std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) Usage(absl::StrCat("cannot read ", path));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string BaseName(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

v1::Address ParseAddress(const std::string& text) {
  v1::Address a;
  absl::string_view t = absl::StripAsciiWhitespace(text);
  size_t lt = t.rfind('<');
  if (lt != absl::string_view::npos && absl::EndsWith(t, ">")) {
    absl::string_view name = absl::StripAsciiWhitespace(t.substr(0, lt));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = name.substr(1, name.size() - 2);
    }
    a.set_name(std::string(name));
    a.set_address(std::string(t.substr(lt + 1, t.size() - lt - 2)));
  } else {
    a.set_address(std::string(t));
  }
  if (a.address().empty()) Usage(absl::StrCat("not an address: ", text));
  return a;
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

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (bytes < 1024 * 1024) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  return absl::StrFormat("%.1f MiB", bytes / (1024.0 * 1024.0));
}

v1::Flags ParseFlags(const std::string& list, const char* flag) {
  v1::Flags f;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    std::string name(absl::StripAsciiWhitespace(part));
    std::string lower = absl::AsciiStrToLower(absl::StripPrefix(name, "\\"));
    if (lower == "seen" || lower == "read") {
      f.set_seen(true);
    } else if (lower == "answered" || lower == "replied") {
      f.set_answered(true);
    } else if (lower == "flagged" || lower == "starred") {
      f.set_flagged(true);
    } else if (lower == "deleted") {
      f.set_deleted(true);
    } else if (lower == "draft") {
      f.set_draft(true);
    } else if (absl::StartsWith(name, "\\") || lower == "recent") {
      Usage(absl::StrCat("--", flag, ": not a settable system flag: ", name));
    } else {
      // Keywords are checked by the daemon (IMAP atom rules); only the obvious here.
      for (char c : name) {
        if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
          Usage(absl::StrCat("--", flag, ": a keyword has no spaces or control characters"));
        }
      }
      f.add_keywords(name);
    }
  }
  return f;
}

void MergeFlags(const v1::Flags& from, v1::Flags* into) {
  into->set_seen(into->seen() || from.seen());
  into->set_answered(into->answered() || from.answered());
  into->set_flagged(into->flagged() || from.flagged());
  into->set_deleted(into->deleted() || from.deleted());
  into->set_draft(into->draft() || from.draft());
  for (const auto& k : from.keywords()) {
    if (std::find(into->keywords().begin(), into->keywords().end(), k) == into->keywords().end()) {
      into->add_keywords(k);
    }
  }
}

std::string FormatFlags(const v1::Flags& f) {
  std::vector<std::string> names;
  if (f.seen()) names.push_back("seen");
  if (f.answered()) names.push_back("answered");
  if (f.flagged()) names.push_back("flagged");
  if (f.deleted()) names.push_back("deleted");
  if (f.draft()) names.push_back("draft");
  if (f.recent()) names.push_back("recent");
  for (const auto& k : f.keywords()) names.push_back(k);
  return names.empty() ? "-" : absl::StrJoin(names, ",");
}

std::string ShortName(const std::string& full, const char* prefix) {
  return absl::AsciiStrToLower(absl::StripPrefix(full, prefix));
}

}  // namespace mailpool::cli
