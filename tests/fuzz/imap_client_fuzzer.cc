// Fuzzes the IMAP client's response handling (imap/response.cc, fetch.cc, client.cc):
// greeting and login, LIST/LSUB, SELECT, STATUS, SEARCH/ESEARCH, FETCH with FLAGS,
// ENVELOPE, BODYSTRUCTURE and body sections, STORE, COPY/MOVE (COPYUID), EXPUNGE, APPEND
// (APPENDUID), IDLE, NOOP and LOGOUT, with unsolicited responses anywhere.
//
// Input: byte 0 picks the first command (0: the login itself is fuzzed) and the
// capability profile, byte 1 how server bytes are cut into reads; the rest is what the
// server sends. Lines starting with "T " get the tag of the command in flight. When the
// client is back in kReady and data is left, the next command starts.
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_util.h"
#include "imap/client.h"

namespace mailpool::fuzz {
namespace {

using imap::Client;
using Phase = wire::ClientProtocol::Phase;

constexpr absl::string_view kRichCaps =
    "IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+ UIDPLUS MOVE ESEARCH LIST-EXTENDED SPECIAL-USE "
    "CONDSTORE IDLE ENABLE UTF8=ACCEPT ID";
constexpr absl::string_view kBareCaps = "IMAP4rev1 AUTH=PLAIN";

size_t Walk(const imap::BodyPart& part, int depth) {
  size_t n = part.type.size() + part.subtype.size() + part.part.size() + part.size +
             part.params.size() + part.language.size() + part.disposition.size();
  if (part.envelope) n += part.envelope->subject.size() + part.envelope->from.size();
  if (depth > 200) return n;
  for (const imap::BodyPart& child : part.children) n += Walk(child, depth + 1);
  return n;
}

class Driver {
 public:
  Driver(bool rich, bool condstore) : rich_(rich) {
    imap::Options options;
    options.login.security = wire::Security::kImplicitTls;
    options.login.user = "fuzz";
    options.login.password = Secret("secret");
    options.enable_condstore = condstore;
    options.limits.max_line = 1 << 16;
    options.limits.max_response_text = 1 << 18;
    options.limits.max_literal = 1 << 18;
    options.limits.max_list_items = 10'000;
    options.limits.max_tracked_messages = 10'000;
    client_ = imap::NewClient(std::move(options));
    client_->SetEventCallback([this](const imap::MailboxEvent&) { ++sink_; });
  }

  Client& client() { return *client_; }

  void Collect() { output_ += client_->TakeOutput(); }
  std::string Tag() {
    Collect();
    return LastTag(output_);
  }

  // Answers the login with a well-behaved server so the fuzzed bytes reach a command.
  bool CannedLogin() {
    std::string greeting = "* OK [CAPABILITY " + std::string(rich_ ? kRichCaps : kBareCaps) +
                           "] fuzz ready\r\n";
    client_->OnBytes(greeting);
    for (int i = 0; i < 10 && client_->phase() == Phase::kLoggingIn; ++i) {
      std::string out = client_->TakeOutput();
      output_ += out;
      std::string tag = LastTag(out);
      if (tag.empty()) return false;
      std::string reply;
      if (out.find(" ENABLE ") != std::string::npos) {
        reply = "* ENABLED UTF8=ACCEPT CONDSTORE\r\n";
      } else if (out.find(" SELECT ") != std::string::npos) {
        reply = "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 9] n\r\n";
      }
      reply += tag + " OK done\r\n";
      client_->OnBytes(reply);
    }
    return client_->phase() == Phase::kReady;
  }

  void Start(uint8_t command) {
    imap::UidSet uids;
    uids.AddRange(1, 8);
    switch (command % 16) {
      case 0:
      case 13:
        client_->StartNoop();
        break;
      case 1:
        client_->StartList("*", [this](std::vector<imap::ListEntry> e) { sink_ += e.size(); });
        break;
      case 2:
        client_->StartSelect("Archiv\xc3\xa9", command & 0x10);
        break;
      case 3:
        client_->StartStatus("INBOX", [this](imap::MailboxStatus) { ++sink_; });
        break;
      case 4: {
        imap::SearchOptions so;
        so.want_min_max_count = command & 0x10;
        client_->StartUidSearch({imap::SearchArg::Atom("SUBJECT"),
                                 imap::SearchArg::String("caf\xc3\xa9")},
                                so, [this](imap::SearchResult r) { sink_ += r.uids.size(); });
        break;
      }
      case 5: {
        imap::FetchRequest request;
        request.items = imap::kFetchFlags | imap::kFetchSize | imap::kFetchInternalDate |
                        imap::kFetchEnvelope | imap::kFetchBodyStructure | imap::kFetchModSeq;
        request.sections = {{""}, {"HEADER"}, {"1.2"}, {"HEADER.FIELDS (SUBJECT FROM)"},
                            {"TEXT", 10, 100}};
        if (command & 0x10) {
          request.sink = [this](uint32_t, uint32_t, absl::string_view, absl::string_view piece,
                                bool) { sink_ += piece.size(); };
        }
        client_->StartUidFetch(uids, std::move(request), [this](imap::FetchedMessage m) {
          sink_ += m.flags.size() + m.sections.size();
          if (m.body_structure) sink_ += Walk(*m.body_structure, 0);
          if (m.envelope) sink_ += m.envelope->to.size();
        });
        break;
      }
      case 6:
        client_->StartUidStore(uids, imap::StoreMode::kAdd, {"\\Seen", "$Junk"}, command & 0x10,
                               [this](imap::FetchedMessage m) { sink_ += m.flags.size(); });
        break;
      case 7:
        client_->StartUidCopy(uids, "Trash",
                              [this](imap::CopyResult r) { sink_ += r.mapping.size(); });
        break;
      case 8:
        client_->StartUidMove(uids, "Trash",
                              [this](imap::CopyResult r) { sink_ += r.mapping.size(); });
        break;
      case 9:
        client_->StartUidExpunge(uids);
        break;
      case 10:
        client_->StartExpunge();
        break;
      case 11: {
        imap::AppendRequest request;
        request.flags = {"\\Seen"};
        request.message = "Subject: x\r\n\r\nbody\r\n";
        client_->StartAppend("Sent", std::move(request),
                             [this](imap::AppendResult r) { sink_ += r.uid; });
        break;
      }
      case 12:
        client_->StartIdle();
        break;
      case 14:
        client_->StartLogout();
        break;
      case 15:
        switch ((command >> 4) % 4) {
          case 0: client_->StartCreate("New/Folder"); break;
          case 1: client_->StartDelete("Old"); break;
          case 2: client_->StartRename("Old", "New"); break;
          default: client_->StartSubscribe("Old", true); break;
        }
        break;
    }
  }

  // Feeds the server data line by line, starting commands whenever the client is ready.
  void Run(absl::string_view data, uint8_t command, uint8_t pattern, bool start_commands) {
    int started = 0;
    for (absl::string_view line : SplitKeepingNewlines(data)) {
      Phase phase = client_->phase();
      if (phase == Phase::kFailed || phase == Phase::kClosed) return;
      if (phase == Phase::kNeedTls) client_->OnTlsEstablished();
      if (start_commands && phase == Phase::kReady && started < 64) {
        Start(static_cast<uint8_t>(command + 17 * started));
        ++started;
      }
      std::string text(line);
      if (text.size() >= 2 && text[0] == 'T' && text[1] == ' ') text = Tag() + text.substr(1);
      FeedInChunks(text, pattern, [this](absl::string_view piece) {
        client_->OnBytes(piece);
        if (client_->idling()) client_->StopIdle();
      });
      Collect();
      if (output_.size() > (1 << 20)) output_.clear();
    }
    (void)client_->error().message().size();
    (void)client_->last_reply().size();
    (void)client_->info().greeting.size();
  }

 private:
  bool rich_;
  std::unique_ptr<Client> client_;
  std::string output_;
  size_t sink_ = 0;
};

}  // namespace
}  // namespace mailpool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mailpool::fuzz::Input in(data, size);
  uint8_t command = in.Byte();
  uint8_t profile = in.Byte();
  uint8_t pattern = in.Byte() % 9;
  mailpool::fuzz::Driver driver(!(profile & 1), profile & 2);
  if (command == 0) {
    driver.Run(in.rest(), profile >> 2, pattern, true);  // the login is fuzzed too
  } else if (driver.CannedLogin()) {
    driver.Run(in.rest(), command, pattern, true);
  }
  return 0;
}
