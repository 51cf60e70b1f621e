#include "mime/mime.h"

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace mailpool::mime {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// ---------------------------------------------------------------------------------------
// Helpers.

v1::Address Addr(const std::string& name, const std::string& address) {
  v1::Address a;
  a.set_name(name);
  a.set_address(address);
  return a;
}

v1::Attachment Attach(
    const std::string& file_name, const std::string& type, const std::string& content,
    const std::string& content_id = "",
    v1::AttachmentDisposition disposition = v1::ATTACHMENT_DISPOSITION_ATTACHMENT) {
  v1::Attachment a;
  a.set_file_name(file_name);
  a.set_content_type(type);
  a.set_content(content);
  a.set_content_id(content_id);
  a.set_disposition(disposition);
  return a;
}

std::string BinaryBytes(size_t n) {
  std::string s(n, '\0');
  std::mt19937 rng(42);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string Build(const v1::EmailMessage& m, const v1::BuildOptions& options = {},
                  std::string* id = nullptr) {
  std::string ignored;
  absl::StatusOr<std::string> source = mime::Build(m, options, id ? id : &ignored);
  EXPECT_TRUE(source.ok()) << source.status();
  return source.ok() ? *source : "";
}

v1::EmailMessage Parse(absl::string_view source, std::vector<std::string>* warnings = nullptr,
                       ParseOptions options = {}) {
  std::vector<std::string> local;
  return mime::Parse(source, options, warnings ? warnings : &local);
}

std::string Diff(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  google::protobuf::util::MessageDifferencer differ;
  std::string report;
  differ.ReportDifferencesToString(&report);
  differ.Compare(a, b);
  return report;
}

// Every string (not bytes) field of `m`, recursively, is valid UTF-8.
bool AllStringsValidUtf8(const google::protobuf::Message& m) {
  const auto* reflection = m.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(m, &fields);
  auto valid = [](const std::string& s) {
    // Round-trip through the proto wire format with UTF-8 checks would log; check here.
    size_t i = 0;
    while (i < s.size()) {
      unsigned char c = s[i];
      size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
      if (len == 0 || i + len > s.size()) return false;
      for (size_t k = 1; k < len; ++k) {
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
      }
      i += len;
    }
    return true;
  };
  for (const auto* f : fields) {
    using FD = google::protobuf::FieldDescriptor;
    if (f->type() == FD::TYPE_STRING) {
      if (f->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(m, f); ++i) {
          if (!valid(reflection->GetRepeatedString(m, f, i))) return false;
        }
      } else if (!valid(reflection->GetString(m, f))) {
        return false;
      }
    } else if (f->type() == FD::TYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(m, f); ++i) {
          if (!AllStringsValidUtf8(reflection->GetRepeatedMessage(m, f, i))) return false;
        }
      } else if (!AllStringsValidUtf8(reflection->GetMessage(m, f))) {
        return false;
      }
    }
  }
  return true;
}

// Lines of the header block of `source` (up to the first empty line), unfolded.
std::vector<std::string> HeaderLines(const std::string& source) {
  std::string block = source.substr(0, source.find("\r\n\r\n"));
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(block, "\r\n")) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !lines.empty()) {
      absl::StrAppend(&lines.back(), line);
    } else {
      lines.emplace_back(line);
    }
  }
  return lines;
}

bool HasHeader(const std::string& source, absl::string_view name) {
  for (const std::string& line : HeaderLines(source)) {
    if (absl::StartsWithIgnoreCase(line, absl::StrCat(name, ":"))) return true;
  }
  return false;
}

// Every line ends with CRLF and is at most 998 characters (RFC 5322 section 2.1.1).
void ExpectWellFormedLines(const std::string& source) {
  size_t start = 0;
  while (start < source.size()) {
    size_t lf = source.find('\n', start);
    ASSERT_NE(lf, std::string::npos) << "source does not end with a line break";
    ASSERT_GT(lf, 0u);
    ASSERT_EQ(source[lf - 1], '\r') << "bare LF at byte " << lf;
    EXPECT_LE(lf - 1 - start, 998u) << "line too long at byte " << start;
    start = lf + 1;
  }
}

// Encoded-words are at most 75 characters (RFC 2047 section 2).
void ExpectShortEncodedWords(const std::string& source) {
  size_t pos = 0;
  while ((pos = source.find("=?", pos)) != std::string::npos) {
    size_t end = source.find("?=", pos + 2);
    // Skip "=?" + charset + "?B?" so that "?=" inside the prefix is not taken as the end.
    size_t q = source.find('?', pos + 2);
    q = source.find('?', q + 1);
    end = source.find("?=", q + 1);
    ASSERT_NE(end, std::string::npos);
    EXPECT_LE(end + 2 - pos, 75u) << source.substr(pos, end + 2 - pos);
    pos = end + 2;
  }
}

v1::EmailMessage FullMessage() {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("Élodie Dupont, Jr.", "elodie@example.com");
  *m.mutable_sender() = Addr("Secrétariat", "secretariat@example.com");
  *m.add_reply_to() = Addr("Équipe \"ventes\"", "ventes@example.com");
  *m.add_reply_to() = Addr("", "noreply@example.com");
  *m.add_to() = Addr("Bob", "bob@example.org");
  *m.add_to() = Addr("山田 太郎", "taro@example.jp");
  *m.add_cc() = Addr("Zoë O'Brien (ops)", "zoe@example.net");
  *m.add_bcc() = Addr("Hidden Ĥelper", "hidden@example.net");
  m.set_subject(
      "Réunion d'été — 会議の議題について、とても長い件名がここに続きます and then some plain "
      "ASCII words to make it fold across several lines of the header");
  m.set_text_body(
      "Bonjour à tous,\r\n\r\nVoici le compte rendu. Привет! 你好\r\n-- \r\nÉlodie\r\n");
  m.set_html_body(
      "<html><body><p>Bonjour à tous,</p><img src=\"cid:logo@example.com\"></body></html>\r\n");
  *m.add_attachments() = Attach("logo été.png", "image/png", BinaryBytes(3000), "logo@example.com",
                                v1::ATTACHMENT_DISPOSITION_INLINE);
  *m.add_attachments() = Attach("rapport été 2024 — version définitive très longue.pdf",
                                "application/pdf", BinaryBytes(70000));
  *m.add_attachments() =
      Attach("notes.txt", "text/plain; charset=utf-8", "line one\nligne deux é\n");
  v1::Header* h = m.add_headers();
  h->set_name("X-Mailer");
  h->set_value("mailpool test");
  h = m.add_headers();
  h->set_name("List-Id");
  h->set_value("Équipe de développement <dev.example.com>");
  h = m.add_headers();
  h->set_name("X-Long");
  h->set_value(
      "a long ASCII value that certainly needs folding because it is much longer than "
      "seventy-eight characters, and then some more words to be sure");
  m.set_message_id("20240229.1234@example.com");
  m.add_in_reply_to("parent@example.com");
  m.add_references("root@example.com");
  m.add_references("middle.1@example.com");
  m.add_references("parent@example.com");
  m.mutable_date()->set_seconds(1709211909);  // 2024-02-29 13:05:09 UTC
  m.set_date_utc_offset_minutes(-330);
  m.set_priority(v1::PRIORITY_HIGH);
  m.set_sensitivity(v1::SENSITIVITY_COMPANY_CONFIDENTIAL);
  m.set_delivery_receipt(true);
  m.set_read_receipt(true);
  *m.mutable_read_receipt_to() = Addr("Réception", "receipts@example.com");
  return m;
}

// ---------------------------------------------------------------------------------------
// Build -> Parse -> equal.

class RoundTripTest : public ::testing::TestWithParam<v1::HeaderEncoding> {};

TEST_P(RoundTripTest, EveryFieldSurvivesBuildThenParse) {
  v1::EmailMessage m = FullMessage();
  v1::BuildOptions options;
  options.set_header_encoding(GetParam());
  options.set_include_bcc_header(true);
  std::string id;
  std::string source = Build(m, options, &id);
  EXPECT_EQ(id, m.message_id());
  ExpectWellFormedLines(source);

  std::vector<std::string> warnings;
  v1::EmailMessage parsed = Parse(source, &warnings);
  EXPECT_THAT(warnings, IsEmpty());

  v1::EmailMessage expected = m;
  expected.set_size(source.size());
  // Build places inline parts first (multipart/related), then the other attachments;
  // parts: 1 alternative (1.1 text, 1.2 related (1.2.1 html, 1.2.2 logo)), 2 pdf, 3 notes.
  const char* part_ids[] = {"1.2.2", "2", "3"};
  for (int i = 0; i < expected.attachments_size(); ++i) {
    v1::Attachment* a = expected.mutable_attachments(i);
    a->set_size(a->content().size());
    a->set_part_id(part_ids[i]);
  }
  EXPECT_EQ(Diff(expected, parsed), "");
  EXPECT_TRUE(AllStringsValidUtf8(parsed));
}

TEST_P(RoundTripTest, HeadersAreAsciiOnlyWithRfc2047) {
  v1::BuildOptions options;
  options.set_header_encoding(GetParam());
  std::string source = Build(FullMessage(), options);
  std::string headers = source.substr(0, source.find("\r\n\r\n"));
  bool ascii = true;
  for (unsigned char c : headers) ascii = ascii && c < 0x80;
  if (GetParam() == v1::HEADER_ENCODING_UTF8) {
    EXPECT_FALSE(ascii);
    EXPECT_THAT(headers, HasSubstr("From: \"Élodie Dupont, Jr.\" <elodie@example.com>"));
    EXPECT_THAT(headers, HasSubstr("山田 太郎 <taro@example.jp>"));
  } else {
    EXPECT_TRUE(ascii);
    EXPECT_THAT(headers, HasSubstr("=?UTF-8?B?"));
    ExpectShortEncodedWords(headers);
  }
  // The RFC 2231 file name is written the same way in both modes.
  EXPECT_THAT(source, HasSubstr("filename*0*=UTF-8''rapport%20%C3%A9t%C3%A9"));
}

INSTANTIATE_TEST_SUITE_P(BothEncodings, RoundTripTest,
                         ::testing::Values(v1::HEADER_ENCODING_UNSPECIFIED,
                                           v1::HEADER_ENCODING_UTF8),
                         [](const auto& info) {
                           return info.param == v1::HEADER_ENCODING_UTF8 ? "Utf8" : "Rfc2047";
                         });

TEST(BuildTest, WholeSourceIsSevenBitWithRfc2047) {
  std::string source = Build(FullMessage());
  for (size_t i = 0; i < source.size(); ++i) {
    ASSERT_LT(static_cast<unsigned char>(source[i]), 0x80) << "8-bit byte at " << i;
  }
}

// Found by fuzzing (ParseSource output fed back to BuildSource): GMime's encoder grew
// without bound (gigabytes) on a long parameter name that is no RFC 2045 token.
TEST(BuildTest, ContentTypeParameterNamesThatAreNoTokensAreDropped) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.test");
  std::string bad_name = "\u00c7n";
  for (int i = 0; i < 30; ++i) bad_name += "\u00b2";
  *m.add_attachments() = Attach(
      "x.png", "image/png; " + bad_name + "ame=\"ype: i\u00bbage/png\"; good=yes", "png");
  std::string source = Build(m);
  EXPECT_LT(source.size(), 4096u);
  EXPECT_THAT(source, ::testing::HasSubstr("Content-Type: image/png; good=yes; name=x.png\r\n"));
}

TEST(BuildTest, NonAsciiSubjectsInManyScriptsRoundTrip) {
  for (const char* subject :
       {"Café crème", "Привет, мир", "日本語の件名", "한국어 제목", "Ελληνικά", "עברית",
        "emoji 🎉🎉🎉", "mixed  double  spaces é  here", " leading and trailing é ",
        "=?looks-like?Q?an_encoded_word?=", "tab\tinside é",
        "Ça fait 45 octets: ééééééééééééééééééééééé and more and more ééééééééééééééé"}) {
    for (auto encoding : {v1::HEADER_ENCODING_RFC2047, v1::HEADER_ENCODING_UTF8}) {
      v1::EmailMessage m;
      *m.mutable_from() = Addr("", "a@example.com");
      m.set_subject(subject);
      v1::BuildOptions options;
      options.set_header_encoding(encoding);
      std::string source = Build(m, options);
      ExpectShortEncodedWords(source.substr(0, source.find("\r\n\r\n")));
      // Parsers strip the whitespace around a header value.
      std::string expected(absl::StripAsciiWhitespace(subject));
      EXPECT_EQ(Parse(source).subject(), expected) << subject << " " << encoding;
    }
  }
}

TEST(BuildTest, DisplayNamesWithSpecialsRoundTrip) {
  for (const char* name : {"Plain Name", "Last, First", "O'Brien", "Quote \"q\" inside",
                           "Back\\slash", "a@b", "(comment-like)", "Ünïcödé, Sr.", "x  y"}) {
    for (auto encoding : {v1::HEADER_ENCODING_RFC2047, v1::HEADER_ENCODING_UTF8}) {
      v1::EmailMessage m;
      *m.mutable_from() = Addr(name, "a@example.com");
      v1::BuildOptions options;
      options.set_header_encoding(encoding);
      v1::EmailMessage parsed = Parse(Build(m, options));
      EXPECT_EQ(parsed.from().name(), name) << encoding;
      EXPECT_EQ(parsed.from().address(), "a@example.com");
    }
  }
}

TEST(BuildTest, BccIsLeftOutUnlessAsked) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  *m.add_to() = Addr("", "b@example.com");
  *m.add_bcc() = Addr("Secret", "secret@example.com");
  std::string source = Build(m);
  EXPECT_FALSE(HasHeader(source, "Bcc"));
  EXPECT_THAT(source, ::testing::Not(HasSubstr("secret@example.com")));
  EXPECT_THAT(Parse(source).bcc(), IsEmpty());

  v1::BuildOptions options;
  options.set_include_bcc_header(true);
  source = Build(m, options);
  EXPECT_TRUE(HasHeader(source, "Bcc"));
  ASSERT_EQ(Parse(source).bcc_size(), 1);
  EXPECT_EQ(Parse(source).bcc(0).address(), "secret@example.com");
}

TEST(BuildTest, GeneratesMessageIdWhenMissingOrAsked) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@sub.example.com");
  std::string id;
  std::string source = Build(m, {}, &id);
  EXPECT_TRUE(absl::EndsWith(id, "@sub.example.com")) << id;
  EXPECT_EQ(Parse(source).message_id(), id);

  v1::BuildOptions options;
  options.set_message_id_domain("ids.example.net");
  std::string id2;
  Build(m, options, &id2);
  EXPECT_TRUE(absl::EndsWith(id2, "@ids.example.net")) << id2;
  EXPECT_NE(id, id2);

  m.set_message_id("kept@example.com");
  std::string id3;
  Build(m, {}, &id3);
  EXPECT_EQ(id3, "kept@example.com");
  options.set_regenerate_message_id(true);
  Build(m, options, &id3);
  EXPECT_NE(id3, "kept@example.com");
  EXPECT_TRUE(absl::EndsWith(id3, "@ids.example.net"));

  // A From domain that cannot be a Message-ID right side (UTF-8): the fallback domain.
  *m.mutable_from() = Addr("", "a@exämple.com");
  m.clear_message_id();
  Build(m, {}, &id3);
  EXPECT_TRUE(absl::EndsWith(id3, "@mailpool.invalid")) << id3;
}

TEST(BuildTest, DateDefaultsToNow) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  v1::EmailMessage parsed = Parse(Build(m));
  EXPECT_NEAR(parsed.date().seconds(), now, 5);
  EXPECT_EQ(parsed.date_utc_offset_minutes(), 0);
  EXPECT_THAT(Build(m), HasSubstr(" +0000\r\n"));
}

TEST(BuildTest, DateKeepsItsOffset) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  m.mutable_date()->set_seconds(1709211909);
  for (int offset : {0, 60, -330, 840, -720, 345}) {
    m.set_date_utc_offset_minutes(offset);
    v1::EmailMessage parsed = Parse(Build(m));
    EXPECT_EQ(parsed.date().seconds(), 1709211909);
    EXPECT_EQ(parsed.date_utc_offset_minutes(), offset);
  }
  m.set_date_utc_offset_minutes(-330);
  EXPECT_THAT(Build(m), HasSubstr("Date: Thu, 29 Feb 2024 07:35:09 -0530\r\n"));
}

TEST(BuildTest, PriorityAndSensitivityHeaders) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  struct Case {
    v1::Priority priority;
    const char* x_priority;
    const char* importance;
  };
  for (const Case& c :
       {Case{v1::PRIORITY_HIGH, "1", "high"}, Case{v1::PRIORITY_NORMAL, "3", "normal"},
        Case{v1::PRIORITY_LOW, "5", "low"}}) {
    m.set_priority(c.priority);
    std::string source = Build(m);
    EXPECT_THAT(source, HasSubstr(absl::StrCat("X-Priority: ", c.x_priority, "\r\n")));
    EXPECT_THAT(source, HasSubstr(absl::StrCat("Importance: ", c.importance, "\r\n")));
    EXPECT_EQ(Parse(source).priority(), c.priority);
  }
  m.set_priority(v1::PRIORITY_UNSPECIFIED);
  EXPECT_FALSE(HasHeader(Build(m), "X-Priority"));
  EXPECT_FALSE(HasHeader(Build(m), "Importance"));

  for (auto s :
       {v1::SENSITIVITY_PERSONAL, v1::SENSITIVITY_PRIVATE, v1::SENSITIVITY_COMPANY_CONFIDENTIAL}) {
    m.set_sensitivity(s);
    EXPECT_EQ(Parse(Build(m)).sensitivity(), s);
  }
  m.set_sensitivity(v1::SENSITIVITY_PRIVATE);
  EXPECT_THAT(Build(m), HasSubstr("Sensitivity: Private\r\n"));
}

TEST(BuildTest, ReceiptsDefaultToTheFromAddress) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("Alice", "alice@example.com");
  m.set_read_receipt(true);
  m.set_delivery_receipt(true);
  std::string source = Build(m);
  EXPECT_THAT(source, HasSubstr("Disposition-Notification-To: Alice <alice@example.com>\r\n"));
  EXPECT_THAT(source, HasSubstr("Return-Receipt-To: Alice <alice@example.com>\r\n"));
  v1::EmailMessage parsed = Parse(source);
  EXPECT_TRUE(parsed.read_receipt());
  EXPECT_TRUE(parsed.delivery_receipt());
  EXPECT_EQ(parsed.read_receipt_to().address(), "alice@example.com");

  m.set_read_receipt(false);
  m.set_delivery_receipt(false);
  *m.mutable_read_receipt_to() = Addr("", "ignored@example.com");  // ignored without the flag
  source = Build(m);
  EXPECT_FALSE(HasHeader(source, "Disposition-Notification-To"));
  EXPECT_FALSE(HasHeader(source, "Return-Receipt-To"));
}

// The Content-Type lines of `source`, in order.
std::vector<std::string> ContentTypes(const std::string& source) {
  std::vector<std::string> types;
  size_t pos = 0;
  while ((pos = source.find("Content-Type: ", pos)) != std::string::npos) {
    pos += 14;
    size_t end = source.find_first_of(";\r", pos);
    types.push_back(source.substr(pos, end - pos));
  }
  return types;
}

TEST(BuildTest, MultipartStructures) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");

  m.set_text_body("text only\r\n");
  EXPECT_THAT(ContentTypes(Build(m)), ElementsAre("text/plain"));

  m.clear_text_body();
  m.set_html_body("<p>html only</p>");
  EXPECT_THAT(ContentTypes(Build(m)), ElementsAre("text/html"));

  m.set_text_body("text\r\n");
  EXPECT_THAT(ContentTypes(Build(m)),
              ElementsAre("multipart/alternative", "text/plain", "text/html"));

  *m.add_attachments() =
      Attach("i.png", "image/png", "PNG", "img@x", v1::ATTACHMENT_DISPOSITION_UNSPECIFIED);
  EXPECT_THAT(ContentTypes(Build(m)), ElementsAre("multipart/alternative", "text/plain",
                                                  "multipart/related", "text/html", "image/png"));
  EXPECT_THAT(Build(m), HasSubstr("type=\"text/html\""));

  *m.add_attachments() = Attach("a.pdf", "application/pdf", "%PDF");
  std::string source = Build(m);
  EXPECT_THAT(ContentTypes(source),
              ElementsAre("multipart/mixed", "multipart/alternative", "text/plain",
                          "multipart/related", "text/html", "image/png", "application/pdf"));
  v1::EmailMessage parsed = Parse(source);
  EXPECT_EQ(parsed.text_body(), "text\r\n");
  EXPECT_EQ(parsed.html_body(), "<p>html only</p>");
  ASSERT_EQ(parsed.attachments_size(), 2);
  EXPECT_EQ(parsed.attachments(0).part_id(), "1.2.2");
  EXPECT_EQ(parsed.attachments(0).content_id(), "img@x");
  EXPECT_EQ(parsed.attachments(0).disposition(), v1::ATTACHMENT_DISPOSITION_INLINE);
  EXPECT_EQ(parsed.attachments(1).part_id(), "2");
  EXPECT_EQ(parsed.attachments(1).disposition(), v1::ATTACHMENT_DISPOSITION_ATTACHMENT);

  // Without HTML an inline part has nothing to be related to: it goes into mixed.
  m.clear_html_body();
  EXPECT_THAT(ContentTypes(Build(m)),
              ElementsAre("multipart/mixed", "text/plain", "image/png", "application/pdf"));

  // Attachments only.
  m.clear_text_body();
  source = Build(m);
  EXPECT_THAT(ContentTypes(source), ElementsAre("multipart/mixed", "image/png", "application/pdf"));
  parsed = Parse(source);
  EXPECT_EQ(parsed.text_body(), "");
  ASSERT_EQ(parsed.attachments_size(), 2);
  EXPECT_EQ(parsed.attachments(0).part_id(), "1");

  // Nothing at all: an empty text/plain body.
  m.clear_attachments();
  source = Build(m);
  EXPECT_THAT(ContentTypes(source), ElementsAre("text/plain"));
  EXPECT_EQ(Parse(source).text_body(), "");
}

TEST(BuildTest, GuessesContentTypeAndDisposition) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  m.set_text_body("x");
  *m.add_attachments() =
      Attach("Report.PDF", "", "%PDF", "", v1::ATTACHMENT_DISPOSITION_UNSPECIFIED);
  *m.add_attachments() =
      Attach("photo.jpeg", "", "JPG", "", v1::ATTACHMENT_DISPOSITION_UNSPECIFIED);
  *m.add_attachments() = Attach("noext", "", "???", "", v1::ATTACHMENT_DISPOSITION_UNSPECIFIED);
  *m.add_attachments() = Attach("", "", "anon", "cid@x", v1::ATTACHMENT_DISPOSITION_UNSPECIFIED);
  v1::EmailMessage parsed = Parse(Build(m));
  ASSERT_EQ(parsed.attachments_size(), 4);
  EXPECT_EQ(parsed.attachments(0).content_type(), "application/pdf");
  EXPECT_EQ(parsed.attachments(0).disposition(), v1::ATTACHMENT_DISPOSITION_ATTACHMENT);
  EXPECT_EQ(parsed.attachments(1).content_type(), "image/jpeg");
  EXPECT_EQ(parsed.attachments(2).content_type(), "application/octet-stream");
  EXPECT_EQ(parsed.attachments(3).disposition(), v1::ATTACHMENT_DISPOSITION_INLINE);
  EXPECT_EQ(parsed.attachments(3).content(), "anon");
}

// The Content-Transfer-Encoding of the (only) text part of a message with `body`.
std::string TransferEncodingOf(const std::string& body) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  m.set_text_body(body);
  std::string source = Build(m);
  EXPECT_EQ(Parse(source).text_body(), body);
  for (const std::string& line : HeaderLines(source)) {
    if (absl::StartsWith(line, "Content-Transfer-Encoding: ")) return line.substr(27);
  }
  return "7bit";
}

TEST(BuildTest, ChoosesTransferEncodingSensibly) {
  EXPECT_EQ(TransferEncodingOf("Plain ASCII text.\r\nSecond line.\r\n"), "7bit");
  EXPECT_EQ(TransferEncodingOf("Un texte en français, avec quelques accents.\r\n"),
            "quoted-printable");
  EXPECT_EQ(TransferEncodingOf("Это текст целиком на русском языке.\r\n"), "base64");
  EXPECT_EQ(TransferEncodingOf(std::string(1500, 'x') + "\r\n"), "quoted-printable");
  EXPECT_EQ(TransferEncodingOf("trailing space \r\n=equals\r\n.\r\nFrom here\r\n"),
            "quoted-printable");
}

TEST(BuildTest, BodiesGetCrlfLineEnds) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  m.set_text_body("one\ntwo\rthree\r\nfour é\n");
  m.set_html_body("<p>\n</p>");
  std::string source = Build(m);
  ExpectWellFormedLines(source);
  v1::EmailMessage parsed = Parse(source);
  EXPECT_EQ(parsed.text_body(), "one\r\ntwo\r\nthree\r\nfour é\r\n");
  EXPECT_EQ(parsed.html_body(), "<p>\r\n</p>");
}

TEST(BuildTest, AttachmentsKeepEveryByte) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  *m.add_attachments() = Attach("bytes.bin", "application/octet-stream", all_bytes);
  *m.add_attachments() = Attach("lf.txt", "text/plain", "a\nb\r\nc\rd");
  *m.add_attachments() = Attach("empty.dat", "application/octet-stream", "");
  *m.add_attachments() = Attach("big.bin", "application/octet-stream", BinaryBytes(1 << 20));
  v1::EmailMessage parsed = Parse(Build(m));
  ASSERT_EQ(parsed.attachments_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(parsed.attachments(i).content(), m.attachments(i).content()) << i;
    EXPECT_EQ(parsed.attachments(i).size(), m.attachments(i).content().size());
  }
}

TEST(BuildTest, EmbeddedMessageAttachment) {
  std::string inner = "From: x@example.com\r\nSubject: inner\r\n\r\nInner body\r\n";
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  m.set_text_body("see attached\r\n");
  *m.add_attachments() = Attach("forwarded.eml", "message/rfc822", inner);
  std::string source = Build(m);
  EXPECT_THAT(source, ::testing::Not(HasSubstr("Content-Transfer-Encoding: base64")));
  v1::EmailMessage parsed = Parse(source);
  ASSERT_EQ(parsed.attachments_size(), 1);
  EXPECT_EQ(parsed.attachments(0).content_type(), "message/rfc822");
  EXPECT_EQ(parsed.attachments(0).file_name(), "forwarded.eml");
  EXPECT_EQ(parsed.attachments(0).content(), inner);
}

TEST(BuildTest, LongHeadersAreFoldedAndUnfoldBack) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  for (int i = 0; i < 40; ++i) {
    *m.add_to() = Addr(absl::StrCat("Recipient Number ", i), absl::StrCat("r", i, "@example.com"));
  }
  for (int i = 0; i < 30; ++i) m.add_references(absl::StrCat("ref", i, "@example.com"));
  v1::Header* h = m.add_headers();
  h->set_name("X-Words");
  std::string words;
  for (int i = 0; i < 500; ++i) absl::StrAppend(&words, i ? " " : "", "word", i);
  h->set_value(words);
  std::string source = Build(m);
  ExpectWellFormedLines(source);
  for (absl::string_view line : absl::StrSplit(source.substr(0, source.find("\r\n\r\n")), "\r\n")) {
    EXPECT_LE(line.size(), 78u) << line;
  }
  v1::EmailMessage parsed = Parse(source);
  EXPECT_EQ(parsed.to_size(), 40);
  EXPECT_EQ(parsed.to(39).name(), "Recipient Number 39");
  EXPECT_EQ(parsed.references_size(), 30);
  ASSERT_EQ(parsed.headers_size(), 1);
  EXPECT_EQ(parsed.headers(0).value(), words);
}

TEST(BuildTest, Utf8AddressesInUtf8Mode) {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("Jörg", "jörg@bücher.example");
  v1::BuildOptions options;
  options.set_header_encoding(v1::HEADER_ENCODING_UTF8);
  v1::EmailMessage parsed = Parse(Build(m, options));
  EXPECT_EQ(parsed.from().address(), "jörg@bücher.example");
  EXPECT_EQ(parsed.from().name(), "Jörg");
  // An ASCII message carries the punycode form of the domain.
  std::string ascii = Build(m);
  EXPECT_THAT(ascii, HasSubstr("@xn--bcher-kva.example>"));
}

// ---------------------------------------------------------------------------------------
// Build: invalid input.

void ExpectInvalid(const v1::EmailMessage& m, absl::string_view field,
                   const v1::BuildOptions& options = {}) {
  std::string id;
  absl::StatusOr<std::string> source = mime::Build(m, options, &id);
  ASSERT_FALSE(source.ok()) << field;
  EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(source.status().message()), HasSubstr(std::string(field)));
}

v1::EmailMessage Minimal() {
  v1::EmailMessage m;
  *m.mutable_from() = Addr("", "a@example.com");
  return m;
}

TEST(BuildValidationTest, RequiresAValidFrom) {
  ExpectInvalid(v1::EmailMessage(), "message.from.address");
  v1::EmailMessage m = Minimal();
  for (const char* bad : {"no-at-sign", "@example.com", "a@", "a b@example.com", "a@exa mple.com",
                          "a..b@example.com", ".a@example.com", "a@example..com", "<a@example.com>",
                          "a@example.com\r\nBcc: x@y", "a@b@c", "\"unterminated@example.com"}) {
    m.mutable_from()->set_address(bad);
    ExpectInvalid(m, "message.from.address");
  }
  for (const char* good :
       {"a@example.com", "first.last+tag@sub.example.co.uk", "\"quoted local\"@example.com",
        "a@[192.0.2.1]", "ü@exämple.com", "o'brien@example.ie", "x@localhost"}) {
    m.mutable_from()->set_address(good);
    std::string id;
    EXPECT_TRUE(mime::Build(m, {}, &id).ok()) << good;
  }
}

TEST(BuildValidationTest, RejectsHeaderInjection) {
  v1::EmailMessage m = Minimal();
  m.set_subject("Hello\r\nBcc: victim@example.com");
  ExpectInvalid(m, "message.subject");
  m.set_subject("Hello\nX");
  ExpectInvalid(m, "message.subject");
  m.set_subject(std::string("Hello\0X", 7));
  ExpectInvalid(m, "message.subject");

  m = Minimal();
  m.mutable_from()->set_name("Evil\r\nBcc: x@example.com");
  ExpectInvalid(m, "message.from.name");

  m = Minimal();
  *m.add_to() = Addr("ok", "b@example.com");
  *m.add_cc() = Addr("bad\n", "c@example.com");
  ExpectInvalid(m, "message.cc[0].name");

  m = Minimal();
  v1::Header* h = m.add_headers();
  h->set_name("X-Ok");
  h->set_value("value\r\nBcc: x@example.com");
  ExpectInvalid(m, "message.headers[0].value");
  h->set_value(std::string("a\0b", 3));
  ExpectInvalid(m, "message.headers[0].value");
  h->set_value(std::string(16 * 1024 + 1, 'a'));
  ExpectInvalid(m, "message.headers[0].value");
  // Cannot be folded within 998 characters.
  h->set_value(std::string(2000, 'a'));
  ExpectInvalid(m, "message.headers[0].value");
}

TEST(BuildValidationTest, RejectsBadHeaderNames) {
  for (const char* bad :
       {"", "X Space", "X:Colon", "X-\xC3\xA9", "X\tTab",
        "X-Very-Long-Name-That-Goes-Past-Seventy-Six-Bytes-Which-Is-The-Limit-Here-Really"}) {
    v1::EmailMessage m = Minimal();
    v1::Header* h = m.add_headers();
    h->set_name(bad);
    h->set_value("v");
    ExpectInvalid(m, "message.headers[0].name");
  }
}

TEST(BuildValidationTest, RejectsHeadersOwnedByDedicatedFields) {
  for (const char* owned : {"Content-Type",
                            "content-transfer-encoding",
                            "Content-Disposition",
                            "MIME-Version",
                            "From",
                            "to",
                            "Bcc",
                            "Subject",
                            "Date",
                            "Message-ID",
                            "In-Reply-To",
                            "References",
                            "X-Priority",
                            "Importance",
                            "Priority",
                            "Sensitivity",
                            "Return-Receipt-To",
                            "Disposition-Notification-To",
                            "Sender",
                            "Reply-To",
                            "Cc"}) {
    v1::EmailMessage m = Minimal();
    v1::Header* h = m.add_headers();
    h->set_name("X-Fine");
    h->set_value("ok");
    h = m.add_headers();
    h->set_name(owned);
    h->set_value("text/html");
    std::string id;
    absl::StatusOr<std::string> source = mime::Build(m, {}, &id);
    ASSERT_FALSE(source.ok()) << owned;
    EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(source.status().message()), HasSubstr("message.headers[1].name"));
    EXPECT_THAT(std::string(source.status().message()), HasSubstr(owned));
  }
}

TEST(BuildValidationTest, RejectsBadIdsDatesEnumsAndAttachments) {
  v1::EmailMessage m = Minimal();
  m.set_message_id("<with-brackets@example.com>");
  ExpectInvalid(m, "message.message_id");
  m.set_message_id("with space@example.com");
  ExpectInvalid(m, "message.message_id");
  m = Minimal();
  m.add_references("ok@example.com");
  m.add_references("bad\r\n@example.com");
  ExpectInvalid(m, "message.references[1]");
  m = Minimal();
  m.add_in_reply_to("");
  ExpectInvalid(m, "message.in_reply_to[0]");

  m = Minimal();
  m.set_date_utc_offset_minutes(841);
  ExpectInvalid(m, "message.date_utc_offset_minutes");
  m = Minimal();
  m.mutable_date()->set_seconds(253402300800);
  ExpectInvalid(m, "message.date");

  m = Minimal();
  m.set_priority(static_cast<v1::Priority>(42));
  ExpectInvalid(m, "message.priority");
  m = Minimal();
  m.set_sensitivity(static_cast<v1::Sensitivity>(42));
  ExpectInvalid(m, "message.sensitivity");

  m = Minimal();
  *m.add_attachments() = Attach("../etc/passwd", "text/plain", "x");
  ExpectInvalid(m, "message.attachments[0].file_name");
  m.mutable_attachments(0)->set_file_name("a\\b");
  ExpectInvalid(m, "message.attachments[0].file_name");
  m.mutable_attachments(0)->set_file_name(std::string(256, 'a'));
  ExpectInvalid(m, "message.attachments[0].file_name");
  m.mutable_attachments(0)->set_file_name("ok.txt");
  m.mutable_attachments(0)->set_content_type("not a type");
  ExpectInvalid(m, "message.attachments[0].content_type");
  m.mutable_attachments(0)->set_content_type("multipart/mixed; boundary=x");
  ExpectInvalid(m, "message.attachments[0].content_type");
  m.mutable_attachments(0)->set_content_type("text/plain\r\nX: y");
  ExpectInvalid(m, "message.attachments[0].content_type");
  m.mutable_attachments(0)->set_content_type("text/plain");
  m.mutable_attachments(0)->set_content_id("<bad>");
  ExpectInvalid(m, "message.attachments[0].content_id");

  m = Minimal();
  v1::BuildOptions options;
  options.set_message_id_domain("bad domain");
  ExpectInvalid(m, "options.message_id_domain", options);
}

// ---------------------------------------------------------------------------------------
// Parse: real-world mail.

TEST(ParseTest, DecodesSubjectsInSeveralCharsets) {
  std::string source =
      "From: =?ISO-8859-1?Q?Andr=E9?= Pirard <pirard@example.be>\r\n"
      "To: =?KOI8-R?B?8NLJ18XU?= <ivan@example.ru>, =?shift_jis?B?k/qWe4zq?= <jp@example.jp>\r\n"
      "Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n"
      "  =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?= =?windows-1252?Q?=80uro?=\r\n"
      "\r\n"
      "body\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(m.from().name(), "André Pirard");
  ASSERT_EQ(m.to_size(), 2);
  EXPECT_EQ(m.to(0).name(), "Привет");
  EXPECT_EQ(m.to(1).name(), "日本語");
  EXPECT_EQ(m.subject(), "If you can read this you understand the example.€uro");
}

TEST(ParseTest, ConvertsBodiesFromTheirDeclaredCharset) {
  std::string source =
      "From: a@example.com\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/alternative; boundary=\"b\"\r\n"
      "\r\n"
      "--b\r\n"
      "Content-Type: text/plain; charset=iso-8859-1\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n"
      "\r\n"
      "Caf=E9 cr=E8me=\r\n"
      " soft break\r\n"
      "--b\r\n"
      "Content-Type: text/html; charset=\"KOI8-R\"\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "PHA+8NLJ18XUPC9wPg==\r\n"
      "--b--\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(m.text_body(), "Café crème soft break");
  EXPECT_EQ(m.html_body(), "<p>Привет</p>");
}

TEST(ParseTest, UnknownCharsetDegradesWithAWarning) {
  std::string source =
      "From: a@example.com\r\n"
      "Content-Type: text/plain; charset=x-no-such-charset\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "\r\n"
      "caf\xE9 and utf-8 would be caf\xC3\xA9\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_THAT(warnings, Contains(HasSubstr("unknown charset \"x-no-such-charset\"")));
  EXPECT_EQ(m.text_body(), "café and utf-8 would be cafÃ©\r\n");  // read as windows-1252
  EXPECT_TRUE(AllStringsValidUtf8(m));
}

TEST(ParseTest, InvalidUtf8BecomesReplacementCharacters) {
  std::string source =
      "From: a@example.com\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "\r\n"
      "ok \xC3\xA9 bad \xFF\xFE end\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_EQ(m.text_body(), "ok é bad \xEF\xBF\xBD\xEF\xBF\xBD end\r\n");
  EXPECT_THAT(warnings, Contains(HasSubstr("invalid UTF-8")));
}

TEST(ParseTest, BytesInvalidInTheDeclaredCharsetAreReported) {
  std::string source =
      "From: a@example.com\r\n"
      "Content-Type: text/plain; charset=shift_jis\r\n"
      "\r\n"
      "\x93\xfa\x96\x7b \x81\r\n";  // "日本" then a truncated lead byte
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_TRUE(absl::StartsWith(m.text_body(), "日本 ")) << m.text_body();
  EXPECT_THAT(m.text_body(), HasSubstr("\xEF\xBF\xBD"));
  EXPECT_THAT(warnings, Contains(HasSubstr("not valid shift_jis")));
}

TEST(ParseTest, EightBitHeadersAreDecodedWithAWarning) {
  std::string source =
      "From: Andr\xE9 <andre@example.com>\r\n"
      "To: J\xC3\xBCrgen <j@example.com>\r\n"
      "Subject: caf\xE9 cr\xE8me\r\n"
      "\r\n"
      "body\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_EQ(m.subject(), "café crème");
  EXPECT_EQ(m.from().name(), "André");
  EXPECT_EQ(m.to(0).name(), "Jürgen");
  EXPECT_THAT(warnings, Contains(HasSubstr("8-bit")));
  EXPECT_TRUE(AllStringsValidUtf8(m));
}

TEST(ParseTest, UndecodableEncodedWordIsReported) {
  std::string source =
      "From: a@example.com\r\n"
      "Subject: =?x-bogus?Q?abc?= and =?utf-8?B?!!!?=\r\n"
      "\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_THAT(warnings, Contains(HasSubstr("bad encoded-word in Subject: unknown charset")));
  EXPECT_THAT(warnings, Contains(HasSubstr("bad encoded-word in Subject: bad base64")));
  EXPECT_TRUE(AllStringsValidUtf8(m));
}

TEST(ParseTest, MissingClosingBoundary) {
  std::string source =
      "From: a@example.com\r\n"
      "Content-Type: multipart/mixed; boundary=\"b\"\r\n"
      "\r\n"
      "--b\r\n"
      "Content-Type: text/plain\r\n"
      "\r\n"
      "hello\r\n"
      "--b\r\n"
      "Content-Type: application/pdf; name=\"cut.pdf\"\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "JVBERi0xLjQK\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_EQ(m.text_body(), "hello");
  ASSERT_EQ(m.attachments_size(), 1);
  EXPECT_EQ(m.attachments(0).file_name(), "cut.pdf");
  EXPECT_EQ(m.attachments(0).content(), "%PDF-1.4\n");
  EXPECT_THAT(warnings, Contains(HasSubstr("missing closing boundary")));
}

TEST(ParseTest, MultipartWithoutBoundaryKeepsItsText) {
  std::string source =
      "From: a@example.com\r\n"
      "Content-Type: multipart/alternative\r\n"
      "\r\n"
      "Some text that would otherwise be lost.\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_THAT(m.text_body(), HasSubstr("Some text that would otherwise be lost."));
  EXPECT_THAT(warnings, Contains(HasSubstr("boundary")));
}

TEST(ParseTest, InputWithoutHeadersIsReadAsABody) {
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse("Just some text,\r\nno headers at all.\r\n", &warnings);
  EXPECT_EQ(m.text_body(), "Just some text,\r\nno headers at all.\r\n");
  EXPECT_THAT(warnings, Contains(HasSubstr("does not start with a header")));

  warnings.clear();
  m = Parse("\r\nEmpty header block.\r\n", &warnings);
  EXPECT_EQ(m.text_body(), "Empty header block.\r\n");
}

TEST(ParseTest, EmptyInput) {
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse("", &warnings);
  EXPECT_THAT(warnings, ElementsAre("empty input"));
  EXPECT_EQ(m.size(), 0u);
  EXPECT_FALSE(m.has_from());
}

TEST(ParseTest, LfLineEndsAndMboxFromLine) {
  std::string source =
      "From sender@example.com Thu Feb 29 13:05:09 2024\n"
      "From: Alice <alice@example.com>\n"
      "Subject: lf only\n"
      "Content-Type: text/plain; charset=utf-8\n"
      "\n"
      "line 1\n"
      "line 2 é\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_EQ(m.from().address(), "alice@example.com");
  EXPECT_EQ(m.subject(), "lf only");
  EXPECT_EQ(m.text_body(), "line 1\nline 2 é\n");
}

TEST(ParseTest, FileNamesFromRfc2231AndRfc2047) {
  std::string source =
      "From: a@example.com\r\n"
      "Content-Type: multipart/mixed; boundary=b\r\n"
      "\r\n"
      "--b\r\n"
      "Content-Type: application/pdf\r\n"
      "Content-Disposition: attachment;\r\n"
      " filename*0*=utf-8'fr'rapport%20%C3%A9t%C3%A9%20;\r\n"
      " filename*1*=2024.pdf\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "AAEC\r\n"
      "--b\r\n"
      "Content-Type: image/png; name=\"=?utf-8?B?aW1hZ2Ugw6l0w6kucG5n?=\"\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "AAEC\r\n"
      "--b\r\n"
      "Content-Type: text/plain; charset=iso-8859-1; name*=iso-8859-1''caf%E9.txt\r\n"
      "Content-Disposition: inline\r\n"
      "\r\n"
      "text attachment (it has a file name)\r\n"
      "--b--\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  ASSERT_EQ(m.attachments_size(), 3);
  EXPECT_EQ(m.attachments(0).file_name(), "rapport été 2024.pdf");
  EXPECT_EQ(m.attachments(0).content(), std::string("\x00\x01\x02", 3));
  EXPECT_EQ(m.attachments(0).part_id(), "1");
  EXPECT_EQ(m.attachments(1).file_name(), "image été.png");
  EXPECT_EQ(m.attachments(1).disposition(), v1::ATTACHMENT_DISPOSITION_UNSPECIFIED);
  EXPECT_EQ(m.attachments(2).file_name(), "café.txt");
  EXPECT_EQ(m.attachments(2).content_type(), "text/plain; charset=iso-8859-1");
  EXPECT_EQ(m.attachments(2).disposition(), v1::ATTACHMENT_DISPOSITION_INLINE);
  EXPECT_EQ(m.text_body(), "");
}

TEST(ParseTest, ImapPartNumbering) {
  // RFC 3501 section 6.4.5 BODY[<section>]: nested multiparts number their children
  // "N.M"; a message/rfc822 part is one attachment.
  std::string source =
      "From: a@example.com\r\n"
      "Content-Type: multipart/mixed; boundary=outer\r\n"
      "\r\n"
      "--outer\r\n"
      "Content-Type: multipart/alternative; boundary=alt\r\n"
      "\r\n"
      "--alt\r\n"
      "Content-Type: text/plain\r\n"
      "\r\n"
      "plain\r\n"
      "--alt\r\n"
      "Content-Type: multipart/related; boundary=rel\r\n"
      "\r\n"
      "--rel\r\n"
      "Content-Type: text/html\r\n"
      "\r\n"
      "<img src=cid:a>\r\n"
      "--rel\r\n"
      "Content-Type: image/gif\r\n"
      "Content-ID: <a>\r\n"
      "Content-Disposition: inline\r\n"
      "\r\n"
      "GIF\r\n"
      "--rel\r\n"
      "Content-Type: image/gif\r\n"
      "Content-ID: <b>\r\n"
      "\r\n"
      "GIF2\r\n"
      "--rel--\r\n"
      "--alt--\r\n"
      "--outer\r\n"
      "Content-Type: message/rfc822\r\n"
      "\r\n"
      "Subject: forwarded\r\n"
      "\r\n"
      "fwd body\r\n"
      "--outer\r\n"
      "Content-Type: text/calendar; method=REQUEST\r\n"
      "\r\n"
      "BEGIN:VCALENDAR\r\n"
      "--outer--\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(m.text_body(), "plain");
  EXPECT_EQ(m.html_body(), "<img src=cid:a>");
  ASSERT_EQ(m.attachments_size(), 4);
  EXPECT_EQ(m.attachments(0).part_id(), "1.2.2");
  EXPECT_EQ(m.attachments(0).content_id(), "a");
  EXPECT_EQ(m.attachments(1).part_id(), "1.2.3");
  EXPECT_EQ(m.attachments(1).content_id(), "b");
  EXPECT_EQ(m.attachments(2).part_id(), "2");
  EXPECT_EQ(m.attachments(2).content_type(), "message/rfc822");
  EXPECT_EQ(m.attachments(2).content(), "Subject: forwarded\r\n\r\nfwd body");
  EXPECT_EQ(m.attachments(3).part_id(), "3");
  EXPECT_EQ(m.attachments(3).content_type(), "text/calendar; method=REQUEST");
}

TEST(ParseTest, SinglePartMessageBodyIsSectionOne) {
  std::string source =
      "From: a@example.com\r\n"
      "Content-Type: application/pdf\r\n"
      "Content-Disposition: attachment; filename=only.pdf\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "JVBERg==\r\n";
  v1::EmailMessage m = Parse(source);
  ASSERT_EQ(m.attachments_size(), 1);
  EXPECT_EQ(m.attachments(0).part_id(), "1");
  EXPECT_EQ(m.attachments(0).content(), "%PDF");
}

TEST(ParseTest, GroupsAreFlattened) {
  std::string source =
      "From: a@example.com\r\n"
      "To: undisclosed-recipients:;\r\n"
      "Cc: Team: Ann <ann@example.com>, bob@example.com;, carl@example.com\r\n"
      "\r\n";
  v1::EmailMessage m = Parse(source);
  EXPECT_THAT(m.to(), IsEmpty());
  ASSERT_EQ(m.cc_size(), 3);
  EXPECT_EQ(m.cc(0).name(), "Ann");
  EXPECT_EQ(m.cc(0).address(), "ann@example.com");
  EXPECT_EQ(m.cc(1).address(), "bob@example.com");
  EXPECT_EQ(m.cc(2).address(), "carl@example.com");
}

TEST(ParseTest, OtherHeadersInOrderUnfoldedAndDecoded) {
  std::string source =
      "Received: from mx.example.com by mail.example.com;\r\n"
      "\tThu, 29 Feb 2024 13:05:09 +0000\r\n"
      "From: a@example.com\r\n"
      "X-Mailer: =?utf-8?Q?Cr=C3=A8me?= Mailer\r\n"
      "Content-Type: text/plain\r\n"
      "List-Id: <dev.example.com>\r\n"
      "Received: second\r\n"
      "Subject: s\r\n"
      "\r\n";
  v1::EmailMessage m = Parse(source);
  ASSERT_EQ(m.headers_size(), 4);
  EXPECT_EQ(m.headers(0).name(), "Received");
  EXPECT_EQ(m.headers(0).value(),
            "from mx.example.com by mail.example.com;\tThu, 29 Feb 2024 13:05:09 +0000");
  EXPECT_EQ(m.headers(1).name(), "X-Mailer");
  EXPECT_EQ(m.headers(1).value(), "Crème Mailer");
  EXPECT_EQ(m.headers(2).name(), "List-Id");
  EXPECT_EQ(m.headers(3).value(), "second");
}

TEST(ParseTest, PriorityFromAnyOfItsHeaders) {
  auto priority = [](const std::string& header) {
    return Parse(absl::StrCat("From: a@example.com\r\n", header, "\r\n\r\n")).priority();
  };
  EXPECT_EQ(priority("X-Priority: 1 (Highest)"), v1::PRIORITY_HIGH);
  EXPECT_EQ(priority("X-Priority: 2"), v1::PRIORITY_HIGH);
  EXPECT_EQ(priority("X-Priority: 3 (Normal)"), v1::PRIORITY_NORMAL);
  EXPECT_EQ(priority("X-Priority: 4"), v1::PRIORITY_LOW);
  EXPECT_EQ(priority("X-Priority: 5 (Lowest)"), v1::PRIORITY_LOW);
  EXPECT_EQ(priority("Importance: High"), v1::PRIORITY_HIGH);
  EXPECT_EQ(priority("Importance: low"), v1::PRIORITY_LOW);
  EXPECT_EQ(priority("Priority: urgent"), v1::PRIORITY_HIGH);
  EXPECT_EQ(priority("Priority: non-urgent"), v1::PRIORITY_LOW);
  EXPECT_EQ(priority("X-Priority: 5\r\nImportance: high"), v1::PRIORITY_LOW);
  EXPECT_EQ(priority("X-Priority: junk\r\nImportance: high"), v1::PRIORITY_HIGH);
  EXPECT_EQ(priority("X-Other: 1"), v1::PRIORITY_UNSPECIFIED);
}

TEST(ParseTest, SensitivityAndReceipts) {
  v1::EmailMessage m = Parse(
      "From: a@example.com\r\n"
      "Sensitivity: company-confidential\r\n"
      "Return-Receipt-To: a@example.com\r\n"
      "Disposition-Notification-To: \"Receipts\" <r@example.com>\r\n"
      "\r\n");
  EXPECT_EQ(m.sensitivity(), v1::SENSITIVITY_COMPANY_CONFIDENTIAL);
  EXPECT_TRUE(m.delivery_receipt());
  EXPECT_TRUE(m.read_receipt());
  EXPECT_EQ(m.read_receipt_to().name(), "Receipts");
  EXPECT_EQ(m.read_receipt_to().address(), "r@example.com");
  m = Parse("From: a@example.com\r\nSensitivity: Normal\r\n\r\n");
  EXPECT_EQ(m.sensitivity(), v1::SENSITIVITY_UNSPECIFIED);
  EXPECT_FALSE(m.read_receipt());
  EXPECT_FALSE(m.delivery_receipt());
}

TEST(ParseTest, DatesWithOffsetsAndBadDates) {
  v1::EmailMessage m =
      Parse("From: a@example.com\r\nDate: Thu, 29 Feb 2024 07:35:09 -0530\r\n\r\n");
  EXPECT_EQ(m.date().seconds(), 1709211909);
  EXPECT_EQ(m.date_utc_offset_minutes(), -330);
  std::vector<std::string> warnings;
  m = Parse("From: a@example.com\r\nDate: the day after tomorrow\r\n\r\n", &warnings);
  EXPECT_FALSE(m.has_date());
  EXPECT_THAT(warnings, Contains(HasSubstr("unparsable Date")));
}

TEST(ParseTest, MessageIdsWithoutBrackets) {
  v1::EmailMessage m = Parse(
      "From: a@example.com\r\n"
      "Message-ID: <abc.123@example.com>\r\n"
      "In-Reply-To: <p@example.com>\r\n"
      "References: <r1@example.com>\r\n <r2@example.com> <p@example.com>\r\n"
      "\r\n");
  EXPECT_EQ(m.message_id(), "abc.123@example.com");
  EXPECT_THAT(m.in_reply_to(), ElementsAre("p@example.com"));
  EXPECT_THAT(m.references(), ElementsAre("r1@example.com", "r2@example.com", "p@example.com"));
}

TEST(ParseTest, AttachmentLimits) {
  v1::EmailMessage built = Minimal();
  built.set_text_body("x");
  *built.add_attachments() = Attach("small.bin", "application/octet-stream", "12345");
  *built.add_attachments() = Attach("big.bin", "application/octet-stream", BinaryBytes(100000));
  std::string source = Build(built);

  ParseOptions options;
  options.max_attachment_bytes = 1000;
  v1::EmailMessage m = Parse(source, nullptr, options);
  ASSERT_EQ(m.attachments_size(), 2);
  EXPECT_EQ(m.attachments(0).content(), "12345");
  EXPECT_FALSE(m.attachments(0).content_omitted());
  EXPECT_EQ(m.attachments(1).content(), "");
  EXPECT_TRUE(m.attachments(1).content_omitted());
  EXPECT_EQ(m.attachments(1).size(), 100000u);

  options = {};
  options.omit_attachment_content = true;
  m = Parse(source, nullptr, options);
  EXPECT_TRUE(m.attachments(0).content_omitted());
  EXPECT_EQ(m.attachments(0).size(), 5u);
  EXPECT_TRUE(m.attachments(1).content_omitted());
  EXPECT_EQ(m.attachments(1).size(), 100000u);
  EXPECT_EQ(m.text_body(), "x");  // bodies are never omitted
}

TEST(ParseTest, IncludeSourceAndSize) {
  std::string source = Build(Minimal());
  ParseOptions options;
  EXPECT_EQ(Parse(source, nullptr, options).source(), "");
  options.include_source = true;
  v1::EmailMessage m = Parse(source, nullptr, options);
  EXPECT_EQ(m.source(), source);
  EXPECT_EQ(m.size(), source.size());
}

// ---------------------------------------------------------------------------------------
// headers_only.

TEST(HeadersOnlyTest, ReadsOnlyTheHeaderBlock) {
  v1::EmailMessage full = FullMessage();
  std::string source = Build(full);
  // Headers after the first empty line belong to the body and must not be seen.
  source += "\r\nSubject: not a header\r\n";
  ParseOptions options;
  options.headers_only = true;
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings, options);
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(m.subject(), full.subject());
  EXPECT_EQ(m.from().name(), full.from().name());
  EXPECT_EQ(m.to_size(), 2);
  EXPECT_EQ(m.message_id(), full.message_id());
  EXPECT_EQ(m.references_size(), 3);
  EXPECT_EQ(m.date().seconds(), full.date().seconds());
  EXPECT_EQ(m.priority(), v1::PRIORITY_HIGH);
  EXPECT_TRUE(m.read_receipt());
  EXPECT_EQ(m.headers_size(), 3);
  EXPECT_EQ(m.size(), source.size());
  EXPECT_EQ(m.text_body(), "");
  EXPECT_EQ(m.html_body(), "");
  EXPECT_THAT(m.attachments(), IsEmpty());
}

TEST(HeadersOnlyTest, WorksOnTopOutputWithoutBodyOrFinalEmptyLine) {
  ParseOptions options;
  options.headers_only = true;
  v1::EmailMessage m = Parse("From: a@example.com\nSubject: top\n", nullptr, options);
  EXPECT_EQ(m.subject(), "top");
  m = Parse("From: a@example.com\r\nSubject: top", nullptr, options);
  EXPECT_EQ(m.subject(), "top");
  m = Parse("Subject: lf\n\nbody\nSubject: no\n", nullptr, options);
  EXPECT_EQ(m.subject(), "lf");
}

TEST(HeadersOnlyTest, IsCheapOnLargeMessages) {
  v1::EmailMessage built = FullMessage();
  *built.add_attachments() = Attach("big.bin", "application/octet-stream", BinaryBytes(8 << 20));
  std::string source = Build(built);
  ParseOptions options;
  options.headers_only = true;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i) {
    v1::EmailMessage m = Parse(source, nullptr, options);
    ASSERT_EQ(m.subject(), built.subject());
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  // Independent of the 8 MiB body; about 30 µs per header block when optimized.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 5000);
  std::cout << "2000 header-only parses: "
            << std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() / 2000
            << " us each\n";
}

// ---------------------------------------------------------------------------------------
// Hostile input.

TEST(HostileTest, DeepNestingDoesNotCrash) {
  std::string source = "From: a@example.com\r\n";
  for (int i = 0; i < 5000; ++i) {
    absl::StrAppend(&source, "Content-Type: multipart/mixed; boundary=b", i, "\r\n\r\n--b", i,
                    "\r\n");
  }
  source += "Content-Type: text/plain\r\n\r\nleaf\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_EQ(m.from().address(), "a@example.com");
  EXPECT_THAT(warnings, Contains(HasSubstr("nesting")));
  EXPECT_LE(warnings.size(), kMaxWarnings + 1);

  std::string messages = "From: a@example.com\r\n";
  for (int i = 0; i < 5000; ++i) messages += "Content-Type: message/rfc822\r\n\r\nSubject: x\r\n";
  messages += "\r\nleaf\r\n";
  m = Parse(messages, &warnings);
  EXPECT_EQ(m.from().address(), "a@example.com");
}

TEST(HostileTest, ManyPartsAreCapped) {
  std::string source = "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";
  for (int i = 0; i < 20000; ++i) source += "--b\r\nContent-Type: application/x-a\r\n\r\nx\r\n";
  source += "--b--\r\n";
  std::vector<std::string> warnings;
  v1::EmailMessage m = Parse(source, &warnings);
  EXPECT_LT(m.attachments_size(), kMaxParts);
  EXPECT_GT(m.attachments_size(), kMaxParts - 10);
  EXPECT_THAT(warnings, Contains(HasSubstr("more than")));
}

TEST(HostileTest, HugeHeadersDoNotCrash) {
  std::string source =
      "From: a@example.com\r\nSubject: " + std::string(8 << 20, 'a') + "\r\nX-Folded: ";
  for (int i = 0; i < 100000; ++i) source += "x\r\n ";
  source += "end\r\nTo: ";
  for (int i = 0; i < 20000; ++i) absl::StrAppend(&source, "u", i, "@example.com, ");
  source += "\r\n\r\nbody\r\n";
  v1::EmailMessage m = Parse(source);
  EXPECT_EQ(m.subject().size(), 8u << 20);
  EXPECT_EQ(m.to_size(), 20000);
  EXPECT_EQ(m.text_body(), "body\r\n");
}

TEST(HostileTest, RandomAndMutatedInputNeverCrashes) {
  std::string seed = Build(FullMessage());
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string input = seed;
    int edits = 1 + rng() % 40;
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % input.size();
      switch (rng() % 4) {
        case 0:
          input[pos] = static_cast<char>(rng());
          break;
        case 1:
          input.erase(pos, rng() % 200);
          break;
        case 2:
          input.insert(pos, std::string(1 + rng() % 4, "\r\n-=?:;\"\\"[rng() % 9]));
          break;
        case 3:
          input.insert(pos, input.substr(rng() % input.size(), rng() % 300));
          break;
      }
      if (input.empty()) input = "x";
    }
    for (bool headers_only : {false, true}) {
      ParseOptions options;
      options.headers_only = headers_only;
      std::vector<std::string> warnings;
      v1::EmailMessage m = Parse(input, &warnings, options);
      ASSERT_TRUE(AllStringsValidUtf8(m)) << "round " << round;
      ASSERT_LE(warnings.size(), kMaxWarnings + 1);
    }
  }
  for (int round = 0; round < 200; ++round) {
    std::string input(rng() % 4000, '\0');
    for (auto& c : input) c = static_cast<char>(rng());
    v1::EmailMessage m = Parse(input);
    ASSERT_TRUE(AllStringsValidUtf8(m));
  }
}

}  // namespace
}  // namespace mailpool::mime
