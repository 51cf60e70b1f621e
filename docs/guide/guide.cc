// The WLangage email functions, one by one, with the mailpool C++ client (see
// docs/wlangage.md, which shows each region below). Runs against a daemon ($MAILPOOL_ADDR)
// and a mail account: MAIL_HOST, MAIL_USER, MAIL_PASSWORD, MAIL_CA, MAIL_IMAPS_PORT,
// MAIL_POP3S_PORT, MAIL_SMTP_PORT (falling back to the test servers' MAILPOOL_TEST_*).
// Built as mailpool_wlangage_guide (client/cpp/CMakeLists.txt).
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mailpool/client.h"

namespace v1 = mailpool::v1;

namespace {

std::string Env(const char* name, const char* test_name, const char* dflt = "") {
  for (const char* n : {name, test_name}) {
    if (const char* v = std::getenv(n); v && *v) return v;
  }
  return dflt;
}

[[noreturn]] void Die(const std::string& what, const absl::Status& status) {
  std::cerr << what << ": " << status << "\n";
  std::exit(1);
}

template <typename T>
T Must(absl::StatusOr<T> value, const char* what) {
  if (!value.ok()) Die(what, value.status());
  return *std::move(value);
}

}  // namespace

int main() {
  mailpool::StartOptions o;
  o.host = Env("MAIL_HOST", "MAILPOOL_TEST_HOST", "127.0.0.1");
  o.user = Env("MAIL_USER", "MAILPOOL_TEST_USER");
  o.password = Env("MAIL_PASSWORD", "MAILPOOL_TEST_PASSWORD");
  if (std::string ca = Env("MAIL_CA", "MAILPOOL_TEST_CA"); !ca.empty()) {
    std::ifstream in(ca);
    std::stringstream pem;
    pem << in.rdbuf();
    o.ca_pem = pem.str();
  }
  const uint32_t imaps = std::stoi(Env("MAIL_IMAPS_PORT", "MAILPOOL_TEST_IMAPS_PORT", "993"));
  const uint32_t pop3s = std::stoi(Env("MAIL_POP3S_PORT", "MAILPOOL_TEST_POP3S_PORT", "995"));
  const uint32_t smtp_port = std::stoi(Env("MAIL_SMTP_PORT", "MAILPOOL_TEST_SMTP_PORT", "587"));
  const std::string subject = "guide cpp " + std::to_string(std::random_device{}());
  const std::string user = o.user;
  mailpool::Client client;  // $MAILPOOL_ADDR

  // README example begins EmailGetTimeOut
  absl::Duration timeout = Must(client.GetDefaultTimeout(), "get timeout");
  Must(client.SetDefaultTimeout(timeout), "set timeout");  // EmailSetTimeOut
  // README example ends EmailGetTimeOut

  // README example begins EmailStartSMTPSession
  mailpool::StartOptions so = o;  // host, user, password, ca_pem
  so.port = smtp_port;
  so.security = v1::SECURITY_STARTTLS;
  mailpool::Session smtp = Must(client.StartSmtp(so), "start smtp");
  // README example ends EmailStartSMTPSession

  // README example begins EmailCheckAddress
  v1::CheckAddressResponse check = Must(smtp.CheckAddress(user), "check");  // RCPT TO
  std::cout << v1::CheckResult_Name(check.result()) << " " << check.server_reply() << "\n";
  // README example ends EmailCheckAddress

  // README example begins EmailSendMessage
  v1::EmailMessage msg;
  *msg.mutable_from() = mailpool::MakeAddress(user);
  *msg.add_to() = mailpool::MakeAddress(user);
  msg.set_subject(subject);
  msg.set_text_body("Hello from the guide\n");
  v1::SendMessageResponse result = Must(smtp.Send(msg), "send");
  std::cout << result.message_id() << " " << result.server_reply() << "\n";
  // README example ends EmailSendMessage

  // README example begins EmailStatus
  mailpool::StartOptions ao = so;
  ao.asynchronous = true;
  mailpool::Session queued = Must(client.StartSmtp(ao), "start async smtp");
  msg.set_subject(subject + " async");
  std::string send_id = Must(queued.Send(msg), "queue").send_id();
  v1::SendStatus status = Must(queued.GetSendStatus(send_id), "status");
  while (status.state() == v1::SEND_STATE_QUEUED || status.state() == v1::SEND_STATE_PENDING) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = Must(queued.GetSendStatus(send_id), "status");
  }
  std::cout << v1::SendState_Name(status.state()) << " " << status.server_reply() << "\n";
  // README example ends EmailStatus
  if (status.state() != v1::SEND_STATE_SENT) return 1;

  // README example begins EmailStartIMAPSession
  mailpool::StartOptions io = o;
  io.port = imaps;
  io.security = v1::SECURITY_IMPLICIT_TLS;
  mailpool::Session imap = Must(client.StartImap(io), "start imap");
  // README example ends EmailStartIMAPSession

  // README example begins EmailNbMessage
  v1::MailboxStatus box = Must(imap.Status(), "status");
  std::cout << box.message_count() << " messages, " << box.unread_count() << " unread\n";
  // README example ends EmailNbMessage

  // README example begins EmailReadFirst
  v1::ListMessagesRequest list;  // newest first
  list.set_view(v1::MESSAGE_VIEW_HEADERS);
  list.set_page_size(5);
  int shown = 0;
  for (const absl::StatusOr<v1::EmailMessage>& m : imap.ListMessages(list)) {
    if (!m.ok()) Die("list", m.status());
    std::cout << m->id() << " " << m->from().address() << " " << m->subject() << "\n";
    if (++shown == 5) break;  // leaving the loop stops paging
  }
  // README example ends EmailReadFirst

  auto search = [&](bool unread_only) {
    v1::SearchMessagesRequest request;
    request.mutable_criteria()->set_subject(subject);
    if (unread_only) request.mutable_criteria()->set_unread(true);
    std::vector<v1::EmailMessage> found;
    for (const absl::StatusOr<v1::EmailMessage>& m : imap.SearchMessages(request)) {
      if (!m.ok()) Die("search", m.status());
      found.push_back(*m);
    }
    return found;
  };
  for (int i = 0; i < 100 && search(false).size() != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (search(false).size() != 2) return 1;

  // README example begins EmailSeekFirst
  v1::SearchMessagesRequest seek;
  seek.mutable_criteria()->set_subject(subject);
  seek.mutable_criteria()->set_unread(true);
  seek.set_page_size(1);
  std::string first_id;
  for (const absl::StatusOr<v1::EmailMessage>& m : imap.SearchMessages(seek)) {
    if (m.ok()) first_id = m->id();
    break;  // the first match only
  }
  // README example ends EmailSeekFirst

  // README example begins EmailReadMessage
  v1::EmailMessage message = Must(imap.GetMessage(first_id, v1::MESSAGE_VIEW_FULL), "read");
  std::cout << message.subject() << " " << message.text_body() << "\n";  // ..._HEADERS too
  // README example ends EmailReadMessage

  // README example begins EmailChangeStatus
  v1::UpdateFlagsRequest read;
  read.add_ids(first_id);
  read.set_operation(v1::FLAG_OPERATION_ADD);  // _REMOVE: unread again
  read.mutable_flags()->set_seen(true);
  Must(imap.UpdateFlags(read), "flags");
  // README example ends EmailChangeStatus

  // README example begins EmailListFolder
  v1::ListFoldersResponse folders = Must(imap.ListFolders(), "folders");
  for (const v1::Folder& f : folders.folders()) {
    std::cout << f.name() << " " << v1::FolderRole_Name(f.role()) << "\n";
  }
  Must(imap.SelectFolder("INBOX"), "select");  // EmailChangeFolder
  // README example ends EmailListFolder

  // README example begins EmailDeleteMessage
  v1::DeleteMessagesRequest del;
  for (const v1::EmailMessage& m : search(false)) del.add_ids(m.id());
  Must(imap.DeleteMessages(del), "delete");
  // README example ends EmailDeleteMessage

  // README example begins EmailStartSession
  mailpool::StartOptions lo = o;
  lo.port = pop3s;
  lo.security = v1::SECURITY_IMPLICIT_TLS;
  lo.smtp_port = smtp_port;
  lo.smtp_security = v1::SECURITY_STARTTLS;
  mailpool::Session legacy = Must(client.StartPop3Smtp(lo), "start pop3+smtp");
  std::cout << Must(legacy.Status(), "count").message_count() << "\n";  // POP3 + SMTP
  // README example ends EmailStartSession

  // README example begins EmailBuildSource
  v1::EmailMessage hi;
  *hi.mutable_from() = mailpool::MakeAddress(user);
  *hi.add_to() = mailpool::MakeAddress("bob@example.org");
  hi.set_subject("Hi");
  std::string source = Must(client.BuildSource(hi), "build").source();
  v1::EmailMessage parsed = Must(client.ParseSource(source), "parse").message();  // Import
  // README example ends EmailBuildSource
  if (parsed.subject() != "Hi") return 1;

  // README example begins ErrorInfo
  mailpool::StartOptions bad = io;
  bad.password = "wrong";
  absl::StatusOr<mailpool::Session> refused = client.StartImap(bad);
  if (absl::IsUnauthenticated(refused.status())) {  // errors are absl::Status values
    std::cout << mailpool::ErrorInfoOf(refused.status())->reason() << " "
              << mailpool::ServerReply(refused.status()) << "\n";  // the server's own reply
  }
  // README example ends ErrorInfo
  if (!absl::IsUnauthenticated(refused.status())) return 1;

  // README example begins EmailCloseSession
  for (mailpool::Session* s : {&smtp, &queued, &imap, &legacy}) {
    std::cout << Must(s->Close(), "close") << "\n";  // LOGOUT / QUIT (~Session does it too)
  }
  // README example ends EmailCloseSession
  std::cout << "guide finished\n";
  return 0;
}
