// An OpenID Connect provider (panva's oidc-provider) that plays a hospital's
// upstream identity provider in smartgate's end-to-end tests. It imitates the
// URL layout and ID token claims of a Keycloak realm or of a Microsoft Entra ID
// v2.0 tenant, keeps all state in memory and listens on 127.0.0.1 only.
//
// Environment:
//   PORT                 port to listen on; 0 (the default) picks a free one
//   SHAPE                keycloak (default) or entra
//   REALM                Keycloak realm name (default hospital)
//   TENANT               Entra tenant id (default 9188040d-6c67-4c5b-b112-36a304b66dad)
//   CLIENT_ID            confidential client id (default smartgate)
//   CLIENT_SECRET        its secret (default smartgate-secret)
//   REDIRECT_URIS        comma-separated redirect URIs of the confidential client (required)
//   OTHER_REDIRECT_URIS  comma-separated redirect URIs of the public client other-app (may be empty)
//   EXTRA_PUBLIC_CLIENT  optional extra public client: client_id,redirect_uri[,redirect_uri...]
//
// Prints "listening <issuer>" to stdout once the server accepts connections;
// everything else goes to stderr. Exits on SIGTERM, SIGINT and end of stdin.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

// oidc-provider prints its development notices with console.info, which writes
// to stdout. Stdout carries only the "listening" line, so send the rest to stderr.
console.log = console.error;
console.info = console.error;

const DEFAULT_TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad';

// Fixed test values: this server only ever runs inside tests.
const COOKIE_KEYS = ['smartgate-testenv-upstream-cookie-key-1'];

function log(message, ...details) {
  console.error(`upstream: ${message}`, ...details);
}

function fail(message) {
  log(message);
  process.exit(2);
}

function splitList(value) {
  return (value ?? '').split(',').map((item) => item.trim()).filter(Boolean);
}

function readSettings(env) {
  const shape = env.SHAPE || 'keycloak';
  if (shape !== 'keycloak' && shape !== 'entra') {
    fail(`invalid SHAPE ${JSON.stringify(shape)}: use keycloak or entra`);
  }

  const port = Number(env.PORT ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`invalid PORT ${JSON.stringify(env.PORT)}: use an integer from 0 to 65535`);
  }

  const redirectUris = splitList(env.REDIRECT_URIS);
  if (redirectUris.length === 0) {
    fail('missing REDIRECT_URIS: set it to the gateway callback URL(s), separated by commas');
  }

  let extraPublicClient;
  const extra = splitList(env.EXTRA_PUBLIC_CLIENT);
  if (extra.length === 1) {
    fail('invalid EXTRA_PUBLIC_CLIENT: use client_id,redirect_uri[,redirect_uri...]');
  }
  if (extra.length > 1) {
    extraPublicClient = { clientId: extra[0], redirectUris: extra.slice(1) };
  }

  return {
    shape,
    port,
    realm: env.REALM || 'hospital',
    tenant: env.TENANT || DEFAULT_TENANT,
    clientId: env.CLIENT_ID || 'smartgate',
    clientSecret: env.CLIENT_SECRET || 'smartgate-secret',
    redirectUris,
    otherRedirectUris: splitList(env.OTHER_REDIRECT_URIS),
    extraPublicClient,
  };
}

// Users of the imitated hospital. The login form checks passwords against this table.
const USERS = [
  {
    username: 'alice',
    password: 'alice-password',
    sub: 'f1c0a7e2-alice',
    objectId: '6d0f3a52-8c1e-4f7b-9a24-a11ce0000001',
    name: 'Alice Example',
    givenName: 'Alice',
    familyName: 'Example',
    email: 'alice@hospital.example',
    patientId: 'pat-alice-123',
  },
  {
    username: 'bob',
    password: 'bob-password',
    sub: 'b0b5e1d4-bob',
    objectId: '6d0f3a52-8c1e-4f7b-9a24-b0b000000002',
    name: 'Bob Clinician',
    givenName: 'Bob',
    familyName: 'Clinician',
    email: 'bob@hospital.example',
    practitionerId: 'prac-bob-7',
  },
  {
    // A user with neither a patient record nor a clinician role, such as
    // a staff member of the hospital's front desk.
    username: 'carol',
    password: 'carol-password',
    sub: 'c4r01a2b-carol',
    objectId: '6d0f3a52-8c1e-4f7b-9a24-ca4010000003',
    name: 'Carol Staff',
    givenName: 'Carol',
    familyName: 'Staff',
    email: 'carol@hospital.example',
  },
];

function findUserByName(username) {
  return USERS.find((user) => user.username === username);
}

function findUserBySub(sub) {
  return USERS.find((user) => user.sub === sub);
}

function checkPassword(user, password) {
  const expected = Buffer.from(user.password);
  const actual = Buffer.from(password ?? '');
  return expected.length === actual.length && crypto.timingSafeEqual(expected, actual);
}

// Name of the ID token claim that carries the FHIR patient id. In Entra ID such
// a claim comes from a directory extension attribute.
function patientClaimName(shape) {
  return shape === 'entra' ? 'extension_patientId' : 'patient_id';
}

function userClaims(user, settings) {
  const claims = {
    sub: user.sub,
    name: user.name,
    given_name: user.givenName,
    family_name: user.familyName,
    preferred_username: user.username,
    email: user.email,
    email_verified: true,
  };
  if (user.patientId) {
    claims[patientClaimName(settings.shape)] = user.patientId;
  }
  if (user.practitionerId) {
    claims.practitioner_id = user.practitionerId;
  }
  if (settings.shape === 'entra') {
    claims.oid = user.objectId;
    claims.tid = settings.tenant;
  }
  return claims;
}

// Claims released per scope. With conformIdTokenClaims off, oidc-provider puts
// the claims of every granted scope into the ID token, not only into userinfo.
function claimsByScope(settings) {
  const openid = ['sub'];
  if (settings.shape === 'entra') {
    openid.push('oid', 'tid');
  }
  return {
    acr: null,
    auth_time: null,
    iss: null,
    sid: null,
    openid,
    profile: [
      'name',
      'given_name',
      'family_name',
      'preferred_username',
      patientClaimName(settings.shape),
      'practitioner_id',
    ],
    email: ['email', 'email_verified'],
  };
}

// URL layout of each shape. mountPath is the path prefix that is stripped
// before a request reaches the provider. The routes sit below it.
function layout(settings, origin) {
  if (settings.shape === 'entra') {
    const mountPath = `/${settings.tenant}`;
    return {
      issuer: `${origin}${mountPath}/v2.0`,
      mountPath,
      // Entra serves discovery below the issuer (".../v2.0/.well-known/...") but
      // its endpoints below the tenant, so that one path is mapped by hand.
      discoveryPath: `${mountPath}/v2.0/.well-known/openid-configuration`,
      routes: {
        authorization: '/oauth2/v2.0/authorize',
        token: '/oauth2/v2.0/token',
        jwks: '/discovery/v2.0/keys',
        end_session: '/oauth2/v2.0/logout',
        // Entra's real userinfo endpoint is on graph.microsoft.com.
        userinfo: '/oidc/userinfo',
      },
    };
  }

  const mountPath = `/realms/${encodeURIComponent(settings.realm)}`;
  return {
    issuer: `${origin}${mountPath}`,
    mountPath,
    discoveryPath: undefined,
    routes: {
      authorization: '/protocol/openid-connect/auth',
      token: '/protocol/openid-connect/token',
      jwks: '/protocol/openid-connect/certs',
      userinfo: '/protocol/openid-connect/userinfo',
      end_session: '/protocol/openid-connect/logout',
      introspection: '/protocol/openid-connect/token/introspect',
      revocation: '/protocol/openid-connect/revoke',
      pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
    },
  };
}

function clientList(settings) {
  const clients = [
    {
      client_id: settings.clientId,
      client_secret: settings.clientSecret,
      redirect_uris: settings.redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      // oidc-provider 9 (lib/shared/client_auth.js) also accepts
      // client_secret_post for a client registered with client_secret_basic.
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ];

  // other-app stands for a non-SMART application of the hospital. Without
  // redirect URIs it is registered but cannot run the authorization code flow.
  const hasOtherRedirects = settings.otherRedirectUris.length > 0;
  clients.push({
    client_id: 'other-app',
    redirect_uris: settings.otherRedirectUris,
    grant_types: hasOtherRedirects ? ['authorization_code', 'refresh_token'] : [],
    response_types: hasOtherRedirects ? ['code'] : [],
    token_endpoint_auth_method: 'none',
  });

  if (settings.extraPublicClient) {
    clients.push({
      client_id: settings.extraPublicClient.clientId,
      redirect_uris: settings.extraPublicClient.redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
  }

  return clients;
}

// In-memory storage for oidc-provider models. Unlike the provider's bundled
// memory adapter it can list stored entries, which the revoke-sessions test
// endpoint needs to find a user's sessions and grants.
const modelStores = new Map();

class TestAdapter {
  constructor(modelName) {
    if (!modelStores.has(modelName)) {
      modelStores.set(modelName, new Map());
    }
    this.entries = modelStores.get(modelName);
  }

  static listIds(modelName, predicate) {
    const entries = modelStores.get(modelName) ?? new Map();
    const now = Date.now();
    const ids = [];
    for (const [id, entry] of entries) {
      if (entry.expiresAt > now && predicate(entry.payload)) {
        ids.push(id);
      }
    }
    return ids;
  }

  #live(id) {
    const entry = this.entries.get(id);
    if (entry === undefined) {
      return undefined;
    }
    if (entry.expiresAt <= Date.now()) {
      this.entries.delete(id);
      return undefined;
    }
    return entry;
  }

  #findBy(field, value) {
    for (const [id, entry] of this.entries) {
      if (entry.payload[field] === value) {
        return this.#live(id)?.payload;
      }
    }
    return undefined;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    this.entries.set(id, { payload, expiresAt });
  }

  async find(id) {
    return this.#live(id)?.payload;
  }

  async findByUid(uid) {
    return this.#findBy('uid', uid);
  }

  async findByUserCode(userCode) {
    return this.#findBy('userCode', userCode);
  }

  async consume(id) {
    const entry = this.#live(id);
    if (entry) {
      entry.payload.consumed = Math.floor(Date.now() / 1000);
    }
  }

  async destroy(id) {
    this.entries.delete(id);
  }

  async revokeByGrantId(grantId) {
    for (const [id, entry] of this.entries) {
      if (entry.payload.grantId === grantId) {
        this.entries.delete(id);
      }
    }
  }
}

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `test-${crypto.randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

function escapeHtml(value) {
  return String(value ?? '')
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function htmlPage(title, body) {
  return `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
<h1>${escapeHtml(title)}</h1>
${body}
</body>
</html>
`;
}

function sendHtml(res, status, title, body) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(htmlPage(title, body));
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(value)}\n`);
}

function loginPage(action, username, error) {
  const message = error ? `<p class="error" role="alert">${escapeHtml(error)}</p>\n` : '';
  return `${message}<form method="post" action="${escapeHtml(action)}">
<label>Username <input type="text" name="login" value="${escapeHtml(username)}" autofocus></label>
<label>Password <input type="password" name="password" value=""></label>
<button type="submit">Sign in</button>
</form>`;
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) {
      throw new Error('request body larger than 64 KiB');
    }
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// Grants everything that the consent prompt lists as missing, the way a
// Keycloak client without "Consent required" or an admin-consented Entra
// application does: the user sees no consent page.
async function grantConsent(provider, interaction) {
  const { prompt: { details }, params, session } = interaction;

  let grant;
  if (interaction.grantId) {
    grant = await provider.Grant.find(interaction.grantId);
  }
  if (!grant) {
    grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  }

  if (details.missingOIDCScope) {
    grant.addOIDCScope(details.missingOIDCScope.join(' '));
  }
  if (details.missingOIDCClaims) {
    grant.addOIDCClaims(details.missingOIDCClaims);
  }
  if (details.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }

  return grant.save();
}

// Serves the interaction page: the login form for the login prompt, and an
// immediate redirect back to the provider for the consent prompt.
async function handleInteraction(provider, req, res, uid) {
  let interaction;
  try {
    interaction = await provider.interactionDetails(req, res);
  } catch (err) {
    log(`interaction ${uid} not found: ${err.message}`);
    sendHtml(res, 400, 'Sign-in failed', '<p>The sign-in session is missing or expired. Start the sign-in again.</p>');
    return;
  }
  if (interaction.uid !== uid) {
    log(`interaction ${uid} rejected: the interaction cookie names ${interaction.uid}`);
    sendHtml(res, 400, 'Sign-in failed', '<p>The sign-in session does not match this page. Start the sign-in again.</p>');
    return;
  }

  const action = new URL(req.originalUrl, 'http://127.0.0.1').pathname;
  const promptName = interaction.prompt.name;

  if (req.method === 'GET' && promptName === 'login') {
    sendHtml(res, 200, 'Sign in', loginPage(action, interaction.params.login_hint ?? '', undefined));
    return;
  }

  if (req.method === 'POST' && promptName === 'login') {
    const form = await readForm(req);
    const username = form.get('login') ?? '';
    const user = findUserByName(username);
    if (!user || !checkPassword(user, form.get('password'))) {
      log(`login failed for user ${JSON.stringify(username)}`);
      sendHtml(res, 200, 'Sign in', loginPage(action, username, 'Invalid username or password.'));
      return;
    }
    log(`login succeeded for user ${username}`);
    await provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
    return;
  }

  if (req.method === 'GET' && promptName === 'consent') {
    const grantId = await grantConsent(provider, interaction);
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }

  log(`interaction ${uid} rejected: unexpected ${req.method} request for the ${promptName} prompt`);
  sendHtml(res, 400, 'Sign-in failed', `<p>Unexpected ${escapeHtml(req.method)} request for the ${escapeHtml(promptName)} prompt.</p>`);
}

// Ends every session and destroys every grant of one user, together with the
// access tokens, refresh tokens and authorization codes issued under them.
async function revokeUserSessions(provider, username) {
  const user = findUserByName(username);
  if (!user) {
    return undefined;
  }

  const grantIds = TestAdapter.listIds('Grant', (payload) => payload.accountId === user.sub);
  for (const grantId of grantIds) {
    await Promise.all([
      provider.AccessToken.revokeByGrantId(grantId),
      provider.RefreshToken.revokeByGrantId(grantId),
      provider.AuthorizationCode.revokeByGrantId(grantId),
    ]);
    const grant = await provider.Grant.find(grantId);
    await grant?.destroy();
  }

  const sessionIds = TestAdapter.listIds('Session', (payload) => payload.accountId === user.sub);
  for (const sessionId of sessionIds) {
    const session = await provider.Session.find(sessionId);
    await session?.destroy();
  }

  return { user: username, grants: grantIds.length, sessions: sessionIds.length };
}

async function handleRevokeSessions(provider, req, res, url) {
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    sendJson(res, 405, { error: `method ${req.method} not allowed, use POST` });
    return;
  }
  const username = url.searchParams.get('user');
  if (!username) {
    sendJson(res, 400, { error: 'missing query parameter user' });
    return;
  }
  const result = await revokeUserSessions(provider, username);
  if (!result) {
    sendJson(res, 404, { error: `user ${JSON.stringify(username)} not found` });
    return;
  }
  log(`revoked ${result.grants} grant(s) and ${result.sessions} session(s) of user ${username}`);
  sendJson(res, 200, result);
}

// oidc-provider follows OpenID Connect Core 1.0 section 11 and drops
// offline_access from a request whose prompt lacks "consent". Keycloak and Entra
// ID issue refresh tokens for offline_access without it, so add "consent" to
// such requests. The consent prompt is then granted without a page.
// NOTE: only GET authorization requests are rewritten; POST ones and pushed
// authorization requests keep oidc-provider's behaviour.
function addConsentPromptForOfflineAccess(search) {
  const params = new URLSearchParams(search);
  const scopes = (params.get('scope') ?? '').split(' ');
  const prompts = (params.get('prompt') ?? '').split(' ').filter(Boolean);
  if (!scopes.includes('offline_access') || prompts.includes('consent') || prompts.includes('none')) {
    return search;
  }
  prompts.push('consent');
  params.set('prompt', prompts.join(' '));
  return `?${params.toString()}`;
}

function createRequestHandler(provider, settings, urls) {
  const providerCallback = provider.callback();
  const interactionPrefix = `${urls.mountPath}/interaction/`;

  return async function handleRequest(req, res) {
    const requestLine = `${req.method} ${req.url}`;
    res.on('finish', () => log(`${requestLine} ${res.statusCode}`));

    const url = new URL(req.url, 'http://127.0.0.1');

    if (url.pathname === '/_test/revoke-sessions') {
      await handleRevokeSessions(provider, req, res, url);
      return;
    }

    if (url.pathname.startsWith(interactionPrefix)) {
      const uid = url.pathname.slice(interactionPrefix.length);
      if (uid && !uid.includes('/')) {
        req.originalUrl = req.url;
        await handleInteraction(provider, req, res, uid);
        return;
      }
    }

    // oidc-provider computes its endpoint URLs from the prefix of
    // req.originalUrl that precedes req.url, so keep both consistent.
    let providerPath;
    if (urls.discoveryPath !== undefined && url.pathname === urls.discoveryPath) {
      providerPath = '/.well-known/openid-configuration';
    } else if (url.pathname.startsWith(`${urls.mountPath}/`)) {
      providerPath = url.pathname.slice(urls.mountPath.length);
      // In the entra shape discovery exists only below the issuer, as in Entra ID.
      if (urls.discoveryPath !== undefined && providerPath.startsWith('/.well-known/')) {
        providerPath = undefined;
      }
    }
    if (providerPath === undefined) {
      sendJson(res, 404, { error: 'not_found', error_description: `no route for ${url.pathname}` });
      return;
    }

    let search = url.search;
    if (req.method === 'GET' && providerPath === urls.routes.authorization) {
      search = addConsentPromptForOfflineAccess(search);
    }

    req.url = `${providerPath}${search}`;
    req.originalUrl = `${urls.mountPath}${req.url}`;
    providerCallback(req, res);
  };
}

function logoutSource(ctx, form) {
  // One form with ordinary inputs, so that a test client can submit it as it is.
  const body = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/><button type="submit">Sign out</button></form>');
  ctx.type = 'html';
  ctx.body = htmlPage('Sign out', `<p>Do you want to sign out?</p>\n${body}`);
}

function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = htmlPage('Signed out', '<p>You are signed out.</p>');
}

function renderError(ctx, out, error) {
  log(`error page: ${out.error}: ${out.error_description ?? ''}`, error?.stack ?? '');
  const lines = Object.entries(out).map(([key, value]) => `<p><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</p>`);
  ctx.type = 'html';
  ctx.body = htmlPage('Error', lines.join('\n'));
}

function createProvider(settings, urls) {
  const ttlSeconds = (seconds) => () => seconds;
  const configuration = {
    adapter: TestAdapter,
    clients: clientList(settings),
    claims: claimsByScope(settings),
    conformIdTokenClaims: false,
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    cookies: { keys: COOKIE_KEYS },
    jwks: { keys: [signingKey()] },
    routes: urls.routes,
    pkce: { required: () => true },
    async findAccount(ctx, sub) {
      const user = findUserBySub(sub);
      if (!user) {
        return undefined;
      }
      return {
        accountId: user.sub,
        async claims() {
          return userClaims(user, settings);
        },
      };
    },
    interactions: {
      url(ctx, interaction) {
        return `${urls.mountPath}/interaction/${interaction.uid}`;
      },
    },
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: settings.shape === 'keycloak' },
      revocation: { enabled: settings.shape === 'keycloak' },
      pushedAuthorizationRequests: { enabled: settings.shape === 'keycloak' },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    },
    renderError,
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: ttlSeconds(300),
      AuthorizationCode: ttlSeconds(60),
      IdToken: ttlSeconds(300),
      Interaction: ttlSeconds(600),
      RefreshToken: ttlSeconds(24 * 60 * 60),
      Session: ttlSeconds(24 * 60 * 60),
      Grant: ttlSeconds(24 * 60 * 60),
    },
  };

  const provider = new Provider(urls.issuer, configuration);
  provider.on('server_error', (ctx, err) => log('server error:', err));
  provider.on('authorization.error', (ctx, err) => log(`authorization error: ${err.message} ${err.error_description ?? ''}`));
  provider.on('grant.error', (ctx, err) => log(`token endpoint error: ${err.message} ${err.error_description ?? ''}`));
  return provider;
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

async function main() {
  const settings = readSettings(process.env);

  let handleRequest = (req, res) => sendJson(res, 503, { error: 'starting' });
  const server = http.createServer((req, res) => {
    Promise.resolve(handleRequest(req, res)).catch((err) => {
      log(`request ${req.method} ${req.url} failed:`, err);
      if (!res.headersSent) {
        sendJson(res, 500, { error: String(err) });
      } else {
        res.end();
      }
    });
  });

  const port = await listen(server, settings.port);
  const urls = layout(settings, `http://127.0.0.1:${port}`);
  const provider = createProvider(settings, urls);
  handleRequest = createRequestHandler(provider, settings, urls);

  let stopping = false;
  const stop = (reason) => {
    if (stopping) {
      return;
    }
    stopping = true;
    log(`stopping (${reason})`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.stdin.on('end', () => stop('end of stdin'));
  process.stdin.on('error', () => stop('stdin error'));
  process.stdin.resume();

  log(`shape ${settings.shape}, clients ${clientList(settings).map((client) => client.client_id).join(', ')}`);
  process.stdout.write(`listening ${urls.issuer}\n`);
}

main().catch((err) => {
  log('failed to start:', err);
  process.exit(1);
});
