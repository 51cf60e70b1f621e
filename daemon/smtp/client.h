// SMTP client (RFC 5321, RFC 3207 STARTTLS, RFC 4954 AUTH), sans I/O: greeting, EHLO,
// STARTTLS, AUTH PLAIN / LOGIN / CRAM-MD5 / XOAUTH2 / OAUTHBEARER or no AUTH when no
// secret is given, NOOP and QUIT.
//
//   std::unique_ptr<wire::ClientProtocol> client = smtp::NewClient(std::move(login));
//
// Thread-compatible; loop-confined in the daemon.
#ifndef MAILPOOL_SMTP_CLIENT_H_
#define MAILPOOL_SMTP_CLIENT_H_

#include <memory>

#include "wire/protocol.h"

namespace mailpool::smtp {

std::unique_ptr<wire::ClientProtocol> NewClient(wire::LoginOptions options);

}  // namespace mailpool::smtp

#endif  // MAILPOOL_SMTP_CLIENT_H_
