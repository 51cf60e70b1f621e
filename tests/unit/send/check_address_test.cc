// CheckAddress without a server: SYNTAX and STRICT verdicts (send/send.h).
#include <string>

#include "gtest/gtest.h"
#include "send/send.h"

namespace mailpool::sender {
namespace {

TEST(CheckAddressSyntaxTest, SyntaxModeTakesNameAddrQuotedLocalPartsAndSingleLabels) {
  v1::CheckAddressResponse r = CheckAddressSyntax("Alice Martin <alice@example.com>", false);
  EXPECT_EQ(r.result(), v1::CHECK_RESULT_VALID);
  EXPECT_EQ(r.parsed().name(), "Alice Martin");
  EXPECT_EQ(r.parsed().address(), "alice@example.com");
  EXPECT_EQ(CheckAddressSyntax("\"a b\"@example.com", false).result(), v1::CHECK_RESULT_VALID);
  EXPECT_EQ(CheckAddressSyntax("alice@localhost", false).result(), v1::CHECK_RESULT_VALID);
  EXPECT_EQ(CheckAddressSyntax("\"Martin, Alice\" <a@example.com>", false).parsed().name(),
            "Martin, Alice");
}

TEST(CheckAddressSyntaxTest, EncodedWordsAndQuotedPairsInTheDisplayNameAreDecoded) {
  v1::CheckAddressResponse r =
      CheckAddressSyntax("=?UTF-8?Q?Andr=C3=A9_M=C3=BCller?= <andre@example.com>", false);
  EXPECT_EQ(r.result(), v1::CHECK_RESULT_VALID) << r.reason();
  EXPECT_EQ(r.parsed().name(), "Andr\xc3\xa9 M\xc3\xbcller");
  EXPECT_EQ(r.parsed().address(), "andre@example.com");
  EXPECT_EQ(
      CheckAddressSyntax("\"=?ISO-8859-1?B?SvZyZw==?=\" <j@example.com>", false).parsed().name(),
      "J\xc3\xb6rg");
  EXPECT_EQ(CheckAddressSyntax("\"Say \\\"hi\\\"\" <s@example.com>", false).parsed().name(),
            "Say \"hi\"");
  // Text that only looks like an encoded word stays as it is.
  EXPECT_EQ(CheckAddressSyntax("=?bogus <b@example.com>", false).parsed().name(), "=?bogus");
}

TEST(CheckAddressSyntaxTest, SyntaxModeRefusesWithAReason) {
  struct Case {
    const char* address;
    const char* reason;
  };
  const Case cases[] = {
      {"alice.example.com", "missing '@'"},
      {"al..ice@example.com", "local part is neither a dot-atom nor a quoted string"},
      {"alice@", "empty domain"},
      {"@example.com", "empty local part"},
      {"a\r\nb@example.com", "control character (CR, LF, NUL ...)"},
      {"   ", "empty address"},
      {"Martin, Alice <a@example.com>", "display name has ',' and is not quoted"},
      {"alice@exa_mple.com", ""},  // '_' is atext: valid in SYNTAX mode
      {"alice@[a-b]", "domain is neither a dot-atom nor an address literal"},
  };
  for (const Case& c : cases) {
    v1::CheckAddressResponse r = CheckAddressSyntax(c.address, false);
    if (std::string(c.reason).empty()) {
      EXPECT_EQ(r.result(), v1::CHECK_RESULT_VALID) << c.address;
      continue;
    }
    EXPECT_EQ(r.result(), v1::CHECK_RESULT_INVALID) << c.address;
    EXPECT_EQ(r.reason(), c.reason) << c.address;
    EXPECT_FALSE(r.has_parsed()) << c.address;
  }
  std::string long_local = std::string(65, 'a') + "@example.com";
  EXPECT_EQ(CheckAddressSyntax(long_local, false).reason(), "local part longer than 64 bytes");
}

TEST(CheckAddressSyntaxTest, StrictModeTakesBareDotAtomsAtStrictDomains) {
  EXPECT_EQ(CheckAddressSyntax("alice+tag@mail.example.com", true).result(),
            v1::CHECK_RESULT_VALID);
  EXPECT_EQ(CheckAddressSyntax("j\xc3\xb6rg@b\xc3\xbc"
                               "cher.example",
                               true)
                .result(),
            v1::CHECK_RESULT_VALID);
  EXPECT_EQ(CheckAddressSyntax("alice@[192.0.2.1]", true).result(), v1::CHECK_RESULT_VALID);
  EXPECT_EQ(CheckAddressSyntax("alice@localhost", true).reason(), "domain has a single label");
  EXPECT_EQ(CheckAddressSyntax("Alice <alice@example.com>", true).reason(),
            "strict mode takes a bare address, without a display name");
  EXPECT_EQ(CheckAddressSyntax("\"a b\"@example.com", true).reason(),
            "local part is not a dot-atom");
  EXPECT_EQ(CheckAddressSyntax("alice@-bad.example.com", true).reason(),
            "domain label starts or ends with '-'");
}

TEST(ProbeVerdictTest, TwoHundredsAreValidFiveHundredsInvalidTheRestUnknown) {
  auto verdict = [](int code, const std::string& text) {
    smtp::Reply reply;
    reply.code = code;
    reply.lines = {text};
    v1::CheckAddressResponse response;
    SetProbeVerdict(reply, &response);
    return response;
  };
  EXPECT_EQ(verdict(250, "2.1.5 Ok").result(), v1::CHECK_RESULT_VALID);
  EXPECT_EQ(verdict(251, "User not local").result(), v1::CHECK_RESULT_VALID);
  v1::CheckAddressResponse refused = verdict(550, "5.1.1 no such user");
  EXPECT_EQ(refused.result(), v1::CHECK_RESULT_INVALID);
  EXPECT_EQ(refused.reply_code(), 550);
  EXPECT_FALSE(refused.reason().empty());
  EXPECT_EQ(verdict(252, "Cannot VRFY user").result(), v1::CHECK_RESULT_UNKNOWN);
  EXPECT_EQ(verdict(450, "try later").result(), v1::CHECK_RESULT_UNKNOWN);
}

}  // namespace
}  // namespace mailpool::sender
