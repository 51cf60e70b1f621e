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

}  // namespace
}  // namespace mailpool::service
