#include "service/session_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/session_id.h"
#include "common/status.h"
#include "google/protobuf/util/time_util.h"
#include "service/call.h"
#include "service/errors.h"
#include "service/validation.h"

namespace mailpool::service {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

v1::Protocol ToProto(session::Protocol p) {
  switch (p) {
    case session::Protocol::kImap:
      return v1::PROTOCOL_IMAP;
    case session::Protocol::kPop3:
      return v1::PROTOCOL_POP3;
    case session::Protocol::kSmtp:
      return v1::PROTOCOL_SMTP;
  }
  return v1::PROTOCOL_UNSPECIFIED;
}

v1::Protocol ToProto(session::Kind k) {
  switch (k) {
    case session::Kind::kImap:
      return v1::PROTOCOL_IMAP;
    case session::Kind::kPop3:
      return v1::PROTOCOL_POP3;
    case session::Kind::kSmtp:
      return v1::PROTOCOL_SMTP;
    case session::Kind::kPop3Smtp:
      return v1::PROTOCOL_POP3_SMTP;
  }
  return v1::PROTOCOL_UNSPECIFIED;
}

v1::SessionState ToProto(session::State s) {
  switch (s) {
    case session::State::kConnecting:
      return v1::SESSION_STATE_CONNECTING;
    case session::State::kReady:
      return v1::SESSION_STATE_READY;
    case session::State::kBusy:
      return v1::SESSION_STATE_BUSY;
    case session::State::kBroken:
      return v1::SESSION_STATE_BROKEN;
    case session::State::kClosed:
      return v1::SESSION_STATE_CLOSED;
  }
  return v1::SESSION_STATE_UNSPECIFIED;
}

v1::Security ToProto(wire::Security s) {
  switch (s) {
    case wire::Security::kPlain:
      return v1::SECURITY_PLAIN;
    case wire::Security::kStartTls:
      return v1::SECURITY_STARTTLS;
    case wire::Security::kImplicitTls:
      return v1::SECURITY_IMPLICIT_TLS;
  }
  return v1::SECURITY_UNSPECIFIED;
}

v1::AuthMechanism ToProto(wire::Mechanism m) {
  switch (m) {
    case wire::Mechanism::kAuto:
      return v1::AUTH_MECHANISM_UNSPECIFIED;
    case wire::Mechanism::kCommand:
      return v1::AUTH_MECHANISM_COMMAND;
    case wire::Mechanism::kPlain:
      return v1::AUTH_MECHANISM_PLAIN;
    case wire::Mechanism::kLogin:
      return v1::AUTH_MECHANISM_LOGIN;
    case wire::Mechanism::kCramMd5:
      return v1::AUTH_MECHANISM_CRAM_MD5;
    case wire::Mechanism::kApop:
      return v1::AUTH_MECHANISM_APOP;
    case wire::Mechanism::kXoauth2:
      return v1::AUTH_MECHANISM_XOAUTH2;
    case wire::Mechanism::kOauthbearer:
      return v1::AUTH_MECHANISM_OAUTHBEARER;
    case wire::Mechanism::kNone:
      return v1::AUTH_MECHANISM_NONE;
    case wire::Mechanism::kScramSha1:
      return v1::AUTH_MECHANISM_SCRAM_SHA_1;
    case wire::Mechanism::kScramSha256:
      return v1::AUTH_MECHANISM_SCRAM_SHA_256;
  }
  return v1::AUTH_MECHANISM_UNSPECIFIED;
}

}  // namespace

void ToProto(const session::SessionSnapshot& s, v1::Session* out) {
  out->set_id(s.id);
  out->set_name(s.name);
  out->set_protocol(ToProto(s.kind));
  out->set_state(ToProto(s.state));
  out->set_user(s.user);
  for (const session::LinkSnapshot& l : s.links) {
    v1::Connection* c = out->add_connections();
    c->set_protocol(ToProto(l.protocol));
    c->set_host(l.host);
    c->set_port(l.port);
    c->set_security(ToProto(l.security));
    c->set_tls_version(l.tls.version);
    c->set_tls_cipher(l.tls.cipher);
    c->set_tls_verified(l.tls.verified);
    c->set_greeting(SanitizeServerText(l.server.greeting));
    for (const std::string& cap : l.server.capabilities) {
      c->add_capabilities(SanitizeServerText(cap, 256));
    }
    c->set_mechanism(ToProto(l.server.mechanism));
  }
  *out->mutable_timeout() = ToProtoDuration(s.timeout);
  out->set_timeout_overridden(s.timeout_overridden);
  *out->mutable_create_time() = ToProtoTime(s.create_time);
  *out->mutable_last_use_time() = ToProtoTime(s.last_use_time);
  out->set_current_folder(s.current_folder);
  out->set_asynchronous(s.asynchronous);
  out->set_reconnect_count(s.reconnect_count);
  out->set_last_error(s.last_error);
  out->set_owner(s.owner);
}

void Finish(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
            const absl::Status& status) {
  reactor->Finish(ToGrpcStatus(status, context));
}

absl::StatusOr<std::string> SessionRef(const grpc::CallbackServerContext& context,
                                       const std::string& body_value) {
  std::string header;
  auto it = context.client_metadata().find(kSessionHeader);
  if (it != context.client_metadata().end()) header.assign(it->second.data(), it->second.size());
  if (!body_value.empty() && !header.empty() && body_value != header) {
    return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                       absl::StrCat("session: the body and the ", kSessionHeader,
                                    " header name different sessions"));
  }
  std::string ref = body_value.empty() ? header : body_value;
  MP_RETURN_IF_ERROR(ValidateSessionRef("session", ref));
  return ref;
}

absl::StatusOr<Target> TargetOf(const grpc::CallbackServerContext& context,
                                const callers::Callers& callers, const std::string& body_value) {
  MP_ASSIGN_OR_RETURN(callers::Caller caller, CallerOf(context, callers));
  MP_ASSIGN_OR_RETURN(std::string ref, SessionRef(context, body_value));
  return Target{std::move(caller), std::move(ref)};
}

grpc::ServerUnaryReactor* SessionServiceImpl::StartSession(grpc::CallbackServerContext* context,
                                                           const v1::StartSessionRequest* request,
                                                           v1::StartSessionResponse* response) {
  CallReactor* reactor = NewCallReactor(context, loop_);
  absl::StatusOr<callers::Caller> caller = CallerOf(*context, callers_);
  absl::StatusOr<session::SessionSpec> spec =
      caller.ok() ? SpecFromRequest(*request, oauth2_) : caller.status();
  if (spec.ok()) {
    absl::Status rate = callers_.TakeStart(*caller);
    if (!rate.ok()) spec = rate;
  }
  if (!spec.ok()) {
    if (caller.ok()) {
      Log(LogLevel::kInfo, "session start refused",
          {{"caller", caller->name}, {"error", spec.status().ToString()}});
    }
    Finish(context, reactor, spec.status());
    return reactor;
  }
  loop_.Post([this, context, reactor, response, spec = std::move(*spec), owner = caller->name,
              call = reactor->token()]() mutable {
    std::string protocol = v1::Protocol_Name(ToProto(spec.kind));
    std::string host = spec.links.front().endpoint.host;
    pool_.Start(
        owner, std::move(spec),
        [context, reactor, response, protocol, host,
         owner](absl::StatusOr<session::SessionSnapshot> result) {
          if (!result.ok()) {
            Log(LogLevel::kInfo, "session start failed",
                {{"caller", owner},
                 {"protocol", protocol},
                 {"host", host},
                 {"error", result.status().ToString()}});
            return Finish(context, reactor, result.status());
          }
          Log(LogLevel::kInfo, "session started",
              {{"session", result->id}, {"caller", owner}, {"protocol", protocol}, {"host", host}});
          ToProto(*result, response->mutable_session());
          Finish(context, reactor, absl::OkStatus());
        },
        std::move(call));
  });
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::CloseSession(grpc::CallbackServerContext* context,
                                                           const v1::CloseSessionRequest* request,
                                                           v1::CloseSessionResponse* response) {
  // The caller's deadline bounds the LOGOUT/QUIT: past it the connections are dropped.
  CallReactor* reactor = NewCallReactor(context, loop_);
  absl::StatusOr<Target> target = TargetOf(*context, callers_, request->session());
  if (!target.ok()) {
    Finish(context, reactor, target.status());
    return reactor;
  }
  loop_.Post(
      [this, context, reactor, response, target = std::move(*target), call = reactor->token()] {
        // An admin closes another caller's session by its ID, as that caller would.
        std::string owner = target.owner();
        if (target.caller.admin && !pool_.Get(owner, target.ref).ok()) {
          if (absl::optional<std::string> other = pool_.OwnerOf(target.ref)) owner = *other;
        }
        // The log names the session by ID even when the caller used its name.
        absl::StatusOr<session::SessionSnapshot> found = pool_.Get(owner, target.ref);
        std::string id = found.ok() ? found->id : target.ref;
        pool_.Close(
            owner, target.ref,
            [context, reactor, response, id, found = found.ok(),
             caller = target.caller.name](absl::StatusOr<std::string> reply) {
              if (reply.ok()) {
                response->set_server_reply(SanitizeServerText(*reply));
                Log(LogLevel::kInfo, "session closed", {{"session", id}, {"caller", caller}});
              } else if (found) {
                Log(LogLevel::kInfo, "session closed without logout",
                    {{"session", id}, {"error", reply.status().ToString()}});
              }
              Finish(context, reactor, reply.status());
            },
            call);
      });
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::GetSession(grpc::CallbackServerContext* context,
                                                         const v1::GetSessionRequest* request,
                                                         v1::GetSessionResponse* response) {
  auto* reactor = context->DefaultReactor();
  absl::StatusOr<Target> target = TargetOf(*context, callers_, request->session());
  if (!target.ok()) {
    Finish(context, reactor, target.status());
    return reactor;
  }
  loop_.Post([this, context, reactor, response, target = std::move(*target)] {
    absl::StatusOr<session::SessionSnapshot> s = pool_.Get(target.owner(), target.ref);
    if (s.ok()) ToProto(*s, response->mutable_session());
    Finish(context, reactor, s.status());
  });
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::ListSessions(grpc::CallbackServerContext* context,
                                                           const v1::ListSessionsRequest* request,
                                                           v1::ListSessionsResponse* response) {
  auto* reactor = context->DefaultReactor();
  absl::StatusOr<callers::Caller> caller = CallerOf(*context, callers_);
  if (!caller.ok()) {
    Finish(context, reactor, caller.status());
    return reactor;
  }
  if (request->all_callers() && !caller->admin) {
    Finish(context, reactor,
           ReasonError(absl::StatusCode::kPermissionDenied, "NOT_ADMIN",
                       "all_callers: only an admin caller may list every caller's sessions"));
    return reactor;
  }
  if (request->page_size() < 0) {
    Finish(context, reactor,
           ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                       "page_size: must not be negative"));
    return reactor;
  }
  // The page token is the ID of the last session of the previous page.
  if (!request->page_token().empty() && !LooksLikeSessionId(request->page_token())) {
    Finish(context, reactor,
           ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                       "page_token: not a token from a previous response"));
    return reactor;
  }
  loop_.Post([this, context, reactor, request, response, owner = caller->name] {
    // AIP-158: above the maximum (1000) is lowered to it, not refused.
    size_t page_size = request->page_size() == 0 ? 100 : std::min(request->page_size(), 1000);
    std::vector<session::SessionSnapshot> all =
        request->all_callers() ? pool_.ListAll() : pool_.List(owner);
    size_t start = 0;
    if (!request->page_token().empty()) {
      start = all.size();
      for (size_t i = 0; i < all.size(); ++i) {
        if (all[i].id == request->page_token()) {
          start = i + 1;
          break;
        }
      }
    }
    for (size_t i = start; i < all.size() && i < start + page_size; ++i) {
      ToProto(all[i], response->add_sessions());
    }
    if (start + page_size < all.size()) {
      response->set_next_page_token(all[start + page_size - 1].id);
    }
    Finish(context, reactor, absl::OkStatus());
  });
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::UpdateSession(grpc::CallbackServerContext* context,
                                                            const v1::UpdateSessionRequest* request,
                                                            v1::UpdateSessionResponse* response) {
  // New credentials may log in again within the call: its deadline bounds that login.
  CallReactor* reactor = NewCallReactor(context, loop_);
  absl::StatusOr<Target> target = TargetOf(*context, callers_, request->session());
  absl::optional<absl::Duration> timeout;
  bool change_timeout = request->has_timeout();
  if (target.ok() && change_timeout) {
    absl::StatusOr<absl::Duration> d =
        DurationFromProto("timeout", request->timeout(), absl::ZeroDuration(), kMaxTimeout);
    if (!d.ok()) target = d.status();
    if (d.ok() && *d > absl::ZeroDuration()) timeout = *d;
  }
  if (!target.ok()) {
    Finish(context, reactor, target.status());
    return reactor;
  }
  std::string owner = target->owner();
  std::string ref = std::move(target->ref);
  if (!request->has_credentials()) {
    loop_.Post([this, context, reactor, response, owner, ref, timeout, change_timeout] {
      absl::StatusOr<session::SessionSnapshot> s =
          change_timeout ? pool_.UpdateTimeout(owner, ref, timeout) : pool_.Get(owner, ref);
      if (s.ok()) ToProto(*s, response->mutable_session());
      Finish(context, reactor, s.status());
    });
    return reactor;
  }
  // `request` lives until the reactor finishes; the credentials are read on the loop, where
  // the session's links say what each must be checked against.
  loop_.Post([this, context, reactor, request, response, owner, ref, timeout, change_timeout,
              call = reactor->token()] {
    absl::StatusOr<session::Session*> found = pool_.Use(owner, ref);
    if (!found.ok()) return Finish(context, reactor, found.status());
    session::Session* session = *found;
    // Everything is validated before anything changes.
    std::vector<wire::LoginOptions> logins;
    for (const auto& link : session->links()) {
      absl::StatusOr<wire::LoginOptions> login =
          LoginForUpdate(request->credentials(), session->kind(), link->spec(), oauth2_);
      if (!login.ok()) return Finish(context, reactor, login.status());
      logins.push_back(*std::move(login));
    }
    // One account, one refresh token: the links of a pop3_smtp session share a source.
    for (wire::LoginOptions& login : logins) login.token_source = logins.front().token_source;
    if (change_timeout) session->SetTimeout(timeout);
    std::string id = session->id();
    Log(LogLevel::kInfo, "session credentials updated", {{"session", id}});
    session->UpdateCredentials(
        std::move(logins),
        [this, context, reactor, response, id, owner](absl::Status status) {
          if (!status.ok()) {
            Log(LogLevel::kInfo, "login with updated credentials failed",
                {{"session", id}, {"error", status.ToString()}});
            return Finish(context, reactor, status);
          }
          absl::StatusOr<session::SessionSnapshot> s = pool_.Get(owner, id);
          if (s.ok()) ToProto(*s, response->mutable_session());
          Finish(context, reactor, s.status());
        },
        call);
  });
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::GetDefaultTimeout(
    grpc::CallbackServerContext* context, const v1::GetDefaultTimeoutRequest* request,
    v1::GetDefaultTimeoutResponse* response) {
  auto* reactor = context->DefaultReactor();
  absl::StatusOr<callers::Caller> caller = CallerOf(*context, callers_);
  if (!caller.ok()) {
    Finish(context, reactor, caller.status());
    return reactor;
  }
  loop_.Post([this, context, reactor, response] {
    *response->mutable_timeout() = ToProtoDuration(pool_.default_timeout());
    Finish(context, reactor, absl::OkStatus());
  });
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::SetDefaultTimeout(
    grpc::CallbackServerContext* context, const v1::SetDefaultTimeoutRequest* request,
    v1::SetDefaultTimeoutResponse* response) {
  auto* reactor = context->DefaultReactor();
  // The default is daemon-wide: an admin's to set, or anyone's where all callers are one.
  absl::StatusOr<callers::Caller> caller = CallerOf(*context, callers_);
  if (caller.ok() && !caller->admin && caller->name != callers::kLocal) {
    caller = ReasonError(absl::StatusCode::kPermissionDenied, "NOT_ADMIN",
                         "only an admin caller may change the daemon-wide default timeout");
  }
  if (!caller.ok()) {
    Finish(context, reactor, caller.status());
    return reactor;
  }
  absl::StatusOr<absl::Duration> d =
      request->has_timeout()
          ? DurationFromProto("timeout", request->timeout(), absl::Seconds(1), kMaxTimeout)
          : absl::StatusOr<absl::Duration>(ReasonError(absl::StatusCode::kInvalidArgument,
                                                       "INVALID_FIELD", "timeout: required"));
  if (!d.ok()) {
    Finish(context, reactor, d.status());
    return reactor;
  }
  loop_.Post([this, context, reactor, response, timeout = *d, caller = caller->name] {
    pool_.set_default_timeout(timeout);
    *response->mutable_timeout() = ToProtoDuration(timeout);
    Log(LogLevel::kInfo, "default timeout set",
        {{"timeout", absl::FormatDuration(timeout)}, {"caller", caller}});
    Finish(context, reactor, absl::OkStatus());
  });
  return reactor;
}

}  // namespace mailpool::service
