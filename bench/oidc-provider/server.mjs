// node-oidc-provider set up as a client_credentials-only token service, the comparison server
// for bench/token-grants.sh. Env: PORT, BENCH_CLIENT_ID, BENCH_CLIENT_SECRET, NODE_WORKERS (1|2..),
// TLS_CERT and TLS_KEY (PEM files: serve HTTPS with node's own TLS, as mlgate serves its own).
// POST /token  grant_type=client_credentials&client_id=..&client_secret=..&resource=https://management.azure.com/
// -> ES256 JWT access token, aud = the resource, 3600 s.  `scope` is optional (none is needed).
import cluster from 'node:cluster';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const PORT = Number(process.env.PORT || 3000);
const WORKERS = Number(process.env.NODE_WORKERS || 1);
const { BENCH_CLIENT_ID: clientId, BENCH_CLIENT_SECRET: clientSecret } = process.env;
if (!clientId || !clientSecret) throw new Error('BENCH_CLIENT_ID and BENCH_CLIENT_SECRET are required');

// One EC P-256 signing key, made by the primary and handed to every worker so all sign alike.
if (!process.env.BENCH_JWK) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'ES256', use: 'sig' };
  process.env.BENCH_JWK = JSON.stringify(jwk);
}

if (WORKERS > 1 && cluster.isPrimary) {
  for (let i = 0; i < WORKERS; i += 1) cluster.fork();
  cluster.on('exit', (w, code) => { console.error(`worker ${w.process.pid} exited ${code}`); process.exit(1); });
  console.log(`oidc-provider: primary ${process.pid}, ${WORKERS} workers on 127.0.0.1:${PORT}`);
} else {
  // Silence the start-up notices that only concern development setups (runtime version advice
  // on Node 20, the in-memory adapter); keep every other warning.
  const warn = console.warn;
  console.warn = (msg, ...rest) => {
    if (typeof msg === 'string' && /Unsupported runtime|development-only in-memory adapter/.test(msg)) return;
    warn(msg, ...rest);
  };
  const { default: Provider } = await import('../.deps/node/node_modules/oidc-provider/lib/index.js');

  const scheme = process.env.TLS_CERT ? 'https' : 'http';
  const provider = new Provider(`${scheme}://127.0.0.1:${PORT}`, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
    }],
    jwks: { keys: [JSON.parse(process.env.BENCH_JWK)] },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'https://management.azure.com/',
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => ({
          audience: resource,
          scope: 'user_impersonation',
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
    ttl: { ClientCredentials: 3600 },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));

  const server = process.env.TLS_CERT
    ? https.createServer({ cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) }, provider.callback())
    : http.createServer(provider.callback());
  server.listen(PORT, '127.0.0.1', () => {
    if (!cluster.isWorker) console.log(`oidc-provider: pid ${process.pid} on 127.0.0.1:${PORT}`);
  });
}
