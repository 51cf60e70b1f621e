#include "wire/sasl.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace mailpool::wire {
namespace {

bool Has(const std::vector<Mechanism>& v, Mechanism m) {
  return std::find(v.begin(), v.end(), m) != v.end();
}

bool IsTokenMechanism(Mechanism m) {
  return m == Mechanism::kXoauth2 || m == Mechanism::kOauthbearer;
}

std::string HexLower(const unsigned char* data, size_t size) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(data), size));
}

}  // namespace

std::string Base64Encode(absl::string_view data) { return absl::Base64Escape(data); }

absl::StatusOr<std::string> Base64Decode(absl::string_view data) {
  for (char c : data) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') {
      return absl::InvalidArgumentError("malformed base64");
    }
  }
  std::string out;
  if (!absl::Base64Unescape(data, &out)) return absl::InvalidArgumentError("malformed base64");
  return out;
}

std::string PlainInitialResponse(absl::string_view user, const Secret& password) {
  std::string raw =
      absl::StrCat(absl::string_view("\0", 1), user, absl::string_view("\0", 1), password.Reveal());
  std::string out = Base64Encode(raw);
  WipeString(raw);
  return out;
}

std::string Xoauth2InitialResponse(absl::string_view user, const Secret& token) {
  std::string raw = absl::StrCat("user=", user, "\x01", "auth=Bearer ", token.Reveal(), "\x01\x01");
  std::string out = Base64Encode(raw);
  WipeString(raw);
  return out;
}

std::string OauthbearerInitialResponse(absl::string_view user, absl::string_view host,
                                       uint16_t port, const Secret& token) {
  // saslname escapes ',' as =2C and '=' as =3D (RFC 5801 section 4).
  std::string saslname;
  for (char c : user) {
    if (c == ',') {
      saslname += "=2C";
    } else if (c == '=') {
      saslname += "=3D";
    } else {
      saslname += c;
    }
  }
  std::string raw = absl::StrCat("n,a=", saslname, ",\x01");
  if (!host.empty()) absl::StrAppend(&raw, "host=", host, "\x01");
  if (port != 0) absl::StrAppend(&raw, "port=", port, "\x01");
  absl::StrAppend(&raw, "auth=Bearer ", token.Reveal(), "\x01\x01");
  std::string out = Base64Encode(raw);
  WipeString(raw);
  return out;
}

absl::StatusOr<std::string> CramMd5Response(absl::string_view user, const Secret& password,
                                            absl::string_view challenge_base64) {
  MP_ASSIGN_OR_RETURN(std::string challenge, Base64Decode(challenge_base64));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  absl::string_view key = password.Reveal();
  if (HMAC(EVP_md5(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(challenge.data()), challenge.size(), mac,
           &mac_len) == nullptr) {
    return absl::InternalError("HMAC-MD5 unavailable");
  }
  std::string raw = absl::StrCat(user, " ", HexLower(mac, mac_len));
  return Base64Encode(raw);
}

std::string ApopDigest(absl::string_view timestamp, const Secret& password) {
  std::string input = absl::StrCat(timestamp, password.Reveal());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_md5(), nullptr);
  WipeString(input);
  return HexLower(digest, len);
}

Mechanism MechanismFromSaslName(absl::string_view name) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (upper == "PLAIN") return Mechanism::kPlain;
  if (upper == "LOGIN") return Mechanism::kLogin;
  if (upper == "CRAM-MD5") return Mechanism::kCramMd5;
  if (upper == "XOAUTH2") return Mechanism::kXoauth2;
  if (upper == "OAUTHBEARER") return Mechanism::kOauthbearer;
  return Mechanism::kAuto;
}

absl::StatusOr<Mechanism> ChooseMechanism(const LoginOptions& options,
                                          const std::vector<Mechanism>& offered) {
  bool has_token = !options.oauth2_token.empty();
  bool has_password = !options.password.empty();
  if (!has_token && !has_password) {
    if (options.mechanism == Mechanism::kAuto || options.mechanism == Mechanism::kNone) {
      return Mechanism::kNone;
    }
    return ReasonError(
        absl::StatusCode::kInvalidArgument, "MECHANISM_MISMATCH",
        absl::StrCat("mechanism ", MechanismName(options.mechanism), " needs a password or token"));
  }
  if (options.mechanism != Mechanism::kAuto) {
    Mechanism m = options.mechanism;
    if (m == Mechanism::kNone) {
      return ReasonError(absl::StatusCode::kInvalidArgument, "MECHANISM_MISMATCH",
                         "mechanism NONE cannot be used with a secret");
    }
    if (IsTokenMechanism(m) != has_token) {
      return ReasonError(absl::StatusCode::kInvalidArgument, "MECHANISM_MISMATCH",
                         absl::StrCat("mechanism ", MechanismName(m),
                                      has_token ? " needs a password, not a token"
                                                : " needs an OAuth2 token, not a password"));
    }
    if (!Has(offered, m)) {
      return ReasonError(absl::StatusCode::kFailedPrecondition, "MECHANISM_NOT_OFFERED",
                         absl::StrCat("the server does not offer ", MechanismName(m)));
    }
    return m;
  }
  const std::vector<Mechanism> token_order = {Mechanism::kOauthbearer, Mechanism::kXoauth2};
  const std::vector<Mechanism> password_order = {Mechanism::kCramMd5, Mechanism::kPlain,
                                                 Mechanism::kLogin, Mechanism::kCommand};
  for (Mechanism m : has_token ? token_order : password_order) {
    if (Has(offered, m)) return m;
  }
  return ReasonError(absl::StatusCode::kFailedPrecondition, "MECHANISM_NOT_OFFERED",
                     has_token ? "the server offers no OAuth2 mechanism (XOAUTH2, OAUTHBEARER)"
                               : "the server offers no password mechanism we support");
}

bool IsCommandSafe(absl::string_view text) {
  return text.find_first_of(absl::string_view("\r\n\0", 3)) == absl::string_view::npos;
}

}  // namespace mailpool::wire
