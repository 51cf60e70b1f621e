// Server bytes that reach proto3 string fields are valid UTF-8 (issue 16).
#include <string>
#include <vector>

#include "common/utf8.h"
#include "gtest/gtest.h"
#include "mailbox/call_util.h"
#include "mailbox/imap_internal.h"

namespace mailpool::mailbox {
namespace {

// Every string field of `m`, recursively, is valid UTF-8.
bool AllStringsValid(const google::protobuf::Message& m) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->type() == FieldDescriptor::TYPE_STRING) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) {
          if (!IsValidUtf8(r->GetRepeatedString(m, f, i))) return false;
        }
      } else if (!IsValidUtf8(r->GetString(m, f))) {
        return false;
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) {
          if (!AllStringsValid(r->GetRepeatedMessage(m, f, i))) return false;
        }
      } else if (!AllStringsValid(r->GetMessage(m, f))) {
        return false;
      }
    }
  }
  return true;
}

TEST(Utf8BoundaryTest, RawEightBitHeadersComeOutValid) {
  // Latin-1 bytes in raw headers (no RFC 2047), a broken encoded word's charset, a
  // filename in Latin-1: what real mailboxes hold.
  const std::string source =
      "From: Andr\xe9 <andre@example.test>\r\n"
      "To: \xff\xfe <x@example.test>\r\n"
      "Subject: caf\xe9 \xc3\r\n"
      "X-Custom: \x80\x81 value\r\n"
      "Content-Type: multipart/mixed; boundary=b\r\n"
      "\r\n"
      "--b\r\n"
      "Content-Type: text/plain\r\n"
      "\r\n"
      "body caf\xe9\r\n"
      "--b\r\n"
      "Content-Type: application/octet-stream; name=\"r\xe9sum\xe9.pdf\"\r\n"
      "Content-Disposition: attachment; filename=\"r\xe9sum\xe9.pdf\"\r\n"
      "\r\n"
      "xx\r\n"
      "--b--\r\n";
  for (bool headers_only : {true, false}) {
    mime::ParseOptions options;
    options.headers_only = headers_only;
    v1::EmailMessage m = ParseServerMessage(source, options, nullptr);
    EXPECT_TRUE(AllStringsValid(m)) << m.DebugString();
    EXPECT_NE(m.subject().find("caf"), std::string::npos) << m.subject();
  }
}

TEST(Utf8BoundaryTest, SanitizeFixesEveryNestedStringAndLeavesBytesAlone) {
  v1::EmailMessage m;
  m.set_subject("caf\xe9");
  m.add_to()->set_name("\xff");
  v1::Header* h = m.add_headers();
  h->set_name("X-A");
  h->set_value("\x80");
  m.set_source("raw \xe9 bytes");  // a bytes field: kept as sent
  SanitizeUtf8(&m);
  EXPECT_TRUE(AllStringsValid(m));
  EXPECT_EQ(m.subject(), "caf\xef\xbf\xbd");
  EXPECT_EQ(m.to(0).name(), "\xef\xbf\xbd");
  EXPECT_EQ(m.headers(0).value(), "\xef\xbf\xbd");
  EXPECT_EQ(m.source(), "raw \xe9 bytes");
}

// The HEADERS view's attachment summary comes from BODYSTRUCTURE, not from the parsed
// headers: its file names, parameters and Content-IDs are server bytes too.
TEST(Utf8BoundaryTest, BodyStructureSummaryComesOutValid) {
  imap::FetchedMessage m;
  m.uid = 7;
  m.body_structure = std::make_unique<imap::BodyPart>();
  imap::BodyPart& top = *m.body_structure;
  top.type = "multipart";
  top.subtype = "mixed";
  imap::BodyPart text;
  text.type = "text";
  text.subtype = "plain";
  text.part = "1";
  imap::BodyPart file;
  file.type = "application";
  file.subtype = "pdf";
  file.part = "2";
  file.params = {{"x-label", "caf\xe9"}};
  file.id = "<\xff@example.test>";
  file.disposition = "attachment";
  file.disposition_params = {{"filename", "r\xe9sum\xe9.pdf"}};
  top.children.push_back(std::move(text));
  top.children.push_back(std::move(file));
  v1::EmailMessage out =
      imap_detail::MessageFrom("id", "INBOX", m, v1::MESSAGE_VIEW_HEADERS, "Subject: x\r\n\r\n", 0);
  ASSERT_EQ(out.attachments_size(), 1);
  EXPECT_TRUE(AllStringsValid(out));
  EXPECT_NE(out.attachments(0).file_name().find("sum"), std::string::npos);
}

}  // namespace
}  // namespace mailpool::mailbox
