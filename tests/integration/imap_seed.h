// Test fixtures for the IMAP mailbox: a raw, blocking IMAP client (the "second client"
// that changes a mailbox behind the daemon's back, and a seeding tool), and the seeded
// corpus: subjects in several charsets and encodings, a multipart/alternative message with
// inline images and attachments, and a large message.
//
//   RawImap raw;
//   ASSERT_TRUE(raw.Connect(EnvPort("MAILPOOL_TEST_IMAP_PORT")));
//   ASSERT_TRUE(raw.Login(Env("MAILPOOL_TEST_USER3"), Env("MAILPOOL_TEST_PASSWORD3")));
//   raw.Command("CREATE \"t-1\"");
//   for (const Seeded& m : Corpus("t-1")) raw.Append("t-1", m.source);
#ifndef MAILPOOL_TESTS_INTEGRATION_IMAP_SEED_H_
#define MAILPOOL_TESTS_INTEGRATION_IMAP_SEED_H_

#include <cstdint>
#include <string>
#include <vector>

namespace mailpool::testing {

class RawImap {
 public:
  RawImap() = default;
  ~RawImap();
  RawImap(const RawImap&) = delete;
  RawImap& operator=(const RawImap&) = delete;

  bool Connect(int port);
  bool Login(const std::string& user, const std::string& password);
  // Sends "<tag> command" and returns every line of the answer up to and including the
  // tagged one (CRLF kept). Empty on a dead connection.
  std::string Command(const std::string& command);
  // True when the answer's tagged line says OK.
  static bool Ok(const std::string& answer);
  // APPEND to `folder` (an ASCII name, sent quoted) with LITERAL+; `flags` like "\\Seen".
  std::string Append(const std::string& folder, const std::string& message,
                     const std::string& flags = "");
  // Many APPENDs pipelined (LITERAL+): one round trip per batch. Returns how many got OK.
  size_t AppendMany(const std::string& folder, const std::vector<std::string>& messages);
  // Writes raw bytes and reads until the line tagged `tag` (for benchmarks).
  std::string Exchange(const std::string& bytes, const std::string& tag);

 private:
  bool Send(const std::string& data);
  std::string ReadUntilTagged(const std::string& tag);

  int fd_ = -1;
  int next_tag_ = 1;
  std::string buffer_;
};

// "\"name\"" with quotes and backslashes escaped.
std::string Quoted(const std::string& name);

struct Seeded {
  std::string subject;  // the decoded subject the daemon must return
  std::string source;   // CRLF
};

// Eight messages whose subjects start with "[tag] ": raw UTF-8, RFC 2047 in ISO-8859-1,
// Windows-1252, ISO-2022-JP, Shift_JIS, KOI8-R, plain ASCII, and a multipart message
// (index kMultipart) with text and HTML alternatives, an inline image referenced by cid
// and a PDF attachment with an RFC 2231 file name.
std::vector<Seeded> Corpus(const std::string& tag);
inline constexpr size_t kMultipart = 6;
// Bytes of the multipart message's PDF attachment (part "2") and inline image (part "1.2",
// Content-ID "logo@example.test").
std::string PdfBytes();
std::string PngBytes();

// A message of about `attachment_bytes` * 4/3 bytes: a short text part and an
// application/octet-stream attachment (part "2") of LargeBytes(attachment_bytes).
Seeded LargeMessage(const std::string& tag, size_t attachment_bytes);
std::string LargeBytes(size_t n);

// A small plain message with the given subject.
std::string SmallMessage(const std::string& subject, const std::string& body = "hello\r\n");

}  // namespace mailpool::testing

#endif  // MAILPOOL_TESTS_INTEGRATION_IMAP_SEED_H_
