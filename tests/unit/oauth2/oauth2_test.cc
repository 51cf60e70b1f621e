// The token response parser, the providers file parser, the grant body and the URL checks
// of oauth2/ (no network: the Refresher itself runs against the test OAuth2 server in
// tests/integration/oauth2_itest.cc).
#include "oauth2/oauth2.h"

#include <map>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/status.h"
#include "gtest/gtest.h"

namespace mailpool::oauth2 {
namespace {

constexpr absl::string_view kEndpoint = "https://oauth2.example.com/token";

std::string Reason(const absl::Status& s) { return GetPayloadText(s, kReasonPayload).value_or(""); }
std::string Reply(const absl::Status& s) {
  return GetPayloadText(s, kServerReplyPayload).value_or("");
}

TEST(TokenResponseTest, ParsesRfc6749Section51Example) {
  // RFC 6749 section 5.1's example (plus the refresh token it shows).
  absl::StatusOr<Token> t = ParseTokenResponse(200, R"({
       "access_token":"2YotnFZFEjr1zCsicMWpAA",
       "token_type":"example",
       "expires_in":3600,
       "refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA",
       "example_parameter":"example_value"
     })",
                                               kEndpoint);
  // token_type "example" is not a bearer token: XOAUTH2/OAUTHBEARER cannot use it.
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(t.status()), "OAUTH2_REFRESH_FAILED");

  t = ParseTokenResponse(200, R"({"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"Bearer",
       "expires_in":3600,"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA","scope":"a b"})",
                         kEndpoint);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->access_token.Reveal(), "2YotnFZFEjr1zCsicMWpAA");
  EXPECT_EQ(t->expires_in, absl::Seconds(3600));
  EXPECT_EQ(t->refresh_token.Reveal(), "tGzv3JOkF0XG5Qx2TlKWIA");
  EXPECT_EQ(t->scope, "a b");
}

TEST(TokenResponseTest, IsLiberalWhereProvidersDiffer) {
  // token_type in any case, or missing; expires_in as a string or a fraction; no refresh
  // token (no rotation); unknown members ignored.
  absl::StatusOr<Token> t = ParseTokenResponse(
      200, R"({"access_token":"ya29.x","token_type":"bearer","expires_in":"3599","x":[1,{}]})",
      kEndpoint);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->expires_in, absl::Seconds(3599));
  EXPECT_TRUE(t->refresh_token.empty());
  t = ParseTokenResponse(200, R"({"access_token":"abc","expires_in":4.5})", kEndpoint);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->expires_in, absl::Milliseconds(4500));
  t = ParseTokenResponse(200, R"({"access_token":"abc"})", kEndpoint);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->expires_in, absl::ZeroDuration());
  t = ParseTokenResponse(200, R"({"access_token":"abc","expires_in":null})", kEndpoint);
  ASSERT_TRUE(t.ok());
  // An absurd lifetime is capped, not an overflow.
  t = ParseTokenResponse(200, R"({"access_token":"abc","expires_in":1e300})", kEndpoint);
  ASSERT_TRUE(t.ok());
  EXPECT_LE(t->expires_in, absl::Hours(24 * 3660));
}

TEST(TokenResponseTest, ErrorObjectIsUnauthenticatedWithTheEndpointsErrorField) {
  // RFC 6749 section 5.2.
  absl::StatusOr<Token> t = ParseTokenResponse(
      400, R"({"error":"invalid_grant","error_description":"Token has been expired or revoked."})",
      kEndpoint);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reason(t.status()), "OAUTH2_REFRESH_FAILED");
  EXPECT_EQ(Reply(t.status()), "invalid_grant: Token has been expired or revoked.");
  EXPECT_TRUE(absl::StrContains(t.status().message(), "invalid_grant"));
  EXPECT_TRUE(absl::StrContains(t.status().message(), kEndpoint));
  t = ParseTokenResponse(401, R"({"error":"invalid_client"})", kEndpoint);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reply(t.status()), "invalid_client");
  // An error object with HTTP 200 (seen in the wild) is still a refusal.
  t = ParseTokenResponse(200, R"({"error":"invalid_grant"})", kEndpoint);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(TokenResponseTest, EndpointFailuresAreUnavailable) {
  for (auto [code, body] : std::vector<std::pair<long, std::string>>{
           {500, "<html>oops</html>"},
           {503, R"({"error":"temporarily_unavailable"})"},
           {429, ""},
           {400, "not json"},
           {200, "not json"},
           {200, "[]"},
           {200, R"({"access_token":42})"},
           {200, R"({"access_token":""})"},
           {200, R"({"access_token":"has space"})"},
           {200, R"({"access_token":"a\r\nb"})"},
           {200, R"({"access_token":"abc","expires_in":-1})"},
           {200, R"({"access_token":"abc","expires_in":"soon"})"},
           {200, R"({"access_token":"abc","token_type":7})"},
           {302, ""}}) {
    absl::StatusOr<Token> t = ParseTokenResponse(code, body, kEndpoint);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kUnavailable) << code << " " << body;
    EXPECT_EQ(Reason(t.status()), "OAUTH2_REFRESH_FAILED") << body;
  }
  // A 503 keeps the endpoint's error for the caller.
  EXPECT_EQ(
      Reply(ParseTokenResponse(503, R"({"error":"temporarily_unavailable"})", kEndpoint).status()),
      "temporarily_unavailable");
}

TEST(TokenResponseTest, EndpointTextIsSanitizedAndBounded) {
  std::string long_description(5000, 'x');
  absl::StatusOr<Token> t =
      ParseTokenResponse(400,
                         absl::StrCat(R"({"error":"bad\u0000\r\nthing","error_description":")",
                                      long_description, R"("})"),
                         kEndpoint);
  std::string reply = Reply(t.status());
  EXPECT_FALSE(absl::StrContains(reply, "\r"));
  EXPECT_FALSE(absl::StrContains(reply, std::string(1, '\0')));
  EXPECT_LT(reply.size(), 600u);
}

TEST(TokenResponseTest, HostileBytesNeverCrash) {
  // Every prefix of a valid answer, deep nesting, and random mutations.
  std::string valid =
      R"({"access_token":"abc.def-ghi","token_type":"Bearer","expires_in":5,"refresh_token":"r1","scope":"s"})";
  for (size_t n = 0; n < valid.size(); ++n) {
    (void)ParseTokenResponse(200, valid.substr(0, n), kEndpoint);
  }
  (void)ParseTokenResponse(200, std::string(20000, '[') + std::string(20000, ']'), kEndpoint);
  (void)ParseTokenResponse(200, std::string(20000, '{'), kEndpoint);
  std::mt19937 rng(18);
  for (int i = 0; i < 3000; ++i) {
    std::string s = valid;
    for (int k = 0; k < 4; ++k) s[rng() % s.size()] = static_cast<char>(rng() % 256);
    absl::StatusOr<Token> t = ParseTokenResponse(rng() % 2 ? 200 : 400, s, kEndpoint);
    if (t.ok()) {
      EXPECT_FALSE(t->access_token.empty());
    }
  }
}

TEST(TokenEndpointTest, RequiresHttpsExceptForLoopbackLiterals) {
  for (const char* ok :
       {"https://oauth2.googleapis.com/token",
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "https://127.0.0.1:8443/token", "https://[::1]/t", "http://127.0.0.1:9/token",
        "http://[::1]:8080/token", "https://example.com:443"}) {
    EXPECT_TRUE(ValidateTokenEndpoint("f", ok).ok()) << ok;
  }
  for (const char* bad :
       {"", "http://example.com/token", "http://localhost/token", "http://127.0.0.2/token",
        "ftp://x/y", "https://", "https:///token", "https://user:pw@example.com/token",
        "https://example.com/t#frag", "https://example.com/t x", "https://example.com:0/t",
        "https://example.com:99999/t", "https://example.com:/t", "https://example.com:+1/t",
        "https://[::1/t", "token"}) {
    absl::Status s = ValidateTokenEndpoint("token_endpoint", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(s.message(), "token_endpoint")) << s;
  }
  EXPECT_TRUE(
      absl::StrContains(ValidateTokenEndpoint("f", "http://example.com/t").message(), "127.0.0.1"));
  EXPECT_FALSE(ValidateTokenEndpoint("f", "https://e.com/" + std::string(3000, 'a')).ok());
}

TEST(FieldsTest, ClientIdScopesAndSecretsAreChecked) {
  EXPECT_TRUE(ValidateClientId("c", "1234.apps.googleusercontent.com").ok());
  EXPECT_FALSE(ValidateClientId("c", "").ok());
  EXPECT_FALSE(ValidateClientId("c", "a b").ok());
  EXPECT_TRUE(ValidateScopes("s", "").ok());
  EXPECT_TRUE(ValidateScopes("s", "https://mail.google.com/ offline_access").ok());
  EXPECT_FALSE(ValidateScopes("s", "a  b").ok());
  EXPECT_FALSE(ValidateScopes("s", "a\"b").ok());
  EXPECT_FALSE(ValidateSecretText("refresh_token", "").ok());
  absl::Status s = ValidateSecretText("refresh_token", "1//0g secret-value");
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(absl::StrContains(s.message(), "secret-value"));
  EXPECT_FALSE(ValidateSecretText("r", std::string(8193, 'a')).ok());
}

TEST(GrantBodyTest, IsFormEncodedWithClientCredentialsInTheBody) {
  Client c;
  c.token_endpoint = std::string(kEndpoint);
  c.client_id = "id 1";
  c.client_secret = Secret("s&cret=");
  c.scopes = "https://mail.google.com/ x";
  EXPECT_EQ(RefreshRequestBody(c, Secret("1//0g+/=")),
            "grant_type=refresh_token&refresh_token=1%2F%2F0g%2B%2F%3D"
            "&scope=https%3A%2F%2Fmail.google.com%2F+x&client_id=id+1&client_secret=s%26cret%3D");
  c.auth = ClientAuth::kBasic;
  c.scopes.clear();
  EXPECT_EQ(RefreshRequestBody(c, Secret("r")), "grant_type=refresh_token&refresh_token=r");
  c.auth = ClientAuth::kPost;
  c.client_secret = Secret();
  EXPECT_EQ(RefreshRequestBody(c, Secret("r")),
            "grant_type=refresh_token&refresh_token=r&client_id=id+1");
}

absl::StatusOr<std::vector<Provider>> Parse(absl::string_view text) {
  std::map<std::string, std::string> files = {
      {"/s/google", "g-secret\n"}, {"/s/bad", "a b\n"}, {"/s/empty", "\n"}};
  return ParseProvidersFile(text, [files](const std::string& path) -> absl::StatusOr<std::string> {
    auto it = files.find(path);
    if (it == files.end()) return absl::NotFoundError("no such file");
    return it->second;
  });
}

TEST(ProvidersFileTest, ParsesSections) {
  absl::StatusOr<std::vector<Provider>> p = Parse(R"(
# mailpool OAuth2 providers
[google]
token_endpoint = https://oauth2.googleapis.com/token
client_id = 1234.apps.googleusercontent.com
client_secret_file = /s/google
scopes = https://mail.google.com/

[local-test]
  token_endpoint=http://127.0.0.1:8080/token
  client_id=mailpool
  client_auth = basic
)");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].name, "google");
  EXPECT_EQ((*p)[0].client.token_endpoint, "https://oauth2.googleapis.com/token");
  EXPECT_EQ((*p)[0].client.client_id, "1234.apps.googleusercontent.com");
  EXPECT_EQ((*p)[0].client.client_secret.Reveal(), "g-secret");
  EXPECT_EQ((*p)[0].client.scopes, "https://mail.google.com/");
  EXPECT_EQ((*p)[0].client.auth, ClientAuth::kPost);
  EXPECT_EQ((*p)[1].name, "local-test");
  EXPECT_TRUE((*p)[1].client.client_secret.empty());
  EXPECT_EQ((*p)[1].client.auth, ClientAuth::kBasic);
  EXPECT_TRUE(Parse("").ok());
  EXPECT_TRUE(Parse("# nothing\n\n").ok());
}

TEST(ProvidersFileTest, ErrorsNameTheLine) {
  struct Case {
    const char* text;
    const char* want;
  };
  for (Case c : std::vector<Case>{
           {"token_endpoint = https://x/t\n", "line 1: key before the first"},
           {"[a]\ntoken_endpoint = http://example.com/t\n", "line 2: token_endpoint"},
           {"[a]\nclient_id = x\n", "line 1: provider has no token_endpoint"},
           {"[a]\ntoken_endpoint = https://x/t\n[b]\n", "line 1: provider has no client_id"},
           {"[a]\ntoken_endpoint = https://x/t\nclient_id = x\n\n[a]\n", "line 5: duplicate"},
           {"[a b]\n", "line 1: name may hold"},
           {"[a\n", "line 1: a section"},
           {"[]\n", "line 1: name must be"},
           {"[a]\nnonsense\n", "line 2: expected key = value"},
           {"[a]\ncolour = blue\n", "line 2: unknown key 'colour'"},
           {"[a]\nclient_secret_file = /s/missing\n", "line 2: client_secret_file: cannot read"},
           {"[a]\n\n\nclient_secret_file = /s/bad\n", "line 4: client secret in /s/bad"},
           {"[a]\nclient_secret_file = /s/empty\n", "line 2: client secret in /s/empty: empty"},
           {"[a]\nclient_auth = digest\n", "line 2: client_auth"},
           {"[a]\nscopes = a  b\n", "line 2: scopes"},
           {"[a]\nclient_id = has space\n", "line 2: client_id"}}) {
    absl::StatusOr<std::vector<Provider>> p = Parse(c.text);
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(p.status().message(), c.want))
        << c.text << " -> " << p.status().message();
    EXPECT_TRUE(absl::StartsWith(p.status().message(), "oauth2 providers file line "));
  }
  // The secret itself never appears in an error.
  absl::StatusOr<std::vector<Provider>> p = Parse("[a]\nclient_secret_file = /s/bad\n");
  EXPECT_FALSE(absl::StrContains(p.status().message(), "a b"));
}

TEST(ProvidersFileTest, LoadReportsAMissingFile) {
  absl::StatusOr<std::vector<Provider>> p = LoadProvidersFile("/nonexistent/providers");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(p.status().message(), "/nonexistent/providers"));
}

TEST(RefresherTest, UnreachableEndpointIsUnavailableAndCarriesNoSecret) {
  Refresher refresher({.ca_file = "", .timeout = absl::Seconds(20)});
  Client c;
  // Port 1 on loopback: connection refused at once.
  c.token_endpoint = "http://127.0.0.1:1/token";
  c.client_id = "id";
  c.client_secret = Secret("client-secret-zz");
  absl::Notification done;
  absl::Status got;
  refresher.Refresh(c, Secret("refresh-token-yy"), [&](absl::StatusOr<Token> t) {
    got = t.status();
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(got.code(), absl::StatusCode::kUnavailable) << got;
  EXPECT_EQ(Reason(got), "OAUTH2_REFRESH_FAILED");
  EXPECT_FALSE(absl::StrContains(got.ToString(), "refresh-token-yy"));
  EXPECT_FALSE(absl::StrContains(got.ToString(), "client-secret-zz"));
}

}  // namespace
}  // namespace mailpool::oauth2
