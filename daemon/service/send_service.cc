#include "service/send_service.h"

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "mime/mime.h"
#include "service/call.h"
#include "service/errors.h"
#include "service/session_service.h"
#include "smtp/client.h"
#include "wire/sasl.h"

namespace mailpool::service {
namespace {

constexpr size_t kMaxAddressBytes = 1024;
constexpr size_t kMaxSourceBytes = 64u << 20;
constexpr char kOutboxMissing[] = "asynchronous sending (outbox) is not implemented yet";

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                     absl::StrCat(field, ": ", what));
}

absl::Status OutboxMissing() {
  return ReasonError(absl::StatusCode::kUnimplemented, "NOT_IMPLEMENTED", kOutboxMissing);
}

template <typename Response>
class FinishedWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedWriter(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// What goes to the SMTP server: the envelope and the bytes.
struct Outgoing {
  smtp::Envelope envelope;
  std::string source;
  std::string message_id;
  bool require_all = false;
};

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

// RSET + MAIL + RCPT probe: nothing is delivered, safe to repeat.
session::RunOptions ProbeRunOptions(std::shared_ptr<CallToken> call) {
  session::RunOptions options;
  options.call = std::move(call);
  return options;
}

}  // namespace

SendServiceImpl::SendServiceImpl(net::EventLoop& loop, pool::Pool& pool)
    : loop_(loop), pool_(pool) {}

SendServiceImpl::~SendServiceImpl() = default;

void SendServiceImpl::Enqueue(const std::string& ref, Job job) {
  absl::StatusOr<session::Session*> session = pool_.Use(kLocalOwner, ref);
  if (!session.ok()) return job(session.status(), [] {});
  if ((*session)->Snapshot().asynchronous) return job(OutboxMissing(), [] {});
  if ((*session)->link(session::Protocol::kSmtp) == nullptr) {
    return job(ReasonError(absl::StatusCode::kFailedPrecondition, "WRONG_PROTOCOL",
                           "the session has no SMTP connection (start it with smtp or "
                           "pop3_smtp)"),
               [] {});
  }
  std::string id = (*session)->id();
  queues_[id].jobs.push_back(std::move(job));
  Pump(id);
}

void SendServiceImpl::Pump(const std::string& session_id) {
  auto it = queues_.find(session_id);
  if (it == queues_.end() || it->second.running) return;
  if (it->second.jobs.empty()) {
    queues_.erase(it);
    return;
  }
  Job job = std::move(it->second.jobs.front());
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
  if (!request->idempotency_key().empty()) {
    Finish(context, reactor,
           ReasonError(absl::StatusCode::kUnimplemented, "NOT_IMPLEMENTED",
                       "idempotency_key is not implemented yet (it comes with the outbox)"));
    return reactor;
  }
  absl::StatusOr<Outgoing> outgoing = Prepare(*request);
  if (!outgoing.ok()) {
    Finish(context, reactor, outgoing.status());
    return reactor;
  }
  auto out = std::make_shared<Outgoing>(std::move(*outgoing));
  loop_.Post([this, context, reactor, response, out, ref = std::move(*ref),
              call = reactor->token()] {
    Enqueue(ref, [context, reactor, response, out, call](
                     absl::StatusOr<session::Link*> link,
                     absl::AnyInvocable<void()> finished) mutable {
      if (!link.ok()) {
        finished();
        return Finish(context, reactor, link.status());
      }
      auto result = std::make_shared<smtp::SendResult>();
      (*link)->Run(
          [out, result](wire::ClientProtocol& client) {
            static_cast<smtp::Client&>(client).StartSend(
                out->envelope, out->source, smtp::SendOptions{out->require_all},
                [result](smtp::SendResult r) { *result = std::move(r); });
          },
          [context, reactor, response, out, result,
           finished = std::move(finished)](absl::Status status) mutable {
            finished();
            if (status.ok()) {
              response->set_state(v1::SEND_STATE_SENT);
              for (const smtp::RecipientReply& r : result->recipients) {
                v1::RecipientResult* rr = response->add_recipients();
                rr->set_address(r.address);
                rr->set_accepted(r.accepted);
                rr->set_reply_code(r.code);
                rr->set_server_reply(r.reply);
                // RFC 3463: the enhanced status code follows the reply code.
                absl::string_view text =
                    r.reply.size() > 4 ? absl::string_view(r.reply).substr(4) : absl::string_view();
                size_t sp = text.find_first_of(" \n");
                absl::string_view first = text.substr(0, sp);
                if (first.size() >= 5 && first.size() <= 11 && absl::ascii_isdigit(first[0]) &&
                    first[1] == '.' && first[0] == r.reply[0]) {
                  rr->set_enhanced_status(std::string(first));
                }
              }
              response->set_server_reply(result->data_reply);
              response->set_message_id(out->message_id);
              response->set_size(result->size);
            }
            Finish(context, reactor, status);
          },
          // DATA is not safe to repeat: a drop under it may leave the message sent.
          SendRunOptions(std::move(call)));
    });
  });
  return reactor;
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
  if (request->allow_vrfy()) {
    Finish(context, reactor,
           ReasonError(absl::StatusCode::kUnimplemented, "NOT_IMPLEMENTED",
                       "allow_vrfy is not implemented yet"));
    return reactor;
  }
  absl::StatusOr<std::string> ref = SessionRef(*context, request->session());
  if (!ref.ok()) {
    Finish(context, reactor, ref.status());
    return reactor;
  }
  std::string address = response->parsed().address();
  loop_.Post([this, context, reactor, response, address, ref = std::move(*ref),
              call = reactor->token()] {
    Enqueue(ref,
            [context, reactor, response, address, call](
                absl::StatusOr<session::Link*> link, absl::AnyInvocable<void()> finished) mutable {
              if (!link.ok()) {
                finished();
                return Finish(context, reactor, link.status());
              }
              auto reply = std::make_shared<smtp::Reply>();
              (*link)->Run(
                  [address, reply](wire::ClientProtocol& client) {
                    static_cast<smtp::Client&>(client).StartProbe(
                        address, [reply](smtp::Reply r) { *reply = std::move(r); });
                  },
                  [context, reactor, response, reply,
                   finished = std::move(finished)](absl::Status status) mutable {
                    finished();
                    if (!status.ok()) return Finish(context, reactor, status);
                    response->set_reply_code(reply->code);
                    response->set_server_reply(SanitizeServerText(reply->Raw()));
                    if (reply->IsPositive()) {
                      response->set_result(v1::CHECK_RESULT_VALID);
                    } else if (reply->IsPermanentFailure()) {
                      response->set_result(v1::CHECK_RESULT_INVALID);
                      response->set_reason(response->server_reply());
                    } else {
                      response->set_result(v1::CHECK_RESULT_UNKNOWN);
                      response->set_reason(response->server_reply());
                    }
                    Finish(context, reactor, absl::OkStatus());
                  },
                  ProbeRunOptions(std::move(call)));
            });
  });
  return reactor;
}

grpc::ServerUnaryReactor* SendServiceImpl::GetSendStatus(grpc::CallbackServerContext* context,
                                                         const v1::GetSendStatusRequest*,
                                                         v1::GetSendStatusResponse*) {
  auto* reactor = context->DefaultReactor();
  Finish(context, reactor, OutboxMissing());
  return reactor;
}

grpc::ServerUnaryReactor* SendServiceImpl::ListOutbox(grpc::CallbackServerContext* context,
                                                      const v1::ListOutboxRequest*,
                                                      v1::ListOutboxResponse*) {
  auto* reactor = context->DefaultReactor();
  Finish(context, reactor, OutboxMissing());
  return reactor;
}

grpc::ServerUnaryReactor* SendServiceImpl::CancelSend(grpc::CallbackServerContext* context,
                                                      const v1::CancelSendRequest*,
                                                      v1::CancelSendResponse*) {
  auto* reactor = context->DefaultReactor();
  Finish(context, reactor, OutboxMissing());
  return reactor;
}

grpc::ServerWriteReactor<v1::WatchSendStatusResponse>* SendServiceImpl::WatchSendStatus(
    grpc::CallbackServerContext* context, const v1::WatchSendStatusRequest*) {
  return new FinishedWriter<v1::WatchSendStatusResponse>(ToGrpcStatus(OutboxMissing(), context));
}

}  // namespace mailpool::service
