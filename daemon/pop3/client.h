// POP3 client (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH), sans I/O:
// greeting, CAPA, STLS, USER/PASS, APOP, AUTH PLAIN / XOAUTH2 / OAUTHBEARER, NOOP, QUIT.
//
//   std::unique_ptr<wire::ClientProtocol> client = pop3::NewClient(std::move(login));
//
// Thread-compatible; loop-confined in the daemon.
#ifndef MAILPOOL_POP3_CLIENT_H_
#define MAILPOOL_POP3_CLIENT_H_

#include <memory>

#include "wire/protocol.h"

namespace mailpool::pop3 {

std::unique_ptr<wire::ClientProtocol> NewClient(wire::LoginOptions options);

}  // namespace mailpool::pop3

#endif  // MAILPOOL_POP3_CLIENT_H_
