"""The client's connection options against in-process gRPC servers: the caller token sent as
`authorization: Bearer` (string, file, $MAILPOOL_TOKEN, $MAILPOOL_TOKEN_FILE), Unix socket
addresses, TLS with a CA file, mutual TLS with a client certificate (a test CA made with
openssl here), and the standard error details decoded from grpc-status-details-bin. No
daemon, no mail servers."""
from __future__ import annotations

import os
import shutil
import tempfile
import unittest
from concurrent import futures
from unittest import mock

import grpc

import mailpool
from mailpool.errors import error_details_pb2, status_pb2
from mailpool.v1 import session_pb2, session_pb2_grpc

from daemon import make_certs




class Recorder(session_pb2_grpc.SessionServiceServicer):
    def __init__(self) -> None:
        self.authorization = None
        self.peer_cn = None

    def GetDefaultTimeout(self, request, context):
        self.authorization = dict(context.invocation_metadata()).get("authorization", "<none>")
        cns = context.auth_context().get("x509_common_name") or []
        self.peer_cn = cns[0].decode() if cns else None
        return session_pb2.GetDefaultTimeoutResponse(timeout={"seconds": 42})

    def GetSession(self, request, context):
        st = status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                               message="session: required")
        st.details.add().Pack(error_details_pb2.ErrorInfo(
            reason="INVALID_FIELD", domain="mailpool.dev", metadata={"protocol": "imap"}))
        st.details.add().Pack(error_details_pb2.RetryInfo(retry_delay={"seconds": 2}))
        st.details.add().Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="session", description="required")]))
        context.set_trailing_metadata((("grpc-status-details-bin", st.SerializeToString()),))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "session: required")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class ConnectTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.dir = tempfile.mkdtemp(prefix="mailpool-pyconnect-")
        make_certs(cls.dir)
        cls.recorder = Recorder()
        cls.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        session_pb2_grpc.add_SessionServiceServicer_to_server(cls.recorder, cls.server)
        cls.plain = cls.server.add_insecure_port("127.0.0.1:0")
        cls.sock = os.path.join(cls.dir, "mailpool.sock")
        cls.server.add_insecure_port("unix:" + cls.sock)
        pair = [(_read(cls.path("server.key")), _read(cls.path("server.pem")))]
        cls.tls = cls.server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(pair))
        cls.mtls = cls.server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
            pair, root_certificates=_read(cls.path("ca.pem")), require_client_auth=True))
        cls.server.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop(None)
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def path(cls, name: str) -> str:
        return os.path.join(cls.dir, name)

    def setUp(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("MAILPOOL_TOKEN", "MAILPOOL_TOKEN_FILE")}
        patcher = mock.patch.dict(os.environ, env, clear=True)
        patcher.start()
        self.addCleanup(patcher.stop)

    def call(self, address: str, **kw) -> str:
        with mailpool.Client(address, timeout=20, **kw) as c:
            self.assertEqual(c.get_default_timeout().total_seconds(), 42)
        return self.recorder.authorization

    def test_token_is_sent_as_bearer(self) -> None:
        self.assertEqual(self.call(f"127.0.0.1:{self.plain}", token="tok-1.A_b~+/="),
                         "Bearer tok-1.A_b~+/=")

    def test_no_token_no_authorization(self) -> None:
        self.assertEqual(self.call(f"127.0.0.1:{self.plain}"), "<none>")

    def test_token_file_and_environment(self) -> None:
        with open(self.path("tok"), "w") as f:
            f.write("  from-file-9\n")
        self.assertEqual(self.call(f"127.0.0.1:{self.plain}", token_file=self.path("tok")),
                         "Bearer from-file-9")
        os.environ["MAILPOOL_TOKEN"] = "from-env-3"
        self.assertEqual(self.call(f"127.0.0.1:{self.plain}"), "Bearer from-env-3")
        del os.environ["MAILPOOL_TOKEN"]
        os.environ["MAILPOOL_TOKEN_FILE"] = self.path("tok")
        self.assertEqual(self.call(f"127.0.0.1:{self.plain}"), "Bearer from-file-9")

    def test_bad_token_is_refused_without_showing_it(self) -> None:
        with open(self.path("bad"), "w") as f:
            f.write("secret part\n")
        with self.assertRaises(ValueError) as cm:
            mailpool.Client(f"127.0.0.1:{self.plain}", token_file=self.path("bad"))
        self.assertIn("bad", str(cm.exception))
        self.assertNotIn("secret", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            mailpool.Client(f"127.0.0.1:{self.plain}", token="new\nline-secret")
        self.assertNotIn("line-secret", str(cm.exception))
        with self.assertRaisesRegex(ValueError, "cannot read"):
            mailpool.Client(f"127.0.0.1:{self.plain}", token_file=self.path("missing"))
        c = mailpool.Client(f"127.0.0.1:{self.plain}", token="abcd-secret")
        self.assertNotIn("abcd-secret", repr(c))
        c.close()

    def test_unix_socket(self) -> None:
        self.assertEqual(self.call("unix:" + self.sock, token="unix-tok"), "Bearer unix-tok")

    def test_tls_with_ca_file(self) -> None:
        self.assertEqual(self.call(f"localhost:{self.tls}", ca=self.path("ca.pem"), token="t1"),
                         "Bearer t1")
        self.call(f"127.0.0.1:{self.tls}", ca=self.path("ca.pem"), tls_server_name="localhost")
        with mailpool.Client(f"localhost:{self.tls}", ca=self.path("other.pem"), timeout=5) as c:
            with self.assertRaises(mailpool.MailpoolError) as cm:
                c.get_default_timeout()
            self.assertIn(cm.exception.code, (grpc.StatusCode.UNAVAILABLE,
                                              grpc.StatusCode.DEADLINE_EXCEEDED))

    def test_mutual_tls(self) -> None:
        self.call(f"localhost:{self.mtls}", ca=self.path("ca.pem"), cert=self.path("client.pem"),
                  key=self.path("client.key"))
        self.assertEqual(self.recorder.peer_cn, "alice-app")
        with mailpool.Client(f"localhost:{self.mtls}", ca=self.path("ca.pem"), timeout=5) as c:
            with self.assertRaises(mailpool.MailpoolError):
                c.get_default_timeout()
        with self.assertRaisesRegex(ValueError, "both cert and key"):
            mailpool.Client(f"localhost:{self.mtls}", cert=self.path("client.pem"))

    def test_standard_error_details_are_typed_fields(self) -> None:
        with mailpool.Client(f"127.0.0.1:{self.plain}", timeout=20) as c:
            with self.assertRaises(mailpool.InvalidArgument) as cm:
                c.get_session("x")
        e = cm.exception
        self.assertEqual(e.reason, "INVALID_FIELD")
        self.assertEqual(e.domain, "mailpool.dev")
        self.assertEqual(e.metadata, {"protocol": "imap"})
        self.assertEqual(e.retry_delay.total_seconds(), 2)
        self.assertEqual(e.field_violations, [mailpool.FieldViolation("session", "required")])
        self.assertEqual(e.status.message, "session: required")


if __name__ == "__main__":
    unittest.main()
