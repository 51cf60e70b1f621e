// Fuzzes the SMTP reply handling: smtp/reply.cc (multi-line replies, enhanced status
// codes, EHLO keywords) directly, and smtp/client.cc driven through greeting, EHLO, AUTH
// and mail transactions (pipelined or not), probes, VRFY, NOOP and QUIT.
//
// Input: byte 0 picks the first command (0: the login is fuzzed), byte 1 the read
// pattern; the rest is what the server sends.
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_util.h"
#include "smtp/client.h"
#include "smtp/reply.h"

namespace mailpool::fuzz {
namespace {

using Phase = wire::ClientProtocol::Phase;

void Direct(absl::string_view data) {
  smtp::ReplyParser parser(50, 4096);
  smtp::Extensions extensions;
  for (absl::string_view line : SplitKeepingNewlines(data)) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    (void)parser.AddLine(line);
    (void)extensions.AddLine(line);
    (void)smtp::IsValidEhloName(line);
  }
  (void)extensions.Has("SIZE");
}

void Start(smtp::Client& client, uint8_t command, size_t* sink) {
  switch (command % 6) {
    case 0:
    case 1: {
      smtp::Envelope envelope;
      envelope.mail_from = command & 0x10 ? "" : "a@example.test";
      envelope.rcpt_to = {"b@example.test", "c@example.test"};
      if (command & 0x40) envelope.rcpt_to.push_back("j\xc3\xb6rg@example.test");
      envelope.request_dsn = command & 0x20;
      smtp::SendOptions options;
      options.require_all_recipients = command & 0x80;
      client.StartSend(std::move(envelope),
                       command % 6 ? "Subject: x\r\n\r\n.dot\r\nb\xc3\xa9\r\n" : "Subject: x\n\nbody\n",
                       std::move(options),
                       [sink](smtp::SendResult r) { *sink += r.recipients.size(); });
      break;
    }
    case 2: client.StartProbe("b@example.test", [sink](smtp::Reply r) { *sink += r.code; }); break;
    case 3: client.StartVerify("b@example.test", [sink](smtp::Reply r) { *sink += r.code; }); break;
    case 4: client.StartNoop(); break;
    default: client.StartLogout(); break;
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
  login.mechanism = wire::Mechanism::kAuto;
  std::unique_ptr<smtp::Client> client = smtp::NewClient(std::move(login));
  if (command != 0) {
    client->OnBytes("220 fuzz ESMTP ready\r\n");
    for (int i = 0; i < 10 && client->phase() == Phase::kLoggingIn; ++i) {
      std::string out = client->TakeOutput();
      if (out.empty()) break;
      if (out.rfind("EHLO", 0) == 0) {
        client->OnBytes(
            "250-fuzz\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n250-8BITMIME\r\n"
            "250-SMTPUTF8\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n");
      } else {
        client->OnBytes("235 2.7.0 ok\r\n");
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
      Start(*client, static_cast<uint8_t>(command + 7 * started), &sink);
      ++started;
    }
    FeedInChunks(line, pattern, [&](absl::string_view piece) { client->OnBytes(piece); });
    (void)client->TakeOutput();
  }
  (void)client->error().message().size();
  (void)client->last_reply().size();
  return 0;
}
