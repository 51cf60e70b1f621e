'use strict';
// Node.js client for mailpoold: promises for calls, async iterators for pages and streams.
// The protos are loaded at run time from $MAILPOOL_PROTO_DIR, ./proto (a packed copy) or
// ../../proto (the repository).
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const DEFAULT_ADDRESS = '127.0.0.1:50551';
const SESSION_HEADER = 'x-mailpool-session';
const ERROR_DETAIL_TRAILER = 'mailpool-error-bin';
const STATUS_DETAILS_TRAILER = 'grpc-status-details-bin';
const TOKEN_HEADER = 'authorization';
const RPC_TYPE_PREFIX = 'type.googleapis.com/google.rpc.';

function findProtoDir() {
  const candidates = [process.env.MAILPOOL_PROTO_DIR, path.join(__dirname, 'proto'),
    path.join(__dirname, '..', '..', 'proto')];
  for (const c of candidates) {
    if (c && fs.existsSync(path.join(c, 'mailpool', 'v1', 'session.proto'))) return c;
  }
  throw new Error('mailpool: cannot find proto/mailpool/v1 (set MAILPOOL_PROTO_DIR)');
}

let loaded = null;
function load() {
  if (loaded) return loaded;
  const dir = findProtoDir();
  const files = fs.readdirSync(path.join(dir, 'mailpool', 'v1'))
    .filter((f) => f.endsWith('.proto')).map((f) => `mailpool/v1/${f}`);
  const definition = protoLoader.loadSync(files, {
    keepCase: false, longs: Number, enums: String, bytes: Buffer, defaults: true,
    oneofs: true, includeDirs: [dir],
  });
  const v1 = grpc.loadPackageDefinition(definition).mailpool.v1;
  // ErrorDetail is decoded with protobufjs directly (proto-loader only builds services).
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) =>
    (target.startsWith('google/protobuf/') ? target : path.join(dir, target));
  root.loadSync(['mailpool/v1/errors.proto', 'google/rpc/status.proto',
    'google/rpc/error_details.proto'], { keepCase: false });
  loaded = { v1, errorDetail: root.lookupType('mailpool.v1.ErrorDetail'),
    rpcStatus: root.lookupType('google.rpc.Status'),
    rpcDetails: Object.fromEntries(['ErrorInfo', 'RetryInfo', 'BadRequest'].map(
      (n) => [RPC_TYPE_PREFIX + n, root.lookupType(`google.rpc.${n}`)])) };
  return loaded;
}

const codeNames = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

/**
 * A failed call: gRPC code, message, the standard details from grpc-status-details-bin
 * (errorInfo, retryDelay, fieldViolations) and the mail server's reply.
 */
class MailpoolError extends Error {
  constructor(code, details, detail, metadata, rpcStatus = null) {
    super(`${codeNames[code] || code}: ${details}`);
    this.name = 'MailpoolError';
    this.code = code; // numeric gRPC code, compare with mailpool.status.UNAUTHENTICATED
    this.codeName = codeNames[code] || String(code); // 'UNAUTHENTICATED'
    this.details = details; // the status message (contains the server's reply line)
    this.detail = detail; // { reason, protocol, command, serverReply } or null
    this.metadata = metadata;
    this.rpcStatus = rpcStatus; // google.rpc.Status { code, message, details } or null
    this.errorInfo = null; // { reason, domain, metadata: { serverReply?, command?, protocol? } }
    this.retryDelay = null; // seconds, when retrying helps
    this.fieldViolations = []; // [{ field, description }]
    for (const d of (rpcStatus && rpcStatus.details) || []) {
      const type = load().rpcDetails[d.typeUrl];
      if (!type) continue;
      let v;
      try { v = type.toObject(type.decode(d.value), { defaults: true, longs: Number }); } catch (_) { continue; }
      if (d.typeUrl.endsWith('.ErrorInfo') && !this.errorInfo) {
        this.errorInfo = { reason: v.reason, domain: v.domain, metadata: { ...(v.metadata || {}) } };
      } else if (d.typeUrl.endsWith('.RetryInfo')) {
        this.retryDelay = seconds(v.retryDelay);
      } else if (d.typeUrl.endsWith('.BadRequest')) {
        for (const f of v.fieldViolations || []) {
          this.fieldViolations.push({ field: f.field, description: f.description });
        }
      }
    }
  }
  get reason() {
    if (this.detail && this.detail.reason) return this.detail.reason;
    return this.errorInfo ? this.errorInfo.reason : '';
  }
  get domain() { return this.errorInfo ? this.errorInfo.domain : ''; }
  get serverReply() {
    if (this.detail && this.detail.serverReply) return this.detail.serverReply;
    return (this.errorInfo && this.errorInfo.metadata.server_reply) || '';
  }
  get command() {
    if (this.detail && this.detail.command) return this.detail.command;
    return (this.errorInfo && this.errorInfo.metadata.command) || '';
  }
}

function toError(err) {
  if (err instanceof MailpoolError) return err;
  if (!err || typeof err.code !== 'number') return err;
  let detail = null;
  const raw = err.metadata ? err.metadata.get(ERROR_DETAIL_TRAILER) : [];
  if (raw && raw.length) {
    try {
      const type = load().errorDetail;
      detail = type.toObject(type.decode(raw[0]), { enums: String, defaults: true });
    } catch (_) { detail = null; }
  }
  let rpcStatus = null;
  const rawStatus = err.metadata ? err.metadata.get(STATUS_DETAILS_TRAILER) : [];
  if (rawStatus && rawStatus.length) {
    try {
      const type = load().rpcStatus;
      const st = type.toObject(type.decode(rawStatus[0]), { defaults: true, bytes: Buffer });
      // protobufjs' built-in google.protobuf.Any keeps the proto name type_url.
      rpcStatus = { code: st.code, message: st.message, details: (st.details || []).map(
        (d) => ({ typeUrl: d.typeUrl || d.type_url || '', value: d.value })) };
    } catch (_) { rpcStatus = null; }
  }
  return new MailpoolError(err.code, err.details || err.message || '', detail, err.metadata,
    rpcStatus);
}

/**
 * The caller token: `token`, else the contents of `tokenFile` (whitespace trimmed), else
 * $MAILPOOL_TOKEN, else the file $MAILPOOL_TOKEN_FILE; null when none. Throws a TypeError
 * naming the file (never the token) for an unreadable file or a token that is not visible
 * ASCII.
 */
function resolveToken({ token, tokenFile, fromEnvironment = true } = {}) {
  let source = 'token';
  let file = tokenFile;
  let t = token;
  if (t == null && file == null && fromEnvironment) {
    if (process.env.MAILPOOL_TOKEN) { t = process.env.MAILPOOL_TOKEN; source = '$MAILPOOL_TOKEN'; }
    else if (process.env.MAILPOOL_TOKEN_FILE) file = process.env.MAILPOOL_TOKEN_FILE;
  }
  if (t == null && file != null) {
    source = `token file ${file}`;
    let raw;
    try { raw = fs.readFileSync(file, 'latin1'); } catch (e) {
      throw new TypeError(`${source}: cannot read (${e.code || e.message})`);
    }
    t = raw.trim();
    if (!t) throw new TypeError(`${source}: empty`);
  }
  if (t == null) return null;
  if (typeof t !== 'string' || t.length === 0 || t.length > 4096 || !/^[\x21-\x7e]+$/.test(t)) {
    throw new TypeError(`${source}: not a bearer token (visible ASCII only, 1-4096 bytes)`);
  }
  return t;
}

function readPem(file, what) {
  try { return fs.readFileSync(file); } catch (e) {
    throw new TypeError(`${what} ${file}: cannot read (${e.code || e.message})`);
  }
}

const Security = Object.freeze({
  PLAIN: 'SECURITY_PLAIN', STARTTLS: 'SECURITY_STARTTLS', IMPLICIT_TLS: 'SECURITY_IMPLICIT_TLS',
});
const securityAliases = { plain: Security.PLAIN, none: Security.PLAIN, starttls: Security.STARTTLS,
  tls: Security.IMPLICIT_TLS, ssl: Security.IMPLICIT_TLS, implicit_tls: Security.IMPLICIT_TLS };
function security(value) {
  if (value === undefined || value === null || value === '') return 'SECURITY_UNSPECIFIED';
  if (String(value).startsWith('SECURITY_')) return value;
  const s = securityAliases[String(value).toLowerCase().replace('-', '_')];
  if (!s) throw new TypeError(`unknown security ${JSON.stringify(value)}: plain, starttls or tls`);
  return s;
}
function prefixed(prefix, value, unspecified) {
  if (value === undefined || value === null || value === '') return `${prefix}_${unspecified}`;
  const v = String(value).toUpperCase().replace(/-/g, '_');
  return v.startsWith(`${prefix}_`) ? v : `${prefix}_${v}`;
}
const View = Object.freeze({ BASIC: 'MESSAGE_VIEW_BASIC', HEADERS: 'MESSAGE_VIEW_HEADERS',
  FULL: 'MESSAGE_VIEW_FULL', RAW: 'MESSAGE_VIEW_RAW' });

function duration(seconds) {
  if (seconds === undefined || seconds === null) return null;
  const whole = Math.floor(seconds);
  return { seconds: whole, nanos: Math.round((seconds - whole) * 1e9) };
}
function seconds(d) { return d ? Number(d.seconds) + (d.nanos || 0) / 1e9 : 0; }
/** A protobuf Timestamp ({seconds, nanos}) as a Date, or null when unset. */
function toDate(ts) { return ts ? new Date(Number(ts.seconds) * 1000 + (ts.nanos || 0) / 1e6) : null; }

/** An Address from 'a@x', 'Alice <a@x>', [name, address] or {name, address}. */
function address(value) {
  if (Array.isArray(value)) return { name: value[0], address: value[1] };
  if (typeof value === 'object' && value) return { name: value.name || '', address: value.address };
  const m = /^\s*(?:"?([^"<]*?)"?\s*)?<([^<>]+)>\s*$/.exec(value);
  if (m) return { name: (m[1] || '').trim(), address: m[2].trim() };
  return { name: '', address: String(value).trim() };
}
function addresses(v) {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string' || (!Array.isArray(v) && typeof v === 'object')) return [address(v)];
  // One [name, address] pair (the name has no '@') rather than a list of two addresses.
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string' &&
      !v[0].includes('@') && v[1].includes('@')) return [address(v)];
  return v.map(address);
}

/** Builds an EmailMessage: message({from, to, subject, text, html, cc, bcc, replyTo, headers}). */
function message({ from, to, cc, bcc, replyTo, subject = '', text = '', html = '', headers = [],
  attachments = [], ...rest }) {
  return { ...rest, from: address(from), to: addresses(to), cc: addresses(cc), bcc: addresses(bcc),
    replyTo: addresses(replyTo), subject, textBody: text, htmlBody: html, attachments,
    headers: headers.map((h) => (Array.isArray(h) ? { name: h[0], value: h[1] } : h)) };
}

function endpoint(o, prefix = '') {
  const get = (k) => o[prefix ? prefix + k[0].toUpperCase() + k.slice(1) : k];
  let caPem = o.caPem || '';
  if (!caPem && o.caFile) caPem = fs.readFileSync(o.caFile, 'ascii');
  const ep = { host: get('host') || (prefix ? '' : undefined), port: get('port') || 0,
    security: security(get('security') ?? (prefix ? o.security : undefined)),
    tls: { caPem, serverName: o.serverName || '',
      dangerouslySkipVerification: !!o.dangerouslySkipVerification } };
  if (o.connectTimeout != null) ep.connectTimeout = duration(o.connectTimeout);
  return ep;
}
function credentials(o) {
  if (o.password != null && o.token != null) throw new TypeError('give a password or a token, not both');
  const c = { user: o.user || '', mechanism: prefixed('AUTH_MECHANISM', o.mechanism, 'UNSPECIFIED'),
    allowInsecureAuth: !!o.allowInsecureAuth };
  if (o.password != null) c.password = o.password;
  if (o.token != null && o.oauth2Refresh != null) throw new TypeError('give a token or oauth2Refresh, not both');
  if (o.token != null) c.oauth2Token = o.token;
  // { refreshToken, provider | tokenEndpoint + clientId [+ clientSecret], scopes }: the
  // daemon gets and renews the access tokens itself.
  if (o.oauth2Refresh != null) c.oauth2Refresh = { ...o.oauth2Refresh };
  return c;
}
const idOrEmpty = (s) => (typeof s === 'string' && s.startsWith('ms') ? s : '');
const ids = (v) => (typeof v === 'string' ? [v] : [...v]);

class Client {
  /**
   * @param {string} [address] daemon "host:port" or "unix:/path/to.sock" (default
   *   $MAILPOOL_ADDR or 127.0.0.1:50551)
   * @param {object} [options] { timeout: seconds per call (default 30, null: none),
   *   startTimeout: seconds for StartSession (default 120), token / tokenFile: the caller
   *   token sent as `authorization: Bearer` (default $MAILPOOL_TOKEN, else the file
   *   $MAILPOOL_TOKEN_FILE), ca: CA file for TLS to the daemon, cert + key: client
   *   certificate files (mutual TLS), tls: TLS with the system's CAs, tlsServerName,
   *   credentials: grpc.ChannelCredentials of your own, channelOptions }
   */
  constructor(address, options = {}) {
    const { v1 } = load();
    this.address = address || process.env.MAILPOOL_ADDR || DEFAULT_ADDRESS;
    this.timeout = options.timeout === undefined ? 30 : options.timeout;
    this.startTimeout = options.startTimeout === undefined ? 120 : options.startTimeout;
    const token = resolveToken(options);
    // Not enumerable: the token stays out of console.log(client) and JSON.
    Object.defineProperty(this, '_authorization', { value: token ? `Bearer ${token}` : null });
    if ((options.cert == null) !== (options.key == null)) {
      throw new TypeError('a client certificate needs both cert and key');
    }
    let creds = options.credentials;
    if (!creds && (options.tls || options.ca || options.cert)) {
      creds = grpc.credentials.createSsl(options.ca ? readPem(options.ca, 'CA file') : null,
        options.key ? readPem(options.key, 'key file') : null,
        options.cert ? readPem(options.cert, 'certificate file') : null);
    }
    creds = creds || grpc.credentials.createInsecure();
    const chOpts = { 'grpc.max_receive_message_length': 64 << 20, ...(options.channelOptions || {}) };
    if (options.tlsServerName) chOpts['grpc.ssl_target_name_override'] = options.tlsServerName;
    this.sessionsStub = new v1.SessionService(this.address, creds, chOpts);
    const shared = { channelOverride: this.sessionsStub.getChannel() };
    this.mailboxStub = new v1.MailboxService(this.address, creds, shared);
    this.sendStub = new v1.SendService(this.address, creds, shared);
    this.messageStub = new v1.MessageService(this.address, creds, shared);
  }

  _options(timeout, dflt) {
    const t = timeout === undefined ? dflt : timeout;
    return t === null || t === undefined ? {} : { deadline: new Date(Date.now() + t * 1000) };
  }
  _metadata(sessionId) {
    const md = new grpc.Metadata();
    if (this._authorization) md.set(TOKEN_HEADER, this._authorization);
    if (sessionId) md.set(SESSION_HEADER, sessionId);
    return md;
  }
  /** Calls a unary method: stub is one of the *Stub properties, method its name. */
  unary(stub, method, request, { timeout, sessionId, defaultTimeout } = {}) {
    const opts = this._options(timeout, defaultTimeout === undefined ? this.timeout : defaultTimeout);
    return new Promise((resolve, reject) => {
      stub[method](request, this._metadata(sessionId), opts,
        (err, resp) => (err ? reject(toError(err)) : resolve(resp)));
    });
  }
  /** Calls a server-streaming method; an async iterator of responses. */
  async *stream(stub, method, request, { timeout, sessionId } = {}) {
    const call = stub[method](request, this._metadata(sessionId), this._options(timeout, null));
    try {
      for await (const item of call) yield item;
    } catch (err) {
      throw toError(err);
    } finally {
      call.cancel();
    }
  }
  async *_pages(fetch, field, limit) {
    let token = '';
    let count = 0;
    for (;;) {
      const page = await fetch(token);
      for (const item of page[field]) {
        if (limit != null && count >= limit) return;
        count += 1;
        yield item;
      }
      token = page.nextPageToken;
      if (!token) return;
    }
  }

  close() { this.sessionsStub.close(); }

  // SessionService
  async startSession(request, { timeout } = {}) {
    const resp = await this.unary(this.sessionsStub, 'startSession', request,
      { timeout, defaultTimeout: this.startTimeout });
    return new Session(this, resp.session);
  }
  _start(o, oneof) {
    const req = { name: o.name || '', ...oneof };
    if (o.sessionTimeout != null) req.timeout = duration(o.sessionTimeout);
    return this.startSession(req, { timeout: o.timeout });
  }
  startImap(o) {
    return this._start(o, { imap: { server: endpoint(o), credentials: credentials(o),
      initialFolder: o.folder || '' } });
  }
  startPop3(o) {
    return this._start(o, { pop3: { server: endpoint(o), credentials: credentials(o) } });
  }
  startSmtp(o) {
    return this._start(o, { smtp: { server: endpoint(o), credentials: credentials(o),
      asynchronous: !!o.asynchronous, ehloName: o.ehloName || '' } });
  }
  startPop3Smtp(o) {
    return this._start(o, { pop3Smtp: { pop3: endpoint(o), smtp: endpoint(o, 'smtp'),
      credentials: credentials(o), asynchronous: !!o.asynchronous, ehloName: o.ehloName || '' } });
  }
  /** Runs fn(session) and closes the session afterwards, whatever happens. */
  async withSession(sessionOrPromise, fn) {
    const session = await sessionOrPromise;
    try {
      return await fn(session);
    } finally {
      if (!session.closed) await session.close().catch(() => {});
    }
  }
  /** A handle on an existing session by ID or name. */
  async session(idOrName, opts = {}) { return new Session(this, await this.getSession(idOrName, opts)); }
  async getSession(idOrName, { timeout } = {}) {
    return (await this.unary(this.sessionsStub, 'getSession', { session: idOrName },
      { timeout, sessionId: idOrEmpty(idOrName) })).session;
  }
  async closeSession(idOrName, { timeout } = {}) {
    return (await this.unary(this.sessionsStub, 'closeSession', { session: idOrName },
      { timeout, sessionId: idOrEmpty(idOrName) })).serverReply;
  }
  /** The caller's sessions; allCallers: everyone's (admin callers only). */
  sessions({ pageSize = 0, limit, allCallers = false, timeout } = {}) {
    return this._pages((pageToken) => this.unary(this.sessionsStub, 'listSessions',
      { pageSize, pageToken, allCallers }, { timeout }), 'sessions', limit);
  }
  async getDefaultTimeout({ timeout } = {}) {
    return seconds((await this.unary(this.sessionsStub, 'getDefaultTimeout', {}, { timeout })).timeout);
  }
  async setDefaultTimeout(value, { timeout } = {}) {
    return seconds((await this.unary(this.sessionsStub, 'setDefaultTimeout',
      { timeout: duration(value) }, { timeout })).timeout);
  }

  // MessageService
  buildSource(msg, { options, timeout } = {}) {
    return this.unary(this.messageStub, 'buildSource', { message: msg, options }, { timeout });
  }
  parseSource(source, { includeSource = false, omitAttachmentContent = false, timeout } = {}) {
    return this.unary(this.messageStub, 'parseSource',
      { source: Buffer.from(source), options: { includeSource, omitAttachmentContent } }, { timeout });
  }

  // SendService calls that need no session
  checkAddress(addr, { strict = false, timeout } = {}) {
    return this.unary(this.sendStub, 'checkAddress',
      { address: addr, mode: strict ? 'CHECK_MODE_STRICT' : 'CHECK_MODE_SYNTAX' }, { timeout });
  }
  async sendStatus(sendId, { session = '', timeout } = {}) {
    return (await this.unary(this.sendStub, 'getSendStatus', { session, sendId },
      { timeout, sessionId: idOrEmpty(session) })).send;
  }
  async cancelSend(sendId, { session = '', timeout } = {}) {
    return (await this.unary(this.sendStub, 'cancelSend', { session, sendId },
      { timeout, sessionId: idOrEmpty(session) })).send;
  }
  outbox({ session = '', states = [], pageSize = 0, limit, timeout } = {}) {
    return this._pages((pageToken) => this.unary(this.sendStub, 'listOutbox',
      { session, states, pageSize, pageToken }, { timeout, sessionId: idOrEmpty(session) }),
    'sends', limit);
  }
  async *watchSends({ session = '', sendIds = [], includeCurrent = false, timeout } = {}) {
    for await (const ev of this.stream(this.sendStub, 'watchSendStatus',
      { session, sendIds, includeCurrent }, { timeout, sessionId: idOrEmpty(session) })) yield ev.send;
  }
}

/** The chunks of one attachment (Session.streamAttachment); iterable once. */
class AttachmentStream {
  constructor(responses) {
    this._it = responses[Symbol.asyncIterator]();
    this._first = null; // promise of the first response
    this._meta = null;
  }
  _head() {
    if (!this._first) {
      this._first = this._it.next().then((r) => {
        if (!r.done && r.value.attachment) this._meta = r.value.attachment;
        return r;
      });
    }
    return this._first;
  }
  /** The part's metadata (fileName, contentType, size, partId); null if the part had none. */
  async attachment() {
    await this._head();
    return this._meta;
  }
  async *[Symbol.asyncIterator]() {
    try {
      const first = await this._head();
      if (first.done) return;
      if (first.value.data && first.value.data.length) yield first.value.data;
      for (;;) {
        const r = await this._it.next();
        if (r.done) return;
        if (r.value.attachment) this._meta = r.value.attachment;
        if (r.value.data && r.value.data.length) yield r.value.data;
      }
    } finally {
      await this._it.return(); // a loop left early cancels the call
    }
  }
}

class Session {
  constructor(client, info) {
    this.client = client;
    this.lastInfo = info;
    this.id = info.id;
    this.closed = false;
  }
  get name() { return this.lastInfo.name; }
  get protocol() { return this.lastInfo.protocol; } // 'PROTOCOL_IMAP', ...
  _u(stub, method, req, timeout) {
    return this.client.unary(this.client[stub], method, { session: this.id, ...req },
      { timeout, sessionId: this.id });
  }
  _s(stub, method, req, timeout) {
    return this.client.stream(this.client[stub], method, { session: this.id, ...req },
      { timeout, sessionId: this.id });
  }
  _pages(stub, method, req, field, limit, timeout) {
    return this.client._pages((pageToken) => this._u(stub, method, { ...req, pageToken }, timeout),
      field, limit);
  }

  // SessionService
  async info({ timeout } = {}) {
    this.lastInfo = (await this._u('sessionsStub', 'getSession', {}, timeout)).session;
    return this.lastInfo;
  }
  /** CloseSession (LOGOUT/QUIT); resolves to the server's reply. Safe to call twice. */
  async close({ timeout } = {}) {
    if (this.closed) return '';
    const resp = await this._u('sessionsStub', 'closeSession', {}, timeout);
    this.closed = true;
    return resp.serverReply;
  }
  /** Forgets the handle without closing the session; returns its ID. */
  release() { this.closed = true; return this.id; }
  async setTimeout(value, { timeout } = {}) {
    this.lastInfo = (await this._u('sessionsStub', 'updateSession',
      { timeout: duration(value || 0) }, timeout)).session;
    return this.lastInfo;
  }
  /**
   * UpdateSession: new credentials for every later login (a refreshed OAuth2 token, a
   * changed password): { password } or { token }, optional mechanism, allowInsecureAuth, and
   * user (must be the session's; absent: the session's). Logged-in connections stay; a
   * session whose login was refused logs in again during the call (rejecting with that
   * login's error, or resolving with the session READY).
   */
  async updateCredentials(o = {}, { timeout } = {}) {
    const c = credentials({ ...o, user: o.user ?? this.lastInfo.user });
    this.lastInfo = (await this._u('sessionsStub', 'updateSession', { credentials: c },
      timeout)).session;
    return this.lastInfo;
  }

  // MailboxService
  async status(folder = '', { timeout } = {}) {
    return (await this._u('mailboxStub', 'getMailboxStatus', { folder }, timeout)).status;
  }
  _listReq(o) {
    return { folder: o.folder || '', view: prefixed('MESSAGE_VIEW', o.view, 'UNSPECIFIED'),
      order: prefixed('MESSAGE_ORDER', o.order, 'NEWEST_FIRST'),
      filter: o.unreadOnly ? 'MESSAGE_FILTER_UNREAD' : 'MESSAGE_FILTER_ALL',
      pageSize: o.pageSize || (o.limit != null ? Math.max(1, Math.min(o.limit, 100)) : 0),
      maxAttachmentBytes: o.maxAttachmentBytes || 0, markSeen: !!o.markSeen };
  }
  /** One page of ListMessages: { messages, nextPageToken, totalCount }. */
  listMessages(o = {}) {
    return this._u('mailboxStub', 'listMessages', { ...this._listReq(o), pageToken: o.pageToken || '' },
      o.timeout);
  }
  /** Every message of a folder, newest first by default, page after page. */
  messages(o = {}) {
    return this._pages('mailboxStub', 'listMessages', this._listReq(o), 'messages', o.limit, o.timeout);
  }
  async getMessage(id, { view = 'FULL', maxAttachmentBytes = 0, markSeen = false, timeout } = {}) {
    return (await this._u('mailboxStub', 'getMessage', { id, view: prefixed('MESSAGE_VIEW', view),
      maxAttachmentBytes, markSeen }, timeout)).message;
  }
  async *streamMessage(id, { offset = 0, chunkSize = 0, markSeen = false, timeout } = {}) {
    for await (const c of this._s('mailboxStub', 'streamMessage', { id, offset, chunkSize, markSeen },
      timeout)) yield c.data;
  }
  /**
   * GetAttachment, streamed: an async iterable of Buffer chunks of the decoded content;
   * `await stream.attachment()` gives the part's metadata (from the first response).
   */
  streamAttachment(id, { partId, contentId, chunkSize = 0, timeout } = {}) {
    const req = { id, chunkSize, ...(contentId ? { contentId } : { partId: partId || '' }) };
    return new AttachmentStream(this._s('mailboxStub', 'getAttachment', req, timeout));
  }
  /** GetAttachment joined: `{ attachment, data }` with the whole content in one Buffer. */
  async getAttachment(id, options = {}) {
    const stream = this.streamAttachment(id, options);
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    return { attachment: await stream.attachment(), data: Buffer.concat(chunks) };
  }
  search(criteria = {}, o = {}) {
    return this._pages('mailboxStub', 'searchMessages', { ...this._listReq(o), criteria,
      filter: undefined, markSeen: undefined }, 'messages', o.limit, o.timeout);
  }
  delete(messageIds, { mode, timeout } = {}) {
    return this._u('mailboxStub', 'deleteMessages',
      { ids: ids(messageIds), mode: prefixed('DELETE_MODE', mode, 'UNSPECIFIED') }, timeout);
  }
  async folders({ pattern = '', subscribedOnly = false, includeStatus = false, timeout } = {}) {
    return (await this._u('mailboxStub', 'listFolders', { pattern, subscribedOnly, includeStatus },
      timeout)).folders;
  }
  async selectFolder(folder, { readOnly = false, timeout } = {}) {
    return (await this._u('mailboxStub', 'selectFolder', { folder, readOnly }, timeout)).status;
  }
  async createFolder(folder, { subscribe = false, role, timeout } = {}) {
    return (await this._u('mailboxStub', 'createFolder',
      { folder, subscribe, role: prefixed('FOLDER_ROLE', role, 'UNSPECIFIED') }, timeout)).folder;
  }
  async deleteFolder(folder, { timeout } = {}) {
    await this._u('mailboxStub', 'deleteFolder', { folder }, timeout);
  }
  async renameFolder(folder, newName, { timeout } = {}) {
    return (await this._u('mailboxStub', 'renameFolder', { folder, newName }, timeout)).folder;
  }
  async copy(messageIds, destinationFolder, { timeout } = {}) {
    return (await this._u('mailboxStub', 'copyMessages',
      { ids: ids(messageIds), destinationFolder }, timeout)).copies;
  }
  async move(messageIds, destinationFolder, { timeout } = {}) {
    return (await this._u('mailboxStub', 'moveMessages',
      { ids: ids(messageIds), destinationFolder }, timeout)).moves;
  }
  /** updateFlags(ids, 'ADD' | 'REMOVE' | 'REPLACE', { seen: true, keywords: [...] }). */
  async updateFlags(messageIds, operation, flags, { timeout } = {}) {
    return (await this._u('mailboxStub', 'updateFlags', { ids: ids(messageIds),
      operation: prefixed('FLAG_OPERATION', operation), flags }, timeout)).messages;
  }
  markRead(messageIds, read = true, opts = {}) {
    return this.updateFlags(messageIds, read ? 'ADD' : 'REMOVE', { seen: true }, opts);
  }
  append(folder, content, { flags, receiveTime, buildOptions, timeout } = {}) {
    const req = { folder, flags, buildOptions };
    if (Buffer.isBuffer(content) || typeof content === 'string') req.source = Buffer.from(content);
    else req.message = content;
    if (receiveTime) req.receiveTime = { seconds: Math.floor(receiveTime.getTime() / 1000), nanos: 0 };
    return this._u('mailboxStub', 'appendMessage', req, timeout);
  }
  async expunge({ folder = '', ids: only = [], timeout } = {}) {
    return (await this._u('mailboxStub', 'expunge', { folder, ids: only }, timeout)).expungedIds;
  }
  watch({ folder = '', view, pollInterval, timeout } = {}) {
    return this._s('mailboxStub', 'watchMailbox', { folder,
      view: prefixed('MESSAGE_VIEW', view, 'UNSPECIFIED'), pollInterval: duration(pollInterval) },
    timeout);
  }
  refresh({ timeout } = {}) { return this._u('mailboxStub', 'refresh', {}, timeout); }

  // SendService
  /** send(message) or send({ source: Buffer }); options: envelope, idempotencyKey, ... */
  send(msg, { source, envelope, idempotencyKey = '', requireAllRecipients = false, buildOptions,
    timeout } = {}) {
    if ((msg == null) === (source == null)) throw new TypeError('give exactly one of message or source');
    const req = { idempotencyKey, requireAllRecipients, buildOptions, envelope };
    if (msg != null) req.message = msg; else req.source = Buffer.from(source);
    return this._u('sendStub', 'sendMessage', req, timeout);
  }
  async sendStatus(sendId, { timeout } = {}) {
    return (await this._u('sendStub', 'getSendStatus', { sendId }, timeout)).send;
  }
  async cancelSend(sendId, { timeout } = {}) {
    return (await this._u('sendStub', 'cancelSend', { sendId }, timeout)).send;
  }
  outbox({ states = [], pageSize = 0, limit, timeout } = {}) {
    return this._pages('sendStub', 'listOutbox', { states, pageSize }, 'sends', limit, timeout);
  }
  watchSends({ sendIds = [], includeCurrent = false, timeout } = {}) {
    return this.client.watchSends({ session: this.id, sendIds, includeCurrent, timeout });
  }
  checkAddress(addr, { allowVrfy = false, timeout } = {}) {
    return this._u('sendStub', 'checkAddress',
      { address: addr, mode: 'CHECK_MODE_SERVER', allowVrfy }, timeout);
  }
}
if (Symbol.asyncDispose) {
  Session.prototype[Symbol.asyncDispose] = async function dispose() {
    if (!this.closed) await this.close().catch(() => {});
  };
}

module.exports = {
  Client, Session, AttachmentStream, MailpoolError, Security, View, status: grpc.status, message, address, toDate,
  resolveToken, DEFAULT_ADDRESS, SESSION_HEADER,
};
