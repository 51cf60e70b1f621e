#!/usr/bin/env python3
"""The mailpool Python client in one page: open an IMAP session, list the newest messages,
read one, send one over SMTP, look at the sessions, handle errors, close everything.

Configuration comes from the environment: MAILPOOL_ADDR (the daemon), MAIL_HOST, MAIL_USER,
MAIL_PASSWORD, MAIL_CA (a CA file, optional), MAIL_IMAPS_PORT, MAIL_POP3S_PORT,
MAIL_SMTP_PORT; each falls back to the local test servers' MAILPOOL_TEST_* variables.
A daemon that authenticates its callers takes the token from $MAILPOOL_TOKEN (or the file
$MAILPOOL_TOKEN_FILE).
"""
import os
import sys

import mailpool
from mailpool import Security, View


def env(name: str, test_name: str, default: str = "") -> str:
    return os.environ.get(name) or os.environ.get(test_name) or default


host = env("MAIL_HOST", "MAILPOOL_TEST_HOST", "127.0.0.1")
user = env("MAIL_USER", "MAILPOOL_TEST_USER")
password = env("MAIL_PASSWORD", "MAILPOOL_TEST_PASSWORD")
ca_file = env("MAIL_CA", "MAILPOOL_TEST_CA") or None
imaps_port = int(env("MAIL_IMAPS_PORT", "MAILPOOL_TEST_IMAPS_PORT", "993"))
pop3s_port = int(env("MAIL_POP3S_PORT", "MAILPOOL_TEST_POP3S_PORT", "995"))
smtp_port = int(env("MAIL_SMTP_PORT", "MAILPOOL_TEST_SMTP_PORT", "587"))


# README example begins
with mailpool.Client() as client:  # $MAILPOOL_ADDR or 127.0.0.1:50551
    # 1. An IMAP session over implicit TLS; `with` closes it (LOGOUT) at the end.
    with client.start_imap(host, port=imaps_port, security=Security.IMPLICIT_TLS, user=user,
                           password=password, ca_file=ca_file, name="example-imap") as imap:
        info = imap.info()
        print(f"IMAP session {imap.id} ({info.connections[0].tls_version}), "
              f"folder {info.current_folder}")

        # 2. The 10 newest messages (pages are fetched as the loop goes), then read one.
        newest = list(imap.messages(limit=10, view=View.HEADERS))
        for m in newest:
            when = mailpool.to_datetime(m.receive_time)   # timezone-aware, UTC
            print(f"  {when:%Y-%m-%d %H:%M %Z}  {m.from_.address:30.30}  {m.subject}")
        if newest:
            full = imap.get_message(newest[0].id, view=View.FULL)
            print(f"  first message body: {full.text_body[:60]!r}")

        # 3. Send a message over an SMTP session (STARTTLS on the submission port).
        with client.start_smtp(host, port=smtp_port, security=Security.STARTTLS, user=user,
                               password=password, ca_file=ca_file) as smtp:
            msg = mailpool.message(from_=user, to=[user], subject="Hello from mailpool",
                                   text="Sent through a pooled SMTP session.\n")
            result = smtp.send(msg)
            print(f"sent {result.message_id}: {result.server_reply}")

        # 4. A POP3 session too, then every session this caller holds.
        with client.start_pop3(host, port=pop3s_port, security="tls", user=user,
                               password=password, ca_file=ca_file) as pop3:
            for s in client.sessions():
                print(f"  session {s.id} {s.name or '-':14} "
                      f"{mailpool.Protocol(s.protocol).name:5} user={s.user}")
            print(f"POP3 closed: {pop3.close()}")

    # 5. Errors carry the gRPC code, the message and the mail server's own reply.
    try:
        client.start_imap(host, port=imaps_port, security="tls", user=user,
                          password="not the password", ca_file=ca_file)
    except mailpool.Unauthenticated as e:
        print(f"wrong password -> {e.code.name} {e.reason}; server said: {e.server_reply!r}")
    except mailpool.MailpoolError as e:
        sys.exit(f"unexpected error: {e}")
# README example ends

print("example finished")
