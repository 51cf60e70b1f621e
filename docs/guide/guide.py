#!/usr/bin/env python3
"""The WLangage email functions, one by one, with the mailpool Python client (see
docs/wlangage.md, which shows each region below). Runs against a daemon ($MAILPOOL_ADDR)
and a mail account: MAIL_HOST, MAIL_USER, MAIL_PASSWORD, MAIL_CA, MAIL_IMAPS_PORT,
MAIL_POP3S_PORT, MAIL_SMTP_PORT (falling back to the test servers' MAILPOOL_TEST_*)."""
import os
import time
import uuid

import mailpool
from mailpool import Security, View
from mailpool.v1 import send_pb2


def env(name: str, test_name: str, default: str = "") -> str:
    return os.environ.get(name) or os.environ.get(test_name) or default


host = env("MAIL_HOST", "MAILPOOL_TEST_HOST", "127.0.0.1")
user = env("MAIL_USER", "MAILPOOL_TEST_USER")
password = env("MAIL_PASSWORD", "MAILPOOL_TEST_PASSWORD")
ca = env("MAIL_CA", "MAILPOOL_TEST_CA") or None
imaps = int(env("MAIL_IMAPS_PORT", "MAILPOOL_TEST_IMAPS_PORT", "993"))
pop3s = int(env("MAIL_POP3S_PORT", "MAILPOOL_TEST_POP3S_PORT", "995"))
smtp_port = int(env("MAIL_SMTP_PORT", "MAILPOOL_TEST_SMTP_PORT", "587"))
subject = f"guide python {uuid.uuid4().hex[:8]}"
client = mailpool.Client()

# README example begins EmailGetTimeOut
timeout = client.get_default_timeout()               # a datetime.timedelta
client.set_default_timeout(timeout)                  # EmailSetTimeOut
# README example ends EmailGetTimeOut

# README example begins EmailStartSMTPSession
smtp = client.start_smtp(host, port=smtp_port, security=Security.STARTTLS, user=user,
                         password=password, ca_file=ca)
# README example ends EmailStartSMTPSession

# README example begins EmailCheckAddress
check = smtp.check_address(user)                     # asks the SMTP server (RCPT TO)
print(send_pb2.CheckResult.Name(check.result), check.server_reply)
# README example ends EmailCheckAddress

# README example begins EmailSendMessage
result = smtp.send(mailpool.message(from_=user, to=[user], subject=subject,
                                    text="Hello from the guide\n"))
print(result.message_id, result.server_reply)        # per recipient: result.recipients
# README example ends EmailSendMessage

# README example begins EmailStatus
queued = client.start_smtp(host, port=smtp_port, security="starttls", user=user,
                           password=password, ca_file=ca, asynchronous=True)
sent = queued.send(mailpool.message(from_=user, to=[user], subject=subject + " async",
                                    text="queued\n"))
status = queued.send_status(sent.send_id)            # QUEUED, PENDING, SENT or ERROR
while status.state in (send_pb2.SEND_STATE_QUEUED, send_pb2.SEND_STATE_PENDING):
    time.sleep(0.1)
    status = queued.send_status(sent.send_id)
print(send_pb2.SendState.Name(status.state), status.server_reply)
# README example ends EmailStatus
assert status.state == send_pb2.SEND_STATE_SENT, status

# README example begins EmailStartIMAPSession
imap = client.start_imap(host, port=imaps, security=Security.IMPLICIT_TLS, user=user,
                         password=password, ca_file=ca)
# README example ends EmailStartIMAPSession

# README example begins EmailNbMessage
print(imap.status().message_count, "messages,", imap.status().unread_count, "unread")
# README example ends EmailNbMessage

# README example begins EmailReadFirst
for m in imap.messages(view=View.HEADERS, limit=5):  # newest first; pages as needed
    print(m.id, m.from_.address, m.subject)
# README example ends EmailReadFirst

found = []
for _ in range(100):  # delivery takes a moment
    found = list(imap.search(subject=subject))
    if len(found) == 2:
        break
    time.sleep(0.1)
assert len(found) == 2, found

# README example begins EmailSeekFirst
first = next(imap.search(subject=subject, unread=True), None)   # None when nothing matches
# README example ends EmailSeekFirst

# README example begins EmailReadMessage
message = imap.get_message(first.id, view=View.FULL)  # View.HEADERS: EmailReadMessageHeader
print(message.subject, message.text_body)
# README example ends EmailReadMessage

# README example begins EmailChangeStatus
imap.mark_read(first.id)                             # and imap.mark_read(first.id, False)
# README example ends EmailChangeStatus

# README example begins EmailListFolder
for folder in imap.folders():
    print(folder.name, folder.role)
imap.select_folder("INBOX")                          # EmailChangeFolder
# README example ends EmailListFolder

# README example begins EmailDeleteMessage
imap.delete([m.id for m in imap.search(subject=subject)])
# README example ends EmailDeleteMessage

# README example begins EmailStartSession
legacy = client.start_pop3_smtp(host, port=pop3s, security="tls", smtp_port=smtp_port,
                                smtp_security="starttls", user=user, password=password,
                                ca_file=ca)
print(legacy.status().message_count)                 # reads over POP3, sends over SMTP
# README example ends EmailStartSession

# README example begins EmailBuildSource
source = client.build_source(mailpool.message(from_=user, to=["bob@example.org"],
                                              subject="Hi", text="Hello\n")).source
parsed = client.parse_source(source).message         # EmailImportSource
# README example ends EmailBuildSource
assert parsed.subject == "Hi"

# README example begins ErrorInfo
try:
    client.start_imap(host, port=imaps, security="tls", user=user, password="wrong",
                      ca_file=ca)
except mailpool.Unauthenticated as e:                # every error is a MailpoolError
    print(e.code.name, e.reason, e.server_reply)     # the server's own reply line
# README example ends ErrorInfo

# README example begins EmailCloseSession
for session in (smtp, queued, imap, legacy):
    print(session.close())                           # LOGOUT / QUIT
# README example ends EmailCloseSession
client.close()
print("guide finished")
