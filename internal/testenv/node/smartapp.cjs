// A minimal SMART app server for smartgate's end-to-end tests, built on the
// Node adapter of the fhirclient library. Listens on 127.0.0.1 only.
//
// Environment:
//   PORT  port to listen on; 0 (the default) picks a free one
//
// Routes:
//   GET /launch?iss=<FHIR base URL>&client_id=<id>&scope=<scopes>
//       starts a standalone launch (an EHR launch if a launch parameter is
//       given too) and redirects to the authorization server
//   GET /callback
//       completes the launch and returns the token response as JSON
//   GET /refresh[?with_client_id=1]
//       refreshes the access token of this browser session's last launch
//
// Prints "listening http://127.0.0.1:<port>" to stdout once the server accepts
// connections; everything else goes to stderr. Exits on SIGTERM, SIGINT and
// end of stdin.

'use strict';

const crypto = require('node:crypto');
const http = require('node:http');

// fhirclient 2.6 (getAndCache in lib/lib.js) caches each discovery document
// per URL for the life of the process, failed fetches included. With
// NODE_ENV=test it fetches the document again on every launch instead.
process.env.NODE_ENV = 'test';

const smart = require('fhirclient');

const SESSION_COOKIE = 'app_sid';

// Browser sessions by app_sid cookie value. Each one contains fhirclient's
// storage and the client returned by the last ready() call.
const sessions = new Map();

function log(message, ...details) {
  console.error(`smartapp: ${message}`, ...details);
}

function readPort(value) {
  const port = Number(value ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    log(`invalid PORT ${JSON.stringify(value)}: use an integer from 0 to 65535`);
    process.exit(2);
  }
  return port;
}

function sessionIdFromCookie(header) {
  for (const part of (header ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === SESSION_COOKIE) {
      return rest.join('=');
    }
  }
  return undefined;
}

// Returns the session named by the request's cookie, or creates one and sets
// the cookie on the response.
function sessionFor(req, res) {
  const id = sessionIdFromCookie(req.headers.cookie);
  if (id && sessions.has(id)) {
    return sessions.get(id);
  }

  const newId = crypto.randomBytes(18).toString('base64url');
  const session = { id: newId, values: new Map(), client: undefined };
  sessions.set(newId, session);
  res.setHeader('set-cookie', `${SESSION_COOKIE}=${newId}; Path=/; HttpOnly; SameSite=Lax`);
  return session;
}

// The storage interface that fhirclient's Node adapter expects.
function storageFor(session) {
  return {
    async get(key) {
      return session.values.get(key);
    },
    async set(key, value) {
      session.values.set(key, value);
      return value;
    },
    async unset(key) {
      return session.values.delete(key);
    },
  };
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(value)}\n`);
}

function sendError(res, route, err) {
  log(`${route} failed: ${err?.stack ?? err}`);
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, 500, { error: String(err) });
}

async function handleLaunch(req, res, url, origin) {
  const session = sessionFor(req, res);
  const iss = url.searchParams.get('iss');
  const clientId = url.searchParams.get('client_id');
  if (!iss || !clientId) {
    sendJson(res, 400, { error: 'missing query parameter iss or client_id' });
    return;
  }

  // authorize() also reads iss, launch and clientId from the request URL, and
  // responds with a 302 redirect to the authorization endpoint.
  await smart(req, res, storageFor(session)).authorize({
    iss,
    clientId,
    scope: url.searchParams.get('scope') ?? '',
    redirectUri: `${origin}/callback`,
    pkceMode: 'required',
  });
}

async function handleCallback(req, res) {
  const session = sessionFor(req, res);
  const client = await smart(req, res, storageFor(session)).ready();
  session.client = client;

  const { tokenResponse } = client.state;
  sendJson(res, 200, {
    patient: client.patient.id,
    scope: tokenResponse.scope,
    tokenResponse,
    idToken: client.getIdToken() ?? null,
    fhirUser: client.user.fhirUser ?? null,
  });
}

async function handleRefresh(req, res, url) {
  const session = sessionFor(req, res);
  const { client } = session;
  if (!client) {
    throw new Error('no completed launch in this browser session: call /launch and /callback first');
  }

  // fhirclient sends client_id in a refresh request only when this option of
  // its adapter is set. Without it, a public client's request has no client_id.
  client.environment.options.refreshTokenWithClientId = url.searchParams.get('with_client_id') === '1';

  const state = await client.refresh();
  sendJson(res, 200, { tokenResponse: state.tokenResponse });
}

function createRequestHandler(origin) {
  return async function handleRequest(req, res) {
    const requestLine = `${req.method} ${req.url}`;
    res.on('finish', () => log(`${requestLine} ${res.statusCode}`));

    const url = new URL(req.url, origin);
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      sendJson(res, 405, { error: `method ${req.method} not allowed, use GET` });
      return;
    }

    const routes = {
      '/launch': () => handleLaunch(req, res, url, origin),
      '/callback': () => handleCallback(req, res),
      '/refresh': () => handleRefresh(req, res, url),
    };
    const route = routes[url.pathname];
    if (!route) {
      sendJson(res, 404, { error: `no route for ${url.pathname}` });
      return;
    }

    try {
      await route();
    } catch (err) {
      sendError(res, url.pathname, err);
    }
  };
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
  const port = readPort(process.env.PORT);

  let handleRequest = (req, res) => sendJson(res, 503, { error: 'starting' });
  const server = http.createServer((req, res) => {
    Promise.resolve(handleRequest(req, res)).catch((err) => sendError(res, req.url, err));
  });

  const actualPort = await listen(server, port);
  const origin = `http://127.0.0.1:${actualPort}`;
  handleRequest = createRequestHandler(origin);

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

  process.stdout.write(`listening ${origin}\n`);
}

main().catch((err) => {
  log('failed to start:', err);
  process.exit(1);
});
