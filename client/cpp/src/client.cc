// mailpool C++ client: see include/mailpool/client.h.
#include "mailpool/client.h"

#include <chrono>
#include <cstdlib>
#include <deque>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mailpool {
namespace {

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  absl::Duration rem;
  int64_t secs = absl::IDivDuration(d, absl::Seconds(1), &rem);
  out.set_seconds(secs);
  out.set_nanos(static_cast<int32_t>(absl::IDivDuration(rem, absl::Nanoseconds(1), &rem)));
  return out;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// Session IDs go into the routing header; names cannot be routed on.
std::string RoutingId(absl::string_view id_or_name) {
  return absl::StartsWith(id_or_name, "ms") ? std::string(id_or_name) : std::string();
}

void FillEndpoint(const StartOptions& o, absl::string_view host, uint32_t port,
                  v1::Security security, v1::ServerEndpoint* ep) {
  ep->set_host(std::string(host));
  ep->set_port(port);
  ep->set_security(security);
  ep->mutable_tls()->set_ca_pem(o.ca_pem);
  ep->mutable_tls()->set_server_name(o.server_name);
  ep->mutable_tls()->set_dangerously_skip_verification(o.dangerously_skip_verification);
  if (o.connect_timeout > absl::ZeroDuration()) {
    *ep->mutable_connect_timeout() = ToProto(o.connect_timeout);
  }
}

// StartOptions or CredentialsUpdate: the same credential fields.
template <typename Options>
void FillCredentials(const Options& o, v1::Credentials* c) {
  c->set_user(o.user);
  if (o.password) c->set_password(*o.password);
  if (o.oauth2_token) c->set_oauth2_token(*o.oauth2_token);
  if (o.oauth2_refresh) {
    v1::OAuth2Refresh* r = c->mutable_oauth2_refresh();
    r->set_refresh_token(o.oauth2_refresh->refresh_token);
    r->set_provider(o.oauth2_refresh->provider);
    r->set_token_endpoint(o.oauth2_refresh->token_endpoint);
    r->set_client_id(o.oauth2_refresh->client_id);
    r->set_client_secret(o.oauth2_refresh->client_secret);
    r->set_scopes(o.oauth2_refresh->scopes);
  }
  c->set_mechanism(o.mechanism);
  c->set_allow_insecure_auth(o.allow_insecure_auth);
}

v1::StartSessionRequest BaseRequest(const StartOptions& o) {
  v1::StartSessionRequest req;
  req.set_name(o.name);
  if (o.session_timeout > absl::ZeroDuration()) *req.mutable_timeout() = ToProto(o.session_timeout);
  return req;
}

}  // namespace

namespace internal {

struct Core : std::enable_shared_from_this<Core> {
  std::shared_ptr<grpc::ChannelInterface> channel;
  std::unique_ptr<v1::SessionService::StubInterface> sessions;
  std::unique_ptr<v1::MailboxService::StubInterface> mailbox;
  std::unique_ptr<v1::SendService::StubInterface> send;
  std::unique_ptr<v1::MessageService::StubInterface> message;
  ClientOptions options;
  // Set when the client's options could not make a channel: every call returns it.
  absl::Status init_error;

  void Prepare(grpc::ClientContext* ctx, absl::string_view session_id, absl::Duration timeout) {
    if (timeout > absl::ZeroDuration() && timeout != absl::InfiniteDuration()) {
      ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout));
    }
    if (!session_id.empty()) ctx->AddMetadata(kSessionHeader, std::string(session_id));
  }

  template <typename Stub, typename Req, typename Resp>
  absl::StatusOr<Resp> Unary(Stub* stub,
                             grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                             const Req& req, absl::string_view session_id = "",
                             std::optional<absl::Duration> timeout = std::nullopt) {
    if (!init_error.ok()) return init_error;
    grpc::ClientContext ctx;
    Prepare(&ctx, session_id, timeout.value_or(options.timeout));
    Resp resp;
    grpc::Status st = (stub->*method)(&ctx, req, &resp);
    if (!st.ok()) return FromGrpc(st, ctx);
    return resp;
  }

  // A server stream as a Range; the call starts at the first iteration and is cancelled
  // when the range is destroyed before the end. No deadline.
  template <typename Stub, typename Req, typename Resp>
  Range<Resp> Stream(Stub* stub,
                     std::unique_ptr<grpc::ClientReaderInterface<Resp>> (Stub::*method)(
                         grpc::ClientContext*, const Req&),
                     Req req, std::string session_id) {
    struct State {
      std::unique_ptr<grpc::ClientContext> ctx = std::make_unique<grpc::ClientContext>();
      std::unique_ptr<grpc::ClientReaderInterface<Resp>> reader;
      bool finished = false;
      ~State() {
        if (reader && !finished) {
          ctx->TryCancel();
          reader->Finish();
        }
      }
    };
    auto state = std::make_shared<State>();
    auto self = shared_from_this();
    return Range<Resp>([state, self, stub, method, req = std::move(req),
                        session_id]() -> std::optional<absl::StatusOr<Resp>> {
      if (state->finished) return std::nullopt;
      if (!self->init_error.ok()) {
        state->finished = true;
        return absl::StatusOr<Resp>(self->init_error);
      }
      if (!state->reader) {
        self->Prepare(state->ctx.get(), session_id, absl::ZeroDuration());
        state->reader = (stub->*method)(state->ctx.get(), req);
      }
      Resp r;
      if (state->reader->Read(&r)) return absl::StatusOr<Resp>(std::move(r));
      state->finished = true;
      grpc::Status st = state->reader->Finish();
      if (st.ok()) return std::nullopt;
      return absl::StatusOr<Resp>(FromGrpc(st, *state->ctx));
    });
  }

  // Page after page: fetch(token) returns a response with a repeated field (items) and
  // next_page_token.
  template <typename T, typename Resp>
  static Range<T> Paged(std::function<absl::StatusOr<Resp>(const std::string&)> fetch,
                        google::protobuf::RepeatedPtrField<T>* (Resp::*items)()) {
    struct State {
      std::function<absl::StatusOr<Resp>(const std::string&)> fetch;
      std::deque<T> buffer;
      std::string token;
      bool done = false;
    };
    auto st = std::make_shared<State>();
    st->fetch = std::move(fetch);
    return Range<T>([st, items]() -> std::optional<absl::StatusOr<T>> {
      while (st->buffer.empty()) {
        if (st->done) return std::nullopt;
        absl::StatusOr<Resp> page = st->fetch(st->token);
        if (!page.ok()) {
          st->done = true;
          return absl::StatusOr<T>(page.status());
        }
        for (T& x : *((*page).*items)()) st->buffer.push_back(std::move(x));
        st->token = page->next_page_token();
        if (st->token.empty()) st->done = true;
      }
      T x = std::move(st->buffer.front());
      st->buffer.pop_front();
      return absl::StatusOr<T>(std::move(x));
    });
  }
};

}  // namespace internal

using internal::Core;
using SS = v1::SessionService::StubInterface;
using MS = v1::MailboxService::StubInterface;
using SendS = v1::SendService::StubInterface;
using MsgS = v1::MessageService::StubInterface;

// ---- errors ------------------------------------------------------------------------------

absl::Status FromGrpc(const grpc::Status& status, const grpc::ClientContext& context) {
  if (status.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(kErrorDetailTrailer);
  if (it != trailers.end()) {
    out.SetPayload(kErrorDetailTypeUrl,
                   absl::Cord(absl::string_view(it->second.data(), it->second.size())));
  }
  if (!status.error_details().empty()) {
    out.SetPayload(kRpcStatusTypeUrl, absl::Cord(status.error_details()));
  }
  return out;
}

std::optional<google::rpc::Status> RpcStatusOf(const absl::Status& status) {
  auto payload = status.GetPayload(kRpcStatusTypeUrl);
  if (!payload) return std::nullopt;
  google::rpc::Status rpc;
  if (!rpc.ParseFromString(std::string(*payload))) return std::nullopt;
  return rpc;
}

namespace {
// The first detail of type T in the google.rpc.Status of `status`.
template <typename T>
std::optional<T> DetailOfType(const absl::Status& status) {
  std::optional<google::rpc::Status> rpc = RpcStatusOf(status);
  if (!rpc) return std::nullopt;
  for (const google::protobuf::Any& any : rpc->details()) {
    T out;
    if (any.Is<T>() && any.UnpackTo(&out)) return out;
  }
  return std::nullopt;
}
}  // namespace

std::optional<google::rpc::ErrorInfo> ErrorInfoOf(const absl::Status& status) {
  return DetailOfType<google::rpc::ErrorInfo>(status);
}

std::optional<absl::Duration> RetryDelayOf(const absl::Status& status) {
  std::optional<google::rpc::RetryInfo> retry = DetailOfType<google::rpc::RetryInfo>(status);
  if (!retry) return std::nullopt;
  return FromProto(retry->retry_delay());
}

std::vector<google::rpc::BadRequest::FieldViolation> FieldViolationsOf(const absl::Status& status) {
  std::optional<google::rpc::BadRequest> bad = DetailOfType<google::rpc::BadRequest>(status);
  if (!bad) return {};
  return {bad->field_violations().begin(), bad->field_violations().end()};
}

std::optional<v1::ErrorDetail> ErrorDetailOf(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorDetailTypeUrl);  // absl::optional (not std:: in Debian)
  if (!payload) return std::nullopt;
  v1::ErrorDetail detail;
  if (!detail.ParseFromString(std::string(*payload))) return std::nullopt;
  return detail;
}

std::string ServerReply(const absl::Status& status) {
  std::optional<v1::ErrorDetail> d = ErrorDetailOf(status);
  if (d && !d->server_reply().empty()) return d->server_reply();
  std::optional<google::rpc::ErrorInfo> info = ErrorInfoOf(status);
  if (info) {
    auto it = info->metadata().find("server_reply");
    if (it != info->metadata().end()) return it->second;
  }
  return std::string();
}

v1::Address MakeAddress(absl::string_view text) {
  v1::Address a;
  size_t lt = text.rfind('<');
  size_t gt = text.rfind('>');
  if (lt != absl::string_view::npos && gt != absl::string_view::npos && gt > lt) {
    absl::string_view name = absl::StripAsciiWhitespace(text.substr(0, lt));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = name.substr(1, name.size() - 2);
    }
    a.set_name(std::string(name));
    a.set_address(std::string(absl::StripAsciiWhitespace(text.substr(lt + 1, gt - lt - 1))));
  } else {
    a.set_address(std::string(absl::StripAsciiWhitespace(text)));
  }
  return a;
}

// ---- Client ------------------------------------------------------------------------------

std::string Client::DefaultAddress() {
  const char* env = std::getenv("MAILPOOL_ADDR");
  return env && *env ? env : "127.0.0.1:50551";
}

namespace {
std::shared_ptr<grpc::ChannelInterface> ChannelOrPlaceholder(
    const absl::StatusOr<std::shared_ptr<grpc::Channel>>& channel) {
  // The placeholder is never called (init_error short-cuts every call).
  return channel.ok()
             ? *channel
             : grpc::CreateChannel("unix:/nonexistent", grpc::InsecureChannelCredentials());
}
}  // namespace

absl::StatusOr<Client> Client::Create(const std::string& address, ClientOptions options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = CreateChannel(address, options.connect);
  if (!channel.ok()) return channel.status();
  return Client(*std::move(channel), std::move(options));
}

Client::Client(const std::string& address, ClientOptions options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = CreateChannel(address, options.connect);
  *this = Client(ChannelOrPlaceholder(channel), std::move(options));
  core_->init_error = channel.status();
}

Client::Client(std::shared_ptr<grpc::ChannelInterface> channel, ClientOptions options)
    : core_(std::make_shared<Core>()) {
  core_->channel = channel;
  core_->sessions = v1::SessionService::NewStub(channel);
  core_->mailbox = v1::MailboxService::NewStub(channel);
  core_->send = v1::SendService::NewStub(channel);
  core_->message = v1::MessageService::NewStub(channel);
  core_->options = options;
}

v1::SessionService::StubInterface& Client::session_stub() { return *core_->sessions; }
v1::MailboxService::StubInterface& Client::mailbox_stub() { return *core_->mailbox; }
v1::SendService::StubInterface& Client::send_stub() { return *core_->send; }
v1::MessageService::StubInterface& Client::message_stub() { return *core_->message; }

absl::StatusOr<Session> Client::StartSession(const v1::StartSessionRequest& request) {
  auto resp = core_->Unary(core_->sessions.get(), &SS::StartSession, request, "",
                           core_->options.start_timeout);
  if (!resp.ok()) return resp.status();
  return Session(core_, resp->session());
}

absl::StatusOr<Session> Client::StartImap(const StartOptions& o) {
  v1::StartSessionRequest req = BaseRequest(o);
  FillEndpoint(o, o.host, o.port, o.security, req.mutable_imap()->mutable_server());
  FillCredentials(o, req.mutable_imap()->mutable_credentials());
  req.mutable_imap()->set_initial_folder(o.folder);
  return StartSession(req);
}

absl::StatusOr<Session> Client::StartPop3(const StartOptions& o) {
  v1::StartSessionRequest req = BaseRequest(o);
  FillEndpoint(o, o.host, o.port, o.security, req.mutable_pop3()->mutable_server());
  FillCredentials(o, req.mutable_pop3()->mutable_credentials());
  return StartSession(req);
}

absl::StatusOr<Session> Client::StartSmtp(const StartOptions& o) {
  v1::StartSessionRequest req = BaseRequest(o);
  FillEndpoint(o, o.host, o.port, o.security, req.mutable_smtp()->mutable_server());
  FillCredentials(o, req.mutable_smtp()->mutable_credentials());
  req.mutable_smtp()->set_asynchronous(o.asynchronous);
  req.mutable_smtp()->set_ehlo_name(o.ehlo_name);
  return StartSession(req);
}

absl::StatusOr<Session> Client::StartPop3Smtp(const StartOptions& o) {
  v1::StartSessionRequest req = BaseRequest(o);
  v1::Pop3SmtpOptions* p = req.mutable_pop3_smtp();
  FillEndpoint(o, o.host, o.port, o.security, p->mutable_pop3());
  FillEndpoint(o, o.smtp_host, o.smtp_port,
               o.smtp_security == v1::SECURITY_UNSPECIFIED ? o.security : o.smtp_security,
               p->mutable_smtp());
  FillCredentials(o, p->mutable_credentials());
  p->set_asynchronous(o.asynchronous);
  p->set_ehlo_name(o.ehlo_name);
  return StartSession(req);
}

absl::StatusOr<Session> Client::Attach(absl::string_view id_or_name) {
  auto info = GetSession(id_or_name);
  if (!info.ok()) return info.status();
  return Session(core_, *std::move(info));
}

absl::StatusOr<v1::Session> Client::GetSession(absl::string_view id_or_name) {
  v1::GetSessionRequest req;
  req.set_session(std::string(id_or_name));
  auto resp = core_->Unary(core_->sessions.get(), &SS::GetSession, req, RoutingId(id_or_name));
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_session());
}

absl::StatusOr<std::string> Client::CloseSession(absl::string_view id_or_name) {
  v1::CloseSessionRequest req;
  req.set_session(std::string(id_or_name));
  auto resp = core_->Unary(core_->sessions.get(), &SS::CloseSession, req, RoutingId(id_or_name));
  if (!resp.ok()) return resp.status();
  return resp->server_reply();
}

Range<v1::Session> Client::ListSessions(int page_size, bool all_callers) {
  auto core = core_;
  return Core::Paged<v1::Session, v1::ListSessionsResponse>(
      [core, page_size, all_callers](const std::string& token) {
        v1::ListSessionsRequest req;
        req.set_page_size(page_size);
        req.set_all_callers(all_callers);
        req.set_page_token(token);
        return core->Unary(core->sessions.get(), &SS::ListSessions, req);
      },
      &v1::ListSessionsResponse::mutable_sessions);
}

absl::StatusOr<absl::Duration> Client::GetDefaultTimeout() {
  auto resp =
      core_->Unary(core_->sessions.get(), &SS::GetDefaultTimeout, v1::GetDefaultTimeoutRequest());
  if (!resp.ok()) return resp.status();
  return FromProto(resp->timeout());
}

absl::StatusOr<absl::Duration> Client::SetDefaultTimeout(absl::Duration timeout) {
  v1::SetDefaultTimeoutRequest req;
  *req.mutable_timeout() = ToProto(timeout);
  auto resp = core_->Unary(core_->sessions.get(), &SS::SetDefaultTimeout, req);
  if (!resp.ok()) return resp.status();
  return FromProto(resp->timeout());
}

absl::StatusOr<v1::BuildSourceResponse> Client::BuildSource(const v1::EmailMessage& message,
                                                            const v1::BuildOptions& options) {
  v1::BuildSourceRequest req;
  *req.mutable_message() = message;
  *req.mutable_options() = options;
  return core_->Unary(core_->message.get(), &MsgS::BuildSource, req);
}

absl::StatusOr<v1::ParseSourceResponse> Client::ParseSource(std::string source,
                                                            const v1::ParseOptions& options) {
  v1::ParseSourceRequest req;
  req.set_source(std::move(source));
  *req.mutable_options() = options;
  return core_->Unary(core_->message.get(), &MsgS::ParseSource, req);
}

absl::StatusOr<v1::CheckAddressResponse> Client::CheckAddress(absl::string_view address,
                                                              bool strict) {
  v1::CheckAddressRequest req;
  req.set_address(std::string(address));
  req.set_mode(strict ? v1::CHECK_MODE_STRICT : v1::CHECK_MODE_SYNTAX);
  return core_->Unary(core_->send.get(), &SendS::CheckAddress, req);
}

absl::StatusOr<v1::SendStatus> Client::GetSendStatus(absl::string_view send_id) {
  v1::GetSendStatusRequest req;
  req.set_send_id(std::string(send_id));
  auto resp = core_->Unary(core_->send.get(), &SendS::GetSendStatus, req);
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_send());
}

absl::StatusOr<v1::SendStatus> Client::CancelSend(absl::string_view send_id) {
  v1::CancelSendRequest req;
  req.set_send_id(std::string(send_id));
  auto resp = core_->Unary(core_->send.get(), &SendS::CancelSend, req);
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_send());
}

namespace {

Range<v1::SendStatus> OutboxRange(std::shared_ptr<Core> core, v1::ListOutboxRequest request) {
  std::string routing = RoutingId(request.session());
  return Core::Paged<v1::SendStatus, v1::ListOutboxResponse>(
      [core, request, routing](const std::string& token) {
        v1::ListOutboxRequest req = request;
        req.set_page_token(token);
        return core->Unary(core->send.get(), &SendS::ListOutbox, req, routing);
      },
      &v1::ListOutboxResponse::mutable_sends);
}

Range<v1::SendStatus> WatchSendsRange(std::shared_ptr<Core> core,
                                      v1::WatchSendStatusRequest request) {
  std::string routing = RoutingId(request.session());
  auto events = std::make_shared<Range<v1::WatchSendStatusResponse>>(
      core->Stream(core->send.get(), &SendS::WatchSendStatus, std::move(request), routing));
  auto it = std::make_shared<Range<v1::WatchSendStatusResponse>::iterator>();
  auto started = std::make_shared<bool>(false);
  return Range<v1::SendStatus>(
      [events, it, started]() -> std::optional<absl::StatusOr<v1::SendStatus>> {
        if (!*started) {
          *started = true;
          *it = events->begin();
        } else {
          ++*it;
        }
        if (*it == events->end()) return std::nullopt;
        if (!(*it)->ok()) return absl::StatusOr<v1::SendStatus>((*it)->status());
        return absl::StatusOr<v1::SendStatus>((**it)->send());
      });
}

}  // namespace

Range<v1::SendStatus> Client::ListOutbox(v1::ListOutboxRequest request) {
  return OutboxRange(core_, std::move(request));
}

Range<v1::SendStatus> Client::WatchSendStatus(v1::WatchSendStatusRequest request) {
  return WatchSendsRange(core_, std::move(request));
}

// ---- Session -----------------------------------------------------------------------------

Session::Session(std::shared_ptr<Core> core, v1::Session info)
    : core_(std::move(core)), info_(std::move(info)) {}

Session::Session(Session&& other) noexcept
    : core_(std::move(other.core_)), info_(std::move(other.info_)), owned_(other.owned_) {
  other.owned_ = false;
}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    if (owned_ && core_) (void)Close();
    core_ = std::move(other.core_);
    info_ = std::move(other.info_);
    owned_ = other.owned_;
    other.owned_ = false;
  }
  return *this;
}

Session::~Session() {
  if (owned_ && core_) (void)Close();
}

template <typename Req>
static Req WithSession(Req req, const std::string& id) {
  req.set_session(id);
  return req;
}

absl::StatusOr<v1::Session> Session::Info() {
  v1::GetSessionRequest req;
  req.set_session(id());
  auto resp = core_->Unary(core_->sessions.get(), &SS::GetSession, req, id());
  if (!resp.ok()) return resp.status();
  info_ = resp->session();
  return info_;
}

absl::StatusOr<std::string> Session::Close() {
  if (!owned_ || !core_) return std::string();
  v1::CloseSessionRequest req;
  req.set_session(id());
  auto resp = core_->Unary(core_->sessions.get(), &SS::CloseSession, req, id());
  if (resp.ok() || absl::IsNotFound(resp.status())) owned_ = false;
  if (!resp.ok()) return resp.status();
  return resp->server_reply();
}

std::string Session::Release() {
  owned_ = false;
  return id();
}

absl::StatusOr<v1::Session> Session::SetTimeout(absl::Duration timeout) {
  v1::UpdateSessionRequest req;
  req.set_session(id());
  *req.mutable_timeout() = ToProto(timeout);
  auto resp = core_->Unary(core_->sessions.get(), &SS::UpdateSession, req, id());
  if (!resp.ok()) return resp.status();
  info_ = resp->session();
  return info_;
}

absl::StatusOr<v1::Session> Session::UpdateCredentials(const CredentialsUpdate& credentials) {
  v1::UpdateSessionRequest req;
  req.set_session(id());
  FillCredentials(credentials, req.mutable_credentials());
  if (credentials.user.empty()) req.mutable_credentials()->set_user(info_.user());
  auto resp = core_->Unary(core_->sessions.get(), &SS::UpdateSession, req, id());
  if (!resp.ok()) return resp.status();
  info_ = resp->session();
  return info_;
}

absl::StatusOr<v1::MailboxStatus> Session::Status(absl::string_view folder) {
  v1::GetMailboxStatusRequest req;
  req.set_session(id());
  req.set_folder(std::string(folder));
  auto resp = core_->Unary(core_->mailbox.get(), &MS::GetMailboxStatus, req, id());
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_status());
}

absl::StatusOr<v1::ListMessagesResponse> Session::ListMessagesPage(
    v1::ListMessagesRequest request) {
  return core_->Unary(core_->mailbox.get(), &MS::ListMessages,
                      WithSession(std::move(request), id()), id());
}

Range<v1::EmailMessage> Session::ListMessages(v1::ListMessagesRequest request) {
  auto core = core_;
  request.set_session(id());
  return Core::Paged<v1::EmailMessage, v1::ListMessagesResponse>(
      [core, request](const std::string& token) {
        v1::ListMessagesRequest req = request;
        req.set_page_token(token);
        return core->Unary(core->mailbox.get(), &MS::ListMessages, req, req.session());
      },
      &v1::ListMessagesResponse::mutable_messages);
}

absl::StatusOr<v1::EmailMessage> Session::GetMessage(absl::string_view message_id,
                                                     v1::MessageView view) {
  v1::GetMessageRequest req;
  req.set_id(std::string(message_id));
  req.set_view(view);
  auto resp = GetMessage(std::move(req));
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_message());
}

absl::StatusOr<v1::GetMessageResponse> Session::GetMessage(v1::GetMessageRequest request) {
  return core_->Unary(core_->mailbox.get(), &MS::GetMessage, WithSession(std::move(request), id()),
                      id());
}

Range<v1::StreamMessageResponse> Session::StreamMessage(v1::StreamMessageRequest request) {
  return core_->Stream(core_->mailbox.get(), &MS::StreamMessage,
                       WithSession(std::move(request), id()), id());
}

Range<v1::GetAttachmentResponse> Session::GetAttachment(v1::GetAttachmentRequest request) {
  return core_->Stream(core_->mailbox.get(), &MS::GetAttachment,
                       WithSession(std::move(request), id()), id());
}

Range<v1::EmailMessage> Session::SearchMessages(v1::SearchMessagesRequest request) {
  auto core = core_;
  request.set_session(id());
  return Core::Paged<v1::EmailMessage, v1::SearchMessagesResponse>(
      [core, request](const std::string& token) {
        v1::SearchMessagesRequest req = request;
        req.set_page_token(token);
        return core->Unary(core->mailbox.get(), &MS::SearchMessages, req, req.session());
      },
      &v1::SearchMessagesResponse::mutable_messages);
}

absl::StatusOr<v1::DeleteMessagesResponse> Session::DeleteMessages(
    v1::DeleteMessagesRequest request) {
  return core_->Unary(core_->mailbox.get(), &MS::DeleteMessages,
                      WithSession(std::move(request), id()), id());
}

absl::StatusOr<v1::ListFoldersResponse> Session::ListFolders(v1::ListFoldersRequest request) {
  return core_->Unary(core_->mailbox.get(), &MS::ListFolders, WithSession(std::move(request), id()),
                      id());
}

absl::StatusOr<v1::MailboxStatus> Session::SelectFolder(absl::string_view folder, bool read_only) {
  v1::SelectFolderRequest req;
  req.set_session(id());
  req.set_folder(std::string(folder));
  req.set_read_only(read_only);
  auto resp = core_->Unary(core_->mailbox.get(), &MS::SelectFolder, req, id());
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_status());
}

absl::StatusOr<v1::CreateFolderResponse> Session::CreateFolder(v1::CreateFolderRequest request) {
  return core_->Unary(core_->mailbox.get(), &MS::CreateFolder,
                      WithSession(std::move(request), id()), id());
}

absl::Status Session::DeleteFolder(absl::string_view folder) {
  v1::DeleteFolderRequest req;
  req.set_session(id());
  req.set_folder(std::string(folder));
  return core_->Unary(core_->mailbox.get(), &MS::DeleteFolder, req, id()).status();
}

absl::StatusOr<v1::RenameFolderResponse> Session::RenameFolder(absl::string_view folder,
                                                               absl::string_view new_name) {
  v1::RenameFolderRequest req;
  req.set_session(id());
  req.set_folder(std::string(folder));
  req.set_new_name(std::string(new_name));
  return core_->Unary(core_->mailbox.get(), &MS::RenameFolder, req, id());
}

absl::StatusOr<v1::CopyMessagesResponse> Session::CopyMessages(v1::CopyMessagesRequest request) {
  return core_->Unary(core_->mailbox.get(), &MS::CopyMessages,
                      WithSession(std::move(request), id()), id());
}

absl::StatusOr<v1::MoveMessagesResponse> Session::MoveMessages(v1::MoveMessagesRequest request) {
  return core_->Unary(core_->mailbox.get(), &MS::MoveMessages,
                      WithSession(std::move(request), id()), id());
}

absl::StatusOr<v1::UpdateFlagsResponse> Session::UpdateFlags(v1::UpdateFlagsRequest request) {
  return core_->Unary(core_->mailbox.get(), &MS::UpdateFlags, WithSession(std::move(request), id()),
                      id());
}

absl::StatusOr<v1::AppendMessageResponse> Session::AppendMessage(v1::AppendMessageRequest request) {
  return core_->Unary(core_->mailbox.get(), &MS::AppendMessage,
                      WithSession(std::move(request), id()), id());
}

absl::StatusOr<v1::ExpungeResponse> Session::Expunge(v1::ExpungeRequest request) {
  return core_->Unary(core_->mailbox.get(), &MS::Expunge, WithSession(std::move(request), id()),
                      id());
}

Range<v1::WatchMailboxResponse> Session::WatchMailbox(v1::WatchMailboxRequest request) {
  return core_->Stream(core_->mailbox.get(), &MS::WatchMailbox,
                       WithSession(std::move(request), id()), id());
}

absl::StatusOr<v1::RefreshResponse> Session::Refresh() {
  v1::RefreshRequest req;
  req.set_session(id());
  return core_->Unary(core_->mailbox.get(), &MS::Refresh, req, id());
}

absl::StatusOr<v1::SendMessageResponse> Session::Send(const v1::EmailMessage& message) {
  v1::SendMessageRequest req;
  *req.mutable_message() = message;
  return SendMessage(std::move(req));
}

absl::StatusOr<v1::SendMessageResponse> Session::SendMessage(v1::SendMessageRequest request) {
  return core_->Unary(core_->send.get(), &SendS::SendMessage, WithSession(std::move(request), id()),
                      id());
}

absl::StatusOr<v1::SendStatus> Session::GetSendStatus(absl::string_view send_id) {
  v1::GetSendStatusRequest req;
  req.set_session(id());
  req.set_send_id(std::string(send_id));
  auto resp = core_->Unary(core_->send.get(), &SendS::GetSendStatus, req, id());
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_send());
}

absl::StatusOr<v1::SendStatus> Session::CancelSend(absl::string_view send_id) {
  v1::CancelSendRequest req;
  req.set_session(id());
  req.set_send_id(std::string(send_id));
  auto resp = core_->Unary(core_->send.get(), &SendS::CancelSend, req, id());
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_send());
}

Range<v1::SendStatus> Session::ListOutbox(v1::ListOutboxRequest request) {
  request.set_session(id());
  return OutboxRange(core_, std::move(request));
}

Range<v1::SendStatus> Session::WatchSendStatus(v1::WatchSendStatusRequest request) {
  request.set_session(id());
  return WatchSendsRange(core_, std::move(request));
}

absl::StatusOr<v1::CheckAddressResponse> Session::CheckAddress(absl::string_view address,
                                                               bool allow_vrfy) {
  v1::CheckAddressRequest req;
  req.set_session(id());
  req.set_address(std::string(address));
  req.set_mode(v1::CHECK_MODE_SERVER);
  req.set_allow_vrfy(allow_vrfy);
  return core_->Unary(core_->send.get(), &SendS::CheckAddress, req, id());
}

}  // namespace mailpool
