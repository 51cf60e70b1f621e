#include "smtp/client.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/secret.h"
#include "common/status.h"
#include "smtp/reply.h"
#include "wire/line_reader.h"
#include "wire/sasl.h"

namespace mailpool::smtp {
namespace {

using wire::Mechanism;
using wire::Security;
using Phase = wire::ClientProtocol::Phase;

// RFC 5321 section 4.5.3.1.5 limits a reply line to 512 octets; allow some slack for
// sloppy servers while keeping memory bounded.
constexpr size_t kMaxLineBytes = 4096;

absl::Status InvalidField(absl::string_view what) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD", what);
}

absl::Status Violation(absl::string_view what, absl::string_view command = {},
                       absl::string_view reply = {}) {
  return MailServerError(absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION", what, command,
                         reply);
}

// Checks what the client will put on the wire before anything is written.
absl::Status ValidateOptions(const wire::LoginOptions& options) {
  if (!IsValidEhloName(options.ehlo_name)) {
    return InvalidField("ehlo_name must be a domain name or an address literal in brackets");
  }
  if (!wire::IsCommandSafe(options.user)) {
    return InvalidField("user must not contain CR, LF or NUL");
  }
  // ^A separates the fields of the XOAUTH2 and OAUTHBEARER messages.
  if (!options.oauth2_token.empty() && (options.user.find('\x01') != std::string::npos ||
                                        options.host.find('\x01') != std::string::npos)) {
    return InvalidField("user and host must not contain ^A with an OAuth2 token");
  }
  bool has_secret = !options.password.empty() || !options.oauth2_token.empty();
  if (has_secret && options.security == Security::kPlain && !options.allow_insecure_auth) {
    return ReasonError(absl::StatusCode::kFailedPrecondition, "INSECURE_AUTH_REFUSED",
                       "refusing to send credentials over an unencrypted connection "
                       "(use STARTTLS or implicit TLS, or allow insecure authentication)");
  }
  return absl::OkStatus();
}

// The SMTP login state machine behind NewClient(). Thread-compatible.
class Client final : public wire::ClientProtocol {
 public:
  explicit Client(wire::LoginOptions options)
      : options_(std::move(options)), tls_active_(options_.security == Security::kImplicitTls) {
    if (absl::Status status = ValidateOptions(options_); !status.ok()) Fail(std::move(status));
  }
  ~Client() override { WipeString(out_); }

  void OnBytes(absl::string_view data) override;
  std::string TakeOutput() override;
  Phase phase() const override { return phase_; }
  const absl::Status& error() const override { return error_; }
  void OnTlsEstablished() override;
  void StartNoop() override;
  void StartLogout() override;
  const wire::ServerInfo& info() const override { return info_; }
  const std::string& last_reply() const override { return last_reply_; }

 private:
  // The reply the client waits for.
  enum class Await { kGreeting, kEhlo, kHelo, kStartTls, kAuth, kNoop, kQuit, kNothing };

  void HandleReply(const Reply& reply);
  void OnGreeting(const Reply& reply);
  void OnEhlo(const Reply& reply);
  void OnHelo(const Reply& reply);
  void OnStartTls(const Reply& reply);
  void OnAuth(const Reply& reply);
  void OnChallenge(const Reply& reply);
  void OnNoop(const Reply& reply);
  void OnQuit(const Reply& reply);
  void OnUnsolicited(const Reply& reply);

  void SendEhlo();
  void AfterHello();
  void StartAuth();
  void Ready();
  void Fail(absl::Status status);
  void WipeCredentials();
  // Appends prefix, rest and CRLF to the output without leaving copies of earlier output
  // (which may hold credentials) in freed memory.
  void Send(absl::string_view prefix, absl::string_view rest = {});

  wire::LoginOptions options_;
  bool tls_active_;
  Phase phase_ = Phase::kLoggingIn;
  Await await_ = Await::kGreeting;
  absl::Status error_;
  wire::ServerInfo info_;
  std::string last_reply_;
  std::string out_;
  wire::LineReader reader_{kMaxLineBytes};
  ReplyParser parser_;
  Extensions extensions_;
  Mechanism mechanism_ = Mechanism::kNone;  // the one being tried
  int challenges_ = 0;                      // 334 replies answered in this AUTH exchange
  std::string auth_trace_;                  // "AUTH PLAIN ***"
  std::string oauth_detail_;                // the error an XOAUTH2/OAUTHBEARER server sent
};

void Client::OnBytes(absl::string_view data) {
  if (data.empty() || phase_ == Phase::kFailed || phase_ == Phase::kClosed) return;
  if (phase_ == Phase::kNeedTls) {
    // RFC 3207 section 4.2: the protocol restarts once TLS is up. Plaintext that arrives
    // in between could be taken for replies sent over TLS (a response injection).
    Fail(Violation("the server sent data after accepting STARTTLS, before the TLS handshake"));
    return;
  }
  reader_.Append(data);
  while (phase_ != Phase::kFailed && phase_ != Phase::kClosed && phase_ != Phase::kNeedTls) {
    std::optional<std::string> line = reader_.NextLine();
    if (!line) break;
    absl::StatusOr<std::optional<Reply>> reply = parser_.AddLine(*line);
    if (!reply.ok()) {
      Fail(reply.status());
      return;
    }
    if (*reply) HandleReply(**reply);
  }
  if (phase_ == Phase::kNeedTls && reader_.buffered() > 0) {
    Fail(Violation("the server sent data after accepting STARTTLS, before the TLS handshake"));
    return;
  }
  if (!reader_.status().ok() && phase_ != Phase::kFailed && phase_ != Phase::kClosed) {
    Fail(Violation(reader_.status().message()));
  }
}

std::string Client::TakeOutput() {
  std::string out = std::move(out_);
  WipeString(out_);  // a short line may remain in the moved-from string's inline buffer
  return out;
}

void Client::Send(absl::string_view prefix, absl::string_view rest) {
  size_t needed = out_.size() + prefix.size() + rest.size() + 2;
  if (needed > out_.capacity()) {
    std::string bigger;
    bigger.reserve(std::max(needed, 2 * out_.capacity()));
    bigger.append(out_);
    WipeString(out_);
    out_ = std::move(bigger);
  }
  out_.append(prefix.data(), prefix.size());
  out_.append(rest.data(), rest.size());
  out_.append("\r\n");
}

void Client::Fail(absl::Status status) {
  phase_ = Phase::kFailed;
  await_ = Await::kNothing;
  error_ = std::move(status);
  WipeCredentials();
}

void Client::WipeCredentials() {
  options_.password.Wipe();
  options_.oauth2_token.Wipe();
}

void Client::HandleReply(const Reply& reply) {
  last_reply_ = SanitizeServerText(reply.Raw());
  switch (await_) {
    case Await::kGreeting:
      return OnGreeting(reply);
    case Await::kEhlo:
      return OnEhlo(reply);
    case Await::kHelo:
      return OnHelo(reply);
    case Await::kStartTls:
      return OnStartTls(reply);
    case Await::kAuth:
      return OnAuth(reply);
    case Await::kNoop:
      return OnNoop(reply);
    case Await::kQuit:
      return OnQuit(reply);
    case Await::kNothing:
      return OnUnsolicited(reply);
  }
}

// RFC 5321 section 4.3.2: "CONNECTION ESTABLISHMENT  S: 220  E: 554".
// Section 3.1: a server that refuses the session with 554 "MUST still wait for the client
// to send a QUIT (see Section 4.1.1.10) before closing the connection".
void Client::OnGreeting(const Reply& reply) {
  info_.greeting = SanitizeServerText(Reply{reply.code, {reply.lines.front()}}.Raw());
  if (reply.code == 220) {
    SendEhlo();
  } else if (reply.IsTransientFailure() || reply.IsPermanentFailure()) {
    Send("QUIT");
    Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_REFUSED",
                         "the SMTP server refused the connection", {}, reply.Raw()));
  } else {
    Fail(Violation("the SMTP server sent an unexpected greeting", {}, reply.Raw()));
  }
}

void Client::SendEhlo() {
  Send("EHLO ", options_.ehlo_name);
  await_ = Await::kEhlo;
}

// RFC 5321 section 3.2: "For a particular connection attempt, if the server returns a
// "command not recognized" response to EHLO, the client SHOULD be able to fall back and
// send HELO." Any 5xx is taken as such; a 4xx (421) means the server is going away.
void Client::OnEhlo(const Reply& reply) {
  if (reply.IsPositive()) {
    extensions_ = Extensions::FromEhloReply(reply);
    info_.capabilities = extensions_.ToStrings();
    AfterHello();
  } else if (reply.IsPermanentFailure()) {
    Send("HELO ", options_.ehlo_name);
    await_ = Await::kHelo;
  } else if (reply.IsTransientFailure()) {
    Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_REFUSED",
                         "the SMTP server refused EHLO", absl::StrCat("EHLO ", options_.ehlo_name),
                         reply.Raw()));
  } else {
    Fail(Violation("unexpected reply to EHLO", absl::StrCat("EHLO ", options_.ehlo_name),
                   reply.Raw()));
  }
}

// RFC 5321 section 4.1.1.1: "Servers MUST NOT return the extended EHLO-style response to a
// HELO command": after HELO there are no extensions.
void Client::OnHelo(const Reply& reply) {
  std::string command = absl::StrCat("HELO ", options_.ehlo_name);
  if (reply.IsPositive()) {
    extensions_ = Extensions();
    info_.capabilities.clear();
    AfterHello();
  } else if (reply.IsTransientFailure() || reply.IsPermanentFailure()) {
    Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_REFUSED",
                         "the SMTP server refused EHLO and HELO", command, reply.Raw()));
  } else {
    Fail(Violation("unexpected reply to HELO", command, reply.Raw()));
  }
}

void Client::AfterHello() {
  if (options_.security == Security::kStartTls && !tls_active_) {
    // RFC 3207 section 4: "The STARTTLS keyword is used to tell the SMTP client that the
    // SMTP server is currently able to negotiate the use of TLS."
    if (!extensions_.Has("STARTTLS")) {
      Fail(ReasonError(absl::StatusCode::kFailedPrecondition, "STARTTLS_NOT_OFFERED",
                       "the SMTP server does not offer STARTTLS"));
      return;
    }
    Send("STARTTLS");
    await_ = Await::kStartTls;
    return;
  }
  StartAuth();
}

// RFC 3207 section 4: "220 Ready to start TLS", "501 Syntax error (no parameters
// allowed)", "454 TLS not available due to temporary reason".
void Client::OnStartTls(const Reply& reply) {
  if (reply.code == 220) {
    await_ = Await::kNothing;
    phase_ = Phase::kNeedTls;  // OnBytes() refuses anything buffered behind this reply
  } else if (reply.IsTransientFailure() || reply.IsPermanentFailure()) {
    Fail(MailServerError(absl::StatusCode::kUnavailable, "STARTTLS_FAILED",
                         "the SMTP server refused STARTTLS", "STARTTLS", reply.Raw()));
  } else {
    Fail(Violation("unexpected reply to STARTTLS", "STARTTLS", reply.Raw()));
  }
}

// RFC 3207 section 4.2: "The client MUST discard any knowledge obtained from the server,
// such as the list of SMTP service extensions, which was not obtained from the TLS
// negotiation itself. The client SHOULD send an EHLO command as the first command after a
// successful TLS negotiation."
void Client::OnTlsEstablished() {
  if (phase_ != Phase::kNeedTls) return;
  tls_active_ = true;
  extensions_ = Extensions();
  info_.capabilities.clear();
  phase_ = Phase::kLoggingIn;
  SendEhlo();
}

// RFC 4954 section 4: "AUTH mechanism [initial-response]"; "If the client is transmitting
// an initial response of zero length, it MUST instead transmit the response as a single
// equals sign" (never the case here: every initial response sent is non-empty).
void Client::StartAuth() {
  std::vector<Mechanism> offered;
  for (const std::string& name : extensions_.AuthMechanisms()) {
    Mechanism m = wire::MechanismFromSaslName(name);
    if (m != Mechanism::kAuto) offered.push_back(m);
  }
  absl::StatusOr<Mechanism> chosen = wire::ChooseMechanism(options_, offered);
  if (!chosen.ok()) {
    Fail(chosen.status());
    return;
  }
  mechanism_ = *chosen;
  if (mechanism_ == Mechanism::kNone) {
    Ready();
    return;
  }
  auth_trace_ = absl::StrCat("AUTH ", wire::MechanismName(mechanism_), " ***");
  challenges_ = 0;
  oauth_detail_.clear();
  await_ = Await::kAuth;
  std::string initial_response;
  switch (mechanism_) {
    case Mechanism::kPlain:
      initial_response = wire::PlainInitialResponse(options_.user, options_.password);
      Send("AUTH PLAIN ", initial_response);
      break;
    case Mechanism::kLogin:
      Send("AUTH LOGIN");
      break;
    case Mechanism::kCramMd5:
      Send("AUTH CRAM-MD5");
      break;
    case Mechanism::kXoauth2:
      initial_response = wire::Xoauth2InitialResponse(options_.user, options_.oauth2_token);
      Send("AUTH XOAUTH2 ", initial_response);
      break;
    case Mechanism::kOauthbearer:
      initial_response = wire::OauthbearerInitialResponse(options_.user, options_.host,
                                                          options_.port, options_.oauth2_token);
      Send("AUTH OAUTHBEARER ", initial_response);
      break;
    default:
      Fail(ReasonError(absl::StatusCode::kFailedPrecondition, "MECHANISM_NOT_OFFERED",
                       absl::StrCat("SMTP has no ", wire::MechanismName(mechanism_))));
      break;
  }
  WipeString(initial_response);
}

// RFC 4954 section 6: "235 2.7.0 Authentication Succeeded"; "535 5.7.8 Authentication
// credentials invalid"; "454 4.7.0 Temporary authentication failure"; section 4:
// continuations are "334" SP [base64].
void Client::OnAuth(const Reply& reply) {
  if (reply.IsPositive()) {
    info_.mechanism = mechanism_;
    WipeCredentials();
    Ready();
    return;
  }
  if (reply.code == 334) {
    OnChallenge(reply);
    return;
  }
  std::string what = absl::StrCat(wire::MechanismName(mechanism_), " authentication failed");
  if (!oauth_detail_.empty()) absl::StrAppend(&what, " (", oauth_detail_, ")");
  if (reply.IsPermanentFailure()) {
    Fail(MailServerError(absl::StatusCode::kUnauthenticated, "AUTH_FAILED", what, auth_trace_,
                         reply.Raw()));
  } else if (reply.IsTransientFailure()) {
    Fail(MailServerError(absl::StatusCode::kUnavailable, "AUTH_TEMPORARY_FAILURE", what,
                         auth_trace_, reply.Raw()));
  } else {
    Fail(Violation("unexpected reply to AUTH", auth_trace_, reply.Raw()));
  }
}

void Client::OnChallenge(const Reply& reply) {
  absl::string_view challenge = absl::StripAsciiWhitespace(reply.lines.front());
  ++challenges_;
  auto unexpected = [&] {
    Fail(Violation("unexpected AUTH continuation", auth_trace_, reply.Raw()));
  };
  switch (mechanism_) {
    case Mechanism::kLogin: {
      // The LOGIN mechanism (draft-murchison-sasl-login): the server prompts for the user
      // name ("334 VXNlcm5hbWU6", "Username:") and then the password ("334 UGFzc3dvcmQ6",
      // "Password:"); prompts are answered in that order whatever their text.
      if (challenges_ == 1) {
        Send(wire::Base64Encode(options_.user));
      } else if (challenges_ == 2) {
        std::string response = wire::Base64Encode(options_.password.Reveal());
        Send(response);
        WipeString(response);
      } else {
        unexpected();
      }
      return;
    }
    case Mechanism::kCramMd5: {
      // RFC 2195 section 2: the challenge is base64; the response base64(user SP digest).
      if (challenges_ != 1) return unexpected();
      absl::StatusOr<std::string> response =
          wire::CramMd5Response(options_.user, options_.password, challenge);
      if (!response.ok()) {
        Fail(Violation("malformed CRAM-MD5 challenge", auth_trace_, reply.Raw()));
        return;
      }
      Send(*response);
      return;
    }
    case Mechanism::kXoauth2:
    case Mechanism::kOauthbearer: {
      // A continuation after the initial response carries a base64 JSON error; the
      // exchange ends with the client's empty response and the server's final refusal
      // (wire/protocol.h). RFC 7628 section 3.2.3 has OAUTHBEARER clients send %x01
      // instead; Dovecot fails the exchange on any response.
      if (challenges_ != 1) return unexpected();
      absl::StatusOr<std::string> detail = wire::Base64Decode(challenge);
      oauth_detail_ = SanitizeServerText(detail.ok() ? *detail : std::string(challenge), 256);
      Send("");
      return;
    }
    default:
      // PLAIN sends everything in its initial response.
      return unexpected();
  }
}

void Client::Ready() {
  await_ = Await::kNothing;
  phase_ = Phase::kReady;
  error_ = absl::OkStatus();
  info_.capabilities = extensions_.ToStrings();
}

// RFC 5321 section 4.1.1.9: "It specifies no action other than that the receiver send a
// "250 OK" reply."
void Client::StartNoop() {
  if (phase_ != Phase::kReady) return;
  Send("NOOP");
  await_ = Await::kNoop;
  phase_ = Phase::kBusy;
}

// RFC 5321 section 3.8: the server "MAY ... send a 421 response to any command"
// ("Service not available, closing transmission channel").
void Client::OnNoop(const Reply& reply) {
  if (reply.IsPositive()) {
    Ready();
  } else if (reply.code == 421) {
    Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_REFUSED",
                         "the SMTP server is closing the session", "NOOP", reply.Raw()));
  } else if (reply.IsTransientFailure() || reply.IsPermanentFailure()) {
    Ready();
    error_ = MailServerError(absl::StatusCode::kUnavailable, "COMMAND_REFUSED",
                             "the SMTP server refused NOOP", "NOOP", reply.Raw());
  } else {
    Fail(Violation("unexpected reply to NOOP", "NOOP", reply.Raw()));
  }
}

// RFC 5321 section 4.1.1.10: "The receiver MUST send a "221 OK" reply, and then close the
// transmission channel." Whatever the reply, the session is over.
void Client::StartLogout() {
  if (phase_ != Phase::kReady) return;
  Send("QUIT");
  await_ = Await::kQuit;
  phase_ = Phase::kBusy;
}

void Client::OnQuit(const Reply& reply) {
  await_ = Await::kNothing;
  phase_ = Phase::kClosed;
  error_ = reply.IsPositive()
               ? absl::OkStatus()
               : MailServerError(absl::StatusCode::kUnavailable, "COMMAND_REFUSED",
                                 "the SMTP server refused QUIT", "QUIT", reply.Raw());
}

// A reply with no command in flight: only a server closing an idle session (421, section
// 3.8) does that legitimately.
void Client::OnUnsolicited(const Reply& reply) {
  if (reply.code == 421) {
    Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_REFUSED",
                         "the SMTP server is closing the session", {}, reply.Raw()));
  } else {
    Fail(Violation("the SMTP server sent a reply without a command", {}, reply.Raw()));
  }
}

}  // namespace

std::unique_ptr<wire::ClientProtocol> NewClient(wire::LoginOptions options) {
  return std::make_unique<Client>(std::move(options));
}

}  // namespace mailpool::smtp
