// The test OAuth2 authorization server (issue 18): the npm package oauth2-mock-server
// answers the token endpoint (RFC 6749 refresh_token grant) over HTTPS; this file adds
// what the tests need on top of it:
//  - refresh tokens known from the config file, each for one mail user; an unknown or
//    revoked one is refused with invalid_grant (RFC 6749 section 5.2);
//  - the client must authenticate (client_id and client_secret in the form body, or HTTP
//    Basic), else invalid_client;
//  - access tokens live `ttl_seconds` (short, so that tests cross several lifetimes);
//  - POST /introspect (RFC 7662, form body token=...) for Dovecot's oauth2 passdb: active
//    with the user's name while the token is one this server issued and has not expired;
//  - POST /revoke (RFC 7009, form body token=...) revokes a refresh token;
//  - test controls: POST /restore (token=...) takes a revocation back; POST /forget makes
//    every access token issued so far inactive (what a provider does when the user changes
//    the password); GET /stats: grants answered and refused, introspections.
//
// Usage: node server.mjs CONFIG.json   (started by scripts/testservers.sh)
// CONFIG: {"host", "port", "cert", "key", "client_id", "client_secret", "ttl_seconds",
//          "refresh_tokens": {"TOKEN": "user@example.test", ...}}
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { OAuth2Issuer, OAuth2Service, Events } from 'oauth2-mock-server';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const ttl = config.ttl_seconds;
const revoked = new Set();
const issued = new Map();  // access token -> {user, exp (seconds)}
const stats = { grants: 0, refused: 0, introspections: 0, active: 0 };

const issuer = new OAuth2Issuer();
issuer.url = `https://${config.host}:${config.port}`;
await issuer.keys.generate('RS256');
const service = new OAuth2Service(issuer);

function clientOf(req) {
  const auth = req.headers.authorization ?? '';
  if (auth.startsWith('Basic ')) {
    const [id, secret] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
    return { id: decodeURIComponent(id ?? ''), secret: decodeURIComponent(secret ?? '') };
  }
  return { id: req.body.client_id, secret: req.body.client_secret };
}

function refusal(response, status, error, description) {
  response.statusCode = status;
  response.body = { error, error_description: description };
  stats.refused++;
}

service.on(Events.BeforeTokenSigning, (token, req) => {
  const user = config.refresh_tokens[req.body.refresh_token];
  if (user !== undefined) token.payload.sub = user;
  token.payload.exp = token.payload.iat + ttl;
});

service.on(Events.BeforeResponse, (response, req) => {
  const client = clientOf(req);
  if (client.id !== config.client_id || client.secret !== config.client_secret) {
    return refusal(response, 401, 'invalid_client', 'client authentication failed');
  }
  if (req.body.grant_type !== 'refresh_token') {
    return refusal(response, 400, 'unsupported_grant_type', 'only refresh_token');
  }
  const refreshToken = req.body.refresh_token;
  const user = config.refresh_tokens[refreshToken];
  if (user === undefined || revoked.has(refreshToken)) {
    return refusal(response, 400, 'invalid_grant', 'the refresh token is unknown or revoked');
  }
  // Not rotated, no ID token: what Google answers to this grant.
  delete response.body.refresh_token;
  delete response.body.id_token;
  response.body.expires_in = ttl;
  issued.set(response.body.access_token, { user, exp: Math.floor(Date.now() / 1000) + ttl });
  stats.grants++;
});

function formBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; });
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(data))));
  });
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

const server = createServer(
  { cert: readFileSync(config.cert), key: readFileSync(config.key) },
  async (req, res) => {
    const path = new URL(req.url, issuer.url).pathname;
    if (req.method === 'POST' && path === '/introspect') {
      const { token } = await formBody(req);
      stats.introspections++;
      const known = issued.get(token);
      const now = Math.floor(Date.now() / 1000);
      if (known === undefined || known.exp <= now) return reply(res, 200, { active: false });
      stats.active++;
      return reply(res, 200, { active: true, username: known.user, exp: known.exp });
    }
    if (req.method === 'POST' && path === '/revoke') {
      const { token } = await formBody(req);
      revoked.add(token);
      return reply(res, 200, {});
    }
    if (req.method === 'POST' && path === '/restore') {
      const { token } = await formBody(req);
      revoked.delete(token);
      return reply(res, 200, {});
    }
    if (req.method === 'POST' && path === '/forget') {
      issued.clear();
      return reply(res, 200, {});
    }
    if (req.method === 'GET' && path === '/stats') return reply(res, 200, stats);
    return service.requestHandler(req, res);
  });
server.listen(config.port, config.host, () => {
  console.log(`oauth2 test server on ${issuer.url} (token lifetime ${ttl} s)`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
