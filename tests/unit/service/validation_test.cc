// Validation of caller input (service/validation.h): the one parser of Credentials shared
// by StartSession and UpdateSession.
#include "service/validation.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace mailpool::service {
namespace {

using session::Kind;
using session::LinkSpec;
using session::Protocol;

v1::Credentials Creds(const std::string& password) {
  v1::Credentials c;
  c.set_user("alice@example.test");
  c.set_password(password);
  return c;
}

v1::StartSessionRequest Pop3Smtp(v1::AuthMechanism mechanism) {
  v1::StartSessionRequest request;
  auto* o = request.mutable_pop3_smtp();
  o->mutable_pop3()->set_host("mail.example.test");
  *o->mutable_credentials() = Creds("old-secret-1");
  o->mutable_credentials()->set_mechanism(mechanism);
  o->set_ehlo_name("client.example.test");
  return request;
}

TEST(LoginForUpdateTest, ReplacesOnlyTheCredentials) {
  absl::StatusOr<session::SessionSpec> spec =
      SpecFromRequest(Pop3Smtp(v1::AUTH_MECHANISM_UNSPECIFIED));
  ASSERT_TRUE(spec.ok()) << spec.status();
  const LinkSpec& smtp = spec->links[1];
  v1::Credentials update = Creds("new-secret-2");
  update.set_mechanism(v1::AUTH_MECHANISM_PLAIN);
  update.set_allow_insecure_auth(true);
  absl::StatusOr<wire::LoginOptions> login = LoginForUpdate(update, Kind::kPop3Smtp, smtp);
  ASSERT_TRUE(login.ok()) << login.status();
  EXPECT_EQ(login->password.Reveal(), "new-secret-2");
  EXPECT_TRUE(login->oauth2_token.empty());
  EXPECT_EQ(login->mechanism, wire::Mechanism::kPlain);
  EXPECT_TRUE(login->allow_insecure_auth);
  // The rest of the login is the link's own.
  EXPECT_EQ(login->user, smtp.login.user);
  EXPECT_EQ(login->ehlo_name, "client.example.test");
  EXPECT_EQ(login->security, smtp.login.security);
  EXPECT_EQ(login->host, smtp.login.host);
  EXPECT_EQ(login->port, smtp.login.port);
}

TEST(LoginForUpdateTest, ATokenReplacesThePassword) {
  absl::StatusOr<session::SessionSpec> spec =
      SpecFromRequest(Pop3Smtp(v1::AUTH_MECHANISM_UNSPECIFIED));
  ASSERT_TRUE(spec.ok()) << spec.status();
  v1::Credentials update;
  update.set_user("alice@example.test");
  update.set_oauth2_token("ya29.token");
  absl::StatusOr<wire::LoginOptions> login =
      LoginForUpdate(update, Kind::kPop3Smtp, spec->links[0]);
  ASSERT_TRUE(login.ok()) << login.status();
  EXPECT_TRUE(login->password.empty());
  EXPECT_EQ(login->oauth2_token.Reveal(), "ya29.token");
}

TEST(LoginForUpdateTest, Pop3OnlyMechanismsAreAutomaticForTheCombinedSessionsSmtp) {
  for (v1::AuthMechanism m : {v1::AUTH_MECHANISM_COMMAND, v1::AUTH_MECHANISM_APOP}) {
    absl::StatusOr<session::SessionSpec> spec = SpecFromRequest(Pop3Smtp(m));
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->links[1].login.mechanism, wire::Mechanism::kAuto);
    v1::Credentials update = Creds("new-secret-2");
    update.set_mechanism(m);
    absl::StatusOr<wire::LoginOptions> pop3 =
        LoginForUpdate(update, Kind::kPop3Smtp, spec->links[0]);
    ASSERT_TRUE(pop3.ok()) << pop3.status();
    EXPECT_NE(pop3->mechanism, wire::Mechanism::kAuto);
    absl::StatusOr<wire::LoginOptions> smtp =
        LoginForUpdate(update, Kind::kPop3Smtp, spec->links[1]);
    ASSERT_TRUE(smtp.ok()) << smtp.status();
    EXPECT_EQ(smtp->mechanism, wire::Mechanism::kAuto);
    // A session of SMTP alone has no such mapping: COMMAND is not an SMTP mechanism.
    EXPECT_EQ(LoginForUpdate(update, Kind::kSmtp, spec->links[1]).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(LoginForUpdateTest, RefusesWhatStartSessionRefusesWithoutTheSecret) {
  absl::StatusOr<session::SessionSpec> spec =
      SpecFromRequest(Pop3Smtp(v1::AUTH_MECHANISM_UNSPECIFIED));
  ASSERT_TRUE(spec.ok()) << spec.status();
  const LinkSpec& pop3 = spec->links[0];
  std::vector<v1::Credentials> bad;
  bad.push_back(Creds("hunter2\r\nQUIT"));
  bad.push_back(Creds(std::string("hunter2\0x", 9)));
  bad.push_back(Creds(std::string(1025, 'h')));
  bad.push_back(Creds("hunter2"));
  bad.back().set_user("bob@example.test");  // another account
  bad.push_back(Creds("hunter2"));
  bad.back().clear_password();  // POP3 needs a secret
  bad.push_back(Creds("hunter2"));
  bad.back().set_mechanism(v1::AUTH_MECHANISM_NONE);
  bad.push_back(Creds("hunter2"));
  bad.back().set_user("alice\r\n@example.test");
  for (const v1::Credentials& c : bad) {
    absl::StatusOr<wire::LoginOptions> login = LoginForUpdate(c, Kind::kPop3Smtp, pop3);
    EXPECT_EQ(login.status().code(), absl::StatusCode::kInvalidArgument) << c.user();
    EXPECT_FALSE(absl::StrContains(login.status().ToString(), "hunter2")) << login.status();
  }
}

TEST(LoginForUpdateTest, SmtpWithoutAuthenticationStaysWithout) {
  v1::StartSessionRequest request;
  request.mutable_smtp()->mutable_server()->set_host("smtp.example.test");
  absl::StatusOr<session::SessionSpec> spec = SpecFromRequest(request);
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<wire::LoginOptions> login =
      LoginForUpdate(v1::Credentials(), Kind::kSmtp, spec->links[0]);
  ASSERT_TRUE(login.ok()) << login.status();
  EXPECT_TRUE(login->password.empty());
  // A user name would be another account.
  EXPECT_EQ(LoginForUpdate(Creds("x-secret"), Kind::kSmtp, spec->links[0]).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The OAuth2 refresh form: a source made only for valid input, with what it was given.
struct MadeSource final : wire::AccessTokenSource {
  MadeSource(oauth2::Client c, Secret r) : client(std::move(c)), refresh_token(std::move(r)) {}
  void Get(bool, absl::AnyInvocable<void(absl::StatusOr<Secret>)> done) override {
    done(Secret("access"));
  }
  oauth2::Client client;
  Secret refresh_token;
};

class OAuth2FormTest : public ::testing::Test {
 protected:
  OAuth2FormTest() {
    oauth2::Provider google;
    google.name = "google";
    google.client = {"https://oauth2.googleapis.com/token", "1234.apps", Secret("client-s3"),
                     "https://mail.google.com/"};
    setup_.providers.push_back(google);
    setup_.make_source = [this](oauth2::Client client, Secret refresh_token) {
      ++made_;
      return std::make_shared<MadeSource>(std::move(client), std::move(refresh_token));
    };
  }
  static v1::StartSessionRequest Imap(const v1::Credentials& c) {
    v1::StartSessionRequest r;
    r.mutable_imap()->mutable_server()->set_host("imap.example.test");
    *r.mutable_imap()->mutable_credentials() = c;
    return r;
  }
  static v1::Credentials Refresh(const std::string& provider) {
    v1::Credentials c;
    c.set_user("alice@example.test");
    c.mutable_oauth2_refresh()->set_refresh_token("1//refresh-token-9");
    c.mutable_oauth2_refresh()->set_provider(provider);
    return c;
  }
  absl::Status Refused(const v1::Credentials& c) {
    absl::StatusOr<session::SessionSpec> spec = SpecFromRequest(Imap(c), setup_);
    EXPECT_FALSE(absl::StrContains(spec.status().message(), "refresh-token-9"));
    EXPECT_FALSE(absl::StrContains(spec.status().message(), "endpoint-s3"));
    return spec.status();
  }

  OAuth2Setup setup_;
  int made_ = 0;
};

TEST_F(OAuth2FormTest, ANamedProviderGivesItsClientToTheSource) {
  absl::StatusOr<session::SessionSpec> spec = SpecFromRequest(Imap(Refresh("google")), setup_);
  ASSERT_TRUE(spec.ok()) << spec.status();
  const wire::LoginOptions& login = spec->links[0].login;
  ASSERT_NE(login.token_source, nullptr);
  EXPECT_TRUE(login.oauth2_token.empty());
  auto* made = static_cast<MadeSource*>(login.token_source.get());
  EXPECT_EQ(made->client.token_endpoint, "https://oauth2.googleapis.com/token");
  EXPECT_EQ(made->client.client_id, "1234.apps");
  EXPECT_EQ(made->client.client_secret.Reveal(), "client-s3");
  EXPECT_EQ(made->refresh_token.Reveal(), "1//refresh-token-9");
  EXPECT_EQ(made_, 1);
}

TEST_F(OAuth2FormTest, AnEndpointInTheRequest) {
  v1::Credentials c = Refresh("");
  c.mutable_oauth2_refresh()->set_token_endpoint("https://login.example.test/oauth2/token");
  c.mutable_oauth2_refresh()->set_client_id("mail-app");
  c.mutable_oauth2_refresh()->set_client_secret("endpoint-s3");
  c.mutable_oauth2_refresh()->set_scopes("offline_access IMAP.AccessAsUser.All");
  absl::StatusOr<session::SessionSpec> spec = SpecFromRequest(Imap(c), setup_);
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto* made = static_cast<MadeSource*>(spec->links[0].login.token_source.get());
  EXPECT_EQ(made->client.client_id, "mail-app");
  EXPECT_EQ(made->client.client_secret.Reveal(), "endpoint-s3");
  EXPECT_EQ(made->client.scopes, "offline_access IMAP.AccessAsUser.All");
}

TEST_F(OAuth2FormTest, InvalidFormsAreRefusedBeforeAnySourceIsMade) {
  EXPECT_EQ(Refused(Refresh("nope")).code(), absl::StatusCode::kInvalidArgument);
  v1::Credentials both = Refresh("google");
  both.mutable_oauth2_refresh()->set_token_endpoint("https://x.example.test/token");
  EXPECT_EQ(Refused(both).code(), absl::StatusCode::kInvalidArgument);
  v1::Credentials neither = Refresh("");
  EXPECT_EQ(Refused(neither).code(), absl::StatusCode::kInvalidArgument);
  v1::Credentials plain_http = Refresh("");
  plain_http.mutable_oauth2_refresh()->set_token_endpoint("http://login.example.test/token");
  plain_http.mutable_oauth2_refresh()->set_client_id("mail-app");
  EXPECT_EQ(Refused(plain_http).code(), absl::StatusCode::kInvalidArgument);
  v1::Credentials no_client = Refresh("");
  no_client.mutable_oauth2_refresh()->set_token_endpoint("https://login.example.test/token");
  EXPECT_EQ(Refused(no_client).code(), absl::StatusCode::kInvalidArgument);
  v1::Credentials empty = Refresh("google");
  empty.mutable_oauth2_refresh()->clear_refresh_token();
  EXPECT_EQ(Refused(empty).code(), absl::StatusCode::kInvalidArgument);
  v1::Credentials newline = Refresh("google");
  newline.mutable_oauth2_refresh()->set_refresh_token("refresh-token-9\r\nA1 LOGOUT");
  EXPECT_EQ(Refused(newline).code(), absl::StatusCode::kInvalidArgument);
  v1::Credentials plain = Refresh("google");
  plain.set_mechanism(v1::AUTH_MECHANISM_PLAIN);
  EXPECT_EQ(Refused(plain).code(), absl::StatusCode::kInvalidArgument);
  v1::Credentials no_user = Refresh("google");
  no_user.clear_user();
  EXPECT_EQ(Refused(no_user).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(made_, 0);
  // A daemon without a refresher.
  v1::Credentials inline_form = Refresh("");
  inline_form.mutable_oauth2_refresh()->set_token_endpoint("https://login.example.test/token");
  inline_form.mutable_oauth2_refresh()->set_client_id("mail-app");
  EXPECT_EQ(SpecFromRequest(Imap(inline_form)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(OAuth2FormTest, BothLinksOfAPop3SmtpSessionShareOneSource) {
  v1::StartSessionRequest request;
  auto* o = request.mutable_pop3_smtp();
  o->mutable_pop3()->set_host("mail.example.test");
  *o->mutable_credentials() = Refresh("google");
  absl::StatusOr<session::SessionSpec> spec = SpecFromRequest(request, setup_);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->links.size(), 2u);
  EXPECT_NE(spec->links[0].login.token_source, nullptr);
  EXPECT_EQ(spec->links[0].login.token_source, spec->links[1].login.token_source);
  EXPECT_EQ(made_, 1);
  // UpdateSession to a password drops the source.
  absl::StatusOr<wire::LoginOptions> login =
      LoginForUpdate(Creds("pw-2"), Kind::kPop3Smtp, spec->links[0], setup_);
  ASSERT_TRUE(login.ok()) << login.status();
  EXPECT_EQ(login->token_source, nullptr);
}

}  // namespace
}  // namespace mailpool::service
