"""The retry policy for UNAVAILABLE (gRPC retries from the client's service config), against
an in-process fake server that fails a chosen number of attempts: read-only calls are
retried by default, the others only with retry="all", none with retry=False. Both the
blocking and the asyncio client."""
from __future__ import annotations

import json
import threading
import unittest
from concurrent import futures

import grpc

import mailpool
import mailpool.aio
from mailpool.v1 import session_pb2, session_pb2_grpc

SID = "msfake_" + "b" * 32


class Flaky(session_pb2_grpc.SessionServiceServicer):
    """Each method fails UNAVAILABLE `failures` times, then answers; counts attempts."""

    def __init__(self) -> None:
        self.failures = 0
        self.attempts = {"GetSession": 0, "StartSession": 0}
        self.lock = threading.Lock()

    def _attempt(self, name: str, context) -> None:
        with self.lock:
            self.attempts[name] += 1
            n = self.attempts[name]
        if n <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"try again ({n})")

    def GetSession(self, request, context):
        self._attempt("GetSession", context)
        return session_pb2.GetSessionResponse(session=session_pb2.Session(id=SID))

    def StartSession(self, request, context):
        self._attempt("StartSession", context)
        return session_pb2.StartSessionResponse(session=session_pb2.Session(id=SID))


class RetryTest(unittest.TestCase):
    def setUp(self) -> None:
        self.fake = Flaky()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        session_pb2_grpc.add_SessionServiceServicer_to_server(self.fake, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.address = f"127.0.0.1:{port}"

    def tearDown(self) -> None:
        self.server.stop(None)

    def start(self, client) -> None:
        client.start_session(session_pb2.StartSessionRequest(name="x"))

    def test_read_only_calls_are_retried_by_default(self) -> None:
        self.fake.failures = 2
        with mailpool.Client(self.address, timeout=30) as c:
            self.assertEqual(c.get_session(SID).id, SID)
        self.assertEqual(self.fake.attempts["GetSession"], 3)

    def test_gives_up_after_four_attempts(self) -> None:
        self.fake.failures = 10
        with mailpool.Client(self.address, timeout=30) as c:
            with self.assertRaises(mailpool.Unavailable) as e:
                c.get_session(SID)
        self.assertEqual(self.fake.attempts["GetSession"], 4)
        self.assertIn("try again (4)", e.exception.message)

    def test_start_is_not_retried_by_default(self) -> None:
        self.fake.failures = 1
        with mailpool.Client(self.address, timeout=30) as c:
            with self.assertRaises(mailpool.Unavailable):
                self.start(c)
        self.assertEqual(self.fake.attempts["StartSession"], 1)

    def test_retry_all_retries_every_call(self) -> None:
        self.fake.failures = 1
        with mailpool.Client(self.address, timeout=30, retry="all") as c:
            self.start(c)
        self.assertEqual(self.fake.attempts["StartSession"], 2)

    def test_retry_false_makes_one_attempt(self) -> None:
        self.fake.failures = 1
        with mailpool.Client(self.address, timeout=30, retry=False) as c:
            with self.assertRaises(mailpool.Unavailable):
                c.get_session(SID)
        self.assertEqual(self.fake.attempts["GetSession"], 1)

    def test_asyncio_client_has_the_same_policy(self) -> None:
        import asyncio

        async def run() -> None:
            async with mailpool.aio.Client(self.address, timeout=30) as c:
                self.assertEqual((await c.get_session(SID)).id, SID)
                with self.assertRaises(mailpool.Unavailable):
                    await c.start_session(session_pb2.StartSessionRequest(name="x"))

        self.fake.failures = 1
        asyncio.run(run())
        self.assertEqual(self.fake.attempts, {"GetSession": 2, "StartSession": 1})

    def test_service_config(self) -> None:
        config = json.loads(mailpool.service_config())
        policy = config["methodConfig"][0]["retryPolicy"]
        self.assertEqual(policy["retryableStatusCodes"], ["UNAVAILABLE"])
        names = config["methodConfig"][0]["name"]
        self.assertIn({"service": "mailpool.v1.MailboxService", "method": "GetMessage"}, names)
        self.assertNotIn("SendMessage", [n.get("method") for n in names])
        self.assertIsNone(mailpool.service_config(False))
        with self.assertRaises(ValueError):
            mailpool.service_config("sometimes")


if __name__ == "__main__":
    unittest.main()
