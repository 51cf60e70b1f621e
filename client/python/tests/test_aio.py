"""mailpool.aio (asyncio, grpc.aio) against a live mailpoold and the real test mail servers:
the same calls as the blocking client, awaited; pages and streams as async iterators; the
same typed errors."""
from __future__ import annotations

import asyncio
import unittest
import uuid

import mailpool
import mailpool.aio
from mailpool import Security, View

from daemon import Daemon, test_env

ENV: dict = {}
DAEMON: Daemon | None = None


def setUpModule() -> None:
    global ENV, DAEMON
    ENV = test_env()
    DAEMON = Daemon(ENV["MAILPOOLD"], "aio")


def tearDownModule() -> None:
    if DAEMON is not None:
        code = DAEMON.stop()
        if code != 0:
            raise RuntimeError(f"mailpoold exit code {code} after SIGTERM")


class AioTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        assert DAEMON is not None
        self.client = mailpool.aio.Client(DAEMON.address, timeout=30)
        self.host = ENV["MAILPOOL_TEST_HOST"]
        self.creds = dict(user=ENV["MAILPOOL_TEST_USER"], password=ENV["MAILPOOL_TEST_PASSWORD"],
                          ca_file=ENV["MAILPOOL_TEST_CA"])

    async def asyncTearDown(self) -> None:
        await self.client.close()

    def port(self, name: str) -> int:
        return int(ENV[f"MAILPOOL_TEST_{name}_PORT"])

    async def test_send_then_read_back_over_imap(self) -> None:
        subject = f"aio-{uuid.uuid4().hex[:8]}"
        async with await self.client.start_smtp(self.host, port=self.port("SMTP"),
                                                security="starttls", **self.creds) as smtp:
            self.assertEqual(smtp.protocol, mailpool.Protocol.SMTP)
            result = await smtp.send(mailpool.message(
                from_=self.creds["user"], to=[self.creds["user"]], subject=subject,
                text="over asyncio\n"))
            self.assertTrue(result.server_reply.startswith("250"), result.server_reply)
            check = await smtp.check_address(self.creds["user"])
            self.assertTrue(check.server_reply)
        async with await self.client.start_imap(self.host, port=self.port("IMAPS"),
                                                security=Security.IMPLICIT_TLS,
                                                name=f"aio-{subject}", **self.creds) as imap:
            info = await imap.info()
            self.assertEqual(info.current_folder, "INBOX")
            self.assertTrue(info.connections[0].tls_verified)
            found = []
            for _ in range(50):  # delivery through Postfix and LMTP takes a moment
                found = [m async for m in imap.search(subject=subject)]
                if found:
                    break
                await asyncio.sleep(0.1)
            self.assertEqual([m.subject for m in found], [subject])
            full = await imap.get_message(found[0].id, view=View.FULL)
            self.assertEqual(full.text_body.replace("\r\n", "\n"), "over asyncio\n")
            raw = b"".join([c async for c in imap.stream_message(found[0].id)])
            self.assertIn(subject.encode(), raw)
            newest = [m async for m in imap.messages(limit=3, view=View.HEADERS)]
            self.assertLessEqual(len(newest), 3)
            self.assertIn("INBOX", [f.name for f in await imap.folders()])
            status = await imap.status()
            self.assertGreaterEqual(status.message_count, 1)
            # by name, through the client
            again = await self.client.session(f"aio-{subject}")
            self.assertEqual(again.id, imap.id)
            names = [s.name async for s in self.client.sessions()]
            self.assertIn(f"aio-{subject}", names)
            await imap.delete(found[0].id)
        self.assertTrue(imap.closed)
        with self.assertRaises(mailpool.NotFound):
            await self.client.get_session(imap.id)

    async def test_errors_are_typed(self) -> None:
        with self.assertRaises(mailpool.Unauthenticated) as e:
            await self.client.start_pop3(self.host, port=self.port("POP3S"), security="tls",
                                         user=self.creds["user"], password="not the password",
                                         ca_file=self.creds["ca_file"])
        self.assertEqual(e.exception.reason, "AUTH_FAILED")
        self.assertEqual(e.exception.domain, "mailpool.dev")
        self.assertTrue(e.exception.server_reply.startswith("-ERR"), e.exception.server_reply)
        self.assertNotIn("not the password", str(e.exception))
        with self.assertRaises(mailpool.InvalidArgument) as e:
            await self.client.start_imap("", **self.creds)
        self.assertIn("server.host", [v.field for v in e.exception.field_violations])

    async def test_messages_without_a_session(self) -> None:
        built = await self.client.build_source(mailpool.message(
            from_="a@example.test", to=["b@example.test"], subject="built", text="x\n"))
        parsed = await self.client.parse_source(built.source)
        self.assertEqual(parsed.message.subject, "built")
        self.assertEqual(parsed.message.from_.address, "a@example.test")
        checked = await self.client.check_address("not an address")
        self.assertNotEqual(checked.result, 0)
        before = await self.client.get_default_timeout()
        self.assertEqual(await self.client.set_default_timeout(before), before)

    async def test_unreachable_daemon_is_unavailable(self) -> None:
        async with mailpool.aio.Client("127.0.0.1:1", timeout=5, retry=False) as c:
            with self.assertRaises(mailpool.Unavailable):
                await c.get_default_timeout()


if __name__ == "__main__":
    unittest.main()
