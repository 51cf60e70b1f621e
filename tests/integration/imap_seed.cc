#include "tests/integration/imap_seed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mailpool::testing {

RawImap::~RawImap() {
  if (fd_ >= 0) close(fd_);
}

bool RawImap::Connect(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return false;
  // The greeting.
  for (;;) {
    size_t lf = buffer_.find('\n');
    if (lf != std::string::npos) {
      buffer_.erase(0, lf + 1);
      return true;
    }
    char chunk[4096];
    ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

bool RawImap::Login(const std::string& user, const std::string& password) {
  return Ok(Command(absl::StrCat("LOGIN ", Quoted(user), " ", Quoted(password))));
}

bool RawImap::Send(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd_, data.data() + off, data.size() - off);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string RawImap::ReadUntilTagged(const std::string& tag) {
  std::string out;
  std::string prefix = tag + " ";
  size_t scan = 0;
  for (;;) {
    // Lines (literals included: they never start a line with the tag in our tests).
    size_t lf;
    while ((lf = buffer_.find('\n', scan)) != std::string::npos) {
      size_t start = scan;
      scan = lf + 1;
      if (buffer_.compare(start, prefix.size(), prefix) == 0) {
        out = buffer_.substr(0, scan);
        buffer_.erase(0, scan);
        return out;
      }
    }
    char chunk[65536];
    ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n <= 0) return "";
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

std::string RawImap::Command(const std::string& command) {
  std::string tag = absl::StrCat("r", next_tag_++);
  if (!Send(absl::StrCat(tag, " ", command, "\r\n"))) return "";
  return ReadUntilTagged(tag);
}

std::string RawImap::Exchange(const std::string& bytes, const std::string& tag) {
  if (!Send(bytes)) return "";
  return ReadUntilTagged(tag);
}

bool RawImap::Ok(const std::string& answer) {
  size_t last = answer.rfind('\n', answer.size() >= 2 ? answer.size() - 2 : 0);
  std::string line = last == std::string::npos ? answer : answer.substr(last + 1);
  size_t sp = line.find(' ');
  return sp != std::string::npos && absl::StartsWith(line.substr(sp + 1), "OK");
}

std::string RawImap::Append(const std::string& folder, const std::string& message,
                            const std::string& flags) {
  std::string tag = absl::StrCat("r", next_tag_++);
  std::string command = absl::StrCat(tag, " APPEND ", Quoted(folder),
                                     flags.empty() ? "" : absl::StrCat(" (", flags, ")"), " {",
                                     message.size(), "+}\r\n", message, "\r\n");
  if (!Send(command)) return "";
  return ReadUntilTagged(tag);
}

size_t RawImap::AppendMany(const std::string& folder, const std::vector<std::string>& messages) {
  size_t ok = 0;
  constexpr size_t kBatch = 200;
  for (size_t start = 0; start < messages.size(); start += kBatch) {
    std::string out;
    std::vector<std::string> tags;
    for (size_t i = start; i < messages.size() && i < start + kBatch; ++i) {
      std::string tag = absl::StrCat("r", next_tag_++);
      absl::StrAppend(&out, tag, " APPEND ", Quoted(folder), " {", messages[i].size(), "+}\r\n",
                      messages[i], "\r\n");
      tags.push_back(tag);
    }
    if (!Send(out)) return ok;
    for (const std::string& tag : tags) {
      if (Ok(ReadUntilTagged(tag))) ++ok;
    }
  }
  return ok;
}

std::string Quoted(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

namespace {

std::string Headers(const std::string& subject_line, const std::string& extra = "") {
  return absl::StrCat("From: Seed <seed@example.test>\r\n", "To: Carol <carol@example.test>\r\n",
                      "Subject: ", subject_line, "\r\n", "Date: Mon, 3 Jun 2024 10:00:00 +0000\r\n",
                      "Message-ID: <", absl::StrCat(std::hash<std::string>()(subject_line)),
                      "@seed.example.test>\r\n", "MIME-Version: 1.0\r\n", extra);
}

std::string Base64Lines(const std::string& bytes) {
  std::string b64 = absl::Base64Escape(bytes);
  std::string out;
  out.reserve(b64.size() + b64.size() / 38 + 2);
  for (size_t i = 0; i < b64.size(); i += 76) {
    out.append(b64, i, 76);
    out.append("\r\n");
  }
  return out;
}

}  // namespace

std::string SmallMessage(const std::string& subject, const std::string& body) {
  return absl::StrCat(Headers(subject), "Content-Type: text/plain; charset=utf-8\r\n\r\n", body);
}

std::string PdfBytes() {
  std::string out = "%PDF-1.4\n";
  for (int i = 0; out.size() < 3000; ++i) out.push_back(static_cast<char>((i * 37 + 11) % 256));
  return out;
}

std::string PngBytes() {
  std::string out = "\x89PNG\r\n\x1a\n";
  for (int i = 0; out.size() < 200; ++i) out.push_back(static_cast<char>((i * 13 + 5) % 256));
  return out;
}

std::string LargeBytes(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 31 + 7) % 251);
  return out;
}

std::vector<Seeded> Corpus(const std::string& tag) {
  std::string p = absl::StrCat("[", tag, "] ");
  auto plain = [&](const std::string& subject_line, const std::string& decoded) {
    return Seeded{p + decoded, absl::StrCat(Headers(subject_line),
                                            "Content-Type: text/plain; charset=utf-8\r\n\r\n",
                                            "Body of ", decoded, "\r\n")};
  };
  std::vector<Seeded> out;
  // Raw UTF-8 in the header (RFC 6532).
  out.push_back(plain(p + "Grüße aus Köln ☕", "Grüße aus Köln ☕"));
  out.push_back(plain(p + "=?ISO-8859-1?B?Q2Fm6SBjcuhtZSBicvts6WU=?=", "Café crème brûlée"));
  out.push_back(
      plain(p + "=?windows-1252?B?k1NtYXJ0lCBxdW90ZXMgliCAMTAw?=", "“Smart” quotes – €100"));
  out.push_back(plain(p + "=?ISO-2022-JP?B?GyRCJDMkcyRLJEEkT0AkMyYbKEI=?=", "こんにちは世界"));
  out.push_back(plain(p + "=?Shift_JIS?B?k/qWe4zqgsyMj5a8?=", "日本語の件名"));
  out.push_back(plain(p + "=?KOI8-R?B?8NLJ18XUIMnaIO3P08vX2Q==?=", "Привет из Москвы"));
  // kMultipart: mixed( related( alternative(text, html), image ), pdf ).
  std::string multipart = absl::StrCat(
      Headers(p + "Multipart with images", "Content-Type: multipart/mixed; boundary=\"mix\"\r\n"),
      "\r\n--mix\r\n", "Content-Type: multipart/related; boundary=\"rel\"\r\n\r\n", "--rel\r\n",
      "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n", "--alt\r\n",
      "Content-Type: text/plain; charset=utf-8\r\n",
      "Content-Transfer-Encoding: quoted-printable\r\n\r\n", "Hello =C3=A9t=C3=A9 plain\r\n",
      "--alt\r\n", "Content-Type: text/html; charset=utf-8\r\n\r\n",
      "<p>Hello <img src=\"cid:logo@example.test\"></p>\r\n", "--alt--\r\n", "--rel\r\n",
      "Content-Type: image/png\r\n", "Content-Disposition: inline\r\n",
      "Content-ID: <logo@example.test>\r\n", "Content-Transfer-Encoding: base64\r\n\r\n",
      Base64Lines(PngBytes()), "--rel--\r\n", "--mix\r\n",
      "Content-Type: application/pdf; name=\"rapport.pdf\"\r\n",
      "Content-Disposition: attachment; filename*=utf-8''rapport%20%C3%A9t%C3%A9.pdf\r\n",
      "Content-Transfer-Encoding: base64\r\n\r\n", Base64Lines(PdfBytes()), "--mix--\r\n");
  out.push_back(Seeded{p + "Multipart with images", multipart});
  out.push_back(plain(p + "plain ascii", "plain ascii"));
  return out;
}

Seeded LargeMessage(const std::string& tag, size_t attachment_bytes) {
  std::string subject = absl::StrCat("[", tag, "] large");
  std::string source = absl::StrCat(
      Headers(subject, "Content-Type: multipart/mixed; boundary=\"big\"\r\n"), "\r\n--big\r\n",
      "Content-Type: text/plain; charset=utf-8\r\n\r\n", "A large attachment follows.\r\n",
      "--big\r\n", "Content-Type: application/octet-stream; name=\"big.bin\"\r\n",
      "Content-Disposition: attachment; filename=\"big.bin\"\r\n",
      "Content-Transfer-Encoding: base64\r\n\r\n", Base64Lines(LargeBytes(attachment_bytes)),
      "--big--\r\n");
  return Seeded{subject, std::move(source)};
}

}  // namespace mailpool::testing
