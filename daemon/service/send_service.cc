#include "service/send_service.h"

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/session_id.h"
#include "common/status.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "mime/mime.h"
#include "service/call.h"
#include "service/errors.h"
#include "service/session_service.h"
#include "smtp/client.h"
#include "wire/sasl.h"

namespace mailpool::service {

// What goes to the SMTP server: the envelope and the bytes.
struct Outgoing {
  smtp::Envelope envelope;
  std::string source;
  std::string message_id;
  std::string subject;
  bool require_all = false;
};

namespace {

constexpr size_t kMaxAddressBytes = 1024;
constexpr size_t kMaxSourceBytes = 64u << 20;
constexpr int kMaxPageSize = 1000;
constexpr size_t kMaxIdempotencyKeyBytes = 128;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                     absl::StrCat(field, ": ", what));
}

template <typename Response>
class FinishedWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedWriter(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// The session of an outbox call is optional: the body's, else the routing header's.
absl::StatusOr<std::string> OptionalSessionRef(const grpc::CallbackServerContext& context,
                                               const std::string& body_value) {
  if (body_value.empty() && context.client_metadata().count(kSessionHeader) == 0) return "";
  return SessionRef(context, body_value);
}

absl::Status ValidateSendId(const std::string& send_id) {
  if (send_id.empty()) return Invalid("send_id", "required");
  if (send_id.size() > 64 || !wire::IsCommandSafe(send_id)) return Invalid("send_id", "malformed");
  return absl::OkStatus();
}

// Tells a retried request from a different one under the same idempotency key: a hash of
// the request (without the session reference, which may be a name or an ID) in
// deterministic serialization. Not a security boundary: the key is the caller's own.
std::string RequestHash(const v1::SendMessageRequest& request) {
  v1::SendMessageRequest copy = request;
  copy.clear_session();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    copy.SerializeToCodedStream(&coded);
  }
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return absl::StrCat(absl::Hex(h, absl::kZeroPad16), ":", bytes.size());
}

absl::StatusOr<std::string> NewSendId(absl::string_view instance_tag) {
  // The same form as session IDs with "sd" for "ms": the instance tag routes it too.
  absl::StatusOr<std::string> id = NewSessionId(instance_tag);
  if (!id.ok()) return id.status();
  return absl::StrCat("sd", id->substr(2));
}

void AddRecipients(const google::protobuf::RepeatedPtrField<v1::Address>& list,
                   std::set<std::string>* seen, std::vector<std::string>* out) {
  for (const v1::Address& a : list) {
    if (a.address().empty()) continue;
    std::string key = absl::AsciiStrToLower(a.address());
    if (seen->insert(key).second) out->push_back(a.address());
  }
}

// RFC 5322 section 3.2.2: a header field body continues on lines starting with WSP.
// Removes every Bcc field from the header block of `source`.
std::string WithoutBcc(absl::string_view source) {
  std::string out;
  out.reserve(source.size());
  size_t pos = 0;
  bool dropping = false;
  while (pos < source.size()) {
    size_t eol = source.find('\n', pos);
    size_t next = eol == absl::string_view::npos ? source.size() : eol + 1;
    absl::string_view line = source.substr(pos, next - pos);
    absl::string_view bare = absl::StripTrailingAsciiWhitespace(line);
    if (bare.empty()) {  // end of the header block: the rest is the body
      absl::StrAppend(&out, source.substr(pos));
      return out;
    }
    bool continuation = line[0] == ' ' || line[0] == '\t';
    if (!continuation) dropping = absl::StartsWithIgnoreCase(line, "bcc:");
    if (!dropping) absl::StrAppend(&out, line);
    pos = next;
  }
  return out;
}

absl::StatusOr<Outgoing> Prepare(const v1::SendMessageRequest& request) {
  Outgoing out;
  out.require_all = request.require_all_recipients();
  const v1::Envelope& env = request.envelope();
  if (env.rcpt_to_size() > static_cast<int>(smtp::kMaxRecipients)) {
    return Invalid("envelope.rcpt_to", "at most 1000 recipients");
  }
  std::string mail_from;
  bool from_given = !env.mail_from().empty();
  if (from_given) mail_from = env.mail_from() == "<>" ? "" : env.mail_from();
  std::vector<std::string> rcpts(env.rcpt_to().begin(), env.rcpt_to().end());
  bool dsn = env.request_dsn();
  switch (request.content_case()) {
    case v1::SendMessageRequest::kMessage: {
      const v1::EmailMessage& m = request.message();
      absl::StatusOr<std::string> built = mime::Build(m, request.build_options(), &out.message_id);
      if (!built.ok()) return built.status();
      out.source = std::move(*built);
      out.subject = m.subject();
      if (!from_given)
        mail_from = !m.sender().address().empty() ? m.sender().address() : m.from().address();
      if (rcpts.empty()) {
        std::set<std::string> seen;
        AddRecipients(m.to(), &seen, &rcpts);
        AddRecipients(m.cc(), &seen, &rcpts);
        AddRecipients(m.bcc(), &seen, &rcpts);
      }
      dsn = dsn || m.delivery_receipt();
      break;
    }
    case v1::SendMessageRequest::kSource: {
      if (request.source().empty()) return Invalid("source", "empty");
      if (request.source().size() > kMaxSourceBytes) {
        return ReasonError(absl::StatusCode::kResourceExhausted, "MESSAGE_TOO_LARGE",
                           "source: at most 64 MiB");
      }
      mime::ParseOptions options;
      options.headers_only = true;
      v1::EmailMessage headers = mime::Parse(request.source(), options, nullptr);
      out.message_id = headers.message_id();
      out.subject = headers.subject();
      if (!from_given)
        mail_from = !headers.sender().address().empty() ? headers.sender().address()
                                                        : headers.from().address();
      if (rcpts.empty()) {
        std::set<std::string> seen;
        AddRecipients(headers.to(), &seen, &rcpts);
        AddRecipients(headers.cc(), &seen, &rcpts);
        AddRecipients(headers.bcc(), &seen, &rcpts);
        out.source = headers.bcc().empty() ? request.source() : WithoutBcc(request.source());
      } else {
        out.source = request.source();
      }
      break;
    }
    default:
      return Invalid("content", "a message or a source is required");
  }
  if (!from_given && mail_from.empty()) {
    return Invalid("envelope.mail_from", "the message has no From or Sender address; give one");
  }
  if (rcpts.empty()) return Invalid("envelope.rcpt_to", "the message has no recipient");
  if (!mail_from.empty()) MP_RETURN_IF_ERROR(smtp::ValidatePath("envelope.mail_from", mail_from));
  for (const std::string& r : rcpts) MP_RETURN_IF_ERROR(smtp::ValidatePath("envelope.rcpt_to", r));
  out.envelope.mail_from = std::move(mail_from);
  out.envelope.rcpt_to = std::move(rcpts);
  out.envelope.request_dsn = dsn;
  return out;
}

// --- CheckAddress syntax (RFC 5322 section 3.4, RFC 5321 section 4.1.2) ---

// atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "/" /
//         "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"   (RFC 5322 section 3.2.3)
// plus UTF8-non-ascii (RFC 6532 section 3.2).
bool IsAtext(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return absl::ascii_isalnum(u) || u >= 0x80 ||
         absl::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != absl::string_view::npos;
}

// dot-atom-text = 1*atext *("." 1*atext)
bool IsDotAtom(absl::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s[i + 1] == '.') return false;
    } else if (!IsAtext(s[i])) {
      return false;
    }
  }
  return true;
}

// quoted-string = DQUOTE *([FWS] qcontent) [FWS] DQUOTE; qcontent = qtext / quoted-pair
bool IsQuotedString(absl::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    unsigned char u = static_cast<unsigned char>(s[i]);
    if (u == '\\') {
      if (i + 2 >= s.size()) return false;
      ++i;
      continue;
    }
    if (u == '"' || u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

// RFC 5321 section 4.1.2: address-literal = "[" ( IPv4-address-literal /
// IPv6-address-literal / General-address-literal ) "]"; checked loosely as "[" dtext "]".
bool IsAddressLiteral(absl::string_view s) {
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return false;
  for (char c : s.substr(1, s.size() - 2)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != ':') return false;
  }
  return true;
}

// Strict domain: at least two labels of letters, digits and hyphens (U-labels allowed),
// each 1..63 bytes, not starting or ending with a hyphen.
std::string StrictDomainError(absl::string_view domain) {
  if (IsAddressLiteral(domain)) return "";
  if (domain.size() > smtp::kMaxDomainBytes) return "domain longer than 255 bytes";
  size_t labels = 0;
  size_t start = 0;
  while (true) {
    size_t dot = domain.find('.', start);
    absl::string_view label = domain.substr(
        start, dot == absl::string_view::npos ? absl::string_view::npos : dot - start);
    if (label.empty()) return "empty domain label";
    if (label.size() > 63) return "domain label longer than 63 bytes";
    if (label.front() == '-' || label.back() == '-') return "domain label starts or ends with '-'";
    for (char c : label) {
      unsigned char u = static_cast<unsigned char>(c);
      if (!absl::ascii_isalnum(u) && c != '-' && u < 0x80) {
        return absl::StrCat("invalid character '", std::string(1, c), "' in the domain");
      }
    }
    ++labels;
    if (dot == absl::string_view::npos) break;
    start = dot + 1;
  }
  if (labels < 2) return "domain has a single label";
  return "";
}

// One CheckAddress SERVER call while it holds the session's SMTP link.
struct ProbeState {
  grpc::CallbackServerContext* context;
  grpc::ServerUnaryReactor* reactor;
  v1::CheckAddressResponse* response;
  std::string address;
  session::Link* link;
  absl::AnyInvocable<void()> finished;
  std::shared_ptr<CallToken> call;  // the caller's cancellation stops the probe
};

// VRFY and the RCPT probe (RSET after it) deliver nothing: safe to repeat.
session::RunOptions ProbeOptions(const ProbeState& state) {
  session::RunOptions options;
  options.call = state.call;
  return options;
}

// Ends the call with the server's verdict: 2xx VALID, 5xx INVALID, anything else (VRFY's
// 252 "cannot verify", 4xx) UNKNOWN.
void AnswerProbe(const std::shared_ptr<ProbeState>& state, absl::Status status,
                 const smtp::Reply& reply) {
  state->finished();
  if (!status.ok()) return Finish(state->context, state->reactor, status);
  v1::CheckAddressResponse* response = state->response;
  response->set_reply_code(reply.code);
  response->set_server_reply(SanitizeServerText(reply.Raw()));
  if (reply.code == 250 || reply.code == 251) {
    response->set_result(v1::CHECK_RESULT_VALID);
  } else if (reply.IsPermanentFailure()) {
    response->set_result(v1::CHECK_RESULT_INVALID);
    response->set_reason(response->server_reply());
  } else {
    response->set_result(v1::CHECK_RESULT_UNKNOWN);
    response->set_reason(response->server_reply());
  }
  Finish(state->context, state->reactor, absl::OkStatus());
}

// MAIL FROM:<>, RCPT TO, RSET.
void Probe(std::shared_ptr<ProbeState> state) {
  auto reply = std::make_shared<smtp::Reply>();
  state->link->Run(
      [state, reply](wire::ClientProtocol& client) {
        static_cast<smtp::Client&>(client).StartProbe(
            state->address, [reply](smtp::Reply r) { *reply = std::move(r); });
      },
      [state, reply](absl::Status status) { AnswerProbe(state, std::move(status), *reply); },
      ProbeOptions(*state));
}

// VRFY first (asked for explicitly); a server that does not implement it (500, 502, 504)
// gets the RCPT probe instead.
void Verify(std::shared_ptr<ProbeState> state) {
  auto reply = std::make_shared<smtp::Reply>();
  state->link->Run(
      [state, reply](wire::ClientProtocol& client) {
        static_cast<smtp::Client&>(client).StartVerify(
            state->address, [reply](smtp::Reply r) { *reply = std::move(r); });
      },
      [state, reply](absl::Status status) {
        if (status.ok() && (reply->code == 500 || reply->code == 502 || reply->code == 504)) {
          return Probe(state);
        }
        AnswerProbe(state, std::move(status), *reply);
      },
      ProbeOptions(*state));
}

}  // namespace

v1::CheckAddressResponse CheckAddressSyntax(absl::string_view input, bool strict) {
  v1::CheckAddressResponse response;
  auto invalid = [&](absl::string_view why) {
    response.set_result(v1::CHECK_RESULT_INVALID);
    response.set_reason(std::string(why));
    response.clear_parsed();
    return response;
  };
  for (char c : input) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\t') return invalid("control character (CR, LF, NUL ...)");
  }
  absl::string_view text = absl::StripAsciiWhitespace(input);
  if (text.empty()) return invalid("empty address");
  std::string name;
  absl::string_view spec = text;
  // name-addr = [display-name] angle-addr; angle-addr = [CFWS] "<" addr-spec ">" [CFWS]
  if (text.back() == '>') {
    if (strict) return invalid("strict mode takes a bare address, without a display name");
    size_t open = text.rfind('<');
    if (open == absl::string_view::npos) return invalid("'>' without '<'");
    absl::string_view display = absl::StripAsciiWhitespace(text.substr(0, open));
    if (display.size() >= 2 && display.front() == '"' && display.back() == '"') {
      if (!IsQuotedString(display)) return invalid("malformed quoted display name");
      display = display.substr(1, display.size() - 2);
    } else {
      for (char c : display) {
        if (c == '<' || c == '>' || c == '@' || c == '"' || c == ',' || c == ';' || c == ':') {
          return invalid(
              absl::StrCat("display name has '", std::string(1, c), "' and is not quoted"));
        }
      }
    }
    name = std::string(display);
    spec = text.substr(open + 1, text.size() - open - 2);
  }
  if (spec.find('<') != absl::string_view::npos || spec.find('>') != absl::string_view::npos) {
    return invalid("stray '<' or '>'");
  }
  size_t at = spec.rfind('@');
  if (at == absl::string_view::npos) return invalid("missing '@'");
  absl::string_view local = spec.substr(0, at);
  absl::string_view domain = spec.substr(at + 1);
  if (local.empty()) return invalid("empty local part");
  if (domain.empty()) return invalid("empty domain");
  if (local.size() > smtp::kMaxLocalPartBytes) return invalid("local part longer than 64 bytes");
  if (spec.size() > smtp::kMaxPathBytes) return invalid("address longer than 256 bytes");
  if (strict) {
    if (!IsDotAtom(local)) return invalid("local part is not a dot-atom");
    if (std::string why = StrictDomainError(domain); !why.empty()) return invalid(why);
  } else {
    if (!IsDotAtom(local) && !IsQuotedString(local)) {
      return invalid("local part is neither a dot-atom nor a quoted string");
    }
    if (!IsDotAtom(domain) && !IsAddressLiteral(domain)) {
      return invalid("domain is neither a dot-atom nor an address literal");
    }
  }
  response.set_result(v1::CHECK_RESULT_VALID);
  response.mutable_parsed()->set_name(name);
  response.mutable_parsed()->set_address(std::string(spec));
  return response;
}

namespace {

session::RunOptions SendRunOptions(std::shared_ptr<CallToken> call) {
  session::RunOptions options(session::Repeat::kUnsafe);
  options.call = std::move(call);
  return options;
}

}  // namespace

SendServiceImpl::SendServiceImpl(net::EventLoop& loop, pool::Pool& pool, outbox::Outbox& outbox,
                                 SenderOptions sender_options, std::string instance_tag)
    : loop_(loop), pool_(pool), outbox_(outbox), instance_tag_(std::move(instance_tag)) {
  sender_ = std::make_unique<OutboxSender>(
      loop, pool, outbox, sender_options,
      [this](const std::string& session_id, Job job) { Enqueue(session_id, std::move(job)); });
}

SendServiceImpl::~SendServiceImpl() = default;

void SendServiceImpl::StartSender() { sender_->Start(); }

void SendServiceImpl::Drain(absl::AnyInvocable<void()> done) { sender_->Drain(std::move(done)); }

void SendServiceImpl::Enqueue(const std::string& ref, Job job, std::shared_ptr<CallToken> call) {
  if (call && call->cancelled()) return job(call->status(), [] {});
  absl::StatusOr<session::Session*> session = pool_.Use(kLocalOwner, ref);
  if (!session.ok()) return job(session.status(), [] {});
  if ((*session)->link(session::Protocol::kSmtp) == nullptr) {
    return job(ReasonError(absl::StatusCode::kFailedPrecondition, "WRONG_PROTOCOL",
                           "the session has no SMTP connection (start it with smtp or "
                           "pop3_smtp)"),
               [] {});
  }
  std::string id = (*session)->id();
  auto waiting = std::make_unique<Waiting>();
  waiting->job = std::move(job);
  if (call) {
    waiting->watch = call->OnCancel([this, id, raw = waiting.get()](const absl::Status& why) {
      auto it = queues_.find(id);
      if (it == queues_.end()) return;
      auto& jobs = it->second.jobs;
      auto found =
          std::find_if(jobs.begin(), jobs.end(), [&](const auto& w) { return w.get() == raw; });
      if (found == jobs.end()) return;  // running: the link stops it
      Job cancelled = std::move((*found)->job);
      jobs.erase(found);
      cancelled(why, [] {});
      Pump(id);  // forgets a queue left empty
    });
  }
  queues_[id].jobs.push_back(std::move(waiting));
  Pump(id);
}

void SendServiceImpl::Pump(const std::string& session_id) {
  auto it = queues_.find(session_id);
  if (it == queues_.end() || it->second.running) return;
  if (it->second.jobs.empty()) {
    queues_.erase(it);
    return;
  }
  Job job = std::move(it->second.jobs.front()->job);
  it->second.jobs.pop_front();
  it->second.running = true;
  absl::AnyInvocable<void()> finished = [this, session_id] {
    auto it = queues_.find(session_id);
    if (it == queues_.end()) return;
    it->second.running = false;
    // Later jobs run from a fresh loop callback, not inside the link's.
    loop_.Post([this, session_id] { Pump(session_id); });
  };
  absl::StatusOr<session::Session*> session = pool_.Use(kLocalOwner, session_id);
  session::Link* link = session.ok() ? (*session)->link(session::Protocol::kSmtp) : nullptr;
  if (!session.ok()) return job(session.status(), std::move(finished));
  if (link == nullptr)
    return job(absl::FailedPreconditionError("no SMTP link"), std::move(finished));
  job(link, std::move(finished));
}

grpc::ServerUnaryReactor* SendServiceImpl::SendMessage(grpc::CallbackServerContext* context,
                                                       const v1::SendMessageRequest* request,
                                                       v1::SendMessageResponse* response) {
  CallReactor* reactor = NewCallReactor(context, loop_);
  absl::StatusOr<std::string> ref = SessionRef(*context, request->session());
  if (!ref.ok()) {
    Finish(context, reactor, ref.status());
    return reactor;
  }
  const std::string& key = request->idempotency_key();
  if (key.size() > kMaxIdempotencyKeyBytes ||
      !std::all_of(key.begin(), key.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    Finish(context, reactor, Invalid("idempotency_key", "at most 128 printable ASCII bytes"));
    return reactor;
  }
  absl::StatusOr<Outgoing> outgoing = Prepare(*request);
  if (!outgoing.ok()) {
    Finish(context, reactor, outgoing.status());
    return reactor;
  }
  auto out = std::make_shared<Outgoing>(std::move(*outgoing));
  // Asynchronous or not is the session's choice: look at it on the loop.
  absl::Status found;
  session::SessionSnapshot target;
  loop_.RunSync([&] {
    absl::StatusOr<session::Session*> session = pool_.Use(kLocalOwner, *ref);
    if (!session.ok()) {
      found = session.status();
    } else {
      target = (*session)->Snapshot();
    }
  });
  if (found.ok() && target.asynchronous) {
    Finish(context, reactor, QueueInOutbox(*request, target, std::move(*out), response));
    return reactor;
  }
  if (!key.empty()) {
    Finish(
        context, reactor,
        ReasonError(absl::StatusCode::kUnimplemented, "NOT_IMPLEMENTED",
                    "idempotency_key is not implemented yet on synchronous sessions (asynchronous "
                    "sessions take one)"));
    return reactor;
  }
  loop_.Post(
      [this, context, reactor, response, out, ref = std::move(*ref), call = reactor->token()] {
        Enqueue(
            ref,
            [context, reactor, response, out, call](absl::StatusOr<session::Link*> link,
                                                    absl::AnyInvocable<void()> finished) mutable {
              if (!link.ok()) {
                finished();
                return Finish(context, reactor, link.status());
              }
              auto result = std::make_shared<smtp::SendResult>();
              (*link)->Run(
                  [out, result](wire::ClientProtocol& client) {
                    smtp::SendOptions options;
                    options.require_all_recipients = out->require_all;
                    static_cast<smtp::Client&>(client).StartSend(
                        out->envelope, out->source, std::move(options),
                        [result](smtp::SendResult r) { *result = std::move(r); });
                  },
                  [context, reactor, response, out, result,
                   finished = std::move(finished)](absl::Status status) mutable {
                    finished();
                    if (status.ok()) {
                      response->set_state(v1::SEND_STATE_SENT);
                      for (const smtp::RecipientReply& r : result->recipients) {
                        *response->add_recipients() = ToRecipientResult(r);
                      }
                      response->set_server_reply(result->data_reply);
                      response->set_message_id(out->message_id);
                      response->set_size(result->size);
                    }
                    Finish(context, reactor, status);
                  },
                  // DATA is not safe to repeat: a drop under it may leave the message sent.
                  SendRunOptions(std::move(call)));
            },
            call);
      });
  return reactor;
}

absl::Status SendServiceImpl::QueueInOutbox(const v1::SendMessageRequest& request,
                                            const session::SessionSnapshot& session, Outgoing out,
                                            v1::SendMessageResponse* response) {
  std::string match_key = MatchKey(session);
  if (match_key.empty()) {
    return ReasonError(absl::StatusCode::kFailedPrecondition, "WRONG_PROTOCOL",
                       "the session has no SMTP connection (start it with smtp or pop3_smtp)");
  }
  MP_ASSIGN_OR_RETURN(std::string send_id, NewSendId(instance_tag_));
  outbox::Outbox::NewSend send;
  send.send_id = std::move(send_id);
  send.owner = session.owner;
  send.match_key = match_key;
  send.session_id = session.id;
  send.idempotency_key = request.idempotency_key();
  if (!send.idempotency_key.empty()) send.request_hash = RequestHash(request);
  send.envelope.set_mail_from(out.envelope.mail_from);
  for (const std::string& r : out.envelope.rcpt_to) send.envelope.add_rcpt_to(r);
  send.envelope.set_request_dsn(out.envelope.request_dsn);
  send.require_all_recipients = out.require_all;
  send.message_id = out.message_id;
  send.subject = out.subject;
  send.source = std::move(out.source);
  // Committed (fsynced) before QUEUED is answered.
  MP_ASSIGN_OR_RETURN(outbox::Outbox::Added added, outbox_.Add(std::move(send)));
  response->set_state(v1::SEND_STATE_QUEUED);
  response->set_send_id(added.status.send_id());
  response->set_message_id(added.status.message_id());
  response->set_size(added.status.size());
  if (!added.existing) {
    loop_.Post([this, match_key] { sender_->Kick(match_key); });
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* SendServiceImpl::CheckAddress(grpc::CallbackServerContext* context,
                                                        const v1::CheckAddressRequest* request,
                                                        v1::CheckAddressResponse* response) {
  CallReactor* reactor = NewCallReactor(context, loop_);
  if (request->address().empty()) {
    Finish(context, reactor, Invalid("address", "required"));
    return reactor;
  }
  if (request->address().size() > kMaxAddressBytes) {
    Finish(context, reactor, Invalid("address", "at most 1024 bytes"));
    return reactor;
  }
  if (!v1::CheckMode_IsValid(request->mode())) {
    Finish(context, reactor, Invalid("mode", "unknown value"));
    return reactor;
  }
  bool server = request->mode() == v1::CHECK_MODE_SERVER;
  bool strict = request->mode() == v1::CHECK_MODE_STRICT || server;
  *response = CheckAddressSyntax(request->address(), strict);
  if (!server || response->result() != v1::CHECK_RESULT_VALID) {
    Finish(context, reactor, absl::OkStatus());
    return reactor;
  }
  absl::StatusOr<std::string> ref = SessionRef(*context, request->session());
  if (!ref.ok()) {
    Finish(context, reactor, ref.status());
    return reactor;
  }
  std::string address = response->parsed().address();
  bool vrfy = request->allow_vrfy();
  loop_.Post([this, context, reactor, response, address, vrfy, ref = std::move(*ref),
              call = reactor->token()] {
    Enqueue(
        ref,
        [context, reactor, response, address, vrfy, call](
            absl::StatusOr<session::Link*> link, absl::AnyInvocable<void()> finished) mutable {
          if (!link.ok()) {
            finished();
            return Finish(context, reactor, link.status());
          }
          auto state = std::make_shared<ProbeState>(
              ProbeState{context, reactor, response, address, *link, std::move(finished), call});
          if (vrfy) return Verify(state);
          Probe(state);
        },
        call);
  });
  return reactor;
}

absl::StatusOr<std::string> SendServiceImpl::ResolveSessionFilter(const std::string& ref) {
  if (ref.empty()) return ref;
  absl::StatusOr<session::SessionSnapshot> found;
  loop_.RunSync([&] { found = pool_.Get(kLocalOwner, ref); });
  if (found.ok()) return found->id;
  // The outbox outlives sessions: a closed session is still known by its ID.
  if (absl::IsNotFound(found.status()) && LooksLikeSessionId(ref)) return ref;
  return found.status();
}

grpc::ServerUnaryReactor* SendServiceImpl::GetSendStatus(grpc::CallbackServerContext* context,
                                                         const v1::GetSendStatusRequest* request,
                                                         v1::GetSendStatusResponse* response) {
  auto* reactor = context->DefaultReactor();
  Finish(context, reactor, [&]() -> absl::Status {
    MP_RETURN_IF_ERROR(ValidateSendId(request->send_id()));
    MP_ASSIGN_OR_RETURN(std::string ref, OptionalSessionRef(*context, request->session()));
    MP_ASSIGN_OR_RETURN(std::string session_id, ResolveSessionFilter(ref));
    MP_ASSIGN_OR_RETURN(outbox::Outbox::Send send, outbox_.Get(kLocalOwner, request->send_id()));
    if (!session_id.empty() && send.status.session_id() != session_id) {
      return ReasonError(absl::StatusCode::kNotFound, "SEND_NOT_FOUND",
                         absl::StrCat("no send ", request->send_id(), " in that session"));
    }
    *response->mutable_send() = std::move(send.status);
    return absl::OkStatus();
  }());
  return reactor;
}

grpc::ServerUnaryReactor* SendServiceImpl::ListOutbox(grpc::CallbackServerContext* context,
                                                      const v1::ListOutboxRequest* request,
                                                      v1::ListOutboxResponse* response) {
  auto* reactor = context->DefaultReactor();
  Finish(context, reactor, [&]() -> absl::Status {
    if (request->page_size() < 0 || request->page_size() > kMaxPageSize) {
      return Invalid("page_size", "between 0 and 1000");
    }
    outbox::Outbox::ListQuery query;
    query.owner = kLocalOwner;
    query.limit = request->page_size() == 0 ? 100 : request->page_size();
    for (int state : request->states()) {
      if (!v1::SendState_IsValid(state) || state == v1::SEND_STATE_UNSPECIFIED) {
        return Invalid("states", "unknown value");
      }
      query.states.push_back(static_cast<v1::SendState>(state));
    }
    // The page token is the queue position of the last send shown ("p" + decimal).
    if (const std::string& token = request->page_token(); !token.empty()) {
      if (token[0] != 'p' || !absl::SimpleAtoi(token.substr(1), &query.after_seq) ||
          query.after_seq < 0) {
        return Invalid("page_token", "not a token from ListOutbox");
      }
    }
    MP_ASSIGN_OR_RETURN(std::string ref, OptionalSessionRef(*context, request->session()));
    MP_ASSIGN_OR_RETURN(query.session_id, ResolveSessionFilter(ref));
    bool more = false;
    MP_ASSIGN_OR_RETURN(std::vector<outbox::Outbox::Send> sends, outbox_.List(query, &more));
    for (outbox::Outbox::Send& send : sends) *response->add_sends() = std::move(send.status);
    if (more) response->set_next_page_token(absl::StrCat("p", sends.back().seq));
    return absl::OkStatus();
  }());
  return reactor;
}

grpc::ServerUnaryReactor* SendServiceImpl::CancelSend(grpc::CallbackServerContext* context,
                                                      const v1::CancelSendRequest* request,
                                                      v1::CancelSendResponse* response) {
  auto* reactor = context->DefaultReactor();
  Finish(context, reactor, [&]() -> absl::Status {
    MP_RETURN_IF_ERROR(ValidateSendId(request->send_id()));
    MP_ASSIGN_OR_RETURN(std::string ref, OptionalSessionRef(*context, request->session()));
    MP_ASSIGN_OR_RETURN(std::string session_id, ResolveSessionFilter(ref));
    if (!session_id.empty()) {
      MP_ASSIGN_OR_RETURN(outbox::Outbox::Send send, outbox_.Get(kLocalOwner, request->send_id()));
      if (send.status.session_id() != session_id) {
        return ReasonError(absl::StatusCode::kNotFound, "SEND_NOT_FOUND",
                           absl::StrCat("no send ", request->send_id(), " in that session"));
      }
    }
    // Only a QUEUED send is cancelled: one in flight (PENDING) may be past its end of data.
    MP_ASSIGN_OR_RETURN(outbox::Outbox::Send send, outbox_.Cancel(kLocalOwner, request->send_id()));
    *response->mutable_send() = std::move(send.status);
    return absl::OkStatus();
  }());
  return reactor;
}

// One WatchSendStatus stream. The outbox calls OnChange from whichever thread committed a
// change; everything here is under `shared_->mu`, which also tells a late outbox callback
// that the reactor is gone.
class SendServiceImpl::Watcher final
    : public grpc::ServerWriteReactor<v1::WatchSendStatusResponse> {
 public:
  struct Shared {
    std::mutex mu;
    Watcher* watcher = nullptr;
  };

  Watcher(SendServiceImpl* service, std::string session_id, std::set<std::string> ids)
      : service_(service),
        session_id_(std::move(session_id)),
        ids_(std::move(ids)),
        shared_(std::make_shared<Shared>()) {
    shared_->watcher = this;
  }

  // Registers with the outbox, then queues the current statuses asked for.
  void Begin(bool include_current) {
    std::shared_ptr<Shared> shared = shared_;
    listener_ = service_->outbox_.AddListener([shared](const outbox::Outbox::Send& send) {
      std::lock_guard<std::mutex> lock(shared->mu);
      if (shared->watcher != nullptr) shared->watcher->OnChangeLocked(send.owner, send.status);
    });
    absl::Status status;
    std::vector<v1::SendStatus> current;
    if (!ids_.empty()) {
      for (const std::string& id : ids_) {
        absl::StatusOr<outbox::Outbox::Send> send = service_->outbox_.Get(kLocalOwner, id);
        if (!send.ok()) {
          status = send.status();
          break;
        }
        current.push_back(std::move(send->status));
      }
    } else if (include_current) {
      outbox::Outbox::ListQuery query;
      query.owner = kLocalOwner;
      query.session_id = session_id_;
      query.states = {v1::SEND_STATE_QUEUED, v1::SEND_STATE_PENDING};
      query.limit = kMaxPageSize;
      bool more = true;
      while (status.ok() && more) {
        absl::StatusOr<std::vector<outbox::Outbox::Send>> page =
            service_->outbox_.List(query, &more);
        if (!page.ok()) {
          status = page.status();
          break;
        }
        for (auto& send : *page) current.push_back(std::move(send.status));
        if (!page->empty()) query.after_seq = page->back().seq;
      }
    }
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (!status.ok()) return FinishLocked(ToGrpcStatus(status, nullptr));
    for (v1::SendStatus& s : current) {
      if (!ids_.empty() && IsFinal(s.state())) final_.insert(s.send_id());
      if (include_current) Push(std::move(s));
    }
    WriteOrEndLocked();
  }

  void OnChangeLocked(const std::string& owner, const v1::SendStatus& status) {
    if (finished_ || owner != kLocalOwner) return;
    if (!session_id_.empty() && status.session_id() != session_id_) return;
    if (!ids_.empty()) {
      if (ids_.count(status.send_id()) == 0) return;
      if (IsFinal(status.state())) final_.insert(status.send_id());
    }
    Push(status);
    WriteOrEndLocked();
  }

  void Stop(grpc::Status status) {
    std::lock_guard<std::mutex> lock(shared_->mu);
    FinishLocked(std::move(status));
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
    pending_.pop_front();
    WriteOrEndLocked();
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }
  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->watcher = nullptr;
    }
    service_->outbox_.RemoveListener(listener_);
    {
      std::lock_guard<std::mutex> lock(service_->watchers_mu_);
      service_->watchers_.erase(this);
    }
    delete this;
  }

 private:
  static bool IsFinal(v1::SendState state) {
    return state == v1::SEND_STATE_SENT || state == v1::SEND_STATE_ERROR ||
           state == v1::SEND_STATE_CANCELLED;
  }
  void Push(v1::SendStatus status) {
    // A slow reader must not make the daemon buffer without bound.
    if (pending_.size() >= 10000) {
      return FinishLocked(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "the watcher reads too slowly"));
    }
    v1::WatchSendStatusResponse response;
    *response.mutable_send() = std::move(status);
    pending_.push_back(std::move(response));
  }
  void WriteOrEndLocked() {
    if (finished_ || writing_) return;
    if (!pending_.empty()) {
      writing_ = true;
      StartWrite(&pending_.front());
      return;
    }
    // With IDs, the stream ends once every one is final.
    if (!ids_.empty() && final_.size() == ids_.size()) FinishLocked(grpc::Status::OK);
  }
  void FinishLocked(grpc::Status status) {
    if (finished_) return;
    finished_ = true;
    Finish(std::move(status));
  }

  SendServiceImpl* service_;
  std::string session_id_;
  std::set<std::string> ids_;
  std::set<std::string> final_;
  std::shared_ptr<Shared> shared_;
  int listener_ = 0;
  std::deque<v1::WatchSendStatusResponse> pending_;
  bool writing_ = false;
  bool finished_ = false;
};

grpc::ServerWriteReactor<v1::WatchSendStatusResponse>* SendServiceImpl::WatchSendStatus(
    grpc::CallbackServerContext* context, const v1::WatchSendStatusRequest* request) {
  absl::StatusOr<std::string> session_id = [&]() -> absl::StatusOr<std::string> {
    if (request->send_ids_size() > kMaxPageSize) return Invalid("send_ids", "at most 1000");
    for (const std::string& id : request->send_ids()) MP_RETURN_IF_ERROR(ValidateSendId(id));
    MP_ASSIGN_OR_RETURN(std::string ref, OptionalSessionRef(*context, request->session()));
    return ResolveSessionFilter(ref);
  }();
  if (!session_id.ok()) {
    return new FinishedWriter<v1::WatchSendStatusResponse>(
        ToGrpcStatus(session_id.status(), context));
  }
  auto* watcher =
      new Watcher(this, std::move(*session_id),
                  std::set<std::string>(request->send_ids().begin(), request->send_ids().end()));
  {
    std::lock_guard<std::mutex> lock(watchers_mu_);
    if (watches_stopped_) {
      watcher->Stop(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is shutting down"));
      return watcher;
    }
    watchers_.insert(watcher);
  }
  watcher->Begin(request->include_current());
  return watcher;
}

void SendServiceImpl::StopWatches() {
  std::lock_guard<std::mutex> lock(watchers_mu_);
  watches_stopped_ = true;
  for (Watcher* w : watchers_) {
    w->Stop(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is shutting down"));
  }
}

}  // namespace mailpool::service
