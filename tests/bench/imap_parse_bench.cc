// IMAP client parsing speed, no server: feeds a scripted server (login, SELECT, then one
// UID FETCH answer for N messages) to imap::Client in 16 KiB reads and reports the time
// per answer. Two answers: FLAGS + ENVELOPE + BODYSTRUCTURE per message (the listing a
// mailbox view needs) and BODY.PEEK[] of ~4 KiB per message streamed to a sink.
//
//   build/tests/bench/imap_parse_bench [N=2000] [ROUNDS=20]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "imap/client.h"

namespace {

using mailpool::imap::Client;
using mailpool::imap::FetchedMessage;
using mailpool::imap::FetchRequest;
using mailpool::imap::UidSet;

std::unique_ptr<Client> ReadyClient() {
  mailpool::imap::Options o;
  o.login.security = mailpool::wire::Security::kImplicitTls;
  o.login.user = "alice";
  o.login.password = mailpool::Secret("secret");
  auto c = mailpool::imap::NewClient(o);
  c->OnBytes("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n");
  c->OnBytes("a1 OK [CAPABILITY IMAP4rev1 LITERAL+] Logged in\r\n");
  c->OnBytes("* 2000 EXISTS\r\n* OK [UIDVALIDITY 1] x\r\na2 OK [READ-WRITE] done\r\n");
  c->TakeOutput();
  return c;
}

double Run(const std::string& answer, FetchRequest (*request)(), int rounds, size_t* count) {
  std::vector<double> ms;
  for (int r = 0; r < rounds; ++r) {
    auto c = ReadyClient();
    size_t n = 0;
    UidSet all;
    all.AddRange(1, 1000000);
    c->StartUidFetch(all, request(), [&](FetchedMessage) { ++n; });
    c->TakeOutput();
    auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < answer.size(); i += 16384) {
      c->OnBytes(absl::string_view(answer).substr(i, 16384));
    }
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
    if (c->phase() != mailpool::wire::ClientProtocol::Phase::kReady || !c->error().ok()) {
      std::fprintf(stderr, "client failed: %s\n", c->error().ToString().c_str());
      std::exit(1);
    }
    *count = n;
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 20;
  const std::string structure =
      "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 42 1 NIL NIL NIL NIL)"
      "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 120 3 NIL NIL "
      "NIL NIL) \"alternative\" (\"boundary\" \"b1\") NIL NIL NIL)";
  std::string listing, bodies;
  std::string body(4000, 'x');
  for (int i = 1; i <= n; ++i) {
    absl::StrAppend(
        &listing, "* ", i, " FETCH (UID ", i,
        " FLAGS (\\Seen) ENVELOPE (\"Mon, 1 Jan 2024 00:00:00 +0000\" \"Subject number ", i,
        "\" ((\"Alice\" NIL \"alice\" \"example.test\")) ((\"Alice\" NIL \"alice\" "
        "\"example.test\")) ((\"Alice\" NIL \"alice\" \"example.test\")) ((\"Bob\" NIL "
        "\"bob\" \"example.test\")) NIL NIL NIL \"<m",
        i,
        "@example.test>\") "
        "BODYSTRUCTURE ",
        structure, ")\r\n");
    absl::StrAppend(&bodies, "* ", i, " FETCH (UID ", i, " BODY[] {", body.size(), "}\r\n", body,
                    ")\r\n");
  }
  listing += "a3 OK Fetch completed\r\n";
  bodies += "a3 OK Fetch completed\r\n";
  size_t count = 0;
  double list_ms = Run(
      listing,
      [] {
        FetchRequest r;
        r.items = mailpool::imap::kFetchFlags | mailpool::imap::kFetchEnvelope |
                  mailpool::imap::kFetchBodyStructure;
        return r;
      },
      rounds, &count);
  std::printf("FLAGS+ENVELOPE+BODYSTRUCTURE of %zu messages (%zu KiB): %.2f ms (median of %d)\n",
              count, listing.size() / 1024, list_ms, rounds);
  double body_ms = Run(
      bodies,
      [] {
        FetchRequest r;
        r.sections = {{""}};
        r.sink = [](uint32_t, uint32_t, absl::string_view, absl::string_view, bool) {};
        return r;
      },
      rounds, &count);
  std::printf("BODY.PEEK[] of %zu messages (%zu KiB) streamed: %.2f ms (median of %d)\n", count,
              bodies.size() / 1024, body_ms, rounds);
}
