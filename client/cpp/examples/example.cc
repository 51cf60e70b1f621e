// The mailpool C++ client in one page: open an IMAP session, list the newest messages,
// read one, send one over SMTP, look at the sessions, handle errors, close everything.
// Configuration: MAILPOOL_ADDR (the daemon), MAIL_HOST, MAIL_USER, MAIL_PASSWORD, MAIL_CA,
// MAIL_IMAPS_PORT, MAIL_POP3S_PORT, MAIL_SMTP_PORT; each falls back to the local test
// servers' MAILPOOL_TEST_* variables. A daemon that authenticates its callers takes the
// token from $MAILPOOL_TOKEN (or the file $MAILPOOL_TOKEN_FILE).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "mailpool/client.h"

namespace v1 = mailpool::v1;

static std::string Env(const char* name, const char* test_name, const char* dflt = "") {
  for (const char* n : {name, test_name}) {
    const char* v = std::getenv(n);
    if (v && *v) return v;
  }
  return dflt;
}

static std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int main() {
  // README example begins imap
  mailpool::Client client;  // $MAILPOOL_ADDR or 127.0.0.1:50551
  mailpool::StartOptions o;
  o.host = Env("MAIL_HOST", "MAILPOOL_TEST_HOST", "127.0.0.1");
  o.user = Env("MAIL_USER", "MAILPOOL_TEST_USER");
  o.password = Env("MAIL_PASSWORD", "MAILPOOL_TEST_PASSWORD");
  if (std::string ca = Env("MAIL_CA", "MAILPOOL_TEST_CA"); !ca.empty()) o.ca_pem = ReadFile(ca);

  {
    // 1. An IMAP session over implicit TLS; it closes (LOGOUT) at the end of the scope.
    mailpool::StartOptions io = o;
    io.port = std::stoi(Env("MAIL_IMAPS_PORT", "MAILPOOL_TEST_IMAPS_PORT", "993"));
    io.security = v1::SECURITY_IMPLICIT_TLS;
    io.name = "example-imap";
    absl::StatusOr<mailpool::Session> imap = client.StartImap(io);
    if (!imap.ok()) {
      std::cerr << "start imap: " << imap.status() << "\n";
      return 1;
    }
    absl::StatusOr<v1::Session> info = imap->Info();
    if (!info.ok()) return 1;
    std::cout << "IMAP session " << imap->id() << " (" << info->connections(0).tls_version()
              << "), folder " << info->current_folder() << "\n";

    // 2. The 10 newest messages (pages are fetched as the loop goes), then read one.
    v1::ListMessagesRequest list;
    list.set_page_size(10);
    list.set_view(v1::MESSAGE_VIEW_HEADERS);
    std::string first_id;
    int shown = 0;
    for (const absl::StatusOr<v1::EmailMessage>& m : imap->ListMessages(list)) {
      if (!m.ok()) {
        std::cerr << "list: " << m.status() << "\n";
        return 1;
      }
      if (first_id.empty()) first_id = m->id();
      std::cout << "  " << m->from().address() << "  " << m->subject() << "\n";
      if (++shown == 10) break;  // the newest 10 only (leaving the loop stops paging)
    }
    if (!first_id.empty()) {
      absl::StatusOr<v1::EmailMessage> full = imap->GetMessage(first_id, v1::MESSAGE_VIEW_FULL);
      if (full.ok())
        std::cout << "  first message body: " << full->text_body().substr(0, 60) << "\n";
    }
  }
  // README example ends imap

  {
    // 3. Send a message over an SMTP session (STARTTLS on the submission port).
    mailpool::StartOptions so = o;
    so.port = std::stoi(Env("MAIL_SMTP_PORT", "MAILPOOL_TEST_SMTP_PORT", "587"));
    so.security = v1::SECURITY_STARTTLS;
    absl::StatusOr<mailpool::Session> smtp = client.StartSmtp(so);
    if (!smtp.ok()) {
      std::cerr << "start smtp: " << smtp.status() << "\n";
      return 1;
    }
    v1::EmailMessage msg;
    *msg.mutable_from() = mailpool::MakeAddress(o.user);
    *msg.add_to() = mailpool::MakeAddress(o.user);
    msg.set_subject("Hello from mailpool");
    msg.set_text_body("Sent through a pooled SMTP session.\n");
    absl::StatusOr<v1::SendMessageResponse> sent = smtp->Send(msg);
    if (sent.ok()) {
      std::cout << "sent " << sent->message_id() << ": " << sent->server_reply() << "\n";
    } else {
      std::cerr << "send: " << sent.status() << "\n";
      return 1;
    }
  }

  {
    // 4. A POP3 session too, then every session this caller holds.
    mailpool::StartOptions po = o;
    po.port = std::stoi(Env("MAIL_POP3S_PORT", "MAILPOOL_TEST_POP3S_PORT", "995"));
    po.security = v1::SECURITY_IMPLICIT_TLS;
    absl::StatusOr<mailpool::Session> pop3 = client.StartPop3(po);
    if (!pop3.ok()) {
      std::cerr << "start pop3: " << pop3.status() << "\n";
      return 1;
    }
    for (const absl::StatusOr<v1::Session>& s : client.ListSessions()) {
      if (!s.ok()) return 1;
      std::cout << "  session " << s->id() << " " << (s->name().empty() ? "-" : s->name()) << " "
                << v1::Protocol_Name(s->protocol()) << " user=" << s->user() << "\n";
    }
    absl::StatusOr<std::string> reply = pop3->Close();
    std::cout << "POP3 closed: " << reply.value_or("?") << "\n";
  }

  // README example begins errors
  // 5. Errors carry the gRPC code, the message and the mail server's own reply.
  mailpool::StartOptions bad = o;
  bad.port = std::stoi(Env("MAIL_IMAPS_PORT", "MAILPOOL_TEST_IMAPS_PORT", "993"));
  bad.security = v1::SECURITY_IMPLICIT_TLS;
  bad.password = "not the password";
  absl::StatusOr<mailpool::Session> refused = client.StartImap(bad);
  if (!absl::IsUnauthenticated(refused.status())) {
    std::cerr << "expected UNAUTHENTICATED, got " << refused.status() << "\n";
    return 1;
  }
  std::cout << "wrong password -> " << absl::StatusCodeToString(refused.status().code())
            << "; server said: " << mailpool::ServerReply(refused.status()) << "\n";
  // README example ends errors
  std::cout << "example finished\n";
  return 0;
}
