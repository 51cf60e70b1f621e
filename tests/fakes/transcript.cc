#include "tests/fakes/transcript.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace mailpool::testing {

using Phase = wire::ClientProtocol::Phase;

absl::string_view PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kLoggingIn:
      return "LOGGING_IN";
    case Phase::kNeedTls:
      return "NEED_TLS";
    case Phase::kReady:
      return "READY";
    case Phase::kBusy:
      return "BUSY";
    case Phase::kClosed:
      return "CLOSED";
    case Phase::kFailed:
      return "FAILED";
  }
  return "?";
}

::testing::AssertionResult RunTranscript(wire::ClientProtocol& client, absl::string_view script,
                                         bool byte_by_byte, const Actions& actions) {
  std::string pending;
  int line_no = 0;
  auto fail = [&](absl::string_view what) {
    return ::testing::AssertionFailure()
           << "transcript line " << line_no << (byte_by_byte ? " (byte by byte)" : "") << ": "
           << what << " [phase " << PhaseName(client.phase())
           << ", error: " << client.error().ToString() << "]";
  };
  for (absl::string_view raw : absl::StrSplit(script, '\n')) {
    ++line_no;
    absl::string_view line = absl::StripLeadingAsciiWhitespace(raw);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    pending += client.TakeOutput();
    if (absl::ConsumePrefix(&line, "S: ") || line == "S:") {
      std::string data = absl::StrCat(line == "S:" ? "" : line, "\r\n");
      if (byte_by_byte) {
        for (char c : data) client.OnBytes(absl::string_view(&c, 1));
      } else {
        client.OnBytes(data);
      }
    } else if (absl::ConsumePrefix(&line, "S+ ")) {
      if (byte_by_byte) {
        for (char c : line) client.OnBytes(absl::string_view(&c, 1));
      } else {
        client.OnBytes(line);
      }
    } else if (absl::ConsumePrefix(&line, "S~ ")) {
      std::string data;
      if (!absl::CUnescape(line, &data)) return fail("bad escape in S~ line");
      if (byte_by_byte) {
        for (char c : data) client.OnBytes(absl::string_view(&c, 1));
      } else {
        client.OnBytes(data);
      }
    } else if (absl::ConsumePrefix(&line, "C: ") || line == "C:") {
      std::string expected = absl::StrCat(line == "C:" ? "" : line, "\r\n");
      if (pending.compare(0, expected.size(), expected) != 0) {
        return fail(absl::StrCat("expected client to send \"", absl::CEscape(expected),
                                 "\" but it sent \"", absl::CEscape(pending), "\""));
      }
      pending.erase(0, expected.size());
    } else if (line == "TLS") {
      if (client.phase() != Phase::kNeedTls) return fail("expected phase NEED_TLS");
      if (!pending.empty()) {
        return fail(absl::StrCat("unexpected output before TLS: ", absl::CEscape(pending)));
      }
      client.OnTlsEstablished();
    } else if (line == "!noop") {
      client.StartNoop();
    } else if (line == "!logout") {
      client.StartLogout();
    } else if (line.size() > 1 && line[0] == '!' && actions.count(line.substr(1)) > 0) {
      actions.find(line.substr(1))->second(client);
    } else if (absl::ConsumePrefix(&line, "PHASE ")) {
      if (PhaseName(client.phase()) != line) return fail(absl::StrCat("expected phase ", line));
    } else {
      return fail(absl::StrCat("unknown transcript line: ", line));
    }
  }
  pending += client.TakeOutput();
  if (!pending.empty()) {
    return fail(absl::StrCat("client sent unexpected bytes: \"", absl::CEscape(pending), "\""));
  }
  return ::testing::AssertionSuccess();
}

std::unique_ptr<wire::ClientProtocol> ExpectTranscript(const ClientFactory& factory,
                                                       absl::string_view script,
                                                       const Actions& actions) {
  auto whole = factory();
  EXPECT_TRUE(RunTranscript(*whole, script, /*byte_by_byte=*/false, actions));
  auto bytes = factory();
  EXPECT_TRUE(RunTranscript(*bytes, script, /*byte_by_byte=*/true, actions));
  return bytes;
}

}  // namespace mailpool::testing
