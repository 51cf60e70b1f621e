#include "wire/sasl.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"

namespace mailpool::wire {
namespace {

bool Has(const std::vector<Mechanism>& v, Mechanism m) {
  return std::find(v.begin(), v.end(), m) != v.end();
}

// saslname (RFC 5801 section 4, RFC 5802 section 5.1), with "=" and "," escaped.
std::string SaslName(absl::string_view user) {
  std::string out;
  for (char c : user) {
    if (c == '=') {
      out += "=3D";
    } else if (c == ',') {
      out += "=2C";
    } else {
      out += c;
    }
  }
  return out;
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
  std::string saslname = SaslName(user);
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

namespace {

const EVP_MD* ScramDigest(Mechanism m) {
  return m == Mechanism::kScramSha1 ? EVP_sha1() : EVP_sha256();
}

std::string Hmac(const EVP_MD* md, absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &size);
  std::string result(reinterpret_cast<char*>(out), size);
  OPENSSL_cleanse(out, sizeof out);
  return result;
}

std::string Digest(const EVP_MD* md, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), out, &size, md, nullptr);
  std::string result(reinterpret_cast<char*>(out), size);
  OPENSSL_cleanse(out, sizeof out);
  return result;
}

absl::Status ScramViolation(absl::string_view what) {
  return ReasonError(absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION",
                     absl::StrCat("the server's SCRAM message is not valid: ", what));
}

}  // namespace

namespace {
std::string& TestNonce() {
  static std::string nonce;
  return nonce;
}
}  // namespace

void SetScramNonceForTesting(std::string nonce) { TestNonce() = std::move(nonce); }

ScramClient::ScramClient(Mechanism mechanism, absl::string_view user, const Secret& password,
                         std::string nonce)
    : mechanism_(mechanism), password_(password), nonce_(std::move(nonce)) {
  if (nonce_.empty()) nonce_ = TestNonce();
  if (nonce_.empty()) {
    unsigned char random[24];
    RAND_bytes(random, sizeof random);
    nonce_ = absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(random), sizeof random));
  }
  client_first_bare_ = absl::StrCat("n=", SaslName(user), ",r=", nonce_);
}

ScramClient::~ScramClient() { WipeString(expected_server_signature_); }

std::string ScramClient::InitialResponse() const {
  return Base64Encode(absl::StrCat("n,,", client_first_bare_));
}

absl::StatusOr<std::string> ScramClient::Respond(absl::string_view challenge_base64) {
  absl::StatusOr<std::string> decoded = Base64Decode(challenge_base64);
  if (!decoded.ok()) return ScramViolation("not base64");
  absl::string_view message = *decoded;
  const EVP_MD* md = ScramDigest(mechanism_);
  if (step_ == 0) {
    // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
    step_ = 1;
    if (absl::StartsWith(message, "m=")) return ScramViolation("mandatory extension");
    std::vector<absl::string_view> parts = absl::StrSplit(message, ',');
    if (parts.size() < 3 || !absl::StartsWith(parts[0], "r=") ||
        !absl::StartsWith(parts[1], "s=") || !absl::StartsWith(parts[2], "i=")) {
      return ScramViolation("expected r=, s=, i=");
    }
    absl::string_view server_nonce = parts[0].substr(2);
    if (server_nonce.size() <= nonce_.size() || !absl::StartsWith(server_nonce, nonce_)) {
      return ScramViolation("the nonce does not extend ours");
    }
    absl::StatusOr<std::string> salt = Base64Decode(parts[1].substr(2));
    if (!salt.ok() || salt->empty()) return ScramViolation("bad salt");
    uint32_t iterations = 0;
    if (!absl::SimpleAtoi(parts[2].substr(2), &iterations) || iterations == 0) {
      return ScramViolation("bad iteration count");
    }
    if (iterations > kMaxIterations) {
      return ScramViolation(
          absl::StrCat("iteration count ", iterations, " above ", kMaxIterations));
    }
    std::string salted(EVP_MD_get_size(md), '\0');
    absl::string_view pw = password_.Reveal();
    PKCS5_PBKDF2_HMAC(pw.data(), static_cast<int>(pw.size()),
                      reinterpret_cast<const unsigned char*>(salt->data()),
                      static_cast<int>(salt->size()), static_cast<int>(iterations), md,
                      static_cast<int>(salted.size()),
                      reinterpret_cast<unsigned char*>(salted.data()));
    password_.Wipe();
    std::string client_key = Hmac(md, salted, "Client Key");
    std::string stored_key = Digest(md, client_key);
    std::string without_proof = absl::StrCat("c=biws,r=", server_nonce);  // biws = "n,,"
    std::string auth_message = absl::StrCat(client_first_bare_, ",", message, ",", without_proof);
    std::string signature = Hmac(md, stored_key, auth_message);
    std::string proof = client_key;
    for (size_t i = 0; i < proof.size(); ++i) proof[i] ^= signature[i];
    expected_server_signature_ = Hmac(md, Hmac(md, salted, "Server Key"), auth_message);
    std::string out = Base64Encode(absl::StrCat(without_proof, ",p=", Base64Encode(proof)));
    WipeString(salted);
    WipeString(client_key);
    WipeString(stored_key);
    WipeString(proof);
    return out;
  }
  if (step_ == 1) {
    // server-final-message = (server-error / verifier) ["," extensions]
    step_ = 2;
    if (absl::StartsWith(message, "e=")) {
      std::string why(message.substr(2, message.find(',') == absl::string_view::npos
                                            ? absl::string_view::npos
                                            : message.find(',') - 2));
      return ReasonError(absl::StatusCode::kUnauthenticated, "AUTH_FAILED",
                         absl::StrCat("the server refused the SCRAM exchange: ",
                                      absl::CHexEscape(why.substr(0, 100))));
    }
    if (!absl::StartsWith(message, "v=")) return ScramViolation("expected v= or e=");
    absl::string_view v = message.substr(2);
    v = v.substr(0, v.find(','));
    absl::StatusOr<std::string> got = Base64Decode(v);
    if (!got.ok() || got->size() != expected_server_signature_.size() ||
        CRYPTO_memcmp(got->data(), expected_server_signature_.data(), got->size()) != 0) {
      return ReasonError(absl::StatusCode::kUnauthenticated, "SERVER_SIGNATURE_MISMATCH",
                         "the server's SCRAM signature does not match: it does not know "
                         "the password (or someone is in between)");
    }
    verified_ = true;
    return std::string();
  }
  return ScramViolation("more messages than SCRAM has");
}

absl::Status CheckScramPassword(const Secret& password) {
  for (char c : password.Reveal()) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      return ReasonError(absl::StatusCode::kInvalidArgument, "SASLPREP_UNSUPPORTED",
                         "SCRAM needs the password prepared with SASLprep, which mailpool does "
                         "only for ASCII passwords; use PLAIN over TLS for this one");
    }
    // RFC 4013 section 2.3 / RFC 3454 C.2.1: ASCII control characters are prohibited.
    if (u < 0x20 || u == 0x7f) {
      return ReasonError(absl::StatusCode::kInvalidArgument, "SASLPREP_PROHIBITED",
                         "the password has a control character, which SASLprep prohibits");
    }
  }
  return absl::OkStatus();
}

Mechanism MechanismFromSaslName(absl::string_view name) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (upper == "SCRAM-SHA-1") return Mechanism::kScramSha1;
  if (upper == "SCRAM-SHA-256") return Mechanism::kScramSha256;
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
    if (m == Mechanism::kScramSha1 || m == Mechanism::kScramSha256) {
      MP_RETURN_IF_ERROR(CheckScramPassword(options.password));
    }
    return m;
  }
  const std::vector<Mechanism> token_order = {Mechanism::kOauthbearer, Mechanism::kXoauth2};
  // SCRAM proves the password without sending it and proves the server knows it. Over TLS
  // CRAM-MD5 adds nothing over PLAIN (and needs the server to keep the password in the
  // clear); without TLS it at least keeps the password off the wire.
  const bool tls = options.security != Security::kPlain;
  const std::vector<Mechanism> password_order =
      tls ? std::vector<Mechanism>{Mechanism::kScramSha256, Mechanism::kScramSha1,
                                   Mechanism::kPlain,       Mechanism::kLogin,
                                   Mechanism::kCramMd5,     Mechanism::kCommand}
          : std::vector<Mechanism>{Mechanism::kScramSha256, Mechanism::kScramSha1,
                                   Mechanism::kCramMd5,     Mechanism::kPlain,
                                   Mechanism::kLogin,       Mechanism::kCommand};
  const bool scram_ok = CheckScramPassword(options.password).ok();
  for (Mechanism m : has_token ? token_order : password_order) {
    if (!scram_ok && (m == Mechanism::kScramSha1 || m == Mechanism::kScramSha256)) continue;
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
