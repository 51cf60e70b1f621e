#include "pop3/client.h"

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/secret.h"
#include "common/status.h"
#include "common/utf8.h"
#include "pop3/response.h"
#include "wire/line_reader.h"
#include "wire/sasl.h"
#include "wire/sasl_exchange.h"

namespace mailpool::pop3 {
namespace {

using wire::Mechanism;
using Phase = wire::ClientProtocol::Phase;

// A decimal number of at most 19 digits that fits T; no sign, no spaces.
template <typename T>
bool ParseDecimal(absl::string_view text, T* out) {
  if (text.empty() || text.size() > 19) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > std::numeric_limits<T>::max()) return false;
  *out = static_cast<T>(value);
  return true;
}

// RFC 2449 allows 512-octet replies; real servers stay well below this.
constexpr size_t kMaxLine = 8192;
// RFC 2449 section 4: commands (AUTH with its initial response) are at most 255 octets,
// CRLF included.
constexpr size_t kMaxCommand = 255;
// Bounds on one line of a LIST or UIDL listing, and on a unique-id (RFC 1939 says 70; some
// servers go beyond).
constexpr size_t kMaxListingLine = 1024;
constexpr size_t kMaxUidl = 512;
// Bounds on one CAPA listing.
constexpr size_t kMaxCapaLines = 256;
constexpr size_t kMaxCapaBytes = 64 * 1024;

class ClientImpl final : public Client {
 public:
  ClientImpl(wire::LoginOptions options, Limits limits);
  ~ClientImpl() override { WipeString(out_); }

  void OnBytes(absl::string_view data) override;
  std::string TakeOutput() override;
  Phase phase() const override;
  const absl::Status& error() const override { return error_; }
  void OnTlsEstablished() override;
  void StartNoop() override;
  void StartLogout() override;
  const wire::ServerInfo& info() const override { return info_; }
  const std::string& last_reply() const override { return last_reply_; }

  void StartStat(StatDone done) override;
  void StartList(ListDone done) override;
  void StartUidl(UidlDone done) override;
  void StartTop(uint32_t number, uint32_t lines, DataSink sink) override;
  void StartRetr(uint32_t number, DataSink sink) override;
  void StartDele(uint32_t number) override;
  void StartRset() override;

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
    kStat,         // STAT sent
    kDele,         // DELE n sent
    kRset,         // RSET sent
    kList,         // LIST sent, waiting for its status line
    kUidl,         // UIDL sent, waiting for its status line
    kTop,          // TOP sent, waiting for its status line
    kRetr,         // RETR sent, waiting for its status line
    kListingBody,  // reading a LIST or UIDL listing up to "."
    kDataBody,     // streaming a TOP or RETR response up to "."
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

  // Maildrop commands.
  bool StartCommand(State state, std::string command);
  void OnStat(const Reply& reply);
  void OnSimpleReply(const Reply& reply);
  void OnMultilineStatus(const Reply& reply);
  void CommandRefused(const Reply& reply);
  bool InBody() const { return state_ == State::kListingBody || state_ == State::kDataBody; }
  // Feeds body bytes to the decoder; returns how many belonged to the response.
  size_t ConsumeBody(absl::string_view data);
  void OnBodyPiece(absl::string_view piece);
  void OnListingLine(absl::string_view line);
  void BodyDone();
  void ProcessBuffered();

  void SendCapa();
  void StartAuthentication();
  void StartSasl();
  // The next SASL response for `challenge` (base64), or nullopt when the mechanism has
  // nothing more to say. Secret-bearing: wipe after use.
  void Authenticated();
  void AuthFailed(const Reply& reply);

  void Write(absl::string_view command);
  void Fail(absl::Status status);
  void ProtocolViolation(absl::string_view what, absl::string_view reply = {});
  std::string Trace(absl::string_view verb, bool with_user) const;

  wire::LoginOptions options_;
  Limits limits_;
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
  std::string auth_trace_;                    // redacted form of the command that is authenticating
  std::unique_ptr<wire::SaslExchange> sasl_;  // AUTH in flight

  // The maildrop command in flight.
  std::string command_trace_;  // e.g. "RETR 3"
  bool per_message_ = false;   // -ERR means "no such message"
  bool is_uidl_ = false;       // the listing is UIDL's (else LIST's)
  MultilineDecoder decoder_;
  std::string listing_line_;
  std::vector<ListEntry> list_entries_;
  std::vector<UidlEntry> uidl_entries_;
  uint64_t body_bytes_ = 0;
  StatDone stat_done_;
  ListDone list_done_;
  UidlDone uidl_done_;
  DataSink sink_;
};

ClientImpl::ClientImpl(wire::LoginOptions options, Limits limits)
    : options_(std::move(options)), limits_(limits) {
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

Phase ClientImpl::phase() const {
  switch (state_) {
    case State::kNeedTls:
      return Phase::kNeedTls;
    case State::kReady:
      return Phase::kReady;
    case State::kNoop:
    case State::kQuit:
    case State::kStat:
    case State::kDele:
    case State::kRset:
    case State::kList:
    case State::kUidl:
    case State::kTop:
    case State::kRetr:
    case State::kListingBody:
    case State::kDataBody:
      return Phase::kBusy;
    case State::kClosed:
      return Phase::kClosed;
    case State::kFailed:
      return Phase::kFailed;
    default:
      return Phase::kLoggingIn;
  }
}

std::string ClientImpl::TakeOutput() {
  std::string out = std::move(out_);
  out_.clear();
  return out;
}

void ClientImpl::Write(absl::string_view command) { absl::StrAppend(&out_, command, "\r\n"); }

void ClientImpl::Fail(absl::Status status) {
  state_ = State::kFailed;
  error_ = std::move(status);
}

void ClientImpl::ProtocolViolation(absl::string_view what, absl::string_view reply) {
  Fail(MailServerError(absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION", what, {}, reply));
}

std::string ClientImpl::Trace(absl::string_view verb, bool with_user) const {
  std::string trace(verb);
  if (with_user) absl::StrAppend(&trace, " ", SanitizeServerText(options_.user, 256));
  return trace;
}

void ClientImpl::OnBytes(absl::string_view data) {
  if (state_ == State::kFailed || state_ == State::kClosed) return;
  if (data.empty()) return;
  if (state_ == State::kNeedTls) {
    ProtocolViolation("server sent data after accepting STLS, before the TLS handshake");
    return;
  }
  if (InBody() && reader_.buffered() == 0) {
    // The common case while streaming a message: decode straight from the caller's bytes.
    data.remove_prefix(ConsumeBody(data));
    if (data.empty() || state_ == State::kFailed) return;
  }
  reader_.Append(data);
  ProcessBuffered();
}

void ClientImpl::ProcessBuffered() {
  while (state_ != State::kFailed && state_ != State::kClosed && state_ != State::kNeedTls) {
    if (InBody()) {
      if (reader_.buffered() == 0) break;
      std::string bytes = reader_.TakeBytes(reader_.buffered());
      size_t used = ConsumeBody(bytes);
      if (used < bytes.size()) reader_.Append(absl::string_view(bytes).substr(used));
      continue;
    }
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

void ClientImpl::HandleLine(const std::string& line) {
  if (state_ == State::kCapaList) {
    OnCapaListLine(line);
    return;
  }
  Reply reply = ParseReply(line);
  last_reply_ = SanitizeServerText(line);
  switch (state_) {
    case State::kGreeting:
      OnGreeting(line, reply);
      break;
    case State::kCapa:
      OnCapaStatus(reply);
      break;
    case State::kStls:
      OnStls(reply);
      break;
    case State::kUser:
      OnUser(reply);
      break;
    case State::kPass:
    case State::kApop:
      OnLoginReply(reply);
      break;
    case State::kAuth:
      OnAuth(reply);
      break;
    case State::kAuthOauthFail:
      OnAuthOauthFail(reply);
      break;
    case State::kReady:
      OnReadyLine(reply);
      break;
    case State::kNoop:
      OnCommandDone(reply, "NOOP");
      break;
    case State::kQuit:
      OnCommandDone(reply, "QUIT");
      break;
    case State::kStat:
      OnStat(reply);
      break;
    case State::kDele:
    case State::kRset:
      OnSimpleReply(reply);
      break;
    case State::kList:
    case State::kUidl:
    case State::kTop:
    case State::kRetr:
      OnMultilineStatus(reply);
      break;
    default:
      break;
  }
}

void ClientImpl::OnGreeting(const std::string& line, const Reply& reply) {
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

void ClientImpl::SendCapa() {
  capa_lines_.clear();
  capa_bytes_ = 0;
  capa_ok_ = false;
  Write("CAPA");
  state_ = State::kCapa;
}

void ClientImpl::OnCapaStatus(const Reply& reply) {
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

void ClientImpl::OnCapaListLine(const std::string& line) {
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

void ClientImpl::CapaDone() {
  if (capa_ok_) {
    caps_ = ParseCapabilities(capa_lines_);
    info_.capabilities = caps_.lines;
    for (std::string& c : info_.capabilities) MakeValidUtf8(&c);  // shown in proto strings
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

void ClientImpl::OnStls(const Reply& reply) {
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

void ClientImpl::OnTlsEstablished() {
  if (state_ != State::kNeedTls) return;
  tls_done_ = true;
  reader_ = wire::LineReader(kMaxLine);
  // Capabilities learned in plaintext are discarded (RFC 2595 section 4).
  info_.capabilities.clear();
  caps_ = Capabilities();
  SendCapa();
}

void ClientImpl::StartAuthentication() {
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
    case Mechanism::kScramSha1:
    case Mechanism::kScramSha256:
      StartSasl();
      return;
    default:
      Fail(ReasonError(absl::StatusCode::kInvalidArgument, "MECHANISM_MISMATCH",
                       absl::StrCat("POP3 cannot log in with ", wire::MechanismName(mechanism_))));
  }
}

void ClientImpl::OnUser(const Reply& reply) {
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

void ClientImpl::OnLoginReply(const Reply& reply) {
  switch (reply.kind) {
    case Reply::Kind::kOk:
      Authenticated();
      return;
    case Reply::Kind::kErr:
      AuthFailed(reply);
      return;
    default:
      ProtocolViolation(
          absl::StrCat("malformed reply to ", state_ == State::kApop ? "APOP" : "PASS"),
          last_reply_);
  }
}

void ClientImpl::StartSasl() {
  sasl_ = std::make_unique<wire::SaslExchange>(mechanism_, options_);
  absl::string_view name = sasl_->name();
  auth_trace_ = absl::StrCat("AUTH ", name, " ***");
  state_ = State::kAuth;
  // Client-first mechanisms may put the initial response on the AUTH line when the line
  // stays within 255 octets (RFC 5034 section 4); otherwise it follows the first "+ ".
  std::optional<std::string> ir = sasl_->Initial(kMaxCommand - (5 + name.size() + 1 + 2));
  if (ir.has_value()) {
    absl::StrAppend(&out_, "AUTH ", name, " ", *ir, "\r\n");
    WipeString(*ir);
    return;
  }
  Write(absl::StrCat("AUTH ", name));
}

void ClientImpl::OnAuth(const Reply& reply) {
  switch (reply.kind) {
    case Reply::Kind::kOk: {
      absl::Status verified = sasl_ != nullptr ? sasl_->Finish() : absl::OkStatus();
      sasl_.reset();
      if (!verified.ok()) {
        Fail(MailServerError(verified.code(),
                             GetPayloadText(verified, kReasonPayload).value_or("AUTH_FAILED"),
                             verified.message(), auth_trace_, last_reply_));
        return;
      }
      Authenticated();
      return;
    }
    case Reply::Kind::kErr:
      AuthFailed(reply);
      return;
    case Reply::Kind::kContinuation:
      break;
    default:
      ProtocolViolation("malformed reply during AUTH", last_reply_);
      return;
  }
  if (sasl_->done()) {
    ProtocolViolation(absl::StrCat("unexpected ", sasl_->name(), " challenge"), last_reply_);
    return;
  }
  absl::StatusOr<std::string> response = sasl_->Step(reply.text);
  if (!response.ok()) {
    if (wire::SaslExchange::IsMalformedChallenge(response.status())) {
      ProtocolViolation(absl::StrCat("the server sent a ", response.status().message()),
                        last_reply_);
    } else {
      Fail(response.status());
    }
    return;
  }
  absl::StrAppend(&out_, *response, "\r\n");
  WipeString(*response);
  // After an OAuth2 error challenge only the server's -ERR may follow.
  if (!sasl_->oauth_error().empty()) state_ = State::kAuthOauthFail;
}

void ClientImpl::OnAuthOauthFail(const Reply& reply) {
  if (reply.kind == Reply::Kind::kErr) {
    AuthFailed(reply);
    return;
  }
  ProtocolViolation(absl::StrCat("unexpected reply after a ", wire::MechanismName(mechanism_),
                                 " error challenge"),
                    last_reply_);
}

void ClientImpl::AuthFailed(const Reply& reply) {
  bool temporary = IsTemporaryCode(reply.code);
  std::string what = temporary ? "POP3 login temporarily unavailable" : "POP3 login refused";
  if (sasl_ != nullptr && !sasl_->oauth_error().empty()) {
    absl::StrAppend(&what, " (OAuth2 error: ", sasl_->oauth_error(), ")");
  }
  sasl_.reset();
  Fail(MailServerError(
      temporary ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnauthenticated,
      temporary ? "AUTH_TEMPORARY_FAILURE" : "AUTH_FAILED", what, auth_trace_, last_reply_));
}

void ClientImpl::Authenticated() {
  authenticated_ = true;
  info_.mechanism = mechanism_;
  auth_trace_.clear();
  // Capabilities may change after login (RFC 2449 section 5).
  SendCapa();
}

void ClientImpl::OnReadyLine(const Reply& reply) {
  if (reply.kind == Reply::Kind::kErr) {
    // E.g. Dovecot's "-ERR Disconnected for inactivity." before it closes.
    state_ = State::kClosed;
    error_ = MailServerError(absl::StatusCode::kUnavailable, "SERVER_CLOSED",
                             "the POP3 server ended the session", {}, last_reply_);
    return;
  }
  ProtocolViolation("unsolicited data from the POP3 server", last_reply_);
}

void ClientImpl::StartNoop() {
  if (state_ != State::kReady) return;
  Write("NOOP");
  state_ = State::kNoop;
}

void ClientImpl::StartLogout() {
  if (state_ != State::kReady) return;
  Write("QUIT");
  state_ = State::kQuit;
}

void ClientImpl::OnCommandDone(const Reply& reply, absl::string_view command) {
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

// --- Maildrop commands (RFC 1939 section 5, TRANSACTION state) ---

bool ClientImpl::StartCommand(State state, std::string command) {
  if (state_ != State::kReady) return false;
  Write(command);
  command_trace_ = std::move(command);
  state_ = state;
  per_message_ = false;
  error_ = absl::OkStatus();
  return true;
}

void ClientImpl::StartStat(StatDone done) {
  if (StartCommand(State::kStat, "STAT")) stat_done_ = std::move(done);
}

void ClientImpl::StartList(ListDone done) {
  if (!StartCommand(State::kList, "LIST")) return;
  list_done_ = std::move(done);
  list_entries_.clear();
  is_uidl_ = false;
}

void ClientImpl::StartUidl(UidlDone done) {
  if (!StartCommand(State::kUidl, "UIDL")) return;
  uidl_done_ = std::move(done);
  uidl_entries_.clear();
  is_uidl_ = true;
}

void ClientImpl::StartTop(uint32_t number, uint32_t lines, DataSink sink) {
  if (number == 0) return;
  if (!StartCommand(State::kTop, absl::StrCat("TOP ", number, " ", lines))) return;
  per_message_ = true;
  sink_ = std::move(sink);
}

void ClientImpl::StartRetr(uint32_t number, DataSink sink) {
  if (number == 0) return;
  if (!StartCommand(State::kRetr, absl::StrCat("RETR ", number))) return;
  per_message_ = true;
  sink_ = std::move(sink);
}

void ClientImpl::StartDele(uint32_t number) {
  if (number == 0) return;
  if (StartCommand(State::kDele, absl::StrCat("DELE ", number))) per_message_ = true;
}

void ClientImpl::StartRset() { StartCommand(State::kRset, "RSET"); }

void ClientImpl::CommandRefused(const Reply& reply) {
  stat_done_ = nullptr;
  list_done_ = nullptr;
  uidl_done_ = nullptr;
  sink_ = nullptr;
  state_ = State::kReady;
  if (IsTemporaryCode(reply.code)) {
    error_ = MailServerError(absl::StatusCode::kUnavailable, "COMMAND_FAILED",
                             absl::StrCat(command_trace_, " temporarily refused"), command_trace_,
                             last_reply_);
  } else if (per_message_) {
    error_ = MailServerError(absl::StatusCode::kNotFound, "NO_SUCH_MESSAGE",
                             absl::StrCat("the POP3 server refused ", command_trace_),
                             command_trace_, last_reply_);
  } else if (is_uidl_ && command_trace_ == "UIDL") {
    error_ = MailServerError(absl::StatusCode::kUnimplemented, "UIDL_UNSUPPORTED",
                             "the POP3 server does not support UIDL", command_trace_, last_reply_);
  } else {
    error_ = MailServerError(absl::StatusCode::kUnavailable, "COMMAND_FAILED",
                             absl::StrCat(command_trace_, " refused"), command_trace_, last_reply_);
  }
}

// RFC 1939 section 5: "+OK nn mm" — the number of messages and the size of the maildrop
// in octets; "This memo makes no requirement on what follows the maildrop size".
void ClientImpl::OnStat(const Reply& reply) {
  if (reply.kind == Reply::Kind::kErr) return CommandRefused(reply);
  if (reply.kind != Reply::Kind::kOk) {
    return ProtocolViolation("malformed reply to STAT", last_reply_);
  }
  std::vector<absl::string_view> words = absl::StrSplit(reply.text, absl::MaxSplits(' ', 2));
  uint32_t count = 0;
  uint64_t size = 0;
  if (words.size() < 2 || !ParseDecimal(words[0], &count) || !ParseDecimal(words[1], &size)) {
    return ProtocolViolation("malformed reply to STAT", last_reply_);
  }
  state_ = State::kReady;
  auto done = std::move(stat_done_);
  stat_done_ = nullptr;
  if (done) done(count, size);
}

void ClientImpl::OnSimpleReply(const Reply& reply) {
  if (reply.kind == Reply::Kind::kErr) return CommandRefused(reply);
  if (reply.kind != Reply::Kind::kOk) {
    return ProtocolViolation(absl::StrCat("malformed reply to ", command_trace_), last_reply_);
  }
  state_ = State::kReady;
}

void ClientImpl::OnMultilineStatus(const Reply& reply) {
  if (reply.kind == Reply::Kind::kErr) return CommandRefused(reply);
  if (reply.kind != Reply::Kind::kOk) {
    return ProtocolViolation(absl::StrCat("malformed reply to ", command_trace_), last_reply_);
  }
  decoder_.Reset();
  listing_line_.clear();
  body_bytes_ = 0;
  state_ =
      (state_ == State::kList || state_ == State::kUidl) ? State::kListingBody : State::kDataBody;
}

size_t ClientImpl::ConsumeBody(absl::string_view data) {
  size_t used = decoder_.Consume(data, [this](absl::string_view piece) {
    if (state_ == State::kFailed) return;
    OnBodyPiece(piece);
  });
  if (state_ == State::kFailed) return data.size();
  if (decoder_.done()) BodyDone();
  return used;
}

void ClientImpl::OnBodyPiece(absl::string_view piece) {
  if (state_ == State::kDataBody) {
    body_bytes_ += piece.size();
    if (limits_.max_message_bytes != 0 && body_bytes_ > limits_.max_message_bytes) {
      sink_ = nullptr;
      return ProtocolViolation(absl::StrCat("the response to ", command_trace_, " exceeds ",
                                            limits_.max_message_bytes, " bytes"));
    }
    if (sink_) sink_(piece);
    return;
  }
  // A listing: assemble lines, each at most kMaxListingLine bytes.
  while (!piece.empty() && state_ == State::kListingBody) {
    size_t lf = piece.find('\n');
    absl::string_view part = piece.substr(0, lf == absl::string_view::npos ? piece.size() : lf);
    if (listing_line_.size() + part.size() > kMaxListingLine) {
      return ProtocolViolation(
          absl::StrCat("a line of the ", command_trace_, " listing is too long"));
    }
    listing_line_.append(part.data(), part.size());
    if (lf == absl::string_view::npos) return;
    piece.remove_prefix(lf + 1);
    absl::string_view line = listing_line_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    OnListingLine(line);
    listing_line_.clear();
  }
}

// LIST: "msg-number SP size" (RFC 1939 section 5, scan listing; what follows the size is
// unspecified). UIDL: "msg-number SP unique-id", unique-id = 1*70 (0x21..0x7E) (RFC 1939
// section 7); up to kMaxUidl characters are tolerated.
void ClientImpl::OnListingLine(absl::string_view line) {
  size_t count = is_uidl_ ? uidl_entries_.size() : list_entries_.size();
  if (count >= limits_.max_listing_entries) {
    return ProtocolViolation(absl::StrCat("the ", command_trace_, " listing has more than ",
                                          limits_.max_listing_entries, " entries"));
  }
  size_t space = line.find(' ');
  uint32_t number = 0;
  if (space == absl::string_view::npos || !ParseDecimal(line.substr(0, space), &number) ||
      number == 0) {
    return ProtocolViolation(absl::StrCat("malformed line in the ", command_trace_, " listing"),
                             SanitizeServerText(line, 128));
  }
  absl::string_view rest = line.substr(space + 1);
  if (is_uidl_) {
    bool valid = !rest.empty() && rest.size() <= kMaxUidl;
    for (char c : rest) valid = valid && c >= 0x21 && c <= 0x7e;
    if (!valid) {
      return ProtocolViolation("malformed unique-id in the UIDL listing",
                               SanitizeServerText(line, 128));
    }
    uidl_entries_.push_back(UidlEntry{number, std::string(rest)});
    return;
  }
  uint64_t size = 0;
  if (!ParseDecimal(rest.substr(0, rest.find(' ')), &size)) {
    return ProtocolViolation("malformed line in the LIST listing", SanitizeServerText(line, 128));
  }
  list_entries_.push_back(ListEntry{number, size});
}

void ClientImpl::BodyDone() {
  if (!listing_line_.empty()) {
    return ProtocolViolation(absl::StrCat("the ", command_trace_, " listing ended mid-line"));
  }
  state_ = State::kReady;
  error_ = absl::OkStatus();
  sink_ = nullptr;
  if (auto done = std::move(list_done_)) {
    list_done_ = nullptr;
    done(std::move(list_entries_));
  }
  if (auto done = std::move(uidl_done_)) {
    uidl_done_ = nullptr;
    done(std::move(uidl_entries_));
  }
  list_entries_.clear();
  uidl_entries_.clear();
}

}  // namespace

std::unique_ptr<Client> NewClient(wire::LoginOptions options, Limits limits) {
  return std::make_unique<ClientImpl>(std::move(options), limits);
}

}  // namespace mailpool::pop3
