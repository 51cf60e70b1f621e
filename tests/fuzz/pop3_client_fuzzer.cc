// Fuzzes the POP3 reply handling: pop3/response.cc (status lines, response codes, APOP
// timestamps, CAPA listings, dot-unstuffing) directly, and pop3/client.cc driven through
// greeting, login and STAT/LIST/UIDL/TOP/RETR/DELE/RSET/NOOP/QUIT.
//
// Input: byte 0 picks the first command (0: the login is fuzzed), byte 1 the read
// pattern; the rest is what the server sends. The next command starts whenever the client
// is back in kReady.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "pop3/client.h"
#include "pop3/response.h"

namespace mailpool::fuzz {
namespace {

using Phase = wire::ClientProtocol::Phase;

void Direct(absl::string_view data) {
  std::vector<std::string> lines;
  for (absl::string_view line : SplitKeepingNewlines(data)) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    pop3::Reply r = pop3::ParseReply(line);
    (void)pop3::IsTemporaryCode(r.code);
    (void)pop3::ApopTimestamp(line);
    lines.emplace_back(line);
  }
  (void)pop3::ParseCapabilities(lines);
  pop3::MultilineDecoder decoder;
  size_t total = 0;
  FeedInChunks(data, 3, [&](absl::string_view piece) {
    if (!decoder.done()) decoder.Consume(piece, [&](absl::string_view p) { total += p.size(); });
  });
}

void Start(pop3::Client& client, uint8_t command, size_t* sink) {
  auto data = [sink](absl::string_view piece) { *sink += piece.size(); };
  switch (command % 10) {
    case 0: client.StartStat([sink](uint32_t n, uint64_t s) { *sink += n + s; }); break;
    case 1: client.StartList([sink](std::vector<pop3::ListEntry> e) { *sink += e.size(); }); break;
    case 2: client.StartUidl([sink](std::vector<pop3::UidlEntry> e) { *sink += e.size(); }); break;
    case 3: client.StartTop(1 + command / 10, 5, data); break;
    case 4: client.StartRetr(1 + command / 10, data); break;
    case 5: client.StartDele(2); break;
    case 6: client.StartRset(); break;
    case 7: client.StartNoop(); break;
    case 8: client.StartLogout(); break;
    default: client.StartRetr(1, data); break;
  }
}

}  // namespace
}  // namespace mailpool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailpool;
  using namespace mailpool::fuzz;
  Input in(data, size);
  uint8_t command = in.Byte();
  uint8_t pattern = in.Byte() % 9;
  Direct(in.rest());

  wire::LoginOptions login;
  login.security = wire::Security::kImplicitTls;
  login.user = "fuzz";
  login.password = Secret("secret");
  pop3::Limits limits;
  limits.max_listing_entries = 10'000;
  limits.max_message_bytes = 1 << 20;
  std::unique_ptr<pop3::Client> client = pop3::NewClient(std::move(login), limits);
  if (command != 0) {
    // A well-behaved login first, so the fuzzed bytes reach the commands.
    client->OnBytes("+OK POP3 fuzz ready <1.2@fuzz>\r\n");
    for (int i = 0; i < 10 && client->phase() == Phase::kLoggingIn; ++i) {
      std::string out = client->TakeOutput();
      if (out.empty()) break;
      if (out.rfind("CAPA", 0) == 0) {
        client->OnBytes("+OK\r\nUSER\r\nSASL PLAIN LOGIN\r\nUIDL\r\nTOP\r\nPIPELINING\r\n.\r\n");
      } else {
        client->OnBytes("+OK fine\r\n");
      }
    }
    if (client->phase() != Phase::kReady) return 0;
  }
  size_t sink = 0;
  int started = 0;
  for (absl::string_view line : SplitKeepingNewlines(in.rest())) {
    Phase phase = client->phase();
    if (phase == Phase::kFailed || phase == Phase::kClosed) break;
    if (phase == Phase::kNeedTls) client->OnTlsEstablished();
    if (phase == Phase::kReady && started < 64) {
      Start(*client, static_cast<uint8_t>(command + 11 * started), &sink);
      ++started;
    }
    FeedInChunks(line, pattern, [&](absl::string_view piece) { client->OnBytes(piece); });
    (void)client->TakeOutput();
  }
  (void)client->error().message().size();
  (void)client->last_reply().size();
  return 0;
}
