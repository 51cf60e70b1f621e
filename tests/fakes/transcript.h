// Transcript-driven tests for sans-I/O protocol clients (the KDE kimap style).
//
// A script is a list of lines:
//   S: <text>     the server sends <text> CRLF
//   S+ <text>     the server sends <text> without CRLF (partial data)
//   C: <text>     the client must have written exactly <text> CRLF next
//   TLS           the client must be in kNeedTls; the harness completes the handshake
//   !noop         the harness calls StartNoop()
//   !logout       the harness calls StartLogout()
//   !<name>        the harness runs the test's action <name> (see Actions), e.g. to start a
//                  protocol-specific command
//   S~ <text>     the server sends <text> C-unescaped, without CRLF ("a\nb", "\r\n")
//   PHASE <name>  the client must be in that phase (LOGGING_IN, NEED_TLS, READY, BUSY,
//                 CLOSED, FAILED)
//   # ...         comment
// Each script is run twice: server data fed whole, then one byte at a time.
//
//   ExpectTranscript([] { return imap::NewClient(Options()); }, R"(
//     S: * OK ready
//     C: a1 CAPABILITY
//     ...)");
#ifndef MAILPOOL_TESTS_FAKES_TRANSCRIPT_H_
#define MAILPOOL_TESTS_FAKES_TRANSCRIPT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "wire/protocol.h"

namespace mailpool::testing {

using ClientFactory = std::function<std::unique_ptr<wire::ClientProtocol>()>;
// Named actions for "!<name>" lines; each gets the client under test.
using Actions = std::map<std::string, std::function<void(wire::ClientProtocol&)>, std::less<>>;

// Runs `script` against one client; byte_by_byte feeds server data one byte per OnBytes.
::testing::AssertionResult RunTranscript(wire::ClientProtocol& client, absl::string_view script,
                                         bool byte_by_byte, const Actions& actions = {});

// Runs the script both whole and byte by byte with fresh clients; returns the client of
// the byte-by-byte run for further checks.
std::unique_ptr<wire::ClientProtocol> ExpectTranscript(const ClientFactory& factory,
                                                       absl::string_view script,
                                                       const Actions& actions = {});

absl::string_view PhaseName(wire::ClientProtocol::Phase phase);

}  // namespace mailpool::testing

#endif  // MAILPOOL_TESTS_FAKES_TRANSCRIPT_H_
