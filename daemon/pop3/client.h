// POP3 client (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH), sans I/O:
// greeting, CAPA, STLS, USER/PASS, APOP, AUTH (the mechanisms of wire/sasl_exchange.h),
// NOOP, QUIT, and the maildrop commands STAT, LIST, UIDL, TOP, RETR, DELE, RSET.
//
//   std::unique_ptr<pop3::Client> client = pop3::NewClient(std::move(login));
//   ... once client->phase() == kReady (see wire/protocol.h):
//   client->StartRetr(3, [&](absl::string_view bytes) { out.append(bytes); });
//   ... push server bytes with OnBytes(); back in kReady, error() tells how it went.
//
// Results are pushed: each Start*() takes the sink or callback that receives the command's
// data; it is called zero or more times from inside OnBytes() and never after the client
// is back in kReady. Multi-line data (TOP, RETR) reaches the sink dot-unstuffed, in pieces
// as they arrive (the message is never held whole by the client), with its line endings
// as the server sent them (CRLF, or a bare LF from a sloppy server); the terminating
// ".CRLF" is not part of it.
//
// Outcomes of a command (error() once back in kReady):
//  - OK: the server said +OK and the data was complete.
//  - -ERR on a per-message command (TOP, RETR, DELE, LIST n): kNotFound NO_SUCH_MESSAGE,
//    or kUnavailable COMMAND_FAILED when the response code says the failure is temporary.
//  - -ERR to UIDL: kUnimplemented UIDL_UNSUPPORTED (RFC 1939 makes UIDL optional).
//  - -ERR to anything else: kUnavailable COMMAND_FAILED. The client stays usable.
//  - malformed data, over-long lines, listings or messages past the limits below: kFailed
//    with kUnavailable PROTOCOL_VIOLATION (the server cannot be trusted any more).
//
// Thread-compatible; loop-confined in the daemon.
#ifndef MAILPOOL_POP3_CLIENT_H_
#define MAILPOOL_POP3_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "wire/protocol.h"

namespace mailpool::pop3 {

// Bounds on what a (possibly hostile) server may send in answer to one command.
struct Limits {
  // Entries of one LIST or UIDL listing.
  size_t max_listing_entries = 1'000'000;
  // Bytes of one TOP or RETR response (after unstuffing). 0: no limit.
  uint64_t max_message_bytes = 256ull << 20;
};

// One line of a LIST listing (RFC 1939 section 5: "msg-number SP size").
struct ListEntry {
  uint32_t number = 0;
  uint64_t size = 0;
};

// One line of a UIDL listing (RFC 1939 section 7: "msg-number SP unique-id", the id being
// 1 to 70 characters in 0x21..0x7E).
struct UidlEntry {
  uint32_t number = 0;
  std::string uidl;
};

class Client : public wire::ClientProtocol {
 public:
  using StatDone = absl::AnyInvocable<void(uint32_t count, uint64_t size)>;
  using ListDone = absl::AnyInvocable<void(std::vector<ListEntry>)>;
  using UidlDone = absl::AnyInvocable<void(std::vector<UidlEntry>)>;
  // Receives the next dot-unstuffed bytes of a TOP or RETR response; never empty.
  using DataSink = absl::AnyInvocable<void(absl::string_view)>;

  // Every Start*() requires kReady (else it does nothing and calls nothing) and moves the
  // client to kBusy until the response is complete. Message numbers must be >= 1.

  // STAT: `done` gets the drop listing's count and size (RFC 1939 section 5).
  virtual void StartStat(StatDone done) = 0;
  // LIST (all messages): `done` gets every listed message, in server order.
  virtual void StartList(ListDone done) = 0;
  // UIDL (all messages): `done` gets every unique-id, in server order.
  virtual void StartUidl(UidlDone done) = 0;
  // TOP n lines: the header block, the empty line and the first `lines` body lines.
  virtual void StartTop(uint32_t number, uint32_t lines, DataSink sink) = 0;
  // RETR n: the whole message.
  virtual void StartRetr(uint32_t number, DataSink sink) = 0;
  // DELE n: marks the message deleted; the server removes it at QUIT.
  virtual void StartDele(uint32_t number) = 0;
  // RSET: unmarks every message deleted in this session.
  virtual void StartRset() = 0;
};

std::unique_ptr<Client> NewClient(wire::LoginOptions options, Limits limits = Limits());

}  // namespace mailpool::pop3

#endif  // MAILPOOL_POP3_CLIENT_H_
