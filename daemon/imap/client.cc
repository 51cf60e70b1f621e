#include "imap/client.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/secret.h"
#include "common/status.h"
#include "common/utf8.h"
#include "imap/fetch.h"
#include "imap/mailbox_name.h"
#include "imap/refusal.h"
#include "imap/response.h"
#include "imap/syntax.h"
#include "wire/sasl.h"
#include "wire/sasl_exchange.h"

namespace mailpool::imap {
namespace {

using wire::Mechanism;
using wire::Security;
using Kind = StatusResponse::Kind;

// RFC 7888 section 4: LITERAL- allows non-synchronizing literals of up to 4096 bytes.
constexpr size_t kLiteralMinusMax = 4096;
// How much of an OAuth error challenge ends up in the error message.
constexpr size_t kMaxErrorDetail = 256;

absl::Status InvalidField(absl::string_view what) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD", what);
}

// A command's bytes, cut after each synchronizing literal announcement: segment i+1 goes
// out once the server has answered segment i with a "+" continuation (RFC 3501 section
// 7.5). Strings that would need escaping or hold 8-bit bytes go out as literals.
class CommandBuilder {
 public:
  CommandBuilder(bool literal_plus, bool literal_minus)
      : literal_plus_(literal_plus), literal_minus_(literal_minus) {}

  CommandBuilder& Raw(absl::string_view text) {
    current_.append(text.data(), text.size());
    return *this;
  }
  // astring argument: bare when it is 1*ASTRING-CHAR, quoted when 7-bit, else a literal.
  CommandBuilder& String(absl::string_view text) {
    if (!NeedsLiteral(text)) {
      current_ += AString(text);
      return *this;
    }
    return Literal(text);
  }
  CommandBuilder& Literal(absl::string_view bytes) {
    bool non_sync = literal_plus_ || (literal_minus_ && bytes.size() <= kLiteralMinusMax);
    absl::StrAppend(&current_, "{", bytes.size(), non_sync ? "+" : "", "}\r\n");
    if (!non_sync) segments_.push_back(std::exchange(current_, std::string()));
    current_.append(bytes.data(), bytes.size());
    return *this;
  }
  std::vector<std::string> Finish() {
    current_ += "\r\n";
    segments_.push_back(std::move(current_));
    return std::move(segments_);
  }

 private:
  bool literal_plus_;
  bool literal_minus_;
  std::string current_;
  std::vector<std::string> segments_;
};

// flag = "\Answered" / "\Flagged" / "\Deleted" / "\Seen" / "\Draft" / flag-keyword
// flag-keyword = atom. \Recent cannot be stored and \* is only a PERMANENTFLAGS marker.
bool IsStorableFlag(absl::string_view flag) {
  if (flag.empty()) return false;
  if (flag.front() == '\\') {
    for (absl::string_view system : {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"}) {
      if (absl::EqualsIgnoreCase(flag, system)) return true;
    }
    return false;
  }
  return std::all_of(flag.begin(), flag.end(), IsAtomChar);
}

absl::Status CheckFlags(const std::vector<std::string>& flags) {
  for (const std::string& flag : flags) {
    if (!IsStorableFlag(flag)) {
      return InvalidField(absl::StrCat("invalid flag \"", SanitizeServerText(flag, 64), "\""));
    }
  }
  return absl::OkStatus();
}

bool IsSetChar(char c) {
  return absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == ':' || c == ',' || c == '*';
}

// section-spec text of a BODY[...] request: part numbers, keywords and for HEADER.FIELDS
// a parenthesized list of header names.
bool IsValidSection(absl::string_view section) {
  size_t open = section.find('(');
  absl::string_view head = section.substr(0, open);
  for (char c : head) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == ' ')) return false;
  }
  if (open == absl::string_view::npos) return head.find(' ') == absl::string_view::npos;
  if (!absl::EndsWithIgnoreCase(head, "FIELDS ") &&
      !absl::EndsWithIgnoreCase(head, "FIELDS.NOT ")) {
    return false;
  }
  absl::string_view list = section.substr(open);
  if (list.size() < 3 || list.back() != ')') return false;
  list = list.substr(1, list.size() - 2);
  for (char c : list) {
    if (!(IsAstringChar(c) || c == ' ')) return false;
  }
  return true;
}

bool IsSectionName(absl::string_view att) {
  return absl::StartsWithIgnoreCase(att, "BODY[") || absl::StartsWithIgnoreCase(att, "BINARY[");
}

// "BODY[1.2]<100>" -> section "1.2", origin 100.
void SplitSection(absl::string_view att, absl::string_view* section, uint64_t* origin) {
  size_t open = att.find('[');
  size_t close = att.rfind(']');
  *section = att.substr(open + 1, close - open - 1);
  *origin = 0;
  absl::string_view tail = att.substr(close + 1);
  if (tail.size() > 2 && tail.front() == '<' && tail.back() == '>') {
    uint64_t n = 0;
    for (char c : tail.substr(1, tail.size() - 2)) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) || n > (UINT64_MAX / 10)) return;
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    *origin = n;
  }
}

bool ReadFlagList(Cursor& c, std::vector<std::string>* out) {
  out->clear();
  if (!c.Open()) return false;
  while (!c.Close()) {
    absl::string_view flag;
    if (!c.CountItem() || !c.Flag(&flag)) return false;
    out->emplace_back(flag);
    if (c.Peek() != ')' && !c.Space()) return false;
  }
  return true;
}

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
  bool utf8_enabled() const override { return utf8_; }
  bool condstore_enabled() const override { return condstore_; }
  bool selected() const override { return selected_; }
  const MailboxState& mailbox() const override { return mailbox_; }
  void SetEventCallback(EventCallback callback) override { events_ = std::move(callback); }
  void StartList(std::string pattern, ListDone done) override;
  void StartSelect(std::string folder, bool read_only) override;
  void StartCreate(std::string folder) override;
  void StartDelete(std::string folder) override;
  void StartRename(std::string from, std::string to) override;
  void StartSubscribe(std::string folder, bool subscribe) override;
  void StartStatus(std::string folder, StatusDone done) override;
  void StartUidSearch(std::vector<SearchArg> criteria, SearchOptions options,
                      SearchDone done) override;
  void StartUidFetch(UidSet uids, FetchRequest request, FetchCallback each) override;
  void StartUidStore(UidSet uids, StoreMode mode, std::vector<std::string> flags, bool silent,
                     FetchCallback each) override;
  void StartUidCopy(UidSet uids, std::string folder, CopyDone done) override;
  void StartUidMove(UidSet uids, std::string folder, CopyDone done) override;
  void StartUidExpunge(UidSet uids) override;
  void StartExpunge() override;
  void StartAppend(std::string folder, AppendRequest request, AppendDone done) override;
  void StartIdle() override;
  void StopIdle() override;
  bool idling() const override {
    return cmd_.kind == Cmd::kIdle && cmd_.idle_accepted && !cmd_.idle_done_sent;
  }

 private:
  // Where the client is. kCapability, kStartTls, kAuthenticate, kEnable and kSelect are
  // parts of the login (Phase::kLoggingIn); kCommand and kLogout are Phase::kBusy.
  enum class Step {
    kGreeting,
    kCapability,
    kStartTls,
    kNeedTls,
    kAuthenticate,
    kEnable,
    kSelect,
    kReady,
    kCommand,
    kLogout,
    kClosed,
    kFailed,
  };
  enum class Cmd {
    kNone,
    kNoop,
    kList,
    kLsub,
    kSelect,
    kCreate,
    kDelete,
    kRename,
    kSubscribe,
    kStatus,
    kSearch,
    kFetch,
    kStore,
    kCopy,
    kMove,
    kUidExpunge,
    kExpunge,
    kAppend,
    kIdle,
  };
  // The command in flight (step_ == kCommand) and what it collects.
  struct Command {
    Cmd kind = Cmd::kNone;
    std::vector<std::string> segments;  // after synchronizing literals, see CommandBuilder
    size_t next_segment = 0;
    bool list_extended = false;  // LIST ... RETURN (SUBSCRIBED ...) was used
    std::string pattern;         // LIST pattern, wire form (for the LSUB that follows)
    std::vector<ListEntry> entries;
    ListDone list_done;
    MailboxStatus status;
    StatusDone status_done;
    SearchOptions search_options;
    bool esearch = false;
    SearchResult search;
    SearchDone search_done;
    UidSet uids;
    FetchRequest fetch;
    bool flags_only = false;  // a FETCH asking FLAGS alone, or a STORE
    FetchCallback each;
    CopyResult copy;
    CopyDone copy_done;
    AppendResult append;
    AppendDone append_done;
    bool idle_accepted = false;
    bool idle_stop_requested = false;
    bool idle_done_sent = false;
    std::string folder;  // SELECT: UTF-8 name
    bool read_only = false;
    // The first response of this command the client could not parse (sanitized); the
    // command then fails with MALFORMED_RESPONSE instead of its result.
    std::string malformed;
  };

  bool Stopped() const {
    return step_ == Step::kFailed || step_ == Step::kClosed || step_ == Step::kNeedTls;
  }

  void Drain();
  void HandleResponse(Response& response);
  void HandleGreeting(absl::string_view line);
  void HandleUntagged(Response& response);
  void HandleContinuation(absl::string_view payload);
  void HandleAuthContinuation(absl::string_view payload);
  void HandleTagged(absl::string_view line, const StatusResponse& status);
  void HandleAuthResult(absl::string_view line, const StatusResponse& status);
  void HandleBye(absl::string_view line);
  void FinishCommand(absl::string_view line, const StatusResponse& status);
  absl::Status CommandFailure(absl::string_view line, const StatusResponse& status) const;
  // Untagged data; false when malformed.
  bool HandleFetch(uint32_t seq, Cursor& c);
  bool HandleList(Cursor& c, bool lsub);
  bool HandleStatusData(Cursor& c);
  bool HandleSearch(Cursor& c);
  bool HandleEsearch(Cursor& c);
  void HandleExists(uint32_t n);
  void HandleExpunge(uint32_t seq);
  void Emit(MailboxEvent event);
  bool EventsWanted() const;
  // Whether the literal just announced should go to the FETCH sink (and notes where).
  bool ShouldStream(const Response& partial, uint64_t size);
  void OnStreamPiece(absl::string_view piece, bool last);
  // Applies what a resp-text-code says (CAPABILITY, UIDVALIDITY, COPYUID, ...).
  void ApplyCode(absl::string_view code);
  void SetCapabilities(absl::string_view list);

  // Issues the next login command, or enters kReady when the login is complete.
  void Continue();
  void StartAuthentication();
  void StartLoginCommand();
  void StartSasl();
  void SendCommand(Step step, absl::string_view command, absl::string_view trace);
  std::string NextTag() { return absl::StrCat("a", ++tag_counter_); }
  void SendNextLoginSegment();
  void WipeAuthState();

  // Command plumbing. Ready() checks kReady (else sets error_); Begin() resets cmd_;
  // Send() writes the first segment under a new tag.
  bool Ready(absl::string_view command);
  Command& Begin(Cmd kind);
  void Send(std::vector<std::string> segments, std::string trace);
  CommandBuilder Builder() const {
    return CommandBuilder(HasCapability("LITERAL+"), HasCapability("LITERAL-"));
  }
  // The wire form of a folder name, or INVALID_FIELD.
  absl::StatusOr<std::string> WireName(absl::string_view folder) const;
  std::string DecodeName(absl::string_view wire) const;
  void Reject(absl::Status status) { error_ = std::move(status); }
  void StartSimpleFolderCommand(Cmd kind, absl::string_view verb, std::string folder);
  void StartCopyOrMove(Cmd kind, UidSet uids, std::string folder, CopyDone done);

  void Fail(absl::Status status);
  void Violation(absl::string_view what, absl::string_view line = {});
  void MalformedData(absl::string_view line);

  Options options_;
  ResponseReader reader_;
  std::string out_;
  Step step_ = Step::kGreeting;
  absl::Status error_;
  wire::ServerInfo info_;
  std::string last_reply_;

  bool tls_active_ = false;
  bool caps_known_ = false;  // info_.capabilities is current for this login stage
  bool authenticated_ = false;
  bool selected_ = false;
  bool enabled_ = false;  // ENABLE was tried
  bool utf8_ = false;
  bool condstore_ = false;

  int tag_counter_ = 0;
  std::string current_tag_;    // tag of the command in flight, empty when none
  std::string current_trace_;  // its redacted form, for errors

  // Authentication in flight. Everything here may hold secrets and is wiped.
  Mechanism mechanism_ = Mechanism::kNone;
  std::unique_ptr<wire::SaslExchange> sasl_;  // AUTHENTICATE in flight
  std::vector<std::string> login_segments_;   // LOGIN parts after synchronizing literals
  size_t next_segment_ = 0;

  Command cmd_;
  MailboxState mailbox_;
  std::vector<uint32_t> uids_;  // UID by sequence number - 1; 0 unknown
  bool tracking_ = true;        // uids_ is usable (the mailbox is not too big)
  EventCallback events_;
  // The FETCH literal being streamed.
  uint32_t stream_seq_ = 0;
  uint32_t stream_uid_ = 0;
  std::string stream_section_;
};

ClientImpl::ClientImpl(Options options) : options_(std::move(options)), reader_(options_.limits) {
  const wire::LoginOptions& login = options_.login;
  tls_active_ = login.security == Security::kImplicitTls;
  reader_.SetStreaming(
      [this](const Response& partial, uint64_t size) { return ShouldStream(partial, size); },
      [this](absl::string_view piece, bool last) { OnStreamPiece(piece, last); });
  const std::pair<absl::string_view, absl::string_view> fields[] = {
      {"user name", login.user},
      {"password", login.password.Reveal()},
      {"OAuth2 token", login.oauth2_token.Reveal()},
      {"host", login.host},
      {"initial folder", options_.initial_folder},
  };
  for (const auto& [name, value] : fields) {
    if (!wire::IsCommandSafe(value)) {
      Fail(InvalidField(absl::StrCat("the ", name, " contains CR, LF or NUL")));
      return;
    }
  }
  if (!EncodeMailboxName(options_.initial_folder).ok()) {
    Fail(InvalidField("the initial folder is not valid UTF-8"));
    return;
  }
  mailbox_.name = options_.initial_folder.empty() ? "INBOX" : options_.initial_folder;
}

wire::ClientProtocol::Phase ClientImpl::phase() const {
  switch (step_) {
    case Step::kGreeting:
    case Step::kCapability:
    case Step::kStartTls:
    case Step::kAuthenticate:
    case Step::kEnable:
    case Step::kSelect:
      return Phase::kLoggingIn;
    case Step::kNeedTls:
      return Phase::kNeedTls;
    case Step::kReady:
      return Phase::kReady;
    case Step::kCommand:
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
    std::optional<Response> response = reader_.Next();
    if (!response) {
      if (!reader_.status().ok()) Violation(reader_.status().message());
      return;
    }
    HandleResponse(*response);
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
void ClientImpl::HandleResponse(Response& response) {
  absl::string_view line = response.text;
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
    HandleUntagged(response);
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

void ClientImpl::HandleUntagged(Response& response) {
  absl::string_view line = response.text;
  absl::string_view rest = line.substr(2);
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
  Cursor c(&response, options_.limits);
  c.Consume('*');
  c.Space();
  bool ok = true;
  uint32_t number = 0;
  if (c.Number(&number)) {
    // number SP "EXISTS" / number SP "RECENT" / nz-number SP "EXPUNGE" /
    // nz-number SP "FETCH" SP msg-att
    if (!c.Space()) {
      ok = false;
    } else if (c.Word("EXISTS")) {
      HandleExists(number);
    } else if (c.Word("RECENT")) {
      mailbox_.recent = number;
    } else if (c.Word("EXPUNGE")) {
      HandleExpunge(number);
    } else if (c.Word("FETCH")) {
      ok = number > 0 && c.Space() && HandleFetch(number, c);
    }
    // Anything else numeric is unknown data; ignored.
  } else if (c.Word("CAPABILITY")) {
    SetCapabilities(c.Rest());
  } else if (c.Word("FLAGS")) {
    ok = c.Space() && ReadFlagList(c, &mailbox_.flags);
  } else if (c.Word("LIST")) {
    ok = HandleList(c, false);
  } else if (c.Word("LSUB")) {
    ok = HandleList(c, true);
  } else if (c.Word("STATUS")) {
    ok = HandleStatusData(c);
  } else if (c.Word("SEARCH")) {
    ok = HandleSearch(c);
  } else if (c.Word("ESEARCH")) {
    ok = HandleEsearch(c);
  } else if (c.Word("ENABLED") && step_ == Step::kEnable) {
    for (absl::string_view cap : ParseCapabilityList(c.Rest())) {
      if (absl::EqualsIgnoreCase(cap, "UTF8=ACCEPT")) utf8_ = true;
      if (absl::EqualsIgnoreCase(cap, "CONDSTORE")) condstore_ = true;
    }
  }
  // Everything else (ID, NAMESPACE, VANISHED without QRESYNC, ...) is ignored.
  if (!ok) MalformedData(line);
}

// A complete response (its framing, literals included, was intact) whose grammar the
// client cannot read: the byte stream is still in step, so only the command in flight
// fails, and the connection stays usable. During login it is a violation (nothing the
// client can trust yet); with no command in flight the response is dropped.
void ClientImpl::MalformedData(absl::string_view line) {
  if (step_ == Step::kCommand) {
    if (cmd_.malformed.empty()) cmd_.malformed = SanitizeServerText(line, 200);
    return;
  }
  if (step_ == Step::kReady) return;
  Violation("the server sent malformed data", SanitizeServerText(line, 200));
}

bool ClientImpl::EventsWanted() const {
  return events_ && selected_ && !(step_ == Step::kCommand && cmd_.kind == Cmd::kSelect);
}

void ClientImpl::Emit(MailboxEvent event) {
  if (EventsWanted()) events_(event);
}

void ClientImpl::HandleExists(uint32_t n) {
  mailbox_.exists = n;
  if (tracking_) {
    if (n > options_.limits.max_tracked_messages) {
      tracking_ = false;
      uids_.clear();
      uids_.shrink_to_fit();
    } else {
      uids_.resize(n, 0);
    }
  }
  MailboxEvent event;
  event.kind = MailboxEvent::Kind::kExists;
  event.exists = n;
  Emit(std::move(event));
}

void ClientImpl::HandleExpunge(uint32_t seq) {
  MailboxEvent event;
  event.kind = MailboxEvent::Kind::kExpunged;
  event.seq = seq;
  if (seq >= 1 && seq <= uids_.size()) {
    event.uid = uids_[seq - 1];
    uids_.erase(uids_.begin() + (seq - 1));
  }
  if (mailbox_.exists > 0) --mailbox_.exists;
  if (mailbox_.recent > mailbox_.exists) mailbox_.recent = mailbox_.exists;
  Emit(std::move(event));
}

// msg-att = "(" (msg-att-dynamic / msg-att-static) *(SP (msg-att-dynamic /
//           msg-att-static)) ")"
bool ClientImpl::HandleFetch(uint32_t seq, Cursor& c) {
  FetchedMessage m;
  m.seq = seq;
  bool want_sections = step_ == Step::kCommand && cmd_.kind == Cmd::kFetch;
  SectionSink* sink = want_sections && cmd_.fetch.sink ? &cmd_.fetch.sink : nullptr;
  bool has_data = false;  // an item other than UID, FLAGS and MODSEQ
  if (!c.Open()) return false;
  while (!c.Close()) {
    absl::string_view att;
    if (!c.CountItem() || !c.FetchAttName(&att) || !c.Space()) return false;
    if (absl::EqualsIgnoreCase(att, "UID")) {
      if (!c.Number(&m.uid)) return false;
    } else if (absl::EqualsIgnoreCase(att, "FLAGS")) {
      if (!ReadFlagList(c, &m.flags)) return false;
      m.present |= kFetchFlags;
    } else if (absl::EqualsIgnoreCase(att, "RFC822.SIZE")) {
      if (!c.Number64(&m.size)) return false;
      m.present |= kFetchSize;
      has_data = true;
    } else if (absl::EqualsIgnoreCase(att, "INTERNALDATE")) {
      if (!c.String(&m.internal_date)) return false;
      m.internal_time = ParseDateTime(m.internal_date);
      m.present |= kFetchInternalDate;
      has_data = true;
    } else if (absl::EqualsIgnoreCase(att, "ENVELOPE")) {
      // Read liberally; one the reader cannot make sense of leaves this message without
      // an envelope (noted in `unparsed`), not the command without a result.
      Cursor::Mark mark = c.Save();
      m.envelope = std::make_unique<Envelope>();
      if (ParseEnvelope(c, m.envelope.get())) {
        m.present |= kFetchEnvelope;
      } else {
        c.Restore(mark);
        m.envelope.reset();
        if (!c.SkipValue()) return false;
        m.unparsed.push_back("ENVELOPE");
      }
      has_data = true;
    } else if (absl::EqualsIgnoreCase(att, "BODYSTRUCTURE") ||
               absl::EqualsIgnoreCase(att, "BODY")) {
      Cursor::Mark mark = c.Save();
      m.body_structure = std::make_unique<BodyPart>();
      if (ParseBodyStructure(c, m.body_structure.get())) {
        m.present |= kFetchBodyStructure;
      } else {
        c.Restore(mark);
        m.body_structure.reset();
        if (!c.SkipValue()) return false;
        m.unparsed.push_back("BODYSTRUCTURE");
      }
      has_data = true;
    } else if (absl::EqualsIgnoreCase(att, "MODSEQ")) {
      // "MODSEQ" SP "(" mod-sequence-value ")" (RFC 7162)
      if (!c.Open() || !c.Number64(&m.modseq) || !c.Close()) return false;
      m.present |= kFetchModSeq;
    } else if (IsSectionName(att)) {
      SectionData section;
      absl::string_view spec;
      SplitSection(att, &spec, &section.origin);
      section.section = std::string(spec);
      // Report the section as the caller spelled it.
      for (const SectionRequest& r : cmd_.fetch.sections) {
        if (absl::EqualsIgnoreCase(r.section, spec)) section.section = r.section;
      }
      if (!c.NString(&section.data, &section.nil)) return false;
      if (sink != nullptr && !c.last_streamed()) {
        if (!section.data.empty()) (*sink)(seq, m.uid, section.section, section.data, false);
        (*sink)(seq, m.uid, section.section, {}, true);
      }
      if (sink != nullptr) section.data.clear();
      m.sections.push_back(std::move(section));
      has_data = true;
    } else {
      if (!c.SkipValue()) return false;
      has_data = true;
    }
    if (c.Peek() != ')' && !c.Space()) return false;
  }
  if (m.uid != 0 && tracking_ && seq <= uids_.size()) uids_[seq - 1] = m.uid;
  uint32_t uid = m.uid != 0 ? m.uid : (seq <= uids_.size() ? uids_[seq - 1] : 0);
  bool result = false;
  if (step_ == Step::kCommand && (cmd_.kind == Cmd::kFetch || cmd_.kind == Cmd::kStore) &&
      m.uid != 0 && cmd_.uids.Contains(m.uid)) {
    result = cmd_.flags_only ? (m.present & kFetchFlags) != 0 : has_data;
  }
  if (result) {
    if (cmd_.each) cmd_.each(std::move(m));
    return true;
  }
  if (m.present & kFetchFlags) {
    MailboxEvent event;
    event.kind = MailboxEvent::Kind::kFlags;
    event.seq = seq;
    event.uid = uid;
    event.flags = std::move(m.flags);
    Emit(std::move(event));
  }
  return true;
}

bool ClientImpl::ShouldStream(const Response& partial, uint64_t size) {
  if (step_ != Step::kCommand || cmd_.kind != Cmd::kFetch || !cmd_.fetch.sink) return false;
  // "* " seq " FETCH (" then att SP value pairs up to the announcement.
  Cursor c(partial, options_.limits);
  uint32_t seq = 0, uid = 0;
  if (!c.Consume('*') || !c.Space() || !c.Number(&seq) || !c.Space() || !c.Word("FETCH") ||
      !c.Space() || !c.Open()) {
    return false;
  }
  for (;;) {
    absl::string_view att;
    if (!c.FetchAttName(&att) || !c.Space()) return false;
    if (IsSectionName(att) && c.AtTrailingLiteral()) {
      absl::string_view spec;
      uint64_t origin = 0;
      SplitSection(att, &spec, &origin);
      stream_seq_ = seq;
      stream_uid_ = uid;
      stream_section_ = std::string(spec);
      for (const SectionRequest& r : cmd_.fetch.sections) {
        if (absl::EqualsIgnoreCase(r.section, spec)) stream_section_ = r.section;
      }
      return true;
    }
    if (absl::EqualsIgnoreCase(att, "UID")) {
      if (!c.Number(&uid)) return false;
    } else if (!c.SkipValue()) {
      return false;
    }
    if (!c.Space()) return false;
  }
}

void ClientImpl::OnStreamPiece(absl::string_view piece, bool last) {
  if (step_ != Step::kCommand || cmd_.kind != Cmd::kFetch || !cmd_.fetch.sink) return;
  cmd_.fetch.sink(stream_seq_, stream_uid_, stream_section_, piece, last);
}

// mailbox-list = "(" [mbx-list-flags] ")" SP (DQUOTE QUOTED-CHAR DQUOTE / nil) SP mailbox
//                [SP mbox-list-extended]
bool ClientImpl::HandleList(Cursor& c, bool lsub) {
  ListEntry entry;
  std::string delimiter, wire_name;
  bool nil = false;
  if (!c.Space() || !ReadFlagList(c, &entry.attributes) || !c.Space() ||
      !c.NString(&delimiter, &nil) || !c.Space() || !c.AString(&wire_name)) {
    return false;
  }
  if (!nil && delimiter.size() != 1) return false;
  if (!nil) entry.delimiter = delimiter[0];
  // Extended data ("(CHILDINFO (...))", "("OLDNAME" (...))") is not used.
  entry.name = DecodeName(wire_name);
  for (const std::string& attribute : entry.attributes) {
    if (absl::EqualsIgnoreCase(attribute, "\\Subscribed")) entry.subscribed = true;
    for (absl::string_view use :
         {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}) {
      if (absl::EqualsIgnoreCase(attribute, use)) entry.special_use = std::string(use);
    }
  }
  // A server without SPECIAL-USE (RFC 6154; GNU Mailutils imap4d) names no roles: the
  // top-level folders that mail clients create under these names take them.
  if (entry.special_use.empty() && !HasCapability("SPECIAL-USE") &&
      (nil || entry.name.find(entry.delimiter) == std::string::npos)) {
    static constexpr std::pair<absl::string_view, absl::string_view> kByName[] = {
        {"Sent", "\\Sent"},
        {"Sent Items", "\\Sent"},
        {"Sent Messages", "\\Sent"},
        {"Drafts", "\\Drafts"},
        {"Trash", "\\Trash"},
        {"Deleted Items", "\\Trash"},
        {"Deleted Messages", "\\Trash"},
        {"Junk", "\\Junk"},
        {"Spam", "\\Junk"},
        {"Archive", "\\Archive"},
    };
    for (const auto& [name, use] : kByName) {
      if (absl::EqualsIgnoreCase(entry.name, name)) entry.special_use = std::string(use);
    }
  }
  if (step_ != Step::kCommand) return true;
  if (lsub && cmd_.kind == Cmd::kLsub) {
    for (ListEntry& e : cmd_.entries) {
      if (e.name == entry.name) e.subscribed = true;
    }
    return true;
  }
  if (!lsub && cmd_.kind == Cmd::kList) {
    if (cmd_.entries.size() >= options_.limits.max_list_items) return false;
    cmd_.entries.push_back(std::move(entry));
  }
  return true;
}

// mailbox-data =/ "STATUS" SP mailbox SP "(" [status-att-list] ")"
bool ClientImpl::HandleStatusData(Cursor& c) {
  std::string name;
  if (!c.Space() || !c.AString(&name)) return false;
  // Read liberally: some servers (GNU imap4d) send a name with spaces unquoted; its words
  // run up to the " (" that opens the list. The name itself is not used (the answer
  // belongs to the STATUS in flight).
  while (c.Space() && c.Peek() != '(') {
    if (!c.AString(&name)) return false;
  }
  if (!c.Open()) return false;
  MailboxStatus status;
  while (!c.Close()) {
    absl::string_view att;
    uint64_t value = 0;
    if (!c.CountItem() || !c.Atom(&att) || !c.Space() || !c.Number64(&value)) return false;
    uint32_t v32 = static_cast<uint32_t>(std::min<uint64_t>(value, UINT32_MAX));
    if (absl::EqualsIgnoreCase(att, "MESSAGES")) status.messages = v32;
    if (absl::EqualsIgnoreCase(att, "UNSEEN")) status.unseen = v32;
    if (absl::EqualsIgnoreCase(att, "RECENT")) status.recent = v32;
    if (absl::EqualsIgnoreCase(att, "UIDNEXT")) status.uidnext = v32;
    if (absl::EqualsIgnoreCase(att, "UIDVALIDITY")) status.uidvalidity = v32;
    if (absl::EqualsIgnoreCase(att, "SIZE")) status.size = value;
    if (absl::EqualsIgnoreCase(att, "HIGHESTMODSEQ")) status.highestmodseq = value;
    if (c.Peek() != ')' && !c.Space()) return false;
  }
  if (step_ == Step::kCommand && cmd_.kind == Cmd::kStatus) cmd_.status = std::move(status);
  return true;
}

// mailbox-data =/ "SEARCH" *(SP nz-number) [SP "(" "MODSEQ" SP mod-sequence-value ")"]
bool ClientImpl::HandleSearch(Cursor& c) {
  bool mine = step_ == Step::kCommand && cmd_.kind == Cmd::kSearch;
  while (c.Space()) {
    if (c.Peek() == '(') return c.SkipValue();
    uint32_t uid = 0;
    if (!c.CountItem() || !c.Number(&uid)) return false;
    if (mine) cmd_.search.uids.push_back(uid);
  }
  return c.AtEnd();
}

// esearch-response = "ESEARCH" [search-correlator] [SP "UID"] *(SP search-return-data)
// search-return-data = "MIN" SP nz-number / "MAX" SP nz-number / "ALL" SP sequence-set /
//                      "COUNT" SP number / search-modifier-name SP search-return-value
bool ClientImpl::HandleEsearch(Cursor& c) {
  bool mine = step_ == Step::kCommand && cmd_.kind == Cmd::kSearch;
  SearchResult& r = cmd_.search;
  if (c.Space() && c.Peek() == '(') {
    // search-correlator = SP "(" "TAG" SP tag-string ")": a reply to our command only if
    // the tag is ours.
    std::string tag;
    if (!c.Open() || !c.Word("TAG") || !c.Space() || !c.String(&tag) || !c.Close()) return false;
    if (tag != current_tag_) mine = false;
    if (!c.Space()) return c.AtEnd();
  }
  while (!c.AtEnd()) {
    absl::string_view name;
    if (!c.Atom(&name)) return false;
    if (absl::EqualsIgnoreCase(name, "UID")) {
      if (!c.Space()) return c.AtEnd();
      continue;
    }
    if (!c.Space()) return false;
    uint32_t n = 0;
    if (absl::EqualsIgnoreCase(name, "MIN")) {
      if (!c.Number(&n)) return false;
      if (mine) r.min = n;
    } else if (absl::EqualsIgnoreCase(name, "MAX")) {
      if (!c.Number(&n)) return false;
      if (mine) r.max = n;
    } else if (absl::EqualsIgnoreCase(name, "COUNT")) {
      if (!c.Number(&n)) return false;
      if (mine) r.count = n;
    } else if (absl::EqualsIgnoreCase(name, "ALL")) {
      absl::string_view set;
      if (!c.Atom(&set)) return false;
      if (mine) {
        absl::StatusOr<std::vector<uint32_t>> uids =
            ExpandUidSet(set, options_.limits.max_list_items);
        if (!uids.ok()) return false;
        r.uids = *std::move(uids);
      }
    } else if (!c.SkipValue()) {
      return false;
    }
    if (!c.Space()) break;
  }
  return c.AtEnd();
}

// RFC 3501 section 7.1.5: BYE means the server is about to close the connection. It is
// part of a normal LOGOUT; anywhere else it ends the session.
void ClientImpl::HandleBye(absl::string_view line) {
  last_reply_ = SanitizeServerText(line);
  if (step_ == Step::kLogout) return;  // the tagged OK follows
  if (step_ == Step::kReady || step_ == Step::kCommand) {
    // Both arms views: `? current_trace_ : ""` would make a temporary std::string.
    absl::string_view command =
        step_ == Step::kCommand ? absl::string_view(current_trace_) : absl::string_view();
    error_ = MailServerError(absl::StatusCode::kUnavailable, "SERVER_CLOSED",
                             "the IMAP server closed the session", command, line);
    current_tag_.clear();
    cmd_ = Command();
    step_ = Step::kClosed;
    return;
  }
  Fail(MailServerError(absl::StatusCode::kUnavailable, "SERVER_CLOSED",
                       "the IMAP server closed the connection during login", current_trace_, line));
}

void ClientImpl::HandleContinuation(absl::string_view payload) {
  if (step_ == Step::kAuthenticate) {
    HandleAuthContinuation(payload);
    return;
  }
  // A continuation is only meaningful while a command waits for one; a stray one is
  // ignored.
  if (step_ != Step::kCommand) return;
  if (cmd_.next_segment < cmd_.segments.size()) {
    out_ += cmd_.segments[cmd_.next_segment++];
    return;
  }
  if (cmd_.kind == Cmd::kIdle && !cmd_.idle_accepted) {
    cmd_.idle_accepted = true;
    if (cmd_.idle_stop_requested) StopIdle();
  }
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
    case Step::kEnable:
      // A refused ENABLE only means the extensions stay off.
      Continue();
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
    case Step::kCommand:
      FinishCommand(line, status);
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

absl::Status ClientImpl::CommandFailure(absl::string_view line,
                                        const StatusResponse& status) const {
  std::string what = absl::StrCat("the IMAP server refused ", current_trace_);
  if (status.kind == Kind::kBad) {
    return MailServerError(absl::StatusCode::kInvalidArgument, "COMMAND_REJECTED", what,
                           current_trace_, line);
  }
  RefusedCommand command = RefusedCommand::kOther;
  switch (cmd_.kind) {
    case Cmd::kSelect:
      command = RefusedCommand::kSelect;
      break;
    case Cmd::kStatus:
      command = RefusedCommand::kStatus;
      break;
    case Cmd::kCreate:
      command = RefusedCommand::kCreate;
      break;
    case Cmd::kDelete:
      command = RefusedCommand::kDelete;
      break;
    case Cmd::kRename:
      command = RefusedCommand::kRename;
      break;
    case Cmd::kSubscribe:
      command = RefusedCommand::kSubscribe;
      break;
    case Cmd::kCopy:
    case Cmd::kMove:
      command = RefusedCommand::kCopy;
      break;
    case Cmd::kAppend:
      command = RefusedCommand::kAppend;
      break;
    default:
      break;
  }
  Refusal refusal = ClassifyRefusal(command, CodeName(status.code), status.text);
  return MailServerError(refusal.code, refusal.reason, what, current_trace_, line);
}

void ClientImpl::FinishCommand(absl::string_view line, const StatusResponse& status) {
  Command& cmd = cmd_;
  bool ok = status.kind == Kind::kOk;
  absl::Status result = ok ? absl::OkStatus() : CommandFailure(line, status);
  if (ok && !cmd.malformed.empty()) {
    // What the server answered cannot be read: the command has no result. The same
    // command would get the same answer, so this is not a transient failure.
    ok = false;
    result = MailServerError(absl::StatusCode::kInternal, "MALFORMED_RESPONSE",
                             absl::StrCat("the IMAP server answered ", current_trace_,
                                          " with a response the client cannot parse"),
                             current_trace_, cmd.malformed);
  }
  switch (cmd.kind) {
    case Cmd::kList:
      if (ok && !cmd.list_extended) {
        // LSUB "" pattern: which of the listed folders are subscribed.
        cmd.kind = Cmd::kLsub;
        CommandBuilder b = Builder();
        b.Raw("LSUB \"\" ").String(cmd.pattern);
        std::string trace = absl::StrCat("LSUB \"\" ", SanitizeServerText(cmd.pattern, 100));
        Send(b.Finish(), std::move(trace));
        return;
      }
      [[fallthrough]];
    case Cmd::kLsub:
      if (ok && cmd.list_done) cmd.list_done(std::move(cmd.entries));
      break;
    case Cmd::kSelect:
      if (ok) {
        mailbox_.read_only =
            cmd.read_only || absl::EqualsIgnoreCase(CodeName(status.code), "READ-ONLY");
        selected_ = true;
      } else {
        selected_ = false;  // RFC 3501 section 6.3.1: a failed SELECT deselects
      }
      break;
    case Cmd::kStatus:
      if (ok && cmd.status_done) cmd.status_done(std::move(cmd.status));
      break;
    case Cmd::kSearch:
      if (ok && cmd.search_done) {
        SearchResult& r = cmd.search;
        std::sort(r.uids.begin(), r.uids.end());
        r.uids.erase(std::unique(r.uids.begin(), r.uids.end()), r.uids.end());
        if (!cmd.esearch) {
          r.count = static_cast<uint32_t>(r.uids.size());
          if (!r.uids.empty()) {
            r.min = r.uids.front();
            r.max = r.uids.back();
          }
          if (!cmd.search_options.want_all) r.uids.clear();
        } else if (!cmd.search_options.want_min_max_count) {
          r.count = static_cast<uint32_t>(r.uids.size());
          if (!r.uids.empty()) {
            r.min = r.uids.front();
            r.max = r.uids.back();
          }
        }
        cmd.search_done(std::move(r));
      }
      break;
    case Cmd::kCopy:
    case Cmd::kMove:
      if (ok && cmd.copy_done) cmd.copy_done(std::move(cmd.copy));
      break;
    case Cmd::kAppend:
      if (ok && cmd.append_done) cmd.append_done(std::move(cmd.append));
      break;
    default:
      break;
  }
  cmd_ = Command();
  step_ = Step::kReady;
  error_ = std::move(result);
}

void ClientImpl::ApplyCode(absl::string_view code) {
  if (code.empty()) return;
  absl::string_view name = CodeName(code);
  absl::string_view arg = CodeArgument(code);
  auto is = [&](absl::string_view n) { return absl::EqualsIgnoreCase(name, n); };
  if (is("CAPABILITY")) {
    SetCapabilities(arg);
  } else if (is("UIDVALIDITY")) {
    if (std::optional<uint32_t> n = ParseNumber(arg)) mailbox_.uidvalidity = *n;
  } else if (is("UIDNEXT")) {
    if (std::optional<uint32_t> n = ParseNumber(arg)) mailbox_.uidnext = *n;
  } else if (is("HIGHESTMODSEQ")) {
    uint64_t n = 0;
    if (absl::SimpleAtoi(arg, &n)) mailbox_.highestmodseq = n;
  } else if (is("PERMANENTFLAGS")) {
    // "PERMANENTFLAGS" SP "(" [flag-perm *(SP flag-perm)] ")"
    if (absl::StartsWith(arg, "(") && absl::EndsWith(arg, ")")) {
      mailbox_.permanent_flags = ParseCapabilityList(arg.substr(1, arg.size() - 2));
    }
  } else if (is("READ-ONLY")) {
    mailbox_.read_only = true;
  } else if (is("READ-WRITE")) {
    mailbox_.read_only = false;
  } else if (is("APPENDUID") && step_ == Step::kCommand && cmd_.kind == Cmd::kAppend) {
    // "APPENDUID" SP nz-number SP append-uid
    std::vector<std::string> parts = ParseCapabilityList(arg);
    std::optional<uint32_t> v = parts.size() == 2 ? ParseNumber(parts[0]) : std::nullopt;
    std::optional<uint32_t> uid = parts.size() == 2 ? ParseNumber(parts[1]) : std::nullopt;
    if (v && uid) cmd_.append = {*v, *uid};
  } else if (is("COPYUID") && step_ == Step::kCommand &&
             (cmd_.kind == Cmd::kCopy || cmd_.kind == Cmd::kMove)) {
    // "COPYUID" SP nz-number SP uid-set SP uid-set: the sets pair up by position.
    std::vector<std::string> parts = ParseCapabilityList(arg);
    if (parts.size() != 3) return;
    std::optional<uint32_t> v = ParseNumber(parts[0]);
    absl::StatusOr<std::vector<uint32_t>> from =
        ExpandUidSet(parts[1], options_.limits.max_list_items);
    absl::StatusOr<std::vector<uint32_t>> to =
        ExpandUidSet(parts[2], options_.limits.max_list_items);
    if (!v || !from.ok() || !to.ok() || from->size() != to->size()) return;
    cmd_.copy.uidvalidity = *v;
    for (size_t i = 0; i < from->size(); ++i) cmd_.copy.mapping.emplace_back((*from)[i], (*to)[i]);
  }
}

void ClientImpl::SetCapabilities(absl::string_view list) {
  info_.capabilities = ParseCapabilityList(list);
  for (std::string& c : info_.capabilities) MakeValidUtf8(&c);  // shown in proto strings
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
  if (!enabled_) {
    enabled_ = true;
    // RFC 5161 ENABLE; RFC 6855 UTF8=ACCEPT: folder names in UTF-8 from now on.
    std::vector<absl::string_view> wanted;
    if (HasCapability("ENABLE")) {
      if (HasCapability("UTF8=ACCEPT")) wanted.push_back("UTF8=ACCEPT");
      if (options_.enable_condstore && HasCapability("CONDSTORE")) wanted.push_back("CONDSTORE");
    }
    if (!wanted.empty()) {
      std::string command = absl::StrCat("ENABLE ", absl::StrJoin(wanted, " "));
      SendCommand(Step::kEnable, command, command);
      return;
    }
  }
  if (!selected_) {
    absl::StatusOr<std::string> wire = WireName(mailbox_.name);
    if (!wire.ok()) {
      Fail(wire.status());
      return;
    }
    std::string name = std::move(mailbox_.name);
    mailbox_ = MailboxState();
    mailbox_.name = std::move(name);
    uids_.clear();
    tracking_ = true;
    std::string command = absl::StrCat("SELECT ", AString(*wire));
    SendCommand(Step::kSelect, command, command);
    return;
  }
  step_ = Step::kReady;
  error_ = absl::OkStatus();
}

void ClientImpl::HandleAuthContinuation(absl::string_view payload) {
  if (mechanism_ == Mechanism::kCommand) {
    SendNextLoginSegment();
    return;
  }
  if (sasl_ == nullptr || sasl_->done()) {
    // An exchange that goes on longer than the mechanism does: cancel it (RFC 3501
    // section 6.2.2, "a line consisting of a single "*""); the server answers BAD.
    out_ += "*\r\n";
    return;
  }
  // RFC 3501 section 6.2.2: without SASL-IR the server asks with an empty challenge.
  absl::StatusOr<std::string> response = sasl_->Step(payload);
  if (!response.ok()) {
    if (wire::SaslExchange::IsMalformedChallenge(response.status())) {
      Violation(absl::StrCat("the server sent a ", response.status().message()));
    } else {
      Fail(response.status());
    }
    return;
  }
  absl::StrAppend(&out_, *response, "\r\n");
  WipeString(*response);
}

void ClientImpl::HandleAuthResult(absl::string_view line, const StatusResponse& status) {
  std::string oauth_error = sasl_ != nullptr ? sasl_->oauth_error() : std::string();
  absl::Status verified = absl::OkStatus();
  if (sasl_ != nullptr && status.kind == Kind::kOk) verified = sasl_->Finish();
  WipeAuthState();
  if (!verified.ok()) {
    Fail(MailServerError(verified.code(),
                         GetPayloadText(verified, kReasonPayload).value_or("AUTH_FAILED"),
                         verified.message(), current_trace_, line));
    return;
  }
  if (status.kind == Kind::kOk) {
    authenticated_ = true;
    info_.mechanism = mechanism_;
    Continue();
    return;
  }
  std::string what = "the IMAP server refused the credentials";
  if (!oauth_error.empty()) absl::StrAppend(&what, " (error challenge: ", oauth_error, ")");
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
    case Mechanism::kApop:
    case Mechanism::kNone:
    case Mechanism::kAuto:
      Fail(ReasonError(
          absl::StatusCode::kFailedPrecondition, "MECHANISM_NOT_OFFERED",
          absl::StrCat("IMAP cannot authenticate with ", wire::MechanismName(mechanism_))));
      return;
    default:
      StartSasl();
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
void ClientImpl::StartSasl() {
  sasl_ = std::make_unique<wire::SaslExchange>(mechanism_, options_.login);
  absl::string_view name = sasl_->name();
  step_ = Step::kAuthenticate;
  current_tag_ = NextTag();
  current_trace_ = absl::StrCat("AUTHENTICATE ", name, " ***");
  std::optional<std::string> initial;
  if (HasCapability("SASL-IR")) initial = sasl_->Initial();
  if (initial.has_value()) {
    absl::StrAppend(&out_, current_tag_, " AUTHENTICATE ", name, " ", *initial, "\r\n");
    WipeString(*initial);
    return;
  }
  absl::StrAppend(&out_, current_tag_, " AUTHENTICATE ", name, "\r\n");
}

void ClientImpl::WipeAuthState() {
  sasl_.reset();
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

void ClientImpl::SendCommand(Step step, absl::string_view command, absl::string_view trace) {
  step_ = step;
  current_tag_ = NextTag();
  current_trace_ = std::string(trace);
  absl::StrAppend(&out_, current_tag_, " ", command, "\r\n");
}

bool ClientImpl::Ready(absl::string_view command) {
  if (step_ == Step::kReady) return true;
  // A failed or closed client keeps the status that says why.
  if (step_ == Step::kFailed || step_ == Step::kClosed) return false;
  error_ =
      absl::FailedPreconditionError(absl::StrCat("IMAP ", command, " needs a ready IMAP session"));
  return false;
}

ClientImpl::Command& ClientImpl::Begin(Cmd kind) {
  cmd_ = Command();
  cmd_.kind = kind;
  return cmd_;
}

void ClientImpl::Send(std::vector<std::string> segments, std::string trace) {
  step_ = Step::kCommand;
  current_tag_ = NextTag();
  current_trace_ = std::move(trace);
  absl::StrAppend(&out_, current_tag_, " ", segments[0]);
  cmd_.segments = std::move(segments);
  cmd_.next_segment = 1;
}

absl::StatusOr<std::string> ClientImpl::WireName(absl::string_view folder) const {
  if (folder.empty()) return InvalidField("the folder name is empty");
  if (!wire::IsCommandSafe(folder)) return InvalidField("the folder name contains CR, LF or NUL");
  // mailbox = "INBOX" / astring; INBOX is case-insensitive (RFC 3501 section 5.1).
  if (absl::EqualsIgnoreCase(folder, "INBOX")) return std::string("INBOX");
  absl::StatusOr<std::string> encoded = EncodeMailboxName(folder);
  if (!encoded.ok()) return InvalidField("the folder name is not valid UTF-8");
  if (utf8_) return std::string(folder);  // RFC 6855 section 3: UTF-8 names as they are
  return encoded;
}

std::string ClientImpl::DecodeName(absl::string_view wire) const {
  // Names reach proto3 string fields: a name that is not valid UTF-8 (a server that sends
  // raw 8-bit names) is shown with U+FFFD in place of the invalid bytes.
  if (utf8_) return ToValidUtf8(wire);
  absl::StatusOr<std::string> name = DecodeMailboxName(wire);
  if (name.ok()) MakeValidUtf8(&*name);
  // A name that is not valid modified UTF-7 is shown as sent (sanitized).
  return name.ok() ? *std::move(name) : SanitizeServerText(wire);
}

void ClientImpl::StartNoop() {
  if (!Ready("NOOP")) return;
  Begin(Cmd::kNoop);
  Send({"NOOP\r\n"}, "NOOP");
}

void ClientImpl::StartLogout() {
  if (!Ready("LOGOUT")) return;
  SendCommand(Step::kLogout, "LOGOUT", "LOGOUT");
}

// list = "LIST" SP mailbox SP list-mailbox [SP "RETURN" SP "(" ... ")"]  (RFC 5258)
void ClientImpl::StartList(std::string pattern, ListDone done) {
  if (!Ready("LIST")) return;
  if (pattern.empty()) pattern = "*";
  if (!wire::IsCommandSafe(pattern))
    return Reject(InvalidField("the LIST pattern contains CR, LF or NUL"));
  absl::StatusOr<std::string> encoded =
      absl::EqualsIgnoreCase(pattern, "INBOX") ? std::string("INBOX") : EncodeMailboxName(pattern);
  if (!encoded.ok()) return Reject(InvalidField("the LIST pattern is not valid UTF-8"));
  Command& cmd = Begin(Cmd::kList);
  cmd.list_done = std::move(done);
  CommandBuilder b = Builder();
  cmd.pattern = utf8_ ? pattern : *encoded;
  b.Raw("LIST \"\" ").String(cmd.pattern);
  cmd.list_extended = HasCapability("LIST-EXTENDED");
  if (cmd.list_extended) {
    b.Raw(HasCapability("SPECIAL-USE") ? " RETURN (SUBSCRIBED SPECIAL-USE)"
                                       : " RETURN (SUBSCRIBED)");
  }
  Send(b.Finish(), absl::StrCat("LIST \"\" ", SanitizeServerText(pattern, 100)));
}

void ClientImpl::StartSelect(std::string folder, bool read_only) {
  absl::string_view verb = read_only ? "EXAMINE" : "SELECT";
  if (!Ready(verb)) return;
  absl::StatusOr<std::string> wire = WireName(folder);
  if (!wire.ok()) return Reject(wire.status());
  Command& cmd = Begin(Cmd::kSelect);
  cmd.read_only = read_only;
  // RFC 3501 section 6.3.1: the state of the previous mailbox ends with this command.
  selected_ = false;
  mailbox_ = MailboxState();
  mailbox_.name = std::move(folder);
  mailbox_.read_only = read_only;
  uids_.clear();
  tracking_ = true;
  CommandBuilder b = Builder();
  b.Raw(verb).Raw(" ").String(*wire);
  Send(b.Finish(), absl::StrCat(verb, " ", SanitizeServerText(mailbox_.name, 200)));
}

void ClientImpl::StartSimpleFolderCommand(Cmd kind, absl::string_view verb, std::string folder) {
  if (!Ready(verb)) return;
  absl::StatusOr<std::string> wire = WireName(folder);
  if (!wire.ok()) return Reject(wire.status());
  Begin(kind);
  CommandBuilder b = Builder();
  b.Raw(verb).Raw(" ").String(*wire);
  Send(b.Finish(), absl::StrCat(verb, " ", SanitizeServerText(folder, 200)));
}

void ClientImpl::StartCreate(std::string folder) {
  StartSimpleFolderCommand(Cmd::kCreate, "CREATE", std::move(folder));
}

void ClientImpl::StartDelete(std::string folder) {
  StartSimpleFolderCommand(Cmd::kDelete, "DELETE", std::move(folder));
}

void ClientImpl::StartSubscribe(std::string folder, bool subscribe) {
  StartSimpleFolderCommand(Cmd::kSubscribe, subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE",
                           std::move(folder));
}

void ClientImpl::StartRename(std::string from, std::string to) {
  if (!Ready("RENAME")) return;
  absl::StatusOr<std::string> wire_from = WireName(from);
  if (!wire_from.ok()) return Reject(wire_from.status());
  absl::StatusOr<std::string> wire_to = WireName(to);
  if (!wire_to.ok()) return Reject(wire_to.status());
  Begin(Cmd::kRename);
  CommandBuilder b = Builder();
  b.Raw("RENAME ").String(*wire_from).Raw(" ").String(*wire_to);
  Send(b.Finish(),
       absl::StrCat("RENAME ", SanitizeServerText(from, 200), " ", SanitizeServerText(to, 200)));
}

void ClientImpl::StartStatus(std::string folder, StatusDone done) {
  if (!Ready("STATUS")) return;
  absl::StatusOr<std::string> wire = WireName(folder);
  if (!wire.ok()) return Reject(wire.status());
  Command& cmd = Begin(Cmd::kStatus);
  cmd.status_done = std::move(done);
  CommandBuilder b = Builder();
  b.Raw("STATUS ").String(*wire).Raw(" (MESSAGES UNSEEN RECENT UIDNEXT UIDVALIDITY");
  if (HasCapability("STATUS=SIZE")) b.Raw(" SIZE");
  if (condstore_) b.Raw(" HIGHESTMODSEQ");
  b.Raw(")");
  Send(b.Finish(), absl::StrCat("STATUS ", SanitizeServerText(folder, 200)));
}

// search = "SEARCH" [SP "CHARSET" SP astring] 1*(SP search-key); as "UID SEARCH".
// RFC 4731: "UID SEARCH RETURN (...) ..." with ESEARCH.
void ClientImpl::StartUidSearch(std::vector<SearchArg> criteria, SearchOptions options,
                                SearchDone done) {
  if (!Ready("UID SEARCH")) return;
  if (!selected_)
    return Reject(absl::FailedPreconditionError("UID SEARCH needs a selected folder"));
  if (criteria.empty()) return Reject(InvalidField("the search criteria are empty"));
  bool eight_bit = false;
  int depth = 0;
  for (const SearchArg& arg : criteria) {
    bool valid = true;
    switch (arg.kind) {
      case SearchArg::Kind::kAtom:
        valid = !arg.text.empty() && std::all_of(arg.text.begin(), arg.text.end(), IsAtomChar);
        break;
      case SearchArg::Kind::kSet:
        valid = !arg.text.empty() && std::all_of(arg.text.begin(), arg.text.end(), IsSetChar);
        break;
      case SearchArg::Kind::kString:
        valid = wire::IsCommandSafe(arg.text);
        eight_bit |= NeedsLiteral(arg.text);
        break;
      case SearchArg::Kind::kOpen:
        ++depth;
        break;
      case SearchArg::Kind::kClose:
        valid = --depth >= 0;
        break;
    }
    if (!valid) {
      return Reject(InvalidField(
          absl::StrCat("invalid search argument \"", SanitizeServerText(arg.text, 64), "\"")));
    }
  }
  if (depth != 0) return Reject(InvalidField("unbalanced parentheses in the search criteria"));
  Command& cmd = Begin(Cmd::kSearch);
  cmd.search_done = std::move(done);
  cmd.search_options = options;
  cmd.esearch = HasCapability("ESEARCH");
  CommandBuilder b = Builder();
  b.Raw("UID SEARCH");
  if (cmd.esearch) {
    std::vector<absl::string_view> ret;
    if (options.want_min_max_count) {
      ret = {"MIN", "MAX", "COUNT"};
    }
    if (options.want_all || ret.empty()) ret.push_back("ALL");
    b.Raw(" RETURN (").Raw(absl::StrJoin(ret, " ")).Raw(")");
  }
  if (eight_bit && !utf8_) b.Raw(" CHARSET UTF-8");
  std::string trace = "UID SEARCH";
  bool after_open = false;
  for (const SearchArg& arg : criteria) {
    if (arg.kind != SearchArg::Kind::kClose && !after_open) b.Raw(" ");
    after_open = arg.kind == SearchArg::Kind::kOpen;
    switch (arg.kind) {
      case SearchArg::Kind::kAtom:
      case SearchArg::Kind::kSet:
        b.Raw(arg.text);
        absl::StrAppend(&trace, " ", arg.text);
        break;
      case SearchArg::Kind::kString:
        b.String(arg.text);
        absl::StrAppend(&trace, " \"", SanitizeServerText(arg.text, 64), "\"");
        break;
      case SearchArg::Kind::kOpen:
        b.Raw("(");
        absl::StrAppend(&trace, " (");
        break;
      case SearchArg::Kind::kClose:
        b.Raw(")");
        absl::StrAppend(&trace, ")");
        break;
    }
  }
  Send(b.Finish(), std::move(trace));
}

// fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att
//         *(SP fetch-att) ")")
void ClientImpl::StartUidFetch(UidSet uids, FetchRequest request, FetchCallback each) {
  if (!Ready("UID FETCH")) return;
  if (!selected_) return Reject(absl::FailedPreconditionError("UID FETCH needs a selected folder"));
  if (uids.empty()) return Reject(InvalidField("the UID set is empty"));
  std::vector<std::string> atts = {"UID"};
  if (request.items & kFetchFlags) atts.push_back("FLAGS");
  if (request.items & kFetchSize) atts.push_back("RFC822.SIZE");
  if (request.items & kFetchInternalDate) atts.push_back("INTERNALDATE");
  if (request.items & kFetchEnvelope) atts.push_back("ENVELOPE");
  if (request.items & kFetchBodyStructure) atts.push_back("BODYSTRUCTURE");
  if ((request.items & kFetchModSeq) && condstore_) atts.push_back("MODSEQ");
  for (const SectionRequest& s : request.sections) {
    if (!IsValidSection(s.section)) {
      return Reject(InvalidField(
          absl::StrCat("invalid body section \"", SanitizeServerText(s.section, 64), "\"")));
    }
    std::string att = absl::StrCat("BODY.PEEK[", s.section, "]");
    if (s.length > 0) absl::StrAppend(&att, "<", s.offset, ".", s.length, ">");
    atts.push_back(std::move(att));
  }
  Command& cmd = Begin(Cmd::kFetch);
  // FLAGS and MODSEQ also come unsolicited (RFC 7162 section 3.2.4), so a request for
  // only those takes any FETCH with FLAGS for a UID in the set as its result.
  cmd.flags_only =
      request.sections.empty() && (request.items & ~uint32_t{kFetchFlags | kFetchModSeq}) == 0;
  cmd.uids = std::move(uids);
  cmd.fetch = std::move(request);
  cmd.each = std::move(each);
  std::string command =
      absl::StrCat("UID FETCH ", cmd.uids.ToString(), " (", absl::StrJoin(atts, " "), ")");
  Send({absl::StrCat(command, "\r\n")}, command);
}

// store = "STORE" SP sequence-set SP store-att-flags
// store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))
void ClientImpl::StartUidStore(UidSet uids, StoreMode mode, std::vector<std::string> flags,
                               bool silent, FetchCallback each) {
  if (!Ready("UID STORE")) return;
  if (!selected_) return Reject(absl::FailedPreconditionError("UID STORE needs a selected folder"));
  if (uids.empty()) return Reject(InvalidField("the UID set is empty"));
  if (absl::Status valid = CheckFlags(flags); !valid.ok()) return Reject(std::move(valid));
  if (flags.empty() && mode != StoreMode::kReplace)
    return Reject(InvalidField("no flags to store"));
  Command& cmd = Begin(Cmd::kStore);
  cmd.flags_only = true;
  cmd.uids = std::move(uids);
  cmd.each = std::move(each);
  absl::string_view sign = mode == StoreMode::kAdd ? "+" : mode == StoreMode::kRemove ? "-" : "";
  std::string command = absl::StrCat("UID STORE ", cmd.uids.ToString(), " ", sign, "FLAGS",
                                     silent ? ".SILENT" : "", " (", absl::StrJoin(flags, " "), ")");
  Send({absl::StrCat(command, "\r\n")}, command);
}

void ClientImpl::StartCopyOrMove(Cmd kind, UidSet uids, std::string folder, CopyDone done) {
  absl::string_view verb = kind == Cmd::kMove ? "UID MOVE" : "UID COPY";
  if (!Ready(verb)) return;
  if (!selected_)
    return Reject(absl::FailedPreconditionError(absl::StrCat(verb, " needs a selected folder")));
  if (kind == Cmd::kMove && !HasCapability("MOVE")) {
    return Reject(ReasonError(absl::StatusCode::kUnimplemented, "NOT_OFFERED",
                              "the IMAP server does not offer MOVE"));
  }
  if (uids.empty()) return Reject(InvalidField("the UID set is empty"));
  absl::StatusOr<std::string> wire = WireName(folder);
  if (!wire.ok()) return Reject(wire.status());
  Command& cmd = Begin(kind);
  cmd.copy_done = std::move(done);
  std::string set = uids.ToString();
  cmd.uids = std::move(uids);
  CommandBuilder b = Builder();
  b.Raw(verb).Raw(" ").Raw(set).Raw(" ").String(*wire);
  Send(b.Finish(), absl::StrCat(verb, " ", set, " ", SanitizeServerText(folder, 200)));
}

void ClientImpl::StartUidCopy(UidSet uids, std::string folder, CopyDone done) {
  StartCopyOrMove(Cmd::kCopy, std::move(uids), std::move(folder), std::move(done));
}

void ClientImpl::StartUidMove(UidSet uids, std::string folder, CopyDone done) {
  StartCopyOrMove(Cmd::kMove, std::move(uids), std::move(folder), std::move(done));
}

void ClientImpl::StartUidExpunge(UidSet uids) {
  if (!Ready("UID EXPUNGE")) return;
  if (!selected_)
    return Reject(absl::FailedPreconditionError("UID EXPUNGE needs a selected folder"));
  if (!HasCapability("UIDPLUS")) {
    return Reject(ReasonError(absl::StatusCode::kUnimplemented, "NOT_OFFERED",
                              "the IMAP server does not offer UIDPLUS (UID EXPUNGE)"));
  }
  if (uids.empty()) return Reject(InvalidField("the UID set is empty"));
  Begin(Cmd::kUidExpunge);
  std::string command = absl::StrCat("UID EXPUNGE ", uids.ToString());
  Send({absl::StrCat(command, "\r\n")}, command);
}

void ClientImpl::StartExpunge() {
  if (!Ready("EXPUNGE")) return;
  if (!selected_) return Reject(absl::FailedPreconditionError("EXPUNGE needs a selected folder"));
  Begin(Cmd::kExpunge);
  Send({"EXPUNGE\r\n"}, "EXPUNGE");
}

// append = "APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal
void ClientImpl::StartAppend(std::string folder, AppendRequest request, AppendDone done) {
  if (!Ready("APPEND")) return;
  absl::StatusOr<std::string> wire = WireName(folder);
  if (!wire.ok()) return Reject(wire.status());
  if (absl::Status valid = CheckFlags(request.flags); !valid.ok()) return Reject(std::move(valid));
  if (request.message.empty()) return Reject(InvalidField("the message to append is empty"));
  // literal = "{" number "}" CRLF *CHAR8; CHAR8 excludes NUL.
  if (request.message.find('\0') != std::string::npos) {
    return Reject(InvalidField("the message to append contains NUL"));
  }
  Command& cmd = Begin(Cmd::kAppend);
  cmd.append_done = std::move(done);
  CommandBuilder b = Builder();
  b.Raw("APPEND ").String(*wire);
  if (!request.flags.empty()) b.Raw(" (").Raw(absl::StrJoin(request.flags, " ")).Raw(")");
  if (request.internal_date) b.Raw(" \"").Raw(FormatDateTime(*request.internal_date)).Raw("\"");
  b.Raw(" ").Literal(request.message);
  Send(b.Finish(),
       absl::StrCat("APPEND ", SanitizeServerText(folder, 200), " {", request.message.size(), "}"));
}

// idle = "IDLE" CRLF "DONE" (RFC 2177)
void ClientImpl::StartIdle() {
  if (!Ready("IDLE")) return;
  if (!HasCapability("IDLE")) {
    return Reject(ReasonError(absl::StatusCode::kUnimplemented, "NOT_OFFERED",
                              "the IMAP server does not offer IDLE"));
  }
  Begin(Cmd::kIdle);
  Send({"IDLE\r\n"}, "IDLE");
}

void ClientImpl::StopIdle() {
  if (step_ != Step::kCommand || cmd_.kind != Cmd::kIdle || cmd_.idle_done_sent) return;
  if (!cmd_.idle_accepted) {
    cmd_.idle_stop_requested = true;  // DONE goes out with the "+"
    return;
  }
  cmd_.idle_done_sent = true;
  out_ += "DONE\r\n";
}

void ClientImpl::Fail(absl::Status status) {
  WipeAuthState();
  error_ = std::move(status);
  step_ = Step::kFailed;
  current_tag_.clear();
  cmd_ = Command();
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
