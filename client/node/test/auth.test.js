'use strict';
// The client against a real mailpoold that authenticates its callers (caller tokens, TLS,
// mutual TLS, a Unix socket) and the real test mail servers: tokens reach the daemon as
// `authorization: Bearer`, sessions belong to their caller, an admin sees everyone's. The
// test CA and certificates are made with openssl here.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const mailpool = require('..');
const { testEnv, startDaemon, makeCerts } = require('./support/daemon');

const env = testEnv();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailpool-nodeauth-'));
const file = (n) => path.join(dir, n);
const TOKENS = { alice: 'alice-token-1', bob: 'bob-token-2' };
const sha = (t) => crypto.createHash('sha256').update(t).digest('hex');
const daemons = {};
const clients = [];

before(async () => {
  makeCerts(dir);
  fs.writeFileSync(file('tokens'), `alice ${sha(TOKENS.alice)}\nbob ${sha(TOKENS.bob)} admin\n`);
  fs.writeFileSync(file('alice.token'), `${TOKENS.alice}\n`);
  const denv = { ...process.env, XDG_STATE_HOME: dir };
  const tls = ['--tls_cert', file('server.pem'), '--tls_key', file('server.key')];
  daemons.tokens = await startDaemon(env.MAILPOOLD, 'tok', { env: denv,
    listen: `127.0.0.1:0,unix:${file('d.sock')}`, args: ['--caller_tokens_file', file('tokens'), ...tls] });
  daemons.mtls = await startDaemon(env.MAILPOOLD, 'mtls', { env: denv,
    args: [...tls, '--tls_client_ca', file('ca.pem')] });
});

after(async () => {
  for (const c of clients) c.close();
  const codes = [];
  for (const d of Object.values(daemons)) codes.push(await d.stop());
  fs.rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(codes, codes.map(() => 0), 'mailpoold exit codes after SIGTERM');
});

function client(options = {}, address = `localhost:${daemons.tokens.port}`) {
  const c = new mailpool.Client(address, { ca: file('ca.pem'), timeout: 30, ...options });
  clients.push(c);
  return c;
}
const imap = (name) => ({ host: env.MAILPOOL_TEST_HOST, port: Number(env.MAILPOOL_TEST_IMAPS_PORT),
  security: 'tls', user: env.MAILPOOL_TEST_USER, password: env.MAILPOOL_TEST_PASSWORD,
  caFile: env.MAILPOOL_TEST_CA, name });
async function all(it) { const out = []; for await (const x of it) out.push(x); return out; }

test('no token or a wrong token: UNAUTHENTICATED, the token never echoed', async () => {
  delete process.env.MAILPOOL_TOKEN;
  delete process.env.MAILPOOL_TOKEN_FILE;
  await assert.rejects(all(client().sessions()), (e) => e.code === grpc.status.UNAUTHENTICATED && e.reason !== '');
  await assert.rejects(all(client({ token: 'not-a-known-token-77' }).sessions()),
    (e) => e.code === grpc.status.UNAUTHENTICATED && !e.message.includes('not-a-known-token-77'));
  assert.ok(!daemons.tokens.log().includes('not-a-known-token-77'));
});

test('sessions belong to their caller; an admin lists everyone\'s', async () => {
  const alice = client({ tokenFile: file('alice.token') });
  const bob = client({ token: TOKENS.bob });
  const s = await alice.startImap(imap('alice-inbox'));
  try {
    const mine = (await all(alice.sessions())).filter((x) => x.id === s.id);
    assert.equal(mine.length, 1);
    assert.equal(mine[0].owner, 'alice');
    assert.equal((await all(bob.sessions())).filter((x) => x.id === s.id).length, 0);
    await assert.rejects(bob.getSession(s.id), (e) => e.code === grpc.status.NOT_FOUND);
    const everyone = await all(bob.sessions({ allCallers: true }));
    assert.equal(everyone.find((x) => x.id === s.id)?.owner, 'alice');
    await assert.rejects(all(alice.sessions({ allCallers: true })),
      (e) => e.code === grpc.status.PERMISSION_DENIED);
  } finally {
    await s.close();
  }
});

test('the Unix socket identifies the Unix user', async () => {
  const c = client({ ca: undefined }, `unix:${file('d.sock')}`);
  const s = await c.startImap(imap('over-unix'));
  try {
    assert.equal((await s.info()).owner, `uid:${process.getuid()}`);
  } finally {
    await s.close();
  }
});

test('mutual TLS: the client certificate is the identity', async () => {
  const address = `localhost:${daemons.mtls.port}`;
  const c = client({ cert: file('client.pem'), key: file('client.key') }, address);
  const s = await c.startImap(imap('over-mtls'));
  try {
    assert.equal((await s.info()).owner, 'cert:alice-app');
  } finally {
    await s.close();
  }
  await assert.rejects(client({ timeout: 10 }, address).getDefaultTimeout(), mailpool.MailpoolError);
  await assert.rejects(client({ ca: file('other.pem'), timeout: 10 }).getDefaultTimeout(),
    (e) => [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED].includes(e.code));
});
