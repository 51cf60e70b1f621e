'use strict';
// The client's connection options against in-process gRPC servers: the caller token sent as
// `authorization: Bearer` (token, tokenFile, $MAILPOOL_TOKEN, $MAILPOOL_TOKEN_FILE), Unix
// socket addresses, TLS with a CA file and mutual TLS (a test CA made with openssl here),
// and the standard error details decoded from grpc-status-details-bin. No daemon needed.
const { test, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');
const mailpool = require('..');
const { makeCerts } = require('./support/daemon');

const protoDir = path.join(__dirname, '..', '..', '..', 'proto');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailpool-nodeconnect-'));
const file = (n) => path.join(dir, n);

let server;
const ports = {};
let last = {};

before(async () => {
  makeCerts(dir);
  const def = protoLoader.loadSync(['mailpool/v1/session.proto'],
    { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [protoDir] });
  const v1 = grpc.loadPackageDefinition(def).mailpool.v1;
  const root = new protobuf.Root();
  root.resolvePath = (o, t) => (t.startsWith('google/protobuf/') ? t : path.join(protoDir, t));
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto']);
  const Status = root.lookupType('google.rpc.Status');
  const pack = (name, obj) => {
    const T = root.lookupType(`google.rpc.${name}`);
    return { type_url: `type.googleapis.com/google.rpc.${name}`, value: T.encode(T.create(obj)).finish() };
  };
  server = new grpc.Server();
  server.addService(v1.SessionService.service, {
    getDefaultTimeout: (call, cb) => {
      const auth = call.metadata.get('authorization');
      last = { authorization: auth.length ? auth[0] : '<none>' };
      cb(null, { timeout: { seconds: 42 } });
    },
    getSession: (call, cb) => {
      const md = new grpc.Metadata();
      md.set('grpc-status-details-bin', Buffer.from(Status.encode(Status.create({
        code: grpc.status.INVALID_ARGUMENT, message: 'session: required',
        details: [pack('ErrorInfo', { reason: 'INVALID_FIELD', domain: 'mailpool.dev', metadata: { protocol: 'imap' } }),
          pack('RetryInfo', { retryDelay: { seconds: 2, nanos: 500000000 } }),
          pack('BadRequest', { fieldViolations: [{ field: 'session', description: 'required' }] })],
      })).finish()));
      cb({ code: grpc.status.INVALID_ARGUMENT, details: 'session: required', metadata: md });
    },
  });
  const bind = (addr, creds) => new Promise((resolve, reject) =>
    server.bindAsync(addr, creds, (err, port) => (err ? reject(err) : resolve(port))));
  ports.plain = await bind('127.0.0.1:0', grpc.ServerCredentials.createInsecure());
  await bind(`unix:${file('mailpool.sock')}`, grpc.ServerCredentials.createInsecure());
  const pair = [{ private_key: fs.readFileSync(file('server.key')), cert_chain: fs.readFileSync(file('server.pem')) }];
  ports.tls = await bind('127.0.0.1:0', grpc.ServerCredentials.createSsl(null, pair, false));
  ports.mtls = await bind('127.0.0.1:0', grpc.ServerCredentials.createSsl(fs.readFileSync(file('ca.pem')), pair, true));
});

after(() => {
  server.forceShutdown();
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  delete process.env.MAILPOOL_TOKEN;
  delete process.env.MAILPOOL_TOKEN_FILE;
});

async function call(address, options = {}) {
  const c = new mailpool.Client(address, { timeout: 20, ...options });
  try {
    assert.equal(await c.getDefaultTimeout(), 42);
  } finally {
    c.close();
  }
  return last.authorization;
}

test('the token is sent as a bearer token', async () => {
  assert.equal(await call(`127.0.0.1:${ports.plain}`, { token: 'tok-1.A_b~+/=' }), 'Bearer tok-1.A_b~+/=');
  assert.equal(await call(`127.0.0.1:${ports.plain}`), '<none>');
});

test('token file and environment', async () => {
  fs.writeFileSync(file('tok'), '  from-file-9\n');
  assert.equal(await call(`127.0.0.1:${ports.plain}`, { tokenFile: file('tok') }), 'Bearer from-file-9');
  process.env.MAILPOOL_TOKEN = 'from-env-3';
  assert.equal(await call(`127.0.0.1:${ports.plain}`), 'Bearer from-env-3');
  delete process.env.MAILPOOL_TOKEN;
  process.env.MAILPOOL_TOKEN_FILE = file('tok');
  assert.equal(await call(`127.0.0.1:${ports.plain}`), 'Bearer from-file-9');
});

test('a bad token is refused without showing it', () => {
  fs.writeFileSync(file('bad'), 'secret part\n');
  assert.throws(() => new mailpool.Client('127.0.0.1:1', { tokenFile: file('bad') }),
    (e) => e.message.includes('bad') && !e.message.includes('secret'));
  assert.throws(() => new mailpool.Client('127.0.0.1:1', { token: 'new\nline-secret' }),
    (e) => !e.message.includes('line-secret'));
  assert.throws(() => new mailpool.Client('127.0.0.1:1', { tokenFile: file('missing') }), /cannot read/);
  const c = new mailpool.Client('127.0.0.1:1', { token: 'abcd-secret' });
  assert.ok(!JSON.stringify(Object.entries(c).map(([k]) => k)).includes('abcd'));
  assert.ok(!require('node:util').inspect(c, { depth: 0 }).includes('abcd-secret'));
  c.close();
});

test('unix socket address', async () => {
  assert.equal(await call(`unix:${file('mailpool.sock')}`, { token: 'unix-tok' }), 'Bearer unix-tok');
});

test('TLS with a CA file, and a CA that did not sign the daemon', async () => {
  assert.equal(await call(`localhost:${ports.tls}`, { ca: file('ca.pem'), token: 't1' }), 'Bearer t1');
  await call(`127.0.0.1:${ports.tls}`, { ca: file('ca.pem'), tlsServerName: 'localhost' });
  const c = new mailpool.Client(`localhost:${ports.tls}`, { ca: file('other.pem'), timeout: 5 });
  await assert.rejects(c.getDefaultTimeout(), (e) =>
    e instanceof mailpool.MailpoolError && [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED].includes(e.code));
  c.close();
});

test('mutual TLS with a client certificate', async () => {
  await call(`localhost:${ports.mtls}`, { ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key') });
  const c = new mailpool.Client(`localhost:${ports.mtls}`, { ca: file('ca.pem'), timeout: 5 });
  await assert.rejects(c.getDefaultTimeout(), mailpool.MailpoolError);
  c.close();
  assert.throws(() => new mailpool.Client('localhost:1', { cert: file('client.pem') }), /both cert and key/);
});

test('standard error details are typed fields', async () => {
  const c = new mailpool.Client(`127.0.0.1:${ports.plain}`, { timeout: 20 });
  const e = await c.getSession('x').then(() => null, (err) => err);
  c.close();
  assert.ok(e instanceof mailpool.MailpoolError);
  assert.equal(e.reason, 'INVALID_FIELD');
  assert.equal(e.domain, 'mailpool.dev');
  assert.deepEqual(e.errorInfo.metadata, { protocol: 'imap' });
  assert.equal(e.retryDelay, 2.5);
  assert.deepEqual(e.fieldViolations, [{ field: 'session', description: 'required' }]);
  assert.equal(e.rpcStatus.message, 'session: required');
});
