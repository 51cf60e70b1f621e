"""mailpool Python client against a live mailpoold and the real test mail servers.

Run: MAILPOOLD=build/daemon/mailpoold PYTHONPATH=client/python /usr/bin/python3 -m unittest \
     discover -s client/python/tests -v     (with the MAILPOOL_TEST_* environment exported)
"""
from __future__ import annotations

import os
import subprocess
import sys
import unittest
import uuid

import grpc

import mailpool
from mailpool import Security, View
from mailpool.v1 import message_pb2, session_pb2

from daemon import Daemon, test_env

ENV: dict = {}
DAEMON: Daemon | None = None


def setUpModule() -> None:
    global ENV, DAEMON
    ENV = test_env()
    DAEMON = Daemon(ENV["MAILPOOLD"])


def tearDownModule() -> None:
    if DAEMON is not None:
        code = DAEMON.stop()
        if code != 0:
            raise RuntimeError(f"mailpoold exit code {code} after SIGTERM")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Base(unittest.TestCase):
    def setUp(self) -> None:
        assert DAEMON is not None
        self.client = mailpool.Client(DAEMON.address, timeout=30)
        self.host = ENV["MAILPOOL_TEST_HOST"]
        self.creds = dict(user=ENV["MAILPOOL_TEST_USER"], password=ENV["MAILPOOL_TEST_PASSWORD"],
                          ca_file=ENV["MAILPOOL_TEST_CA"])

    def tearDown(self) -> None:
        self.client.close()

    def port(self, name: str) -> int:
        return int(ENV[f"MAILPOOL_TEST_{name}_PORT"])


class StartSessionTest(Base):
    def test_imap_implicit_tls_info_close(self) -> None:
        with self.client.start_imap(self.host, port=self.port("IMAPS"),
                                    security=Security.IMPLICIT_TLS, name=unique("py-imap"),
                                    **self.creds) as s:
            self.assertTrue(s.id.startswith("mstest_"), s.id)
            self.assertEqual(s.protocol, mailpool.Protocol.IMAP)
            info = s.info()
            self.assertEqual(info.state, session_pb2.SESSION_STATE_READY)
            self.assertEqual(info.user, ENV["MAILPOOL_TEST_USER"])
            self.assertEqual(info.current_folder, "INBOX")
            self.assertEqual(len(info.connections), 1)
            conn = info.connections[0]
            self.assertTrue(conn.tls_version.startswith("TLS"), conn.tls_version)
            self.assertTrue(conn.tls_verified)
            self.assertIn("IMAP4rev1", conn.capabilities)
            self.assertEqual(self.client.get_session(s.name).id, s.id)
        self.assertTrue(s.closed)
        with self.assertRaises(mailpool.NotFound) as cm:
            self.client.get_session(s.id)
        self.assertEqual(cm.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_imap_starttls_string_security(self) -> None:
        with self.client.start_imap(self.host, port=self.port("IMAP"), security="starttls",
                                    **self.creds) as s:
            self.assertEqual(s.info().connections[0].security, session_pb2.SECURITY_STARTTLS)

    def test_pop3(self) -> None:
        with self.client.start_pop3(self.host, port=self.port("POP3S"), security="tls",
                                    **self.creds) as s:
            self.assertEqual(s.protocol, mailpool.Protocol.POP3)
            self.assertEqual(s.info().state, session_pb2.SESSION_STATE_READY)
            reply = s.close()
            self.assertTrue(reply.startswith("+OK"), reply)
            self.assertEqual(s.close(), "")  # a second close is a no-op

    def test_smtp(self) -> None:
        with self.client.start_smtp(self.host, port=self.port("SMTP"),
                                    security=Security.STARTTLS, ehlo_name="client.test",
                                    **self.creds) as s:
            info = s.info()
            self.assertEqual(info.protocol, session_pb2.PROTOCOL_SMTP)
            self.assertTrue(info.connections[0].greeting.startswith("220"))

    def test_pop3_smtp(self) -> None:
        with self.client.start_pop3_smtp(self.host, port=self.port("POP3S"),
                                         security=Security.IMPLICIT_TLS,
                                         smtp_port=self.port("SMTPS"), **self.creds) as s:
            info = s.info()
            self.assertEqual(info.protocol, session_pb2.PROTOCOL_POP3_SMTP)
            self.assertEqual([c.protocol for c in info.connections],
                             [session_pb2.PROTOCOL_POP3, session_pb2.PROTOCOL_SMTP])

    def test_exception_in_block_still_closes(self) -> None:
        with self.assertRaises(ZeroDivisionError):
            with self.client.start_imap(self.host, port=self.port("IMAPS"), security="tls",
                                        **self.creds) as s:
                1 / 0
        with self.assertRaises(mailpool.NotFound):
            self.client.get_session(s.id)

    def test_release_keeps_the_session(self) -> None:
        with self.client.start_pop3(self.host, port=self.port("POP3S"), security="tls",
                                    **self.creds) as s:
            sid = s.release()
        again = self.client.session(sid)
        self.assertEqual(again.info().state, session_pb2.SESSION_STATE_READY)
        self.assertTrue(self.client.close_session(sid).startswith("+OK"))


class ListAndTimeoutTest(Base):
    def test_list_sessions_pages(self) -> None:
        names = [unique("py-list") for _ in range(3)]
        started = [self.client.start_pop3(self.host, port=self.port("POP3S"), security="tls",
                                          name=n, **self.creds) for n in names]
        try:
            listed = {s.name: s for s in self.client.sessions(page_size=1)}
            for n, s in zip(names, started):
                self.assertIn(n, listed)
                self.assertEqual(listed[n].id, s.id)
            self.assertEqual(len(list(self.client.sessions(limit=2))), 2)
        finally:
            for s in started:
                s.close()
        remaining = {s.name for s in self.client.sessions()}
        self.assertFalse(remaining & set(names))

    def test_timeouts(self) -> None:
        before = self.client.get_default_timeout()
        try:
            self.assertEqual(self.client.set_default_timeout(300).total_seconds(), 300)
            self.assertEqual(self.client.get_default_timeout().total_seconds(), 300)
        finally:
            self.client.set_default_timeout(before)
        with self.client.start_imap(self.host, port=self.port("IMAPS"), security="tls",
                                    session_timeout=90, **self.creds) as s:
            self.assertEqual(s.last_info.timeout.seconds, 90)
            self.assertTrue(s.last_info.timeout_overridden)
            info = s.set_timeout(120)
            self.assertEqual(info.timeout.seconds, 120)
            self.assertFalse(s.set_timeout(None).timeout_overridden)

    def test_update_credentials(self) -> None:
        with self.client.start_imap(self.host, port=self.port("IMAPS"), security="tls",
                                    **self.creds) as s:
            # A healthy session keeps its connection: no login, no reconnect.
            info = s.update_credentials(password=self.creds["password"])
            self.assertEqual(info.state, session_pb2.SESSION_STATE_READY)
            self.assertEqual(info.reconnect_count, 0)
            with self.assertRaises(mailpool.InvalidArgument):
                s.update_credentials(user="someone-else", password=self.creds["password"])
            with self.assertRaises(mailpool.InvalidArgument) as cm:
                s.update_credentials(password="hunter2\r\nxyz")
            self.assertNotIn("hunter2", str(cm.exception))
            s.status()


class ErrorTest(Base):
    def test_wrong_password_is_unauthenticated_with_server_reply(self) -> None:
        with self.assertRaises(mailpool.Unauthenticated) as cm:
            self.client.start_imap(self.host, port=self.port("IMAPS"), security="tls",
                                   user=ENV["MAILPOOL_TEST_USER"], password="wrong",
                                   ca_file=ENV["MAILPOOL_TEST_CA"])
        e = cm.exception
        self.assertIsInstance(e, mailpool.MailpoolError)
        self.assertEqual(e.code, grpc.StatusCode.UNAUTHENTICATED)
        self.assertIsNotNone(e.detail)
        self.assertTrue(e.reason, e.detail)
        self.assertTrue(e.server_reply, e.detail)
        self.assertIn(e.server_reply, e.message)
        self.assertNotIn("wrong", e.command)  # the password is redacted
        self.assertIn("UNAUTHENTICATED", str(e))
        # The standard details (grpc-status-details-bin) say the same.
        self.assertIsNotNone(e.error_info)
        self.assertEqual(e.error_info.reason, e.detail.reason)
        self.assertEqual(e.domain, "mailpool.dev")
        self.assertEqual(e.metadata["server_reply"], e.detail.server_reply)
        self.assertIsNone(e.retry_delay)  # a refused login is not worth retrying
        self.assertEqual(e.field_violations, [])
        self.assertEqual(e.status.code, grpc.StatusCode.UNAUTHENTICATED.value[0])

    def test_standard_error_details_of_real_refusals(self) -> None:
        with self.assertRaises(mailpool.InvalidArgument) as cm:
            self.client.start_imap("", port=self.port("IMAPS"), security="tls", **self.creds)
        self.assertEqual([v.field for v in cm.exception.field_violations], ["server.host"])
        self.assertTrue(cm.exception.field_violations[0].description)
        self.assertEqual(cm.exception.reason, "INVALID_FIELD")
        closed = int(ENV.get("MAILPOOL_TEST_CLOSED_PORT") or 9)
        with self.assertRaises(mailpool.Unavailable) as cm:
            self.client.start_imap(self.host, port=closed, security="tls", **self.creds)
        self.assertIsNotNone(cm.exception.retry_delay)
        self.assertGreater(cm.exception.retry_delay.total_seconds(), 0)
        self.assertEqual(cm.exception.domain, "mailpool.dev")
        with self.assertRaises(mailpool.NotFound) as cm:
            self.client.get_session("no-such-session")
        self.assertIsNotNone(cm.exception.error_info)
        self.assertIsNone(cm.exception.retry_delay)

    def test_wrong_password_pop3(self) -> None:
        with self.assertRaises(mailpool.Unauthenticated) as cm:
            self.client.start_pop3(self.host, port=self.port("POP3S"), security="tls",
                                   user=ENV["MAILPOOL_TEST_USER"], password="wrong",
                                   ca_file=ENV["MAILPOOL_TEST_CA"])
        self.assertTrue(cm.exception.server_reply.startswith("-ERR"),
                        cm.exception.server_reply)

    def test_crlf_in_user_is_invalid_argument(self) -> None:
        with self.assertRaises(mailpool.InvalidArgument) as cm:
            self.client.start_imap(self.host, port=self.port("IMAPS"), security="tls",
                                   user="alice\r\nA1 LOGOUT", password="x",
                                   ca_file=ENV["MAILPOOL_TEST_CA"])
        self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_unknown_session_is_not_found(self) -> None:
        with self.assertRaises(mailpool.NotFound):
            self.client.close_session("mstest_" + "0" * 32)

    def test_untrusted_certificate_is_unavailable(self) -> None:
        with self.assertRaises(mailpool.Unavailable):
            self.client.start_imap(self.host, port=self.port("IMAPS"), security="tls",
                                   user=ENV["MAILPOOL_TEST_USER"],
                                   password=ENV["MAILPOOL_TEST_PASSWORD"])

    def test_unimplemented_rpc_raises_unimplemented(self) -> None:
        no_such = self.client.channel.unary_unary(
            "/mailpool.v1.SessionService/NoSuchCall",
            request_serializer=session_pb2.GetSessionRequest.SerializeToString,
            response_deserializer=session_pb2.GetSessionResponse.FromString)
        with self.assertRaises(mailpool.Unimplemented) as cm:
            self.client._unary(no_such, session_pb2.GetSessionRequest(session="x"))
        self.assertEqual(cm.exception.code, grpc.StatusCode.UNIMPLEMENTED)

    def test_daemon_unreachable_is_unavailable(self) -> None:
        with mailpool.Client("127.0.0.1:" + ENV["MAILPOOL_TEST_CLOSED_PORT"]
                             if ENV.get("MAILPOOL_TEST_CLOSED_PORT") else "127.0.0.1:9",
                             timeout=5) as c:
            with self.assertRaises(mailpool.Unavailable):
                c.get_default_timeout()


class NotYetImplementedTest(Base):
    """Calls the daemon may still answer UNIMPLEMENTED: each must either work or raise
    mailpool.Unimplemented with the code, never anything else."""

    def assertWorksOrUnimplemented(self, fn):  # noqa: N802
        try:
            return fn()
        except mailpool.Unimplemented as e:
            self.assertEqual(e.code, grpc.StatusCode.UNIMPLEMENTED)
            self.assertTrue(e.message)
            return None

    def test_mailbox_calls(self) -> None:
        with self.client.start_imap(self.host, port=self.port("IMAPS"), security="tls",
                                    **self.creds) as s:
            status = self.assertWorksOrUnimplemented(lambda: s.status())
            if status is not None:
                self.assertEqual(status.folder, "INBOX")
            msgs = self.assertWorksOrUnimplemented(
                lambda: list(s.messages(limit=5, view=View.HEADERS)))
            if msgs:
                m = s.get_message(msgs[0].id, view=View.FULL)
                self.assertEqual(m.id, msgs[0].id)
            folders = self.assertWorksOrUnimplemented(lambda: s.folders())
            if folders is not None:
                self.assertIn("INBOX", [f.name for f in folders])
            self.assertWorksOrUnimplemented(lambda: list(s.search(subject="no such subject")))
        with self.client.start_pop3(self.host, port=self.port("POP3S"), security="tls",
                                    **self.creds) as s:
            self.assertWorksOrUnimplemented(lambda: s.status())
            self.assertWorksOrUnimplemented(lambda: list(s.messages(limit=5)))

    def test_send_and_message_calls(self) -> None:
        msg = mailpool.message(from_=ENV["MAILPOOL_TEST_USER"], to=[ENV["MAILPOOL_TEST_USER"]],
                               subject="python client test " + uuid.uuid4().hex, text="hello\n")
        built = self.assertWorksOrUnimplemented(lambda: self.client.build_source(msg))
        if built is not None:
            self.assertIn(b"Subject: python client test", built.source)
            parsed = self.client.parse_source(built.source)
            self.assertEqual(parsed.message.subject, msg.subject)
        with self.client.start_smtp(self.host, port=self.port("SMTP"), security="starttls",
                                    **self.creds) as s:
            sent = self.assertWorksOrUnimplemented(lambda: s.send(msg))
            if sent is not None:
                self.assertTrue(sent.server_reply.startswith("250"), sent.server_reply)
        self.assertWorksOrUnimplemented(lambda: self.client.check_address("a@example.test"))


class AttachmentStreamTest(Base):
    """A 70 kB attachment sent over SMTP, streamed back over POP3 in 8 KiB chunks."""

    def test_stream_attachment_over_pop3(self) -> None:
        user = ENV["MAILPOOL_TEST_USER"]
        subject = unique("python attachment stream")
        content = os.urandom(70_000)
        msg = mailpool.message(from_=user, to=[user], subject=subject, text="see attached",
                               attachments=[message_pb2.Attachment(file_name="blob.bin",
                                                                   content=content)])
        with self.client.start_smtp(self.host, port=self.port("SMTP"), security="starttls",
                                    **self.creds) as smtp:
            smtp.send(msg)
        with self.client.start_pop3(self.host, port=self.port("POP3S"), security="tls",
                                    **self.creds) as pop:
            found: list = []
            for _ in range(100):  # POP3 sees a snapshot: refresh until delivered
                found = list(pop.search(subject=subject))
                if found:
                    break
                pop.refresh()
            self.assertEqual(len(found), 1)
            full = pop.get_message(found[0].id, view=View.FULL, max_attachment_bytes=1)
            part = next(a for a in full.attachments if a.file_name == "blob.bin")
            self.assertTrue(part.content_omitted)
            stream = pop.stream_attachment(found[0].id, part_id=part.part_id, chunk_size=8192)
            self.assertEqual(stream.attachment.file_name, "blob.bin")
            chunks = list(stream)
            self.assertGreater(len(chunks), 1)
            self.assertTrue(all(0 < len(c) <= 8192 for c in chunks))
            self.assertEqual(b"".join(chunks), content)
            meta, data = pop.get_attachment(found[0].id, part_id=part.part_id)
            self.assertEqual((meta.file_name, data), ("blob.bin", content))
            with self.assertRaises(mailpool.NotFound):
                list(pop.stream_attachment(found[0].id, part_id="9"))
            pop.delete([found[0].id])


class HelpersTest(unittest.TestCase):
    def test_address_forms(self) -> None:
        self.assertEqual(mailpool.address("a@x.test").address, "a@x.test")
        a = mailpool.address("Alice Martin <alice@x.test>")
        self.assertEqual((a.name, a.address), ("Alice Martin", "alice@x.test"))
        a = mailpool.address('"Martin, Alice" <alice@x.test>')
        self.assertEqual((a.name, a.address), ("Martin, Alice", "alice@x.test"))
        self.assertEqual(mailpool.address(("Bob", "bob@x.test")).name, "Bob")

    def test_message_builder(self) -> None:
        m = mailpool.message(from_="Alice <a@x.test>", to="b@x.test", cc=["c@x.test"],
                             subject="s", text="t", headers=[("X-Test", "1")],
                             message_id="id@x.test")
        self.assertEqual(getattr(m, "from").name, "Alice")
        self.assertEqual([x.address for x in m.to], ["b@x.test"])
        self.assertEqual(m.headers[0].name, "X-Test")
        self.assertEqual(m.message_id, "id@x.test")

    def test_bad_security_name(self) -> None:
        with self.assertRaises(ValueError):
            mailpool.Client("127.0.0.1:1").start_imap("h", user="u", password="p",
                                                      security="bogus")


class ExampleTest(unittest.TestCase):
    """Runs examples/example.py (the README's CI example) against the daemon."""

    def test_example_runs(self) -> None:
        assert DAEMON is not None
        here = os.path.dirname(os.path.abspath(__file__))
        env = dict(os.environ, MAILPOOL_ADDR=DAEMON.address)
        out = subprocess.run([sys.executable, os.path.join(here, "..", "examples", "example.py")],
                             env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("example finished", out.stdout)


if __name__ == "__main__":
    unittest.main()
