// IMAP4rev1 client (RFC 3501), sans I/O: greeting, CAPABILITY, STARTTLS, authentication
// (LOGIN; AUTHENTICATE PLAIN, LOGIN, XOAUTH2, OAUTHBEARER with SASL-IR where offered),
// SELECT of the initial folder, NOOP and LOGOUT.
//
//   imap::Options options;
//   options.login.user = "alice";  options.login.password = Secret("...");
//   std::unique_ptr<wire::ClientProtocol> client = imap::NewClient(std::move(options));
//
// Thread-compatible; loop-confined in the daemon.
#ifndef MAILPOOL_IMAP_CLIENT_H_
#define MAILPOOL_IMAP_CLIENT_H_

#include <memory>
#include <string>

#include "wire/protocol.h"

namespace mailpool::imap {

struct Options {
  wire::LoginOptions login;
  // Folder to SELECT after login; empty: INBOX.
  std::string initial_folder;
};

std::unique_ptr<wire::ClientProtocol> NewClient(Options options);

}  // namespace mailpool::imap

#endif  // MAILPOOL_IMAP_CLIENT_H_
