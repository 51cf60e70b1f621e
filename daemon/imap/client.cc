#include "imap/client.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/secret.h"
#include "common/status.h"
#include "imap/mailbox_name.h"
#include "imap/syntax.h"
#include "wire/line_reader.h"
#include "wire/sasl.h"

namespace mailpool::imap {
namespace {

using wire::Mechanism;
using wire::Security;
using Kind = StatusResponse::Kind;

// One physical line from the server; capability lists and FLAGS fit easily.
constexpr size_t kMaxLine = 64 * 1024;
// One response with its literals skipped: the text parts of all its lines together.
constexpr size_t kMaxResponse = 256 * 1024;
// RFC 7888 section 4: LITERAL- allows non-synchronizing literals of up to 4096 bytes.
constexpr size_t kLiteralMinusMax = 4096;
// How much of an OAuth error challenge ends up in the error message.
constexpr size_t kMaxErrorDetail = 256;

// The IMAP4rev1 client. Thread-compatible; loop-confined in the daemon.
class ClientImpl final : public Client {
 public:
  explicit ClientImpl(Options options);
  ~ClientImpl() override { WipeAuthState(); }

  void OnBytes(absl::string_view data) override;
  std::string TakeOutput() override { return std::exchange(out_, std::string()); }
  Phase phase() const override;
  const absl::Status& error() const override { return error_; }
  void OnTlsEstablished() override;
  void StartNoop() override;
  void StartLogout() override;
  const wire::ServerInfo& info() const override { return info_; }
  const std::string& last_reply() const override { return last_reply_; }

  bool HasCapability(absl::string_view name) const override;
  bool utf8_enabled() const override { return false; }
  bool condstore_enabled() const override { return false; }
  bool selected() const override { return selected_; }
  const MailboxState& mailbox() const override { return mailbox_; }
  void SetEventCallback(EventCallback callback) override { events_ = std::move(callback); }
  void StartList(std::string, ListDone) override { Unimplemented("LIST"); }
  void StartSelect(std::string, bool) override { Unimplemented("SELECT"); }
  void StartCreate(std::string) override { Unimplemented("CREATE"); }
  void StartDelete(std::string) override { Unimplemented("DELETE"); }
  void StartRename(std::string, std::string) override { Unimplemented("RENAME"); }
  void StartSubscribe(std::string, bool) override { Unimplemented("SUBSCRIBE"); }
  void StartStatus(std::string, StatusDone) override { Unimplemented("STATUS"); }
  void StartUidSearch(std::vector<SearchArg>, SearchOptions, SearchDone) override {
    Unimplemented("UID SEARCH");
  }
  void StartUidFetch(UidSet, FetchRequest, FetchCallback) override { Unimplemented("UID FETCH"); }
  void StartUidStore(UidSet, StoreMode, std::vector<std::string>, bool, FetchCallback) override {
    Unimplemented("UID STORE");
  }
  void StartUidCopy(UidSet, std::string, CopyDone) override { Unimplemented("UID COPY"); }
  void StartUidMove(UidSet, std::string, CopyDone) override { Unimplemented("UID MOVE"); }
  void StartUidExpunge(UidSet) override { Unimplemented("UID EXPUNGE"); }
  void StartExpunge() override { Unimplemented("EXPUNGE"); }
  void StartAppend(std::string, AppendRequest, AppendDone) override { Unimplemented("APPEND"); }
  void StartIdle() override { Unimplemented("IDLE"); }
  void StopIdle() override {}
  bool idling() const override { return false; }

 private:
  // Where the client is. kCapability, kStartTls, kAuthenticate and kSelect are parts of
  // the login (Phase::kLoggingIn); kNoop and kLogout are Phase::kBusy.
  enum class Step {
    kGreeting,
    kCapability,
    kStartTls,
    kNeedTls,
    kAuthenticate,
    kSelect,
    kReady,
    kNoop,
    kLogout,
    kClosed,
    kFailed,
  };

  bool Stopped() const {
    return step_ == Step::kFailed || step_ == Step::kClosed || step_ == Step::kNeedTls;
  }

  // Splits the buffered bytes into responses, skipping literals, and handles each.
  void Drain();
  void HandleResponse(absl::string_view line);
  void HandleGreeting(absl::string_view line);
  void HandleUntagged(absl::string_view line, absl::string_view rest);
  void HandleContinuation(absl::string_view payload);
  void HandleTagged(absl::string_view line, const StatusResponse& status);
  void HandleAuthResult(absl::string_view line, const StatusResponse& status);
  void HandleBye(absl::string_view line);
  // Applies what a resp-text-code says (CAPABILITY, UIDVALIDITY, ...).
  void ApplyCode(absl::string_view code);
  void SetCapabilities(absl::string_view list);
  void Unimplemented(absl::string_view command) {
    error_ = absl::UnimplementedError(absl::StrCat("IMAP ", command, " is not implemented yet"));
  }

  // Issues the next login command, or enters kReady when the login is complete.
  void Continue();
  void StartAuthentication();
  void StartLoginCommand();
  void StartSasl(absl::string_view name, std::string initial_response);
  void SendCommand(Step step, absl::string_view command, absl::string_view trace);
  std::string NextTag() { return absl::StrCat("a", ++tag_counter_); }
  // Sends the next part of a LOGIN command split by synchronizing literals.
  void SendNextLoginSegment();
  void WipeAuthState();

  void Fail(absl::Status status);
  void Violation(absl::string_view what, absl::string_view line = {});

  Options options_;
  wire::LineReader reader_{kMaxLine};
  std::string out_;
  Step step_ = Step::kGreeting;
  absl::Status error_;
  wire::ServerInfo info_;
  std::string last_reply_;

  bool tls_active_ = false;
  bool caps_known_ = false;  // info_.capabilities is current for this login stage
  bool authenticated_ = false;
  bool selected_ = false;

  int tag_counter_ = 0;
  std::string current_tag_;    // tag of the command in flight, empty when none
  std::string current_trace_;  // its redacted form, for errors

  // Response assembly across literals.
  std::string response_;
  bool in_response_ = false;  // response_ continues after the literal being skipped
  uint64_t literal_left_ = 0;

  // Authentication in flight. Everything here may hold secrets and is wiped.
  Mechanism mechanism_ = Mechanism::kNone;
  std::string initial_response_;             // SASL response not yet sent
  std::vector<std::string> login_segments_;  // LOGIN parts after synchronizing literals
  size_t next_segment_ = 0;
  int auth_round_ = 0;  // continuations answered
  bool credentials_sent_ = false;
  std::string auth_detail_;  // decoded OAuth error challenge, sanitized

  MailboxState mailbox_;
  EventCallback events_;
};

ClientImpl::ClientImpl(Options options) : options_(std::move(options)) {
  const wire::LoginOptions& login = options_.login;
  tls_active_ = login.security == Security::kImplicitTls;
  const std::pair<absl::string_view, absl::string_view> fields[] = {
      {"user name", login.user},
      {"password", login.password.Reveal()},
      {"OAuth2 token", login.oauth2_token.Reveal()},
      {"host", login.host},
      {"initial folder", options_.initial_folder},
  };
  for (const auto& [name, value] : fields) {
    if (!wire::IsCommandSafe(value)) {
      Fail(ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                       absl::StrCat("the ", name, " contains CR, LF or NUL")));
      return;
    }
  }
  // mailbox = "INBOX" / astring; INBOX is case-insensitive (RFC 3501 section 5.1).
  absl::string_view folder = options_.initial_folder;
  if (folder.empty() || absl::EqualsIgnoreCase(folder, "INBOX")) folder = "INBOX";
  absl::StatusOr<std::string> encoded = EncodeMailboxName(folder);
  if (!encoded.ok()) {
    Fail(ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                     "the initial folder is not valid UTF-8"));
    return;
  }
  mailbox_.name = *std::move(encoded);
}

wire::ClientProtocol::Phase ClientImpl::phase() const {
  switch (step_) {
    case Step::kGreeting:
    case Step::kCapability:
    case Step::kStartTls:
    case Step::kAuthenticate:
    case Step::kSelect:
      return Phase::kLoggingIn;
    case Step::kNeedTls:
      return Phase::kNeedTls;
    case Step::kReady:
      return Phase::kReady;
    case Step::kNoop:
    case Step::kLogout:
      return Phase::kBusy;
    case Step::kClosed:
      return Phase::kClosed;
    case Step::kFailed:
      return Phase::kFailed;
  }
  return Phase::kFailed;
}

void ClientImpl::OnBytes(absl::string_view data) {
  if (step_ == Step::kFailed || step_ == Step::kClosed || data.empty()) return;
  if (step_ == Step::kNeedTls) {
    // RFC 3501 section 6.2.1: nothing may come between the tagged OK and the handshake;
    // plaintext here would be injected into the protected session.
    Violation("the server sent data after accepting STARTTLS, before the TLS handshake");
    return;
  }
  reader_.Append(data);
  Drain();
}

void ClientImpl::Drain() {
  while (!Stopped()) {
    if (literal_left_ > 0) {
      size_t n = static_cast<size_t>(
          std::min<uint64_t>(literal_left_, static_cast<uint64_t>(reader_.buffered())));
      if (n == 0) return;
      reader_.TakeBytes(n);  // literals in responses the client ignores are not kept
      literal_left_ -= n;
      continue;
    }
    std::optional<std::string> line = reader_.NextLine();
    if (!line) {
      if (!reader_.status().ok()) Violation(reader_.status().message());
      return;
    }
    if (in_response_) {
      response_ += *line;
    } else {
      response_ = *std::move(line);
    }
    if (response_.size() > kMaxResponse) {
      Violation(absl::StrCat("the server sent a response longer than ", kMaxResponse, " bytes"));
      return;
    }
    // Only untagged data carries literals; a tagged or continuation line is resp-text.
    if (step_ != Step::kGreeting && absl::StartsWith(response_, "* ")) {
      if (std::optional<uint64_t> size = TrailingLiteralSize(response_)) {
        in_response_ = true;
        literal_left_ = *size;
        continue;
      }
    }
    in_response_ = false;
    std::string response = std::exchange(response_, std::string());
    HandleResponse(response);
  }
  if (step_ == Step::kNeedTls && reader_.buffered() > 0) {
    Violation("the server sent data after accepting STARTTLS, before the TLS handshake");
  }
}

// response        = *(continue-req / response-data) response-done
// continue-req    = "+" SP (resp-text / base64) CRLF
// response-data   = "*" SP (resp-cond-state / resp-cond-bye / mailbox-data / message-data /
//                   capability-data) CRLF
// response-tagged = tag SP resp-cond-state CRLF
void ClientImpl::HandleResponse(absl::string_view line) {
  if (step_ == Step::kGreeting) {
    HandleGreeting(line);
    return;
  }
  if (!line.empty() && line.front() == '+') {
    absl::string_view payload = line.substr(1);
    if (!payload.empty() && payload.front() == ' ') payload.remove_prefix(1);
    HandleContinuation(payload);
    return;
  }
  if (absl::StartsWith(line, "* ")) {
    HandleUntagged(line, line.substr(2));
    return;
  }
  size_t space = line.find(' ');
  absl::string_view tag = line.substr(0, space);
  if (current_tag_.empty() || tag != current_tag_ || space == absl::string_view::npos) {
    Violation("the server sent a response with an unexpected tag", line);
    return;
  }
  std::optional<StatusResponse> status = ParseStatus(line.substr(space + 1));
  if (!status || status->kind == Kind::kPreauth || status->kind == Kind::kBye) {
    Violation("the server sent a malformed tagged response", line);
    return;
  }
  last_reply_ = SanitizeServerText(line);
  current_tag_.clear();
  HandleTagged(line, *status);
}

// greeting        = "*" SP (resp-cond-auth / resp-cond-bye) CRLF
// resp-cond-auth  = ("OK" / "PREAUTH") SP resp-text
void ClientImpl::HandleGreeting(absl::string_view line) {
  info_.greeting = SanitizeServerText(line);
  last_reply_ = info_.greeting;
  std::optional<StatusResponse> status;
  if (absl::StartsWith(line, "* ")) status = ParseStatus(line.substr(2));
  if (!status ||
      (status->kind != Kind::kOk && status->kind != Kind::kPreauth && status->kind != Kind::kBye)) {
    Violation("the server sent a malformed IMAP greeting", line);
    return;
  }
  if (status->kind == Kind::kBye) {
    Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_REFUSED",
                         "the IMAP server refused the connection", "", line));
    return;
  }
  ApplyCode(status->code);
  step_ = Step::kCapability;  // no command in flight until Continue() sends one
  if (status->kind == Kind::kPreauth) {
    // RFC 3501 section 6.2.1: STARTTLS is only valid in the not-authenticated state, so a
    // PREAUTH greeting on a link that was to be upgraded leaves it unencrypted for good
    // (the "PREAUTH downgrade" of RFC 9051 section 11.1). Accepted over implicit TLS, and
    // over plaintext when the caller chose plaintext (no credential is sent either way).
    if (options_.login.security == Security::kStartTls && !tls_active_) {
      Fail(MailServerError(absl::StatusCode::kFailedPrecondition, "STARTTLS_NOT_OFFERED",
                           "the IMAP server sent PREAUTH on an unencrypted connection, so "
                           "STARTTLS is impossible; refusing an unprotected session",
                           "", line));
      return;
    }
    authenticated_ = true;
    info_.mechanism = Mechanism::kNone;
  }
  Continue();
}

void ClientImpl::HandleUntagged(absl::string_view line, absl::string_view rest) {
  if (std::optional<StatusResponse> status = ParseStatus(rest)) {
    switch (status->kind) {
      case Kind::kOk:
        ApplyCode(status->code);
        break;
      case Kind::kBye:
        HandleBye(line);
        break;
      case Kind::kNo:  // warnings (RFC 3501 section 7.1.2, 7.1.3); the tagged reply decides
      case Kind::kBad:
      case Kind::kPreauth:
        break;
    }
    return;
  }
  size_t space = rest.find(' ');
  absl::string_view word = rest.substr(0, space);
  absl::string_view arg = space == absl::string_view::npos ? "" : rest.substr(space + 1);
  if (absl::EqualsIgnoreCase(word, "CAPABILITY")) {
    SetCapabilities(arg);
  } else if (absl::EqualsIgnoreCase(word, "FLAGS")) {
    // "FLAGS" SP flag-list;  flag-list = "(" [flag *(SP flag)] ")"
    if (absl::StartsWith(arg, "(") && absl::EndsWith(arg, ")")) {
      mailbox_.flags = ParseCapabilityList(arg.substr(1, arg.size() - 2));
    }
  } else if (std::optional<uint32_t> number = ParseNumber(word)) {
    // number SP "EXISTS" / number SP "RECENT" / nz-number SP "EXPUNGE"
    absl::string_view what = arg.substr(0, arg.find(' '));
    if (absl::EqualsIgnoreCase(what, "EXISTS")) {
      mailbox_.exists = *number;
    } else if (absl::EqualsIgnoreCase(what, "RECENT")) {
      mailbox_.recent = *number;
    } else if (absl::EqualsIgnoreCase(what, "EXPUNGE") && mailbox_.exists > 0) {
      --mailbox_.exists;
    }
  }
  // Everything else (LIST, FETCH, ID, ENABLED, ...) is not this client's business yet.
}

// RFC 3501 section 7.1.5: BYE means the server is about to close the connection. It is
// part of a normal LOGOUT; anywhere else it ends the session.
void ClientImpl::HandleBye(absl::string_view line) {
  last_reply_ = SanitizeServerText(line);
  if (step_ == Step::kLogout) return;  // the tagged OK follows
  if (step_ == Step::kReady || step_ == Step::kNoop) {
    absl::string_view command = step_ == Step::kNoop ? current_trace_ : "";
    error_ = MailServerError(absl::StatusCode::kUnavailable, "SERVER_CLOSED",
                             "the IMAP server closed the session", command, line);
    current_tag_.clear();
    step_ = Step::kClosed;
    return;
  }
  Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_CLOSED",
                       "the IMAP server closed the connection during login", current_trace_, line));
}

void ClientImpl::HandleContinuation(absl::string_view payload) {
  // A continuation is only meaningful while a command waits for one; other commands
  // never ask, so a stray one is ignored.
  if (step_ != Step::kAuthenticate) return;
  if (mechanism_ == Mechanism::kCommand) {
    SendNextLoginSegment();
    return;
  }
  const wire::LoginOptions& login = options_.login;
  ++auth_round_;
  switch (mechanism_) {
    case Mechanism::kPlain:
    case Mechanism::kXoauth2:
    case Mechanism::kOauthbearer:
      if (!credentials_sent_) {
        // RFC 3501 section 6.2.2: without SASL-IR the server asks with an empty challenge.
        absl::StrAppend(&out_, initial_response_, "\r\n");
        WipeString(initial_response_);
        credentials_sent_ = true;
        return;
      }
      if (mechanism_ != Mechanism::kPlain && auth_round_ <= 2 && auth_detail_.empty()) {
        // The token was refused: the challenge is base64 JSON with the error. XOAUTH2
        // (Google's definition) answers it with an empty response; OAUTHBEARER with a
        // single %x01 (RFC 7628 section 3.2.3). The tagged NO follows.
        absl::StatusOr<std::string> json = wire::Base64Decode(payload);
        auth_detail_ =
            SanitizeServerText(json.ok() ? *json : std::string(payload), kMaxErrorDetail);
        if (auth_detail_.empty()) auth_detail_ = "(empty)";
        absl::StrAppend(&out_, mechanism_ == Mechanism::kOauthbearer ? "AQ==" : "", "\r\n");
        return;
      }
      break;
    case Mechanism::kLogin:
      // The LOGIN mechanism: the server prompts for the user name, then the password.
      if (auth_round_ == 1) {
        absl::StrAppend(&out_, wire::Base64Encode(login.user), "\r\n");
        credentials_sent_ = true;
        return;
      }
      if (auth_round_ == 2) {
        std::string encoded = wire::Base64Encode(login.password.Reveal());
        absl::StrAppend(&out_, encoded, "\r\n");
        WipeString(encoded);
        return;
      }
      break;
    case Mechanism::kCramMd5:
      if (auth_round_ == 1) {
        absl::StatusOr<std::string> response =
            wire::CramMd5Response(login.user, login.password, payload);
        if (!response.ok()) {
          Violation("the server sent a malformed CRAM-MD5 challenge");
          return;
        }
        absl::StrAppend(&out_, *response, "\r\n");
        credentials_sent_ = true;
        return;
      }
      break;
    default:
      break;
  }
  // An exchange that goes on longer than the mechanism does: cancel it (RFC 3501 section
  // 6.2.2, "a line consisting of a single "*""); the server answers BAD.
  out_ += "*\r\n";
}

void ClientImpl::HandleTagged(absl::string_view line, const StatusResponse& status) {
  bool ok = status.kind == Kind::kOk;
  if (ok) ApplyCode(status.code);
  switch (step_) {
    case Step::kCapability:
      if (!ok) {
        Violation("the IMAP server refused CAPABILITY", line);
        return;
      }
      caps_known_ = true;
      Continue();
      return;
    case Step::kStartTls:
      if (!ok) {
        Fail(MailServerError(absl::StatusCode::kUnavailable, "STARTTLS_FAILED",
                             "the IMAP server refused STARTTLS", current_trace_, line));
        return;
      }
      step_ = Step::kNeedTls;
      return;
    case Step::kAuthenticate:
      HandleAuthResult(line, status);
      return;
    case Step::kSelect:
      if (status.kind == Kind::kNo) {
        Fail(MailServerError(absl::StatusCode::kNotFound, "FOLDER_NOT_FOUND",
                             absl::StrCat("cannot select folder ", mailbox_.name), current_trace_,
                             line));
        return;
      }
      if (!ok) {
        Fail(MailServerError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                             absl::StrCat("the server rejected the folder name ", mailbox_.name),
                             current_trace_, line));
        return;
      }
      // RFC 3501 section 6.3.1: the tagged OK carries [READ-ONLY] or [READ-WRITE].
      mailbox_.read_only = absl::EqualsIgnoreCase(CodeName(status.code), "READ-ONLY");
      selected_ = true;
      Continue();
      return;
    case Step::kNoop:
      step_ = Step::kReady;
      error_ = ok ? absl::OkStatus()
                  : MailServerError(absl::StatusCode::kFailedPrecondition, "COMMAND_REFUSED",
                                    "the IMAP server refused NOOP", current_trace_, line);
      return;
    case Step::kLogout:
      // RFC 3501 section 6.1.3: BYE, then the tagged OK; the server closes the connection.
      step_ = Step::kClosed;
      error_ = ok ? absl::OkStatus()
                  : MailServerError(absl::StatusCode::kUnavailable, "COMMAND_REFUSED",
                                    "the IMAP server refused LOGOUT", current_trace_, line);
      return;
    default:
      Violation("the server sent a tagged response with no command in flight", line);
      return;
  }
}

void ClientImpl::HandleAuthResult(absl::string_view line, const StatusResponse& status) {
  WipeAuthState();
  if (status.kind == Kind::kOk) {
    authenticated_ = true;
    info_.mechanism = mechanism_;
    Continue();
    return;
  }
  std::string what = "the IMAP server refused the credentials";
  if (!auth_detail_.empty()) absl::StrAppend(&what, " (error challenge: ", auth_detail_, ")");
  // RFC 5530 section 3: UNAVAILABLE is a temporary failure of the authentication
  // backend, not a verdict on the credentials, so it is worth retrying later.
  if (absl::EqualsIgnoreCase(CodeName(status.code), "UNAVAILABLE")) {
    Fail(MailServerError(absl::StatusCode::kUnavailable, "AUTH_UNAVAILABLE",
                         "the IMAP server could not check the credentials right now",
                         current_trace_, line));
    return;
  }
  Fail(MailServerError(absl::StatusCode::kUnauthenticated, "AUTH_FAILED", what, current_trace_,
                       line));
}

void ClientImpl::ApplyCode(absl::string_view code) {
  if (code.empty()) return;
  absl::string_view name = CodeName(code);
  absl::string_view arg = CodeArgument(code);
  if (absl::EqualsIgnoreCase(name, "CAPABILITY")) {
    SetCapabilities(arg);
  } else if (absl::EqualsIgnoreCase(name, "UIDVALIDITY")) {
    if (std::optional<uint32_t> n = ParseNumber(arg)) mailbox_.uidvalidity = *n;
  } else if (absl::EqualsIgnoreCase(name, "UIDNEXT")) {
    if (std::optional<uint32_t> n = ParseNumber(arg)) mailbox_.uidnext = *n;
  }
}

void ClientImpl::SetCapabilities(absl::string_view list) {
  info_.capabilities = ParseCapabilityList(list);
  caps_known_ = true;
}

bool ClientImpl::HasCapability(absl::string_view name) const {
  return std::any_of(info_.capabilities.begin(), info_.capabilities.end(),
                     [&](const std::string& c) { return absl::EqualsIgnoreCase(c, name); });
}

void ClientImpl::Continue() {
  if (!authenticated_) {
    if (!caps_known_) {
      SendCommand(Step::kCapability, "CAPABILITY", "CAPABILITY");
      return;
    }
    if (options_.login.security == Security::kStartTls && !tls_active_) {
      if (!HasCapability("STARTTLS")) {
        Fail(MailServerError(absl::StatusCode::kFailedPrecondition, "STARTTLS_NOT_OFFERED",
                             "the IMAP server does not offer STARTTLS"));
        return;
      }
      SendCommand(Step::kStartTls, "STARTTLS", "STARTTLS");
      return;
    }
    StartAuthentication();
    return;
  }
  if (!caps_known_) {
    // RFC 3501 section 6.2.2: capabilities may change after authentication.
    SendCommand(Step::kCapability, "CAPABILITY", "CAPABILITY");
    return;
  }
  if (!selected_) {
    std::string name = std::move(mailbox_.name);
    mailbox_ = MailboxState();
    mailbox_.name = std::move(name);
    std::string command = absl::StrCat("SELECT ", AString(mailbox_.name));
    SendCommand(Step::kSelect, command, command);
    return;
  }
  step_ = Step::kReady;
  error_ = absl::OkStatus();
}

void ClientImpl::StartAuthentication() {
  const wire::LoginOptions& login = options_.login;
  if (login.password.empty() && login.oauth2_token.empty()) {
    Fail(ReasonError(absl::StatusCode::kInvalidArgument, "MECHANISM_MISMATCH",
                     "IMAP needs a password or an OAuth2 token (the server did not send "
                     "PREAUTH)"));
    return;
  }
  if (!tls_active_ && !login.allow_insecure_auth) {
    Fail(ReasonError(absl::StatusCode::kFailedPrecondition, "INSECURE_AUTH_REFUSED",
                     "refusing to send credentials over an unencrypted connection"));
    return;
  }
  // RFC 3501 section 7.2.1: LOGINDISABLED withdraws the LOGIN command; AUTH=<name> lists
  // the SASL mechanisms.
  std::vector<Mechanism> offered;
  if (!HasCapability("LOGINDISABLED")) offered.push_back(Mechanism::kCommand);
  for (const std::string& capability : info_.capabilities) {
    absl::string_view c = capability;
    if (c.size() > 5 && absl::StartsWithIgnoreCase(c, "AUTH=")) {
      Mechanism m = wire::MechanismFromSaslName(c.substr(5));
      if (m != Mechanism::kAuto) offered.push_back(m);
    }
  }
  absl::StatusOr<Mechanism> chosen = wire::ChooseMechanism(login, offered);
  if (!chosen.ok()) {
    Fail(chosen.status());
    return;
  }
  mechanism_ = *chosen;
  caps_known_ = false;  // until the server tells what holds after authentication
  switch (mechanism_) {
    case Mechanism::kCommand:
      StartLoginCommand();
      return;
    case Mechanism::kPlain:
      StartSasl("PLAIN", wire::PlainInitialResponse(login.user, login.password));
      return;
    case Mechanism::kXoauth2:
      StartSasl("XOAUTH2", wire::Xoauth2InitialResponse(login.user, login.oauth2_token));
      return;
    case Mechanism::kOauthbearer:
      StartSasl("OAUTHBEARER", wire::OauthbearerInitialResponse(login.user, login.host, login.port,
                                                                login.oauth2_token));
      return;
    case Mechanism::kLogin:
      StartSasl("LOGIN", "");
      return;
    case Mechanism::kCramMd5:
      StartSasl("CRAM-MD5", "");
      return;
    default:
      Fail(ReasonError(
          absl::StatusCode::kFailedPrecondition, "MECHANISM_NOT_OFFERED",
          absl::StrCat("IMAP cannot authenticate with ", wire::MechanismName(mechanism_))));
      return;
  }
}

// login           = "LOGIN" SP userid SP password
// userid          = astring
// password        = astring
// Both go out as quoted strings; one with 8-bit bytes goes out as a literal (quoted strings
// are 7-bit), non-synchronizing ({n+}) when the server offers LITERAL+ (RFC 7888), or
// LITERAL- for up to 4096 bytes, else synchronizing ({n}: wait for "+" before the bytes).
void ClientImpl::StartLoginCommand() {
  const wire::LoginOptions& login = options_.login;
  absl::string_view password = login.password.Reveal();
  bool literal_plus = HasCapability("LITERAL+");
  bool literal_minus = HasCapability("LITERAL-");
  step_ = Step::kAuthenticate;
  current_tag_ = NextTag();
  current_trace_ = absl::StrCat("LOGIN ", login.user, " ***");
  login_segments_.clear();
  next_segment_ = 0;
  std::string segment;
  // Room for the worst case, so the buffer holding the password never reallocates.
  segment.reserve(current_tag_.size() + 32 + 2 * (login.user.size() + password.size()));
  auto add = [&](absl::string_view arg) {
    if (!NeedsLiteral(arg)) {
      AppendQuoted(arg, &segment);
      return;
    }
    bool non_sync = literal_plus || (literal_minus && arg.size() <= kLiteralMinusMax);
    absl::StrAppend(&segment, "{", arg.size(), non_sync ? "+" : "", "}\r\n");
    if (!non_sync) {
      login_segments_.push_back(std::move(segment));
      segment = std::string();
      segment.reserve(32 + 2 * (login.user.size() + password.size()));
    }
    segment.append(arg.data(), arg.size());
  };
  absl::StrAppend(&segment, current_tag_, " LOGIN ");
  add(login.user);
  segment += ' ';
  add(password);
  segment += "\r\n";
  login_segments_.push_back(std::move(segment));
  SendNextLoginSegment();
}

void ClientImpl::SendNextLoginSegment() {
  if (next_segment_ >= login_segments_.size()) return;  // a stray "+": nothing to send
  out_ += login_segments_[next_segment_];
  WipeString(login_segments_[next_segment_]);
  ++next_segment_;
}

// authenticate    = "AUTHENTICATE" SP auth-type [SP (base64 / "=")] *(CRLF base64)
// The initial response goes on the command line only when the server offers SASL-IR
// (RFC 4959); otherwise it answers the server's first (empty) continuation.
void ClientImpl::StartSasl(absl::string_view name, std::string initial_response) {
  step_ = Step::kAuthenticate;
  current_tag_ = NextTag();
  current_trace_ = absl::StrCat("AUTHENTICATE ", name, " ***");
  auth_round_ = 0;
  credentials_sent_ = false;
  auth_detail_.clear();
  if (!initial_response.empty() && HasCapability("SASL-IR")) {
    absl::StrAppend(&out_, current_tag_, " AUTHENTICATE ", name, " ", initial_response, "\r\n");
    WipeString(initial_response);
    credentials_sent_ = true;
    return;
  }
  absl::StrAppend(&out_, current_tag_, " AUTHENTICATE ", name, "\r\n");
  initial_response_ = std::move(initial_response);
}

void ClientImpl::SendCommand(Step step, absl::string_view command, absl::string_view trace) {
  step_ = step;
  current_tag_ = NextTag();
  current_trace_ = std::string(trace);
  absl::StrAppend(&out_, current_tag_, " ", command, "\r\n");
}

void ClientImpl::WipeAuthState() {
  WipeString(initial_response_);
  for (std::string& segment : login_segments_) WipeString(segment);
  login_segments_.clear();
  next_segment_ = 0;
}

void ClientImpl::OnTlsEstablished() {
  if (step_ != Step::kNeedTls) return;
  tls_active_ = true;
  // RFC 3501 section 6.2.1: "the client MUST discard cached information about server
  // capabilities" once TLS is negotiated.
  info_.capabilities.clear();
  caps_known_ = false;
  step_ = Step::kCapability;
  Continue();
}

void ClientImpl::StartNoop() {
  if (step_ != Step::kReady) {
    error_ = absl::FailedPreconditionError("NOOP needs a ready IMAP session");
    return;
  }
  SendCommand(Step::kNoop, "NOOP", "NOOP");
}

void ClientImpl::StartLogout() {
  if (step_ != Step::kReady) {
    error_ = absl::FailedPreconditionError("LOGOUT needs a ready IMAP session");
    return;
  }
  SendCommand(Step::kLogout, "LOGOUT", "LOGOUT");
}

void ClientImpl::Fail(absl::Status status) {
  WipeAuthState();
  error_ = std::move(status);
  step_ = Step::kFailed;
  current_tag_.clear();
}

void ClientImpl::Violation(absl::string_view what, absl::string_view line) {
  Fail(MailServerError(absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION", what, current_trace_,
                       line));
}

}  // namespace

std::unique_ptr<Client> NewClient(Options options) {
  return std::make_unique<ClientImpl>(std::move(options));
}

}  // namespace mailpool::imap
