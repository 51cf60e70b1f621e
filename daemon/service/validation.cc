#include "service/validation.h"

#include <optional>

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
// The refresh form's OAuth2 client: a configured provider, or the request's own.
absl::StatusOr<oauth2::Client> OAuth2ClientFromProto(const v1::OAuth2Refresh& r,
                                                     const OAuth2Setup& oauth2) {
  constexpr absl::string_view kField = "credentials.oauth2_refresh";
  if (!r.provider().empty()) {
    for (absl::string_view other : {r.token_endpoint(), r.client_id(), r.client_secret()}) {
      if (!other.empty()) {
        return Invalid(absl::StrCat(kField, ".provider"),
                       "a provider holds its endpoint and client: leave token_endpoint, "
                       "client_id and client_secret empty");
      }
    }
    MP_RETURN_IF_ERROR(CheckPrintable(absl::StrCat(kField, ".provider"), r.provider(), 64));
    for (const oauth2::Provider& p : oauth2.providers) {
      if (p.name != r.provider()) continue;
      oauth2::Client client = p.client;
      if (!r.scopes().empty()) {
        MP_RETURN_IF_ERROR(oauth2::ValidateScopes(absl::StrCat(kField, ".scopes"), r.scopes()));
        client.scopes = r.scopes();
      }
      return client;
    }
    return Invalid(absl::StrCat(kField, ".provider"),
                   absl::StrCat("no provider named \"", r.provider(),
                                "\" is configured (--oauth2_providers_file)"));
  }
  if (r.token_endpoint().empty()) {
    return Invalid(absl::StrCat(kField, ".token_endpoint"), "required without a provider");
  }
  oauth2::Client client;
  MP_RETURN_IF_ERROR(
      oauth2::ValidateTokenEndpoint(absl::StrCat(kField, ".token_endpoint"), r.token_endpoint()));
  MP_RETURN_IF_ERROR(oauth2::ValidateClientId(absl::StrCat(kField, ".client_id"), r.client_id()));
  if (!r.client_secret().empty()) {
    MP_RETURN_IF_ERROR(
        oauth2::ValidateSecretText(absl::StrCat(kField, ".client_secret"), r.client_secret()));
  }
  MP_RETURN_IF_ERROR(oauth2::ValidateScopes(absl::StrCat(kField, ".scopes"), r.scopes()));
  client.token_endpoint = r.token_endpoint();
  client.client_id = r.client_id();
  client.client_secret = Secret(r.client_secret());
  client.scopes = r.scopes();
  return client;
}

absl::Status CredentialsFromProto(const v1::Credentials& credentials, Protocol protocol,
                                  bool secret_required, wire::LoginOptions& login,
                                  const OAuth2Setup& oauth2) {
  MP_RETURN_IF_ERROR(CheckNoControls("credentials.user", credentials.user(), 512));
  wire::LoginOptions out;
  out.user = credentials.user();
  std::optional<oauth2::Client> oauth2_client;  // the refresh form's, once valid
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
    case v1::Credentials::kOauth2Refresh: {
      const v1::OAuth2Refresh& r = credentials.oauth2_refresh();
      MP_RETURN_IF_ERROR(oauth2::ValidateSecretText("credentials.oauth2_refresh.refresh_token",
                                                    r.refresh_token()));
      MP_ASSIGN_OR_RETURN(oauth2_client, OAuth2ClientFromProto(r, oauth2));
      if (!oauth2.make_source) {
        return absl::FailedPreconditionError("this daemon cannot refresh OAuth2 tokens");
      }
      break;
    }
    case v1::Credentials::SECRET_NOT_SET:
      if (secret_required) {
        return Invalid("credentials",
                       "a password, an OAuth2 token or an OAuth2 refresh token is required");
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
  bool token = credentials.secret_case() == v1::Credentials::kOauth2Token ||
               credentials.secret_case() == v1::Credentials::kOauth2Refresh;
  if (token && out.mechanism != wire::Mechanism::kAuto &&
      out.mechanism != wire::Mechanism::kXoauth2 &&
      out.mechanism != wire::Mechanism::kOauthbearer) {
    return Invalid("credentials.mechanism", "an OAuth2 token needs XOAUTH2 or OAUTHBEARER");
  }
  // Only once everything is valid: an error leaves `login` as it was (and makes no source).
  if (oauth2_client) {
    out.token_source = oauth2.make_source(*std::move(oauth2_client),
                                          Secret(credentials.oauth2_refresh().refresh_token()));
  }
  login.user = std::move(out.user);
  login.password = std::move(out.password);
  login.oauth2_token = std::move(out.oauth2_token);
  login.token_source = std::move(out.token_source);
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
                                       bool legacy_smtp, const OAuth2Setup& oauth2) {
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

  MP_RETURN_IF_ERROR(
      CredentialsFromProto(credentials, protocol, secret_required, link.login, oauth2));
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

const OAuth2Setup& OAuth2Setup::None() {
  static const OAuth2Setup* none = new OAuth2Setup;
  return *none;
}

absl::StatusOr<session::SessionSpec> SpecFromRequest(const v1::StartSessionRequest& request,
                                                     const OAuth2Setup& oauth2) {
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
      MP_ASSIGN_OR_RETURN(LinkSpec link, LinkFromProto(Protocol::kImap, o.server(), o.credentials(),
                                                       true, false, oauth2));
      MP_RETURN_IF_ERROR(CheckText("imap.initial_folder", o.initial_folder(), 1024));
      link.initial_folder = o.initial_folder();
      spec.links.push_back(std::move(link));
      break;
    }
    case v1::StartSessionRequest::kPop3: {
      const auto& o = request.pop3();
      spec.kind = session::Kind::kPop3;
      MP_ASSIGN_OR_RETURN(LinkSpec link, LinkFromProto(Protocol::kPop3, o.server(), o.credentials(),
                                                       true, false, oauth2));
      spec.links.push_back(std::move(link));
      break;
    }
    case v1::StartSessionRequest::kSmtp: {
      const auto& o = request.smtp();
      spec.kind = session::Kind::kSmtp;
      MP_ASSIGN_OR_RETURN(LinkSpec link, LinkFromProto(Protocol::kSmtp, o.server(), o.credentials(),
                                                       false, false, oauth2));
      MP_RETURN_IF_ERROR(CheckEhloName(o.ehlo_name()));
      if (!o.ehlo_name().empty()) link.login.ehlo_name = o.ehlo_name();
      spec.asynchronous = o.asynchronous();
      spec.links.push_back(std::move(link));
      break;
    }
    case v1::StartSessionRequest::kPop3Smtp: {
      const auto& o = request.pop3_smtp();
      spec.kind = session::Kind::kPop3Smtp;
      MP_ASSIGN_OR_RETURN(LinkSpec pop3, LinkFromProto(Protocol::kPop3, o.pop3(), o.credentials(),
                                                       true, false, oauth2));
      // The SMTP side's credentials are checked like the POP3 side's, without a second
      // token source.
      OAuth2Setup validate_only{oauth2.providers, nullptr};
      if (oauth2.make_source) {
        validate_only.make_source = [](oauth2::Client, Secret) { return nullptr; };
      }
      v1::ServerEndpoint smtp_server = o.smtp();
      if (smtp_server.host().empty()) smtp_server.set_host(o.pop3().host());
      MP_ASSIGN_OR_RETURN(LinkSpec smtp, LinkFromProto(Protocol::kSmtp, smtp_server,
                                                       SmtpSideOfPop3Smtp(o.credentials()), true,
                                                       true, validate_only));
      // One account, one refresh token: both links share the POP3 side's token source.
      smtp.login.token_source = pop3.login.token_source;
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
                                                  const session::LinkSpec& current,
                                                  const OAuth2Setup& oauth2) {
  bool combined = kind == session::Kind::kPop3Smtp;
  // As at the start: a secret is required except on a plain SMTP session.
  bool secret_required = kind != session::Kind::kSmtp;
  wire::LoginOptions login = current.login;
  MP_RETURN_IF_ERROR(CredentialsFromProto(combined && current.protocol == Protocol::kSmtp
                                              ? SmtpSideOfPop3Smtp(credentials)
                                              : credentials,
                                          current.protocol, secret_required, login, oauth2));
  if (login.user != current.login.user) {
    return Invalid("credentials.user",
                   "must be the session's user (a session is one account: start a new session "
                   "for another)");
  }
  return login;
}

}  // namespace mailpool::service
