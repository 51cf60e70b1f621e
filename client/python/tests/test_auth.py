"""The client against a real mailpoold that authenticates its callers (caller tokens, TLS,
mutual TLS, a Unix socket) and the real test mail servers: tokens reach the daemon as
`authorization: Bearer`, sessions belong to their caller, an admin sees everyone's. The
test CA and certificates are made with openssl here."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import unittest

import grpc

import mailpool

from daemon import Daemon, make_certs, test_env

ENV: dict = {}
DIR = ""
TOKENS = {"alice": "alice-token-1", "bob": "bob-token-2"}
DAEMONS: dict = {}


def setUpModule() -> None:
    global ENV, DIR
    ENV = test_env()
    DIR = tempfile.mkdtemp(prefix="mailpool-pyauth-")
    make_certs(DIR)
    with open(os.path.join(DIR, "tokens"), "w") as f:
        f.write("# callers of the auth test\n")
        f.write(f"alice {hashlib.sha256(TOKENS['alice'].encode()).hexdigest()}\n")
        f.write(f"bob {hashlib.sha256(TOKENS['bob'].encode()).hexdigest()} admin\n")
    with open(os.path.join(DIR, "alice.token"), "w") as f:
        f.write(TOKENS["alice"] + "\n")
    env = dict(os.environ, XDG_STATE_HOME=DIR)
    tls = ["--tls_cert", path("server.pem"), "--tls_key", path("server.key")]
    # Tokens over TLS, and a Unix socket.
    DAEMONS["tokens"] = Daemon(ENV["MAILPOOLD"], "tok", env=env,
                               listen=f"127.0.0.1:0,unix:{path('d.sock')}",
                               args=["--caller_tokens_file", path("tokens"), *tls])
    # Mutual TLS: the client certificate is the identity.
    DAEMONS["mtls"] = Daemon(ENV["MAILPOOLD"], "mtls", env=env,
                             args=[*tls, "--tls_client_ca", path("ca.pem")])


def tearDownModule() -> None:
    codes = {name: d.stop() for name, d in DAEMONS.items()}
    shutil.rmtree(DIR, ignore_errors=True)
    if any(codes.values()):
        raise RuntimeError(f"mailpoold exit codes after SIGTERM: {codes}")


def path(name: str) -> str:
    return os.path.join(DIR, name)


class AuthTest(unittest.TestCase):
    def client(self, who: str | None = None, **kw) -> mailpool.Client:
        daemon = DAEMONS["tokens"]
        if who:
            kw["token"] = TOKENS[who]
        c = mailpool.Client(f"localhost:{daemon.port}", ca=path("ca.pem"), timeout=30, **kw)
        self.addCleanup(c.close)
        return c

    def start_imap(self, client: mailpool.Client, name: str) -> mailpool.Session:
        return client.start_imap(ENV["MAILPOOL_TEST_HOST"],
                                 port=int(ENV["MAILPOOL_TEST_IMAPS_PORT"]), security="tls",
                                 user=ENV["MAILPOOL_TEST_USER"],
                                 password=ENV["MAILPOOL_TEST_PASSWORD"],
                                 ca_file=ENV["MAILPOOL_TEST_CA"], name=name)

    def test_no_token_or_wrong_token_is_unauthenticated(self) -> None:
        saved = {k: os.environ.pop(k) for k in ("MAILPOOL_TOKEN", "MAILPOOL_TOKEN_FILE")
                 if k in os.environ}
        self.addCleanup(os.environ.update, saved)
        with self.assertRaises(mailpool.Unauthenticated) as cm:
            self.client().sessions().__next__()
        self.assertTrue(cm.exception.reason)
        with self.assertRaises(mailpool.Unauthenticated) as cm:
            list(self.client(token="not-a-known-token-77").sessions())
        self.assertNotIn("not-a-known-token-77", str(cm.exception))
        self.assertNotIn("not-a-known-token-77", DAEMONS["tokens"].read_log())

    def test_sessions_belong_to_their_caller_and_admin_sees_all(self) -> None:
        alice = self.client(token_file=path("alice.token"))
        bob = self.client("bob")
        with self.start_imap(alice, "alice-inbox") as s:
            mine = [x for x in alice.sessions() if x.id == s.id]
            self.assertEqual(len(mine), 1)
            self.assertEqual(mine[0].owner, "alice")
            self.assertEqual([x.id for x in bob.sessions() if x.id == s.id], [])
            with self.assertRaises(mailpool.NotFound):
                bob.get_session(s.id)
            with self.assertRaises(mailpool.NotFound):
                bob.get_session("alice-inbox")  # names are per caller too
            everyone = {x.id: x.owner for x in bob.sessions(all_callers=True)}
            self.assertEqual(everyone.get(s.id), "alice")
            with self.assertRaises(mailpool.PermissionDenied):
                list(alice.sessions(all_callers=True))
            self.assertEqual(s.info().id, s.id)  # the owner still uses it

    def test_environment_token(self) -> None:
        os.environ["MAILPOOL_TOKEN"] = TOKENS["alice"]
        self.addCleanup(os.environ.pop, "MAILPOOL_TOKEN")
        list(self.client().sessions())  # no Unauthenticated

    def test_unix_socket_identity_is_the_unix_user(self) -> None:
        with mailpool.Client("unix:" + path("d.sock"), timeout=30) as c:
            with self.start_imap(c, "over-unix") as s:
                self.assertEqual(s.info().owner, f"uid:{os.getuid()}")

    def test_untrusted_daemon_certificate_is_refused(self) -> None:
        c = mailpool.Client(f"localhost:{DAEMONS['tokens'].port}", ca=path("other.pem"),
                            token=TOKENS["alice"], timeout=10)
        self.addCleanup(c.close)
        with self.assertRaises(mailpool.MailpoolError) as cm:
            c.get_default_timeout()
        self.assertIn(cm.exception.code, (grpc.StatusCode.UNAVAILABLE,
                                          grpc.StatusCode.DEADLINE_EXCEEDED))

    def test_mutual_tls_identity_is_the_certificate(self) -> None:
        port = DAEMONS["mtls"].port
        with mailpool.Client(f"localhost:{port}", ca=path("ca.pem"), cert=path("client.pem"),
                             key=path("client.key"), timeout=30) as c:
            with self.start_imap(c, "over-mtls") as s:
                self.assertEqual(s.info().owner, "cert:alice-app")
        with mailpool.Client(f"localhost:{port}", ca=path("ca.pem"), timeout=10) as c:
            with self.assertRaises(mailpool.MailpoolError):
                c.get_default_timeout()


if __name__ == "__main__":
    unittest.main()
