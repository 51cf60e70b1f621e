// IMAP4rev1 client (RFC 3501), sans I/O: greeting, CAPABILITY, STARTTLS, authentication
// (LOGIN; AUTHENTICATE PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER with SASL-IR where
// offered), SELECT of the initial folder, NOOP and LOGOUT.
//
// Login flow: greeting ("* OK", "* PREAUTH" or a "* BYE" refusal), CAPABILITY unless the
// greeting carried [CAPABILITY ...], STARTTLS when security is kStartTls (capabilities are
// then asked again, RFC 3501 section 6.2.1), authentication (LOGIN unless LOGINDISABLED;
// SASL initial responses on the command line only with SASL-IR), CAPABILITY again unless
// the tagged OK carried them, SELECT, then kReady. Tags are a1, a2, ...
//
// PREAUTH (already authenticated) is accepted over implicit TLS and over plaintext when
// the caller chose kPlain (no credential is sent). With kStartTls it is refused before TLS
// (kFailedPrecondition STARTTLS_NOT_OFFERED): STARTTLS is impossible once authenticated,
// and accepting would silently downgrade the session to plaintext.
//
// Errors besides wire/protocol.h's conventions: SELECT refused (NO) is kNotFound
// FOLDER_NOT_FOUND with the server's reply; NO [UNAVAILABLE] to authentication (RFC 5530)
// is kUnavailable AUTH_UNAVAILABLE (a backend failure, not a verdict on the credentials);
// an unsolicited "* BYE" ends the session: kClosed with kUnavailable SERVER_CLOSED when
// logged in, kFailed SERVER_CLOSED during login; last_reply() holds the BYE line.
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
  // Folder to SELECT after login, in UTF-8 (sent in modified UTF-7, RFC 3501 section
  // 5.1.3); empty: INBOX.
  std::string initial_folder;
};

std::unique_ptr<wire::ClientProtocol> NewClient(Options options);

}  // namespace mailpool::imap

#endif  // MAILPOOL_IMAP_CLIENT_H_
