"""Test helpers: a private mailpoold on an ephemeral port, and the test server environment."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from typing import Dict, Sequence

REQUIRED_ENV = ["MAILPOOL_TEST_HOST", "MAILPOOL_TEST_IMAP_PORT", "MAILPOOL_TEST_IMAPS_PORT",
                "MAILPOOL_TEST_POP3_PORT", "MAILPOOL_TEST_POP3S_PORT",
                "MAILPOOL_TEST_SMTP_PORT", "MAILPOOL_TEST_SMTPS_PORT", "MAILPOOL_TEST_USER",
                "MAILPOOL_TEST_PASSWORD", "MAILPOOL_TEST_CA"]


def test_env() -> Dict[str, str]:
    """The MAILPOOL_TEST_* environment; raises (the test fails, never skips) when absent."""
    missing = [k for k in REQUIRED_ENV + ["MAILPOOLD"] if not os.environ.get(k)]
    if missing:
        raise RuntimeError("missing environment " + ", ".join(missing) +
                           ": start the test servers (scripts/testservers.sh) and set MAILPOOLD")
    return dict(os.environ)


class Daemon:
    """mailpoold --listen 127.0.0.1:0 --instance test; stop() sends SIGTERM."""

    def __init__(self, path: str, instance: str = "test", *, listen: str = "127.0.0.1:0",
                 args: Sequence[str] = (), env: Dict[str, str] | None = None) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="mailpoold-", suffix=".log", delete=False)
        argv = [path, "--listen", listen, "--metrics_listen", "127.0.0.1:0",
                "--instance", instance, *args]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env)
        self.port = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = re.search(r'event="mailpoold listening".* port=(\d+)', self.read_log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError("mailpoold exited early:\n" + self.read_log())
            time.sleep(0.05)
        if not self.port:
            self.proc.kill()
            raise RuntimeError("mailpoold did not report its port:\n" + self.read_log())
        self.address = f"127.0.0.1:{self.port}"

    def read_log(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> int:
        """SIGTERM, wait; returns the exit code (kills after 20 s)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        os.unlink(self.log.name)
        return code


# A test CA, a server certificate for localhost/127.0.0.1 (server.pem/.key), a client
# certificate with CN alice-app (client.pem/.key) and an unrelated CA (other.pem).
CERTS_SCRIPT = r"""
set -e
exec >openssl.log 2>&1
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=mailpool-test-ca
openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost
echo subjectAltName=DNS:localhost,IP:127.0.0.1 > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
  -days 2 -extfile server.ext
openssl req $ec -keyout client.key -out client.csr -subj /CN=alice-app
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
openssl req -x509 $ec -keyout other.key -out other.pem -days 2 -subj /CN=other-ca
"""


def make_certs(directory: str) -> None:
    """Writes the test CA and certificates of CERTS_SCRIPT into `directory`."""
    r = subprocess.run(["bash", "-c", CERTS_SCRIPT], cwd=directory)
    if r.returncode != 0:
        with open(os.path.join(directory, "openssl.log")) as f:
            raise RuntimeError("openssl failed:\n" + f.read())
