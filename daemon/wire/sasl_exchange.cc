#include "wire/sasl_exchange.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "wire/sasl.h"

namespace mailpool::wire {

SaslExchange::SaslExchange(Mechanism mechanism, const LoginOptions& login, std::string client_nonce)
    : mechanism_(mechanism),
      user_(login.user),
      password_(login.password),
      token_(login.oauth2_token),
      host_(login.host),
      port_(login.port) {
  if (mechanism_ == Mechanism::kScramSha1 || mechanism_ == Mechanism::kScramSha256) {
    scram_ = std::make_unique<ScramClient>(mechanism_, user_, password_, std::move(client_nonce));
    password_.Wipe();  // the ScramClient keeps its own copy until it has used it
  }
}

SaslExchange::~SaslExchange() = default;

absl::string_view SaslExchange::name() const { return MechanismName(mechanism_); }

bool SaslExchange::done() const { return done_; }

absl::Status SaslExchange::Malformed(absl::string_view what) const {
  return absl::InvalidArgumentError(absl::StrCat(what, " (", name(), ")"));
}

absl::StatusOr<std::string> SaslExchange::InitialResponse() {
  switch (mechanism_) {
    case Mechanism::kPlain:
      return PlainInitialResponse(user_, password_);
    case Mechanism::kXoauth2:
      return Xoauth2InitialResponse(user_, token_);
    case Mechanism::kOauthbearer:
      return OauthbearerInitialResponse(user_, host_, port_, token_);
    case Mechanism::kScramSha1:
    case Mechanism::kScramSha256:
      return scram_->InitialResponse();
    default:
      return absl::InternalError(absl::StrCat(name(), " has no initial response"));
  }
}

std::optional<std::string> SaslExchange::Initial(size_t max_size) {
  if (initial_sent_ || mechanism_ == Mechanism::kLogin || mechanism_ == Mechanism::kCramMd5) {
    return std::nullopt;
  }
  absl::StatusOr<std::string> ir = InitialResponse();
  if (!ir.ok()) return std::nullopt;  // Step() reports it
  if (ir->size() > max_size) {
    WipeString(*ir);
    return std::nullopt;
  }
  initial_sent_ = true;
  if (mechanism_ == Mechanism::kPlain) done_ = true;
  return *std::move(ir);
}

absl::StatusOr<std::string> SaslExchange::Step(absl::string_view challenge) {
  if (done_) return Malformed("unexpected challenge after the last response");
  int round = ++rounds_;
  switch (mechanism_) {
    case Mechanism::kPlain:
    case Mechanism::kXoauth2:
    case Mechanism::kOauthbearer:
    case Mechanism::kScramSha1:
    case Mechanism::kScramSha256:
      if (!initial_sent_) {
        // RFC 4422 section 5: without an initial response on the command, the server
        // sends an empty challenge and the client answers with it.
        absl::StatusOr<std::string> ir = InitialResponse();
        if (!ir.ok()) return ir.status();
        initial_sent_ = true;
        if (mechanism_ == Mechanism::kPlain) done_ = true;
        return ir;
      }
      break;
    default:
      break;
  }
  switch (mechanism_) {
    case Mechanism::kXoauth2:
    case Mechanism::kOauthbearer: {
      // The token was refused: the challenge is base64 JSON with the error (RFC 7628
      // section 3.2.2). XOAUTH2 (Google's definition) answers it with an empty response,
      // OAUTHBEARER with a single %x01 (section 3.2.3); the server's refusal follows.
      absl::StatusOr<std::string> json = Base64Decode(challenge);
      oauth_error_ = SanitizeServerText(json.ok() ? *json : std::string(challenge), 256);
      if (oauth_error_.empty()) oauth_error_ = "(empty)";
      done_ = true;
      return std::string(mechanism_ == Mechanism::kOauthbearer ? "AQ==" : "");
    }
    case Mechanism::kLogin:
      // The LOGIN mechanism: the server prompts for the user name, then the password,
      // whatever the prompts say.
      if (round == 1) return Base64Encode(user_);
      done_ = true;
      return Base64Encode(password_.Reveal());
    case Mechanism::kCramMd5: {
      // RFC 2195 section 2: the challenge is base64; the response base64(user SP digest).
      absl::StatusOr<std::string> r = CramMd5Response(user_, password_, challenge);
      if (!r.ok()) return Malformed("malformed challenge");
      done_ = true;
      return r;
    }
    case Mechanism::kScramSha1:
    case Mechanism::kScramSha256: {
      // server-first -> client-final; server-final -> empty response once verified.
      absl::StatusOr<std::string> r = scram_->Respond(challenge);
      if (r.ok() && scram_->verified()) done_ = true;
      return r;
    }
    default:
      return Malformed("unexpected challenge");
  }
}

absl::Status SaslExchange::Finish(absl::string_view server_final) {
  if (scram_ == nullptr || scram_->verified()) return absl::OkStatus();
  if (!server_final.empty()) {
    absl::StatusOr<std::string> r = scram_->Respond(server_final);
    if (!r.ok()) return r.status();
    if (scram_->verified()) return absl::OkStatus();
  }
  // RFC 5802 section 5: the client must check the server's signature; a server that
  // accepts without one has not shown that it knows the password.
  return ReasonError(absl::StatusCode::kUnauthenticated, "SERVER_SIGNATURE_MISSING",
                     absl::StrCat("the server accepted the ", name(),
                                  " login without proving it knows the password"));
}

}  // namespace mailpool::wire
