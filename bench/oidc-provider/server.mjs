// The reference token endpoint for bench/token_bench.py: panva's oidc-provider
// (OpenID Certified) issuing RFC 9068 JWT access tokens signed with ES256 for
// the client credentials grant, one client authenticating with
// client_secret_basic. Single process, 127.0.0.1 only.
//
//   BENCH_PORT=8123 BENCH_CLIENT_ID=... BENCH_CLIENT_SECRET=... node server.mjs
//
// BENCH_SCOPES (space-separated) are the scopes the client may request and
// the resource server accepts. Every token gets the audience BENCH_RESOURCE
// (RFC 8707 resource indicator, defaulted when the request names none), so
// that oidc-provider issues a JWT rather than an opaque token. Prints one
// JSON line on stdout once it listens.
import * as crypto from 'node:crypto';

import Provider from 'oidc-provider';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`server.mjs: set ${name}`);
    process.exit(2);
  }
  return value;
}

const port = Number(required('BENCH_PORT'));
const clientId = required('BENCH_CLIENT_ID');
const clientSecret = required('BENCH_CLIENT_SECRET');
const scopes = (process.env.BENCH_SCOPES || 'licences:issue licences:revoke licences:read').trim();
const resource = process.env.BENCH_RESOURCE || 'urn:authority-bench:api';
const issuer = `http://127.0.0.1:${port}`;

// A fresh ES256 (P-256) signing key for this run; kid is its RFC 7638 thumbprint.
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = privateKey.export({ format: 'jwk' });
const thumbprintInput = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
const kid = crypto.createHash('sha256').update(thumbprintInput).digest('base64url');

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: scopes,
    },
  ],
  // Scopes the provider knows; the client may request only its registered ones.
  scopes: ['openid', ...scopes.split(' ')],
  jwks: { keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] },
  enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (indicator !== resource) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: scopes,
          audience: resource,
          accessTokenTTL: 600, // 10 minutes, as Authority's
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (_ctx, error) => {
  console.error('server_error', error);
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(
    JSON.stringify({
      ready: true,
      issuer,
      node: process.version,
      pid: process.pid,
      resource,
      kid,
    }),
  );
});

function shutdown() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
