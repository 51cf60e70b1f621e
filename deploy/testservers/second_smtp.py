#!/usr/bin/python3
"""A second SMTP server for the integration tests (scripts/second-servers.sh): Debian's
aiosmtpd (python3-aiosmtpd), a different SMTP implementation from Postfix, configured like
the Postfix of deploy/testservers: STARTTLS with AUTH required before MAIL on one port,
implicit TLS on another, recipients limited to the test users (550 5.1.1 otherwise), and
accepted mail delivered over LMTP into the test Dovecot, so a message sent through it can
be read back over IMAP and POP3. Loopback only; runs until SIGTERM.

Usage: second_smtp.py USERS_FILE LMTP_PORT STARTTLS_PORT TLS_PORT CERT KEY
(USERS_FILE is Dovecot's passwd-file: user:{PLAIN}password:...)
"""
import asyncio
import signal
import smtplib
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

users_file, lmtp_port, starttls_port, tls_port, cert, key = sys.argv[1:7]
users = {}
for line in open(users_file, encoding="utf-8"):
    if line.strip() and not line.startswith("#"):
        name, secret = line.split(":")[:2]
        users[name.lower()] = secret.split("}", 1)[-1]


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() not in users:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_VRFY(self, server, session, envelope, address):
        if address.strip("<>").lower() in users:
            return "252 2.0.0 %s" % address
        return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address

    async def handle_DATA(self, server, session, envelope):
        # Dovecot 2.3's LMTP does not offer SMTPUTF8: the bytes are handed on as they are.
        options = [o for o in envelope.mail_options if o.upper().startswith("BODY=")]
        try:
            await asyncio.get_running_loop().run_in_executor(None, deliver, envelope, options)
        except smtplib.SMTPRecipientsRefused as e:
            return "451 4.3.0 delivery failed: %s" % e
        except (smtplib.SMTPException, OSError) as e:
            return "451 4.3.0 delivery failed: %s" % e
        return "250 2.0.0 Ok: queued"


def deliver(envelope, options):
    with smtplib.LMTP("127.0.0.1", int(lmtp_port)) as lmtp:
        lmtp.sendmail(envelope.mail_from, envelope.rcpt_tos, envelope.original_content,
                      mail_options=options)


def authenticator(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword):
        login = auth_data.login.decode("utf-8", "replace").lower()
        if login in users and users[login] == auth_data.password.decode("utf-8", "replace"):
            return AuthResult(success=True)
    return AuthResult(success=False, handled=False)


def factory(**tls):
    def make():
        return SMTP(Handler(), hostname="second.example.test", ident="second-smtp (aiosmtpd)",
                    enable_SMTPUTF8=True, decode_data=False, authenticator=authenticator,
                    auth_required=True, data_size_limit=64 << 20, **tls)
    return make


async def main():
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    await loop.create_server(
        factory(tls_context=context, require_starttls=True, auth_require_tls=True),
        "127.0.0.1", int(starttls_port))
    await loop.create_server(factory(auth_require_tls=False), "127.0.0.1", int(tls_port),
                             ssl=context)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    await stop


asyncio.run(main())
