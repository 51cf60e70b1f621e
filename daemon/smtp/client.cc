#include "smtp/client.h"

#include <algorithm>
#include <memory>
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
#include "common/utf8.h"
#include "smtp/reply.h"
#include "wire/line_reader.h"
#include "wire/sasl.h"
#include "wire/sasl_exchange.h"

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

// The SMTP state machine behind NewClient(). Thread-compatible.
class ClientImpl final : public Client {
 public:
  explicit ClientImpl(wire::LoginOptions options)
      : options_(std::move(options)), tls_active_(options_.security == Security::kImplicitTls) {
    if (absl::Status status = ValidateOptions(options_); !status.ok()) Fail(std::move(status));
  }
  ~ClientImpl() override { WipeString(out_); }

  void OnBytes(absl::string_view data) override;
  std::string TakeOutput() override;
  Phase phase() const override { return phase_; }
  const absl::Status& error() const override { return error_; }
  void OnTlsEstablished() override;
  void StartNoop() override;
  void StartLogout() override;
  const wire::ServerInfo& info() const override { return info_; }
  const std::string& last_reply() const override { return last_reply_; }
  void StartSend(Envelope envelope, absl::string_view source, SendOptions options,
                 SendDone done) override;
  void StartProbe(std::string address, ProbeDone done) override;
  void StartVerify(std::string address, ProbeDone done) override;

 private:
  // The reply the client waits for.
  enum class Await {
    kGreeting,
    kEhlo,
    kHelo,
    kStartTls,
    kAuth,
    kNoop,
    kQuit,
    kMail,
    kRcpt,
    kData,
    kDataEnd,
    kRset,
    kVrfy,
    kNothing
  };

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
  void OnMail(const Reply& reply);
  void OnRcpt(const Reply& reply);
  void OnData(const Reply& reply);
  void OnDataEnd(const Reply& reply);
  void OnRset(const Reply& reply);
  void OnVrfy(const Reply& reply);
  // The transaction failed with `status`: RSET, then back to kReady with that error.
  void AbortTransaction(absl::Status status);
  void SendRcpt(size_t index);
  // Ends the transaction: hands the result over and returns to kReady with `status`.
  void EndTransaction(absl::Status status);
  // A 421 in the middle of a transaction ends the session.
  bool ClosingChannel(const Reply& reply, absl::string_view command);

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
  Mechanism mechanism_ = Mechanism::kNone;    // the one being tried
  std::unique_ptr<wire::SaslExchange> sasl_;  // AUTH in flight
  std::string auth_trace_;                    // "AUTH PLAIN ***"

  // The transaction in progress.
  struct Transaction {
    Envelope envelope;
    SendOptions options;
    std::string body;  // CRLF-normalized and dot-stuffed, with the final ".CRLF"
    bool probe = false;
    bool verify = false;  // VRFY instead of MAIL/RCPT
    bool pipelined = false;
    bool chunking = false;  // BDAT instead of DATA
    std::string mail_command;
    absl::Status mail_error;  // MAIL refused
    size_t next_reply = 0;    // index of the RCPT whose reply comes next
    SendResult result;
    Reply probe_reply;
    absl::Status pending;  // the error to report after RSET
    SendDone done;
    ProbeDone probe_done;
  };
  Transaction tx_;
};

void ClientImpl::OnBytes(absl::string_view data) {
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

std::string ClientImpl::TakeOutput() {
  std::string out = std::move(out_);
  WipeString(out_);  // a short line may remain in the moved-from string's inline buffer
  return out;
}

void ClientImpl::Send(absl::string_view prefix, absl::string_view rest) {
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

void ClientImpl::Fail(absl::Status status) {
  phase_ = Phase::kFailed;
  await_ = Await::kNothing;
  error_ = std::move(status);
  WipeCredentials();
  Transaction tx = std::move(tx_);
  tx_ = Transaction();
  if (tx.probe_done) tx.probe_done(Reply{});
  if (tx.done) tx.done(std::move(tx.result));
}

void ClientImpl::WipeCredentials() {
  sasl_.reset();
  options_.password.Wipe();
  options_.oauth2_token.Wipe();
}

void ClientImpl::HandleReply(const Reply& reply) {
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
    case Await::kMail:
      return OnMail(reply);
    case Await::kRcpt:
      return OnRcpt(reply);
    case Await::kData:
      return OnData(reply);
    case Await::kDataEnd:
      return OnDataEnd(reply);
    case Await::kRset:
      return OnRset(reply);
    case Await::kVrfy:
      return OnVrfy(reply);
    case Await::kNothing:
      return OnUnsolicited(reply);
  }
}

// RFC 5321 section 4.3.2: "CONNECTION ESTABLISHMENT  S: 220  E: 554".
// Section 3.1: a server that refuses the session with 554 "MUST still wait for the client
// to send a QUIT (see Section 4.1.1.10) before closing the connection".
void ClientImpl::OnGreeting(const Reply& reply) {
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

void ClientImpl::SendEhlo() {
  Send("EHLO ", options_.ehlo_name);
  await_ = Await::kEhlo;
}

// RFC 5321 section 3.2: "For a particular connection attempt, if the server returns a
// "command not recognized" response to EHLO, the client SHOULD be able to fall back and
// send HELO." Any 5xx is taken as such; a 4xx (421) means the server is going away.
void ClientImpl::OnEhlo(const Reply& reply) {
  if (reply.IsPositive()) {
    extensions_ = Extensions::FromEhloReply(reply);
    info_.capabilities = extensions_.ToStrings();
    for (std::string& c : info_.capabilities) MakeValidUtf8(&c);  // shown in proto strings
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
void ClientImpl::OnHelo(const Reply& reply) {
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

void ClientImpl::AfterHello() {
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
void ClientImpl::OnStartTls(const Reply& reply) {
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
void ClientImpl::OnTlsEstablished() {
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
void ClientImpl::StartAuth() {
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
  if (mechanism_ == Mechanism::kCommand || mechanism_ == Mechanism::kApop) {
    Fail(ReasonError(absl::StatusCode::kFailedPrecondition, "MECHANISM_NOT_OFFERED",
                     absl::StrCat("SMTP has no ", wire::MechanismName(mechanism_))));
    return;
  }
  sasl_ = std::make_unique<wire::SaslExchange>(mechanism_, options_);
  auth_trace_ = absl::StrCat("AUTH ", sasl_->name(), " ***");
  await_ = Await::kAuth;
  std::optional<std::string> initial_response = sasl_->Initial();
  if (initial_response.has_value()) {
    Send(absl::StrCat("AUTH ", sasl_->name(), " "), *initial_response);
    WipeString(*initial_response);
  } else {
    Send(absl::StrCat("AUTH ", sasl_->name()));
  }
}

// RFC 4954 section 6: "235 2.7.0 Authentication Succeeded"; "535 5.7.8 Authentication
// credentials invalid"; "454 4.7.0 Temporary authentication failure"; section 4:
// continuations are "334" SP [base64].
void ClientImpl::OnAuth(const Reply& reply) {
  if (reply.IsPositive()) {
    absl::Status verified = sasl_->Finish();
    if (!verified.ok()) {
      Fail(MailServerError(verified.code(),
                           GetPayloadText(verified, kReasonPayload).value_or("AUTH_FAILED"),
                           verified.message(), auth_trace_, reply.Raw()));
      return;
    }
    info_.mechanism = mechanism_;
    WipeCredentials();
    Ready();
    return;
  }
  if (reply.code == 334) {
    OnChallenge(reply);
    return;
  }
  std::string what = absl::StrCat(sasl_->name(), " authentication failed");
  if (!sasl_->oauth_error().empty()) absl::StrAppend(&what, " (", sasl_->oauth_error(), ")");
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

// Every 334 challenge goes to the exchange (wire/sasl_exchange.h), the OAuth2 error
// challenge included (Dovecot fails that exchange whatever the answer).
void ClientImpl::OnChallenge(const Reply& reply) {
  absl::string_view challenge = absl::StripAsciiWhitespace(reply.lines.front());
  if (sasl_->done()) {
    Fail(Violation("unexpected AUTH continuation", auth_trace_, reply.Raw()));
    return;
  }
  absl::StatusOr<std::string> response = sasl_->Step(challenge);
  if (!response.ok()) {
    if (wire::SaslExchange::IsMalformedChallenge(response.status())) {
      Fail(Violation(response.status().message(), auth_trace_, reply.Raw()));
    } else {
      Fail(response.status());
    }
    return;
  }
  Send(*response);
  WipeString(*response);
}

void ClientImpl::Ready() {
  await_ = Await::kNothing;
  phase_ = Phase::kReady;
  error_ = absl::OkStatus();
  info_.capabilities = extensions_.ToStrings();
  for (std::string& c : info_.capabilities) MakeValidUtf8(&c);
}

// RFC 5321 section 4.1.1.9: "It specifies no action other than that the receiver send a
// "250 OK" reply."
void ClientImpl::StartNoop() {
  if (phase_ != Phase::kReady) return;
  Send("NOOP");
  await_ = Await::kNoop;
  phase_ = Phase::kBusy;
}

// RFC 5321 section 3.8: the server "MAY ... send a 421 response to any command"
// ("Service not available, closing transmission channel").
void ClientImpl::OnNoop(const Reply& reply) {
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
void ClientImpl::StartLogout() {
  if (phase_ != Phase::kReady) return;
  Send("QUIT");
  await_ = Await::kQuit;
  phase_ = Phase::kBusy;
}

void ClientImpl::OnQuit(const Reply& reply) {
  await_ = Await::kNothing;
  phase_ = Phase::kClosed;
  error_ = reply.IsPositive()
               ? absl::OkStatus()
               : MailServerError(absl::StatusCode::kUnavailable, "COMMAND_REFUSED",
                                 "the SMTP server refused QUIT", "QUIT", reply.Raw());
}

// A reply with no command in flight: only a server closing an idle session (421, section
// 3.8) does that legitimately.
void ClientImpl::OnUnsolicited(const Reply& reply) {
  if (reply.code == 421) {
    Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_REFUSED",
                         "the SMTP server is closing the session", {}, reply.Raw()));
  } else {
    Fail(Violation("the SMTP server sent a reply without a command", {}, reply.Raw()));
  }
}

// RFC 5321 section 4.2.1: 4yz "Transient Negative Completion", 5yz "Permanent Negative
// Completion"; 501 "Syntax error in parameters or arguments" and 553 "mailbox name not
// allowed" say the caller's address is wrong.
absl::Status Rejected(const Reply& reply, absl::string_view what, absl::string_view command) {
  absl::StatusCode code = absl::StatusCode::kFailedPrecondition;
  if (reply.IsTransientFailure()) {
    code = absl::StatusCode::kUnavailable;
  } else if (reply.code == 501 || reply.code == 553) {
    code = absl::StatusCode::kInvalidArgument;
  }
  return MailServerError(code, "SERVER_REJECTED", what, command, reply.Raw());
}

bool HasNonAscii(absl::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

// RFC 5322 section 2.1: the header fields end at the first empty line; a message without
// one is all header.
absl::string_view HeaderBlock(absl::string_view source) {
  for (size_t pos = 0; pos < source.size();) {
    size_t end = source.find('\n', pos);
    if (end == absl::string_view::npos) break;
    absl::string_view line = source.substr(pos, end - pos);
    if (line.empty() || line == "\r") return source.substr(0, pos);
    pos = end + 1;
  }
  return source;
}

// RFC 5321 section 4.5.2: "Before sending a line of mail text, the SMTP client checks the
// first character of the line. If it is a period, one additional period is inserted at
// the beginning of the line." Section 2.3.8: lines end with CRLF, so a bare CR or LF
// becomes CRLF. Adds the final CRLF if missing and the end of data "." CRLF.
// `size` gets the bytes before stuffing.
std::string StuffData(absl::string_view source, uint64_t* size, bool dot_stuff = true) {
  std::string out;
  out.reserve(source.size() + source.size() / 64 + 8);
  bool line_start = true;
  uint64_t unstuffed = 0;
  for (size_t i = 0; i < source.size(); ++i) {
    char c = source[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < source.size() && source[i + 1] == '\n') ++i;
      out.append("\r\n");
      unstuffed += 2;
      line_start = true;
      continue;
    }
    if (dot_stuff && line_start && c == '.') out.push_back('.');
    out.push_back(c);
    ++unstuffed;
    line_start = false;
  }
  if (!line_start) {
    out.append("\r\n");
    unstuffed += 2;
  }
  if (dot_stuff) out.append(".\r\n");
  *size = unstuffed;
  return out;
}

bool ClientImpl::ClosingChannel(const Reply& reply, absl::string_view command) {
  if (reply.code != 421) return false;
  Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_REFUSED",
                       "the SMTP server is closing the session", command, reply.Raw()));
  return true;
}

void ClientImpl::StartSend(Envelope envelope, absl::string_view source, SendOptions options,
                           SendDone done) {
  if (phase_ != Phase::kReady) return;
  auto refuse = [&](absl::Status status) {
    error_ = std::move(status);
    done(SendResult{});
  };
  absl::Status valid =
      envelope.mail_from.empty() ? absl::OkStatus() : ValidatePath("mail_from", envelope.mail_from);
  if (valid.ok() && envelope.rcpt_to.empty()) {
    valid = ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                        "rcpt_to: at least one recipient is required");
  }
  if (valid.ok() && envelope.rcpt_to.size() > kMaxRecipients) {
    valid = ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                        absl::StrCat("rcpt_to: at most ", kMaxRecipients, " recipients"));
  }
  bool utf8_address = HasNonAscii(envelope.mail_from);
  for (const std::string& rcpt : envelope.rcpt_to) {
    if (!valid.ok()) break;
    valid = ValidatePath("rcpt_to", rcpt);
    utf8_address = utf8_address || HasNonAscii(rcpt);
  }
  if (!valid.ok()) return refuse(std::move(valid));
  // RFC 6531 section 3.4: a non-ASCII address needs the SMTPUTF8 parameter on MAIL.
  if (utf8_address && !extensions_.Has("SMTPUTF8")) {
    return refuse(ReasonError(absl::StatusCode::kFailedPrecondition, "EXTENSION_NOT_OFFERED",
                              "an address is not ASCII and the SMTP server does not offer "
                              "SMTPUTF8"));
  }
  // RFC 6532 section 3 allows UTF-8 in header fields only where the message travels with
  // SMTPUTF8 (RFC 6531 section 3.4: the client must not send such a message to a server
  // that does not offer it).
  bool utf8_headers = HasNonAscii(HeaderBlock(source));
  if (utf8_headers && !extensions_.Has("SMTPUTF8")) {
    return refuse(ReasonError(absl::StatusCode::kFailedPrecondition, "EXTENSION_NOT_OFFERED",
                              "the message has UTF-8 header fields (RFC 6532) and the SMTP "
                              "server does not offer SMTPUTF8; build it with RFC 2047 "
                              "encoded headers instead"));
  }
  bool smtputf8 = utf8_address || utf8_headers;
  // RFC 6152 section 3: 8-bit content is sent only with BODY=8BITMIME to a server
  // offering it.
  bool eight_bit = HasNonAscii(source);
  if (eight_bit && !extensions_.Has("8BITMIME") && !smtputf8) {
    return refuse(ReasonError(absl::StatusCode::kFailedPrecondition, "EXTENSION_NOT_OFFERED",
                              "the message has 8-bit content and the SMTP server does not "
                              "offer 8BITMIME"));
  }
  tx_ = Transaction();
  // RFC 3030: with CHUNKING the message goes in one BDAT ... LAST chunk, not dot-stuffed,
  // and the server does not have to scan it for the end of data.
  tx_.chunking = extensions_.Has("CHUNKING");
  tx_.body = StuffData(source, &tx_.result.size, /*dot_stuff=*/!tx_.chunking);
  // RFC 1870 section 6.1: "if the client knows the size of the message ... and it is
  // greater than the maximum" the client should not send it.
  uint64_t max_size = extensions_.MaxMessageSize();
  if (max_size != 0 && tx_.result.size > max_size) {
    uint64_t size = tx_.result.size;
    tx_ = Transaction();
    return refuse(ReasonError(absl::StatusCode::kResourceExhausted, "MESSAGE_TOO_LARGE",
                              absl::StrCat("the message has ", size,
                                           " bytes; the SMTP server takes at most ", max_size)));
  }
  bool dsn = envelope.request_dsn && extensions_.Has("DSN");
  std::string mail = absl::StrCat("MAIL FROM:<", envelope.mail_from, ">");
  if (extensions_.Has("SIZE")) absl::StrAppend(&mail, " SIZE=", tx_.result.size);
  if (eight_bit && extensions_.Has("8BITMIME")) absl::StrAppend(&mail, " BODY=8BITMIME");
  if (smtputf8) absl::StrAppend(&mail, " SMTPUTF8");
  // RFC 3461 section 4.3: RET=HDRS returns only the headers in a DSN.
  if (dsn) absl::StrAppend(&mail, " RET=HDRS");
  tx_.envelope = std::move(envelope);
  tx_.envelope.request_dsn = dsn;
  tx_.options = std::move(options);
  tx_.done = std::move(done);
  for (const std::string& rcpt : tx_.envelope.rcpt_to) {
    tx_.result.recipients.push_back(RecipientReply{rcpt, false, 0, {}});
  }
  tx_.mail_command = mail;
  tx_.pipelined = extensions_.Has("PIPELINING");
  Send(mail);
  // RFC 2920 section 3.1: MAIL and RCPT may be sent in one group; the client then checks
  // every reply in order.
  if (tx_.pipelined) {
    for (size_t i = 0; i < tx_.envelope.rcpt_to.size(); ++i) SendRcpt(i);
  }
  await_ = Await::kMail;
  phase_ = Phase::kBusy;
  error_ = absl::OkStatus();
}

void ClientImpl::StartProbe(std::string address, ProbeDone done) {
  if (phase_ != Phase::kReady) return;
  if (absl::Status valid = ValidatePath("address", address); !valid.ok()) {
    error_ = std::move(valid);
    done(Reply{});
    return;
  }
  tx_ = Transaction();
  tx_.probe = true;
  tx_.probe_done = std::move(done);
  bool utf8 = HasNonAscii(address);
  tx_.envelope.rcpt_to.push_back(std::move(address));
  tx_.result.recipients.push_back(RecipientReply{tx_.envelope.rcpt_to[0], false, 0, {}});
  tx_.mail_command = utf8 && extensions_.Has("SMTPUTF8") ? "MAIL FROM:<> SMTPUTF8" : "MAIL FROM:<>";
  tx_.pipelined = extensions_.Has("PIPELINING");
  Send(tx_.mail_command);
  if (tx_.pipelined) SendRcpt(0);
  await_ = Await::kMail;
  phase_ = Phase::kBusy;
  error_ = absl::OkStatus();
}

void ClientImpl::StartVerify(std::string address, ProbeDone done) {
  if (phase_ != Phase::kReady) return;
  if (absl::Status valid = ValidatePath("address", address); !valid.ok()) {
    error_ = std::move(valid);
    done(Reply{});
    return;
  }
  tx_ = Transaction();
  tx_.verify = true;
  tx_.probe_done = std::move(done);
  // RFC 5321 section 3.5.1: VRFY takes the mailbox as it would appear in RCPT TO.
  Send("VRFY ", address);
  await_ = Await::kVrfy;
  phase_ = Phase::kBusy;
  error_ = absl::OkStatus();
}

// RFC 5321 section 4.3.2: "VRFY  S: 250, 251, 252  E: 550, 551, 553, 502, 504".
// Any well-formed reply ends the command; the caller reads the code.
void ClientImpl::OnVrfy(const Reply& reply) {
  if (ClosingChannel(reply, "VRFY")) return;
  if (!reply.IsPositive() && !reply.IsTransientFailure() && !reply.IsPermanentFailure()) {
    Fail(Violation("unexpected reply to VRFY", "VRFY", reply.Raw()));
    return;
  }
  tx_.probe_reply = reply;
  EndTransaction(absl::OkStatus());
}

void ClientImpl::SendRcpt(size_t index) {
  std::string rcpt = absl::StrCat("RCPT TO:<", tx_.envelope.rcpt_to[index], ">");
  // RFC 3461 section 4.1: NOTIFY=SUCCESS,FAILURE asks for both kinds of notification.
  if (tx_.envelope.request_dsn) absl::StrAppend(&rcpt, " NOTIFY=SUCCESS,FAILURE");
  Send(rcpt);
}

// RFC 5321 section 4.3.2: "MAIL  S: 250  E: 552, 451, 452, 550, 553, 503, 455, 555".
void ClientImpl::OnMail(const Reply& reply) {
  if (ClosingChannel(reply, tx_.mail_command)) return;
  if (reply.IsTransientFailure() || reply.IsPermanentFailure()) {
    tx_.mail_error = Rejected(reply,
                              tx_.probe ? "the SMTP server refused MAIL FROM:<> (the probe)"
                                        : "the SMTP server refused the sender",
                              tx_.mail_command);
  } else if (!reply.IsPositive()) {
    Fail(Violation("unexpected reply to MAIL", tx_.mail_command, reply.Raw()));
    return;
  }
  if (tx_.pipelined) {
    await_ = Await::kRcpt;  // the RCPT replies follow, refused or not
  } else if (!tx_.mail_error.ok()) {
    AbortTransaction(tx_.mail_error);
  } else {
    SendRcpt(0);
    await_ = Await::kRcpt;
  }
}

// RFC 5321 section 4.3.2: "RCPT  S: 250, 251 (but see Section 3.4 for discussion of 251
// and 551)  E: 550, 551, 552, 553, 450, 451, 452, 503, 455, 555".
void ClientImpl::OnRcpt(const Reply& reply) {
  size_t index = tx_.next_reply++;
  std::string command = absl::StrCat("RCPT TO:<", tx_.envelope.rcpt_to[index], ">");
  if (ClosingChannel(reply, command)) return;
  if (!reply.IsPositive() && !reply.IsTransientFailure() && !reply.IsPermanentFailure()) {
    Fail(Violation("unexpected reply to RCPT", command, reply.Raw()));
    return;
  }
  RecipientReply& r = tx_.result.recipients[index];
  r.code = reply.code;
  r.accepted = reply.IsPositive() && tx_.mail_error.ok();
  r.reply = SanitizeServerText(reply.Raw());
  if (tx_.probe) tx_.probe_reply = reply;
  if (!r.accepted && tx_.mail_error.ok() && tx_.pending.ok()) {
    tx_.pending = Rejected(
        reply, absl::StrCat("the SMTP server refused the recipient ", tx_.envelope.rcpt_to[index]),
        command);
  }
  if (tx_.next_reply < tx_.envelope.rcpt_to.size()) {
    if (!tx_.pipelined) SendRcpt(tx_.next_reply);
    return;
  }
  if (!tx_.mail_error.ok()) return AbortTransaction(tx_.mail_error);
  if (tx_.probe) return AbortTransaction(absl::OkStatus());
  size_t accepted = std::count_if(tx_.result.recipients.begin(), tx_.result.recipients.end(),
                                  [](const RecipientReply& r) { return r.accepted; });
  if (accepted == 0) {
    // The first refusal, with its reason, command and reply (the caller's ErrorDetail).
    return AbortTransaction(PrefixMessage(tx_.pending, "no recipient was accepted; "));
  }
  if (accepted < tx_.result.recipients.size() && tx_.options.require_all_recipients) {
    return AbortTransaction(tx_.pending);
  }
  tx_.pending = absl::OkStatus();
  if (tx_.chunking) {
    // RFC 3030 section 2: "BDAT" SP chunk-size SP "LAST", then exactly that many octets;
    // the reply to it is the reply to the whole message.
    if (tx_.options.before_data) tx_.options.before_data();
    Send(absl::StrCat("BDAT ", tx_.body.size(), " LAST"));
    out_.append(tx_.body);
    WipeString(tx_.body);
    await_ = Await::kDataEnd;
    return;
  }
  Send("DATA");
  await_ = Await::kData;
}

// RFC 5321 section 4.3.2: "DATA  I: 354 -> data -> S: 250  E: 552, 554, 451, 452
// E: 450, 550 (rejections for policy reasons)  E: 503, 554".
void ClientImpl::OnData(const Reply& reply) {
  if (ClosingChannel(reply, "DATA")) return;
  if (reply.code == 354) {
    if (tx_.options.before_data) tx_.options.before_data();
    if (out_.empty()) {
      out_ = std::move(tx_.body);
    } else {
      out_.append(tx_.body);
    }
    WipeString(tx_.body);
    await_ = Await::kDataEnd;
  } else if (reply.IsTransientFailure() || reply.IsPermanentFailure()) {
    AbortTransaction(Rejected(reply, "the SMTP server refused DATA", "DATA"));
  } else {
    Fail(Violation("unexpected reply to DATA", "DATA", reply.Raw()));
  }
}

void ClientImpl::OnDataEnd(const Reply& reply) {
  if (ClosingChannel(reply, tx_.chunking ? "BDAT" : "<end of data>")) return;
  if (reply.IsPositive()) {
    tx_.result.data_reply = SanitizeServerText(reply.Raw());
    EndTransaction(absl::OkStatus());
  } else if (reply.IsTransientFailure() || reply.IsPermanentFailure()) {
    AbortTransaction(Rejected(reply, "the SMTP server refused the message",
                              tx_.chunking ? "BDAT" : "<end of data>"));
  } else {
    Fail(Violation("unexpected reply to the end of data", tx_.chunking ? "BDAT" : "<end of data>",
                   reply.Raw()));
  }
}

// RFC 5321 section 4.1.1.5: RSET "specifies that the current mail transaction will be
// aborted. Any stored sender, recipients, and mail data MUST be discarded".
void ClientImpl::AbortTransaction(absl::Status status) {
  tx_.pending = std::move(status);
  Send("RSET");
  await_ = Await::kRset;
}

// RFC 5321 section 4.3.2: "RSET  S: 250".
void ClientImpl::OnRset(const Reply& reply) {
  if (ClosingChannel(reply, "RSET")) return;
  if (reply.IsPositive()) {
    EndTransaction(std::move(tx_.pending));
  } else {
    Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_REJECTED",
                         "the SMTP server refused RSET", "RSET", reply.Raw()));
  }
}

void ClientImpl::EndTransaction(absl::Status status) {
  Transaction tx = std::move(tx_);
  tx_ = Transaction();
  Ready();
  error_ = std::move(status);
  if (tx.probe_done) tx.probe_done(std::move(tx.probe_reply));
  if (tx.done) tx.done(std::move(tx.result));
}

}  // namespace

absl::Status ValidatePath(absl::string_view field, absl::string_view address) {
  auto invalid = [&](absl::string_view what) { return Invalid(field, what); };
  if (address.empty()) return invalid("empty address");
  if (address.size() > kMaxPathBytes) {
    return invalid(absl::StrCat("longer than ", kMaxPathBytes, " bytes"));
  }
  for (char c : address) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return invalid("must not contain control characters (CR, LF, NUL)");
    if (c == ' ' || c == '<' || c == '>') return invalid("must not contain spaces, '<' or '>'");
  }
  std::optional<AddrSpecParts> parts = SplitAddrSpec(address);
  if (!parts) return invalid("missing '@'");
  if (parts->local.empty()) return invalid("empty local part");
  if (parts->domain.empty()) return invalid("empty domain");
  if (parts->local.size() > kMaxLocalPartBytes) {
    return invalid(absl::StrCat("local part longer than ", kMaxLocalPartBytes, " bytes"));
  }
  if (parts->domain.size() > kMaxDomainBytes) {
    return invalid(absl::StrCat("domain longer than ", kMaxDomainBytes, " bytes"));
  }
  return absl::OkStatus();
}

std::unique_ptr<Client> NewClient(wire::LoginOptions options) {
  return std::make_unique<ClientImpl>(std::move(options));
}

}  // namespace mailpool::smtp
