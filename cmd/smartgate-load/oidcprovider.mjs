// Peer server for smartgate-load: panva's oidc-provider configured like
// smartgate's token endpoint. Access tokens are JWTs signed ES256, refresh
// tokens rotate, state is kept in process in a Map without eviction, and
// clients authenticate with private_key_jwt (RS384 or ES384) or, for the
// public client, not at all. No user signs in, so refresh tokens and codes
// are seeded through a control listener.
//
// Environment:
//   OIDC_PROVIDER_MODULE  file path of oidc-provider's lib/index.js (required)
//   RS384_JWKS, ES384_JWKS  public JWKS of the two backend clients (required)
//   PORT, CONTROL_PORT    loopback ports of the provider and of the control listener (required)
//
// Prints "listening" once both listeners accept connections. Exits on SIGTERM and SIGINT.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);

console.log = console.error;
console.info = console.error;

const PUBLIC_CLIENT = 'load-public';
const REDIRECT_URI = 'http://127.0.0.1/callback';
const RESOURCE = 'http://127.0.0.1/fhir';
const RESOURCE_SCOPES = 'launch/patient patient/*.rs system/Observation.rs';

// Adapter keeps every model in one Map. Entries expire by their own exp
// when read, and nothing is evicted. The memory adapter of oidc-provider
// 9.13.3 is an LRU of 1,000 entries, and long runs would evict seeded grants.
const storage = new Map();
const grants = new Map();
class MapAdapter {
  constructor(model) { this.model = model; }
  key(id) { return `${this.model}:${id}`; }
  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    storage.set(key, { payload, expiresAt });
    if (payload.grantId) {
      if (!grants.has(payload.grantId)) grants.set(payload.grantId, new Set());
      grants.get(payload.grantId).add(key);
    }
  }
  async find(id) {
    const entry = storage.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt < Date.now()) { storage.delete(this.key(id)); return undefined; }
    return entry.payload;
  }
  async findByUid(uid) {
    for (const { payload } of storage.values()) if (payload.uid === uid) return payload;
    return undefined;
  }
  async findByUserCode() { return undefined; }
  async consume(id) {
    const entry = storage.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) { storage.delete(this.key(id)); }
  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) storage.delete(key);
    grants.delete(grantId);
  }
}

const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'es256', alg: 'ES256', use: 'sig' };

const backend = (clientId, jwks, alg) => ({
  client_id: clientId, token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: alg,
  grant_types: ['client_credentials'], response_types: [], redirect_uris: [], jwks: JSON.parse(jwks),
});

const issuer = `http://127.0.0.1:${process.env.PORT}`;
const provider = new Provider(issuer, {
  adapter: MapAdapter,
  jwks: { keys: [signingKey] },
  clients: [
    { client_id: PUBLIC_CLIENT, token_endpoint_auth_method: 'none', application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: [REDIRECT_URI] },
    backend('load-backend-rs384', process.env.RS384_JWKS, 'RS384'),
    backend('load-backend-es384', process.env.ES384_JWKS, 'ES384'),
  ],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  enabledJWA: { clientAuthSigningAlgValues: ['RS256', 'RS384', 'ES256', 'ES384'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: RESOURCE_SCOPES, audience: RESOURCE, accessTokenFormat: 'jwt', accessTokenTTL: 3600,
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  scopes: ['openid', 'offline_access'],
  rotateRefreshToken: true,
  pkce: { required: () => true },
  findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

async function newGrant(client) {
  const grant = new provider.Grant({ accountId: 'load-user', clientId: PUBLIC_CLIENT });
  grant.addOIDCScope('offline_access');
  grant.addResourceScope(RESOURCE, 'launch/patient patient/*.rs');
  return grant.save();
}

async function seedRefresh(n) {
  const client = await provider.Client.find(PUBLIC_CLIENT);
  const out = [];
  for (let i = 0; i < n; i++) {
    const grantId = await newGrant(client);
    const rt = new provider.RefreshToken({
      accountId: 'load-user', client, grantId, gty: 'authorization_code',
      scope: 'offline_access launch/patient patient/*.rs', resource: RESOURCE,
    });
    out.push(await rt.save());
  }
  return out;
}

async function seedCodes(n) {
  const client = await provider.Client.find(PUBLIC_CLIENT);
  const out = [];
  for (let i = 0; i < n; i++) {
    const grantId = await newGrant(client);
    const verifier = crypto.randomBytes(32).toString('base64url');
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const code = new provider.AuthorizationCode({
      accountId: 'load-user', client, grantId, redirectUri: REDIRECT_URI, codeChallenge: challenge,
      codeChallengeMethod: 'S256', scope: 'offline_access launch/patient patient/*.rs', resource: RESOURCE,
      authTime: Math.floor(Date.now() / 1000),
    });
    out.push({ code: await code.save(), verifier });
  }
  return out;
}

const server = http.createServer(provider.callback());
const control = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    const n = Number(url.searchParams.get('n') ?? '0');
    let body;
    if (url.pathname === '/seed/refresh') body = await seedRefresh(n);
    else if (url.pathname === '/seed/code') body = await seedCodes(n);
    else { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  } catch (err) {
    console.error('seed failed', err);
    res.writeHead(500).end(String(err));
  }
});

await new Promise((resolve) => server.listen(Number(process.env.PORT), '127.0.0.1', resolve));
await new Promise((resolve) => control.listen(Number(process.env.CONTROL_PORT), '127.0.0.1', resolve));
process.stdout.write('listening\n');
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
