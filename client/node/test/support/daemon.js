'use strict';
// Test helpers: the MAILPOOL_TEST_* environment (missing -> throw, so tests fail) and a
// private mailpoold on an ephemeral port, stopped with SIGTERM.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REQUIRED = ['MAILPOOLD', 'MAILPOOL_TEST_HOST', 'MAILPOOL_TEST_IMAP_PORT',
  'MAILPOOL_TEST_IMAPS_PORT', 'MAILPOOL_TEST_POP3S_PORT', 'MAILPOOL_TEST_SMTP_PORT',
  'MAILPOOL_TEST_SMTPS_PORT', 'MAILPOOL_TEST_USER', 'MAILPOOL_TEST_PASSWORD', 'MAILPOOL_TEST_CA'];

function testEnv() {
  const missing = REQUIRED.filter((k) => !process.env[k]);
  if (missing.length) {
    throw new Error(`missing environment ${missing.join(', ')}: start the test servers ` +
      '(scripts/testservers.sh) and set MAILPOOLD');
  }
  return process.env;
}

async function startDaemon(binary, instance = 'test', { listen = '127.0.0.1:0', args: extra = [], env } = {}) {
  const logPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailpoold-')), 'daemon.log');
  const fd = fs.openSync(logPath, 'w');
  const args = ['--listen', listen, '--metrics_listen', '127.0.0.1:0', '--instance', instance, ...extra];
  const proc = spawn(binary, args,
    { stdio: ['ignore', fd, fd], env: env || process.env });
  fs.closeSync(fd);
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const log = () => fs.readFileSync(logPath, 'utf8');
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    const m = /event="mailpoold listening".* port=(\d+)/.exec(log());
    if (m) {
      return {
        address: `127.0.0.1:${m[1]}`, port: Number(m[1]), log,
        stop: () => new Promise((resolve) => {
          if (exited) { resolve(exited.code); return; }
          const timer = setTimeout(() => proc.kill('SIGKILL'), 20000);
          proc.on('exit', (code) => { clearTimeout(timer); fs.rmSync(path.dirname(logPath), { recursive: true, force: true }); resolve(code); });
          proc.kill('SIGTERM');
        }),
      };
    }
    if (exited) throw new Error(`mailpoold exited early:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error(`mailpoold did not report its port:\n${log()}`);
}

// A test CA, a server certificate for localhost/127.0.0.1 (server.pem/.key), a client
// certificate with CN alice-app (client.pem/.key) and an unrelated CA (other.pem), in dir.
const CERTS = `set -e
exec >openssl.log 2>&1
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=mailpool-test-ca
openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost
echo subjectAltName=DNS:localhost,IP:127.0.0.1 > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
openssl req $ec -keyout client.key -out client.csr -subj /CN=alice-app
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
openssl req -x509 $ec -keyout other.key -out other.pem -days 2 -subj /CN=other-ca
`;
function makeCerts(dir) {
  require('node:child_process').execFileSync('bash', ['-c', CERTS], { cwd: dir });
}

module.exports = { testEnv, startDaemon, makeCerts };
