#include "pop3/client.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/secret.h"
#include "common/status.h"
#include "pop3/response.h"
#include "wire/line_reader.h"
#include "wire/sasl.h"

namespace mailpool::pop3 {
namespace {

using wire::Mechanism;
using Phase = wire::ClientProtocol::Phase;

// RFC 2449 allows 512-octet replies; real servers stay well below this.
constexpr size_t kMaxLine = 8192;
// RFC 2449 section 4: commands (AUTH with its initial response) are at most 255 octets,
// CRLF included.
constexpr size_t kMaxCommand = 255;
// Bounds on one CAPA listing.
constexpr size_t kMaxCapaLines = 256;
constexpr size_t kMaxCapaBytes = 64 * 1024;

class Client final : public wire::ClientProtocol {
 public:
  explicit Client(wire::LoginOptions options);
  ~Client() override { WipeString(out_); }

  void OnBytes(absl::string_view data) override;
  std::string TakeOutput() override;
  Phase phase() const override;
  const absl::Status& error() const override { return error_; }
  void OnTlsEstablished() override;
  void StartNoop() override;
  void StartLogout() override;
  const wire::ServerInfo& info() const override { return info_; }
  const std::string& last_reply() const override { return last_reply_; }

 private:
  enum class State {
    kGreeting,
    kCapa,      // CAPA sent, waiting for its status line
    kCapaList,  // reading the CAPA listing up to "."
    kStls,
    kNeedTls,
    kUser,
    kPass,
    kApop,
    kAuth,           // AUTH <mech> sent, exchanging continuations
    kAuthOauthFail,  // answered an OAuth2 error continuation, waiting for -ERR
    kReady,
    kNoop,
    kQuit,
    kClosed,
    kFailed,
  };

  void HandleLine(const std::string& line);
  void OnGreeting(const std::string& line, const Reply& reply);
  void OnCapaStatus(const Reply& reply);
  void OnCapaListLine(const std::string& line);
  void CapaDone();
  void OnStls(const Reply& reply);
  void OnUser(const Reply& reply);
  void OnLoginReply(const Reply& reply);
  void OnAuth(const Reply& reply);
  void OnAuthOauthFail(const Reply& reply);
  void OnReadyLine(const Reply& reply);
  void OnCommandDone(const Reply& reply, absl::string_view command);

  void SendCapa();
  void StartAuthentication();
  void StartSasl();
  // The next SASL response for `challenge` (base64), or nullopt when the mechanism has
  // nothing more to say. Secret-bearing: wipe after use.
  absl::StatusOr<std::optional<std::string>> NextSaslResponse(absl::string_view challenge);
  void Authenticated();
  void AuthFailed(const Reply& reply);

  void Write(absl::string_view command);
  void Fail(absl::Status status);
  void ProtocolViolation(absl::string_view what, absl::string_view reply = {});
  std::string Trace(absl::string_view verb, bool with_user) const;

  wire::LoginOptions options_;
  State state_ = State::kGreeting;
  wire::LineReader reader_{kMaxLine};
  std::string out_;
  absl::Status error_;
  wire::ServerInfo info_;
  std::string last_reply_;

  std::optional<std::string> timestamp_;  // APOP challenge from the greeting
  bool tls_done_ = false;
  bool authenticated_ = false;
  // The current CAPA listing.
  std::vector<std::string> capa_lines_;
  size_t capa_bytes_ = 0;
  bool capa_ok_ = false;
  Capabilities caps_;

  Mechanism mechanism_ = Mechanism::kNone;
  std::string auth_trace_;  // redacted form of the command that is authenticating
  int sasl_step_ = 0;
  std::string oauth_error_;  // decoded OAuth2 error continuation, sanitized
};

Client::Client(wire::LoginOptions options) : options_(std::move(options)) {
  const std::pair<absl::string_view, absl::string_view> fields[] = {
      {"user", options_.user},
      {"password", options_.password.Reveal()},
      {"oauth2_token", options_.oauth2_token.Reveal()},
      {"host", options_.host},
  };
  for (const auto& [name, value] : fields) {
    if (!wire::IsCommandSafe(value)) {
      Fail(ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                       absl::StrCat(name, " contains CR, LF or NUL")));
      return;
    }
  }
  if (options_.password.empty() && options_.oauth2_token.empty()) {
    Fail(ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                     "POP3 needs a password or an OAuth2 token"));
    return;
  }
}

Phase Client::phase() const {
  switch (state_) {
    case State::kNeedTls: return Phase::kNeedTls;
    case State::kReady: return Phase::kReady;
    case State::kNoop:
    case State::kQuit: return Phase::kBusy;
    case State::kClosed: return Phase::kClosed;
    case State::kFailed: return Phase::kFailed;
    default: return Phase::kLoggingIn;
  }
}

std::string Client::TakeOutput() {
  std::string out = std::move(out_);
  out_.clear();
  return out;
}

void Client::Write(absl::string_view command) { absl::StrAppend(&out_, command, "\r\n"); }

void Client::Fail(absl::Status status) {
  state_ = State::kFailed;
  error_ = std::move(status);
}

void Client::ProtocolViolation(absl::string_view what, absl::string_view reply) {
  Fail(MailServerError(absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION", what, {}, reply));
}

std::string Client::Trace(absl::string_view verb, bool with_user) const {
  std::string trace(verb);
  if (with_user) absl::StrAppend(&trace, " ", SanitizeServerText(options_.user, 256));
  return trace;
}

void Client::OnBytes(absl::string_view data) {
  if (state_ == State::kFailed || state_ == State::kClosed) return;
  if (data.empty()) return;
  if (state_ == State::kNeedTls) {
    ProtocolViolation("server sent data after accepting STLS, before the TLS handshake");
    return;
  }
  reader_.Append(data);
  while (state_ != State::kFailed && state_ != State::kClosed && state_ != State::kNeedTls) {
    std::optional<std::string> line = reader_.NextLine();
    if (!line) break;
    HandleLine(*line);
  }
  if (state_ == State::kFailed || state_ == State::kClosed) return;
  if (!reader_.status().ok()) {
    ProtocolViolation(reader_.status().message());
  } else if (state_ == State::kNeedTls && reader_.buffered() > 0) {
    ProtocolViolation("server sent data after accepting STLS, before the TLS handshake");
  }
}

void Client::HandleLine(const std::string& line) {
  if (state_ == State::kCapaList) {
    OnCapaListLine(line);
    return;
  }
  Reply reply = ParseReply(line);
  last_reply_ = SanitizeServerText(line);
  switch (state_) {
    case State::kGreeting: OnGreeting(line, reply); break;
    case State::kCapa: OnCapaStatus(reply); break;
    case State::kStls: OnStls(reply); break;
    case State::kUser: OnUser(reply); break;
    case State::kPass:
    case State::kApop: OnLoginReply(reply); break;
    case State::kAuth: OnAuth(reply); break;
    case State::kAuthOauthFail: OnAuthOauthFail(reply); break;
    case State::kReady: OnReadyLine(reply); break;
    case State::kNoop: OnCommandDone(reply, "NOOP"); break;
    case State::kQuit: OnCommandDone(reply, "QUIT"); break;
    default: break;
  }
}

void Client::OnGreeting(const std::string& line, const Reply& reply) {
  switch (reply.kind) {
    case Reply::Kind::kOk:
      info_.greeting = SanitizeServerText(line);
      timestamp_ = ApopTimestamp(reply.text);
      SendCapa();
      return;
    case Reply::Kind::kErr:
      Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_REFUSED",
                           "the POP3 server refused the connection", {}, line));
      return;
    default:
      ProtocolViolation("malformed POP3 greeting", line);
  }
}

void Client::SendCapa() {
  capa_lines_.clear();
  capa_bytes_ = 0;
  capa_ok_ = false;
  Write("CAPA");
  state_ = State::kCapa;
}

void Client::OnCapaStatus(const Reply& reply) {
  switch (reply.kind) {
    case Reply::Kind::kOk:
      state_ = State::kCapaList;
      return;
    case Reply::Kind::kErr:
      // A server without CAPA (RFC 1939 only): USER/PASS is the baseline.
      capa_ok_ = false;
      CapaDone();
      return;
    default:
      ProtocolViolation("malformed reply to CAPA", last_reply_);
  }
}

void Client::OnCapaListLine(const std::string& line) {
  if (line == ".") {
    capa_ok_ = true;
    CapaDone();
    return;
  }
  capa_bytes_ += line.size();
  if (capa_lines_.size() >= kMaxCapaLines || capa_bytes_ > kMaxCapaBytes) {
    ProtocolViolation("CAPA listing too long");
    return;
  }
  // Dot-unstuffing (RFC 1939 section 3).
  capa_lines_.push_back(!line.empty() && line[0] == '.' ? line.substr(1) : line);
}

void Client::CapaDone() {
  if (capa_ok_) {
    caps_ = ParseCapabilities(capa_lines_);
    info_.capabilities = caps_.lines;
  } else {
    caps_ = Capabilities();
    caps_.user = true;
    // info_.capabilities keeps what was last seen.
  }
  capa_lines_.clear();
  if (authenticated_) {
    state_ = State::kReady;
    return;
  }
  if (options_.security == wire::Security::kStartTls && !tls_done_) {
    if (!caps_.stls) {
      Fail(ReasonError(absl::StatusCode::kFailedPrecondition, "STARTTLS_NOT_OFFERED",
                       capa_ok_ ? "the POP3 server does not offer STLS"
                                : "the POP3 server does not support CAPA, so not STLS"));
      return;
    }
    Write("STLS");
    state_ = State::kStls;
    return;
  }
  StartAuthentication();
}

void Client::OnStls(const Reply& reply) {
  switch (reply.kind) {
    case Reply::Kind::kOk:
      // OnBytes checks that nothing follows this line in plaintext (STARTTLS injection).
      state_ = State::kNeedTls;
      return;
    case Reply::Kind::kErr:
      Fail(MailServerError(absl::StatusCode::kUnavailable, "STARTTLS_FAILED",
                           "the POP3 server refused STLS", "STLS", last_reply_));
      return;
    default:
      ProtocolViolation("malformed reply to STLS", last_reply_);
  }
}

void Client::OnTlsEstablished() {
  if (state_ != State::kNeedTls) return;
  tls_done_ = true;
  reader_ = wire::LineReader(kMaxLine);
  // Capabilities learned in plaintext are discarded (RFC 2595 section 4).
  info_.capabilities.clear();
  caps_ = Capabilities();
  SendCapa();
}

void Client::StartAuthentication() {
  if (options_.security == wire::Security::kPlain && !options_.allow_insecure_auth) {
    Fail(ReasonError(absl::StatusCode::kFailedPrecondition, "INSECURE_AUTH_REFUSED",
                     "refusing to send POP3 credentials over an unencrypted connection"));
    return;
  }
  std::vector<Mechanism> offered;
  if (caps_.user) offered.push_back(Mechanism::kCommand);
  if (timestamp_) offered.push_back(Mechanism::kApop);
  offered.insert(offered.end(), caps_.sasl.begin(), caps_.sasl.end());
  absl::StatusOr<Mechanism> chosen = wire::ChooseMechanism(options_, offered);
  if (!chosen.ok()) {
    Fail(chosen.status());
    return;
  }
  mechanism_ = *chosen;
  switch (mechanism_) {
    case Mechanism::kCommand:
      Write(absl::StrCat("USER ", options_.user));
      auth_trace_ = Trace("USER", true);
      state_ = State::kUser;
      return;
    case Mechanism::kApop: {
      std::string digest = wire::ApopDigest(*timestamp_, options_.password);
      Write(absl::StrCat("APOP ", options_.user, " ", digest));
      auth_trace_ = Trace("APOP", true) + " ***";
      state_ = State::kApop;
      return;
    }
    case Mechanism::kPlain:
    case Mechanism::kLogin:
    case Mechanism::kCramMd5:
    case Mechanism::kXoauth2:
    case Mechanism::kOauthbearer:
      StartSasl();
      return;
    default:
      Fail(ReasonError(absl::StatusCode::kInvalidArgument, "MECHANISM_MISMATCH",
                       absl::StrCat("POP3 cannot log in with ",
                                    wire::MechanismName(mechanism_))));
  }
}

void Client::OnUser(const Reply& reply) {
  switch (reply.kind) {
    case Reply::Kind::kOk:
      absl::StrAppend(&out_, "PASS ", options_.password.Reveal(), "\r\n");
      auth_trace_ = "PASS ***";
      state_ = State::kPass;
      return;
    case Reply::Kind::kErr:
      AuthFailed(reply);
      return;
    default:
      ProtocolViolation("malformed reply to USER", last_reply_);
  }
}

void Client::OnLoginReply(const Reply& reply) {
  switch (reply.kind) {
    case Reply::Kind::kOk: Authenticated(); return;
    case Reply::Kind::kErr: AuthFailed(reply); return;
    default:
      ProtocolViolation(
          absl::StrCat("malformed reply to ", state_ == State::kApop ? "APOP" : "PASS"),
          last_reply_);
  }
}

void Client::StartSasl() {
  absl::string_view name = wire::MechanismName(mechanism_);
  auth_trace_ = absl::StrCat("AUTH ", name, " ***");
  sasl_step_ = 0;
  oauth_error_.clear();
  state_ = State::kAuth;
  // Client-first mechanisms may put the initial response on the AUTH line when the line
  // stays within 255 octets (RFC 5034 section 4); otherwise it follows the first "+ ".
  if (mechanism_ == Mechanism::kPlain || mechanism_ == Mechanism::kXoauth2 ||
      mechanism_ == Mechanism::kOauthbearer) {
    absl::StatusOr<std::optional<std::string>> ir = NextSaslResponse("");
    if (ir.ok() && ir->has_value()) {
      std::string& response = **ir;
      size_t length = 5 + name.size() + 1 + response.size() + 2;
      if (length <= kMaxCommand) {
        absl::StrAppend(&out_, "AUTH ", name, " ", response, "\r\n");
        WipeString(response);
        return;
      }
      WipeString(response);
      sasl_step_ = 0;
    }
  }
  Write(absl::StrCat("AUTH ", name));
}

absl::StatusOr<std::optional<std::string>> Client::NextSaslResponse(
    absl::string_view challenge) {
  int step = sasl_step_++;
  switch (mechanism_) {
    case Mechanism::kPlain:
      if (step == 0) return wire::PlainInitialResponse(options_.user, options_.password);
      break;
    case Mechanism::kLogin:
      if (step == 0) return wire::Base64Encode(options_.user);
      if (step == 1) return wire::Base64Encode(options_.password.Reveal());
      break;
    case Mechanism::kCramMd5:
      if (step == 0) {
        absl::StatusOr<std::string> r =
            wire::CramMd5Response(options_.user, options_.password, challenge);
        if (!r.ok()) return r.status();
        return *std::move(r);
      }
      break;
    case Mechanism::kXoauth2:
      if (step == 0) return wire::Xoauth2InitialResponse(options_.user, options_.oauth2_token);
      break;
    case Mechanism::kOauthbearer:
      if (step == 0) {
        return wire::OauthbearerInitialResponse(options_.user, options_.host, options_.port,
                                                options_.oauth2_token);
      }
      break;
    default:
      break;
  }
  return std::nullopt;
}

void Client::OnAuth(const Reply& reply) {
  switch (reply.kind) {
    case Reply::Kind::kOk:
      Authenticated();
      return;
    case Reply::Kind::kErr:
      AuthFailed(reply);
      return;
    case Reply::Kind::kContinuation:
      break;
    default:
      ProtocolViolation("malformed reply during AUTH", last_reply_);
      return;
  }
  absl::StatusOr<std::optional<std::string>> response = NextSaslResponse(reply.text);
  if (!response.ok()) {
    ProtocolViolation(absl::StrCat("malformed ", wire::MechanismName(mechanism_), " challenge"),
                      last_reply_);
    return;
  }
  if (response->has_value()) {
    absl::StrAppend(&out_, **response, "\r\n");
    WipeString(**response);
    return;
  }
  if (mechanism_ == Mechanism::kXoauth2 || mechanism_ == Mechanism::kOauthbearer) {
    // The token was refused: the challenge is a base64 JSON error (RFC 7628 section
    // 3.2.2). Answer with an empty response; the server then sends -ERR.
    absl::StatusOr<std::string> json = wire::Base64Decode(reply.text);
    if (json.ok()) oauth_error_ = SanitizeServerText(*json, 256);
    Write("");
    state_ = State::kAuthOauthFail;
    return;
  }
  ProtocolViolation(
      absl::StrCat("unexpected ", wire::MechanismName(mechanism_), " challenge"), last_reply_);
}

void Client::OnAuthOauthFail(const Reply& reply) {
  if (reply.kind == Reply::Kind::kErr) {
    AuthFailed(reply);
    return;
  }
  ProtocolViolation(absl::StrCat("unexpected reply after a ", wire::MechanismName(mechanism_),
                                 " error challenge"),
                    last_reply_);
}

void Client::AuthFailed(const Reply& reply) {
  bool temporary = IsTemporaryCode(reply.code);
  std::string what = temporary ? "POP3 login temporarily unavailable" : "POP3 login refused";
  if (!oauth_error_.empty()) absl::StrAppend(&what, " (OAuth2 error: ", oauth_error_, ")");
  Fail(MailServerError(
      temporary ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnauthenticated,
      temporary ? "AUTH_TEMPORARY_FAILURE" : "AUTH_FAILED", what, auth_trace_, last_reply_));
}

void Client::Authenticated() {
  authenticated_ = true;
  info_.mechanism = mechanism_;
  auth_trace_.clear();
  // Capabilities may change after login (RFC 2449 section 5).
  SendCapa();
}

void Client::OnReadyLine(const Reply& reply) {
  if (reply.kind == Reply::Kind::kErr) {
    // E.g. Dovecot's "-ERR Disconnected for inactivity." before it closes.
    state_ = State::kClosed;
    error_ = MailServerError(absl::StatusCode::kUnavailable, "SERVER_CLOSED",
                             "the POP3 server ended the session", {}, last_reply_);
    return;
  }
  ProtocolViolation("unsolicited data from the POP3 server", last_reply_);
}

void Client::StartNoop() {
  if (state_ != State::kReady) return;
  Write("NOOP");
  state_ = State::kNoop;
}

void Client::StartLogout() {
  if (state_ != State::kReady) return;
  Write("QUIT");
  state_ = State::kQuit;
}

void Client::OnCommandDone(const Reply& reply, absl::string_view command) {
  State next = command == "QUIT" ? State::kClosed : State::kReady;
  switch (reply.kind) {
    case Reply::Kind::kOk:
      error_ = absl::OkStatus();
      state_ = next;
      return;
    case Reply::Kind::kErr:
      error_ = MailServerError(absl::StatusCode::kUnavailable, "COMMAND_FAILED",
                               absl::StrCat(command, " refused"), command, last_reply_);
      state_ = next;
      return;
    default:
      ProtocolViolation(absl::StrCat("malformed reply to ", command), last_reply_);
  }
}

}  // namespace

std::unique_ptr<wire::ClientProtocol> NewClient(wire::LoginOptions options) {
  return std::make_unique<Client>(std::move(options));
}

}  // namespace mailpool::pop3
