#include "service/validation.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "wire/sasl.h"

namespace mailpool::service {
namespace {

using session::LinkSpec;
using session::Protocol;

// No CR, LF, NUL (the classic injection) and a length cap.
absl::Status CheckText(absl::string_view field, absl::string_view value, size_t max) {
  if (value.size() > max) return Invalid(field, absl::StrCat("longer than ", max, " bytes"));
  if (!wire::IsCommandSafe(value)) return Invalid(field, "must not contain CR, LF or NUL");
  return absl::OkStatus();
}

// No control bytes at all (user names: ^A would split XOAUTH2/OAUTHBEARER fields).
absl::Status CheckNoControls(absl::string_view field, absl::string_view value, size_t max) {
  MP_RETURN_IF_ERROR(CheckText(field, value, max));
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return Invalid(field, "must not contain control bytes");
    }
  }
  return absl::OkStatus();
}

// Printable ASCII without spaces (host names, tokens).
absl::Status CheckPrintable(absl::string_view field, absl::string_view value, size_t max) {
  if (value.size() > max) return Invalid(field, absl::StrCat("longer than ", max, " bytes"));
  for (char c : value) {
    if (c <= 0x20 || c >= 0x7f) {
      return Invalid(field, "must be printable ASCII without spaces or control bytes");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckEhloName(absl::string_view value) {
  if (value.empty()) return absl::OkStatus();
  MP_RETURN_IF_ERROR(CheckPrintable("ehlo_name", value, 255));
  if (value.front() == '[' && value.back() == ']') return absl::OkStatus();
  for (char c : value) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') {
      return Invalid("ehlo_name", "must be a domain name or an address literal in brackets");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<wire::Security> SecurityFromProto(v1::Security security) {
  switch (security) {
    case v1::SECURITY_UNSPECIFIED:
    case v1::SECURITY_STARTTLS:
      return wire::Security::kStartTls;
    case v1::SECURITY_PLAIN:
      return wire::Security::kPlain;
    case v1::SECURITY_IMPLICIT_TLS:
      return wire::Security::kImplicitTls;
    default:
      return Invalid("server.security", absl::StrCat("unknown value ", security));
  }
}

absl::StatusOr<wire::Mechanism> MechanismFromProto(v1::AuthMechanism m, Protocol protocol) {
  wire::Mechanism out;
  switch (m) {
    case v1::AUTH_MECHANISM_UNSPECIFIED:
      return wire::Mechanism::kAuto;
    case v1::AUTH_MECHANISM_COMMAND:
      out = wire::Mechanism::kCommand;
      break;
    case v1::AUTH_MECHANISM_PLAIN:
      out = wire::Mechanism::kPlain;
      break;
    case v1::AUTH_MECHANISM_LOGIN:
      out = wire::Mechanism::kLogin;
      break;
    case v1::AUTH_MECHANISM_CRAM_MD5:
      out = wire::Mechanism::kCramMd5;
      break;
    case v1::AUTH_MECHANISM_APOP:
      out = wire::Mechanism::kApop;
      break;
    case v1::AUTH_MECHANISM_XOAUTH2:
      out = wire::Mechanism::kXoauth2;
      break;
    case v1::AUTH_MECHANISM_OAUTHBEARER:
      out = wire::Mechanism::kOauthbearer;
      break;
    case v1::AUTH_MECHANISM_NONE:
      out = wire::Mechanism::kNone;
      break;
    case v1::AUTH_MECHANISM_SCRAM_SHA_1:
      out = wire::Mechanism::kScramSha1;
      break;
    case v1::AUTH_MECHANISM_SCRAM_SHA_256:
      out = wire::Mechanism::kScramSha256;
      break;
    default:
      return Invalid("credentials.mechanism", absl::StrCat("unknown value ", m));
  }
  bool ok = true;
  switch (protocol) {
    case Protocol::kImap:
      ok = out != wire::Mechanism::kApop && out != wire::Mechanism::kNone;
      break;
    case Protocol::kPop3:
      ok = out != wire::Mechanism::kNone;
      break;
    case Protocol::kSmtp:
      ok = out != wire::Mechanism::kCommand && out != wire::Mechanism::kApop;
      break;
  }
  if (!ok) {
    return Invalid("credentials.mechanism",
                   absl::StrCat(wire::MechanismName(out), " is not available for ",
                                session::ProtocolName(protocol)));
  }
  return out;
}

uint16_t DefaultPort(Protocol protocol, wire::Security security, bool legacy_smtp) {
  bool tls = security == wire::Security::kImplicitTls;
  switch (protocol) {
    case Protocol::kImap:
      return tls ? 993 : 143;
    case Protocol::kPop3:
      return tls ? 995 : 110;
    case Protocol::kSmtp:
      return tls ? 465 : (legacy_smtp ? 25 : 587);
  }
  return 0;
}

// The credential fields of `login` (user, secret, mechanism, allow_insecure_auth) from
// `credentials`, for a link of `protocol`; the other fields are left alone. The one parser
// of Credentials: StartSession and UpdateSession both go through it.
absl::Status CredentialsFromProto(const v1::Credentials& credentials, Protocol protocol,
                                  bool secret_required, wire::LoginOptions& login) {
  MP_RETURN_IF_ERROR(CheckNoControls("credentials.user", credentials.user(), 512));
  wire::LoginOptions out;
  out.user = credentials.user();
  switch (credentials.secret_case()) {
    case v1::Credentials::kPassword:
      MP_RETURN_IF_ERROR(CheckText("credentials.password", credentials.password(), 1024));
      if (credentials.password().empty()) return Invalid("credentials.password", "empty");
      out.password = Secret(credentials.password());
      break;
    case v1::Credentials::kOauth2Token:
      MP_RETURN_IF_ERROR(
          CheckPrintable("credentials.oauth2_token", credentials.oauth2_token(), 8192));
      if (credentials.oauth2_token().empty()) return Invalid("credentials.oauth2_token", "empty");
      out.oauth2_token = Secret(credentials.oauth2_token());
      break;
    case v1::Credentials::SECRET_NOT_SET:
      if (secret_required) {
        return Invalid("credentials", "a password or an OAuth2 token is required");
      }
      break;
  }
  bool has_secret = credentials.secret_case() != v1::Credentials::SECRET_NOT_SET;
  if (has_secret && credentials.user().empty()) return Invalid("credentials.user", "required");
  MP_ASSIGN_OR_RETURN(out.mechanism, MechanismFromProto(credentials.mechanism(), protocol));
  if (!has_secret && out.mechanism != wire::Mechanism::kAuto &&
      out.mechanism != wire::Mechanism::kNone) {
    return Invalid("credentials.mechanism", "needs a password or token");
  }
  if (has_secret && out.mechanism == wire::Mechanism::kNone) {
    return Invalid("credentials.mechanism", "NONE cannot be used with a secret");
  }
  // Only once everything is valid: an error leaves `login` as it was.
  login.user = std::move(out.user);
  login.password = std::move(out.password);
  login.oauth2_token = std::move(out.oauth2_token);
  login.mechanism = out.mechanism;
  login.allow_insecure_auth = credentials.allow_insecure_auth();
  return absl::OkStatus();
}

// The combined POP3 + SMTP session's credentials as its SMTP link uses them: POP3-only
// mechanisms (USER/PASS, APOP) leave SMTP on automatic choice.
v1::Credentials SmtpSideOfPop3Smtp(const v1::Credentials& credentials) {
  v1::Credentials smtp = credentials;
  if (smtp.mechanism() == v1::AUTH_MECHANISM_COMMAND ||
      smtp.mechanism() == v1::AUTH_MECHANISM_APOP) {
    smtp.set_mechanism(v1::AUTH_MECHANISM_UNSPECIFIED);
  }
  return smtp;
}

absl::StatusOr<LinkSpec> LinkFromProto(Protocol protocol, const v1::ServerEndpoint& server,
                                       const v1::Credentials& credentials, bool secret_required,
                                       bool legacy_smtp) {
  LinkSpec link;
  link.protocol = protocol;
  if (server.host().empty()) return Invalid("server.host", "required");
  MP_RETURN_IF_ERROR(CheckPrintable("server.host", server.host(), 253));
  if (server.port() > 65535) return Invalid("server.port", "must be at most 65535");
  MP_ASSIGN_OR_RETURN(link.login.security, SecurityFromProto(server.security()));
  link.endpoint.host = server.host();
  link.endpoint.protocol = absl::AsciiStrToLower(session::ProtocolName(protocol));
  link.endpoint.port = server.port() != 0 ? static_cast<uint16_t>(server.port())
                                          : DefaultPort(protocol, link.login.security, legacy_smtp);
  if (server.has_connect_timeout()) {
    MP_ASSIGN_OR_RETURN(absl::Duration d,
                        DurationFromProto("server.connect_timeout", server.connect_timeout(),
                                          absl::ZeroDuration(), absl::Minutes(10)));
    if (d > absl::ZeroDuration()) link.endpoint.connect_timeout = d;
  }
  if (server.tls().ca_pem().size() > 256 * 1024) {
    return Invalid("server.tls.ca_pem", "longer than 262144 bytes");
  }
  MP_RETURN_IF_ERROR(CheckPrintable("server.tls.server_name", server.tls().server_name(), 253));
  link.tls.ca_pem = server.tls().ca_pem();
  link.tls.server_name = server.tls().server_name();
  link.tls.dangerously_skip_verification = server.tls().dangerously_skip_verification();

  MP_RETURN_IF_ERROR(CredentialsFromProto(credentials, protocol, secret_required, link.login));
  link.login.host = link.tls.server_name.empty() ? link.endpoint.host : link.tls.server_name;
  link.login.port = link.endpoint.port;
  return link;
}

}  // namespace

absl::StatusOr<absl::Duration> DurationFromProto(absl::string_view field,
                                                 const google::protobuf::Duration& d,
                                                 absl::Duration min, absl::Duration max) {
  if (d.nanos() < 0 || d.nanos() >= 1000000000 || d.seconds() < 0) {
    return Invalid(field, "must be a non-negative duration");
  }
  absl::Duration out = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (out < min || out > max) {
    return Invalid(field, absl::StrCat("must be between ", absl::FormatDuration(min), " and ",
                                       absl::FormatDuration(max)));
  }
  return out;
}

absl::Status ValidateSessionRef(absl::string_view field, absl::string_view value) {
  if (value.empty()) return Invalid(field, "required (a session ID or name)");
  return CheckPrintable(field, value, 128);
}

absl::StatusOr<session::SessionSpec> SpecFromRequest(const v1::StartSessionRequest& request) {
  session::SessionSpec spec;
  if (!request.name().empty()) {
    MP_RETURN_IF_ERROR(CheckPrintable("name", request.name(), 128));
    if (absl::StartsWith(request.name(), "ms")) {
      return Invalid("name", "must not start with \"ms\" (reserved for session IDs)");
    }
    spec.name = request.name();
  }
  if (request.has_timeout()) {
    MP_ASSIGN_OR_RETURN(absl::Duration d, DurationFromProto("timeout", request.timeout(),
                                                            absl::ZeroDuration(), kMaxTimeout));
    if (d > absl::ZeroDuration()) spec.timeout = d;
  }
  switch (request.protocol_case()) {
    case v1::StartSessionRequest::kImap: {
      const auto& o = request.imap();
      spec.kind = session::Kind::kImap;
      MP_ASSIGN_OR_RETURN(LinkSpec link,
                          LinkFromProto(Protocol::kImap, o.server(), o.credentials(), true, false));
      MP_RETURN_IF_ERROR(CheckText("imap.initial_folder", o.initial_folder(), 1024));
      link.initial_folder = o.initial_folder();
      spec.links.push_back(std::move(link));
      break;
    }
    case v1::StartSessionRequest::kPop3: {
      const auto& o = request.pop3();
      spec.kind = session::Kind::kPop3;
      MP_ASSIGN_OR_RETURN(LinkSpec link,
                          LinkFromProto(Protocol::kPop3, o.server(), o.credentials(), true, false));
      spec.links.push_back(std::move(link));
      break;
    }
    case v1::StartSessionRequest::kSmtp: {
      const auto& o = request.smtp();
      spec.kind = session::Kind::kSmtp;
      MP_ASSIGN_OR_RETURN(
          LinkSpec link, LinkFromProto(Protocol::kSmtp, o.server(), o.credentials(), false, false));
      MP_RETURN_IF_ERROR(CheckEhloName(o.ehlo_name()));
      if (!o.ehlo_name().empty()) link.login.ehlo_name = o.ehlo_name();
      spec.asynchronous = o.asynchronous();
      spec.links.push_back(std::move(link));
      break;
    }
    case v1::StartSessionRequest::kPop3Smtp: {
      const auto& o = request.pop3_smtp();
      spec.kind = session::Kind::kPop3Smtp;
      MP_ASSIGN_OR_RETURN(LinkSpec pop3,
                          LinkFromProto(Protocol::kPop3, o.pop3(), o.credentials(), true, false));
      v1::ServerEndpoint smtp_server = o.smtp();
      if (smtp_server.host().empty()) smtp_server.set_host(o.pop3().host());
      MP_ASSIGN_OR_RETURN(LinkSpec smtp,
                          LinkFromProto(Protocol::kSmtp, smtp_server,
                                        SmtpSideOfPop3Smtp(o.credentials()), true, true));
      MP_RETURN_IF_ERROR(CheckEhloName(o.ehlo_name()));
      if (!o.ehlo_name().empty()) smtp.login.ehlo_name = o.ehlo_name();
      spec.asynchronous = o.asynchronous();
      spec.links.push_back(std::move(pop3));
      spec.links.push_back(std::move(smtp));
      break;
    }
    case v1::StartSessionRequest::PROTOCOL_NOT_SET:
      return Invalid("protocol", "set one of imap, pop3, smtp, pop3_smtp");
  }
  return spec;
}

absl::StatusOr<wire::LoginOptions> LoginForUpdate(const v1::Credentials& credentials,
                                                  session::Kind kind,
                                                  const session::LinkSpec& current) {
  bool combined = kind == session::Kind::kPop3Smtp;
  // As at the start: a secret is required except on a plain SMTP session.
  bool secret_required = kind != session::Kind::kSmtp;
  wire::LoginOptions login = current.login;
  MP_RETURN_IF_ERROR(CredentialsFromProto(combined && current.protocol == Protocol::kSmtp
                                              ? SmtpSideOfPop3Smtp(credentials)
                                              : credentials,
                                          current.protocol, secret_required, login));
  if (login.user != current.login.user) {
    return Invalid("credentials.user",
                   "must be the session's user (a session is one account: start a new session "
                   "for another)");
  }
  return login;
}

}  // namespace mailpool::service
