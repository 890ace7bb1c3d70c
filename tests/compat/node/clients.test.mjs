// Real Node client libraries (adal-node, @azure/msal-node) and a generic OIDC
// verifier (jose) against a live mlgate server started by scripts/compat.sh.
// Run from the repo root: node --test tests/compat/node/
// Environment: MLGATE_URL, MLGATE_TENANT_ID, MLGATE_CLIENT_ID, MLGATE_CLIENT_SECRET,
// MLGATE_RESOURCE, and NODE_EXTRA_CA_CERTS (the server's CA) for TLS trust.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { promisify } from 'node:util';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const require = createRequire(path.join(repoRoot, '.deps/node/package.json'));
const adal = require('adal-node');
const msal = require('@azure/msal-node');
const jose = await import(pathToFileURL(require.resolve('jose')).href);

const env = process.env;
const skip = env.MLGATE_URL ? false : 'MLGATE_URL not set: run through scripts/compat.sh';
const url = (env.MLGATE_URL ?? '').replace(/\/+$/, '');
const tenant = env.MLGATE_TENANT_ID;
const clientId = env.MLGATE_CLIENT_ID;
const resource = env.MLGATE_RESOURCE ?? '';
const scope = resource.replace(/\/+$/, '') + '/.default';

function msalApp(clientSecret = env.MLGATE_CLIENT_SECRET) {
  return new msal.ConfidentialClientApplication({
    auth: {
      clientId,
      clientSecret,
      authority: `${url}/${tenant}`,
      knownAuthorities: [new URL(url).host],
    },
  });
}

async function assertMe(token) {
  const res = await fetch(`${url}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, await res.clone().text());
  const me = await res.json();
  assert.equal(me.appId, clientId);
  assert.equal(me.type, 'ServicePrincipal');
}

test('adal-node client credentials (v1)', { skip }, async () => {
  const ctx = new adal.AuthenticationContext(`${url}/${tenant}`, false);
  const acquire = promisify(ctx.acquireTokenWithClientCredentials.bind(ctx));
  const token = await acquire(resource, clientId, env.MLGATE_CLIENT_SECRET);
  assert.ok(token.accessToken);
  assert.equal(token.tokenType, 'Bearer');
  assert.ok(token.expiresIn >= 300, `expiresIn ${token.expiresIn}`);
  await assertMe(token.accessToken);
});

test('msal-node client credentials (v2) and cache', { skip }, async () => {
  const app = msalApp();
  const first = await app.acquireTokenByClientCredential({ scopes: [scope] });
  assert.ok(first?.accessToken);
  assert.equal(first.tokenType, 'Bearer');
  assert.equal(first.fromCache, false);
  await assertMe(first.accessToken);
  const second = await app.acquireTokenByClientCredential({ scopes: [scope] });
  assert.equal(second.fromCache, true);
  assert.equal(second.accessToken, first.accessToken);
});

test('msal-node wrong secret is invalid_client', { skip }, async () => {
  await assert.rejects(
    msalApp('wrong-secret').acquireTokenByClientCredential({ scopes: [scope] }),
    (err) => err.errorCode === 'invalid_client' || assert.fail(`errorCode ${err.errorCode}`),
  );
});

test('jose verifies an msal-node token via v2 discovery', { skip }, async () => {
  const res = await fetch(`${url}/${tenant}/v2.0/.well-known/openid-configuration`);
  assert.equal(res.status, 200);
  const disc = await res.json();
  const { accessToken } = await msalApp().acquireTokenByClientCredential({ scopes: [scope] });

  const { aud } = jose.decodeJwt(accessToken);
  assert.ok([resource, resource.replace(/\/+$/, '')].includes(aud), `aud ${aud}`);
  const jwks = jose.createRemoteJWKSet(new URL(disc.jwks_uri));
  const opts = { issuer: disc.issuer, audience: aud, algorithms: disc.id_token_signing_alg_values_supported };

  const { payload, protectedHeader } = await jose.jwtVerify(accessToken, jwks, opts);
  assert.equal(payload.iss, disc.issuer);
  assert.equal(protectedHeader.alg, 'ES256');

  await assert.rejects(
    jose.jwtVerify(accessToken, jwks, { ...opts, audience: 'https://wrong.example.com/' }),
    { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' },
  );
  await assert.rejects(
    jose.jwtVerify(accessToken, jwks, { ...opts, issuer: disc.issuer + 'wrong/' }),
    { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'iss' },
  );
});
