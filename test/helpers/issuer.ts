/**
 * A real OIDC issuer for tests: an HTTP server on 127.0.0.1 port 0 serving
 * /.well-known/openid-configuration and a JWKS per issuer path, with keys from
 * jose's generateKeyPair. Keys can be added and removed while it runs (rotation);
 * it counts key-set fetches.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import type { TestLike } from './processes.ts';

/** A signing key the issuer publishes (or once published). */
export interface IssuerKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

/** One issuer (a path on the server). */
export interface Issuer {
  /** The `iss` of its tokens, and the base of its discovery document. */
  readonly url: string;
  readonly jwksUrl: string;
  /** Published keys, in order. */
  readonly keys: IssuerKey[];
  fetches: number;
  /** Creates a key (published unless publish is false). */
  addKey(alg: string, kid: string, publish?: boolean): Promise<IssuerKey>;
  removeKey(kid: string): void;
  /** Signs claims with a key; iss defaults to this issuer, exp to +5 min, iat to now. */
  sign(key: IssuerKey, claims: JWTPayload, header?: Record<string, unknown>): Promise<string>;
}

/** The server holding issuers. */
export interface IssuerServer {
  readonly origin: string;
  issuer(path: string): Issuer;
}

/** Starts the issuer server; stopped in t.teardown. */
export async function startIssuerServer(t: TestLike): Promise<IssuerServer> {
  const issuers = new Map<string, Issuer>();
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '';
    for (const [path, issuer] of issuers) {
      if (url === `${path}/.well-known/openid-configuration`) {
        const body = JSON.stringify({
          issuer: issuer.url,
          jwks_uri: issuer.jwksUrl,
          id_token_signing_alg_values_supported: ['RS256', 'PS256', 'ES256', 'EdDSA'],
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        return;
      }
      if (url === `${path}/jwks`) {
        issuer.fetches++;
        res
          .writeHead(200, { 'content-type': 'application/jwk-set+json' })
          .end(JSON.stringify({ keys: issuer.keys.map((k) => k.jwk) }));
        return;
      }
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    origin,
    issuer(path) {
      const url = `${origin}${path}`;
      const issuer: Issuer = {
        url,
        jwksUrl: `${url}/jwks`,
        keys: [],
        fetches: 0,
        async addKey(alg, kid, publish = true) {
          const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
          const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
          const key = { kid, alg, privateKey, jwk };
          if (publish) issuer.keys.push(key);
          return key;
        },
        removeKey(kid) {
          const at = issuer.keys.findIndex((k) => k.kid === kid);
          if (at !== -1) issuer.keys.splice(at, 1);
        },
        sign(key, claims, header = {}) {
          const now = Math.floor(Date.now() / 1000);
          return new SignJWT({ iss: url, iat: now, exp: now + 300, ...claims })
            .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header })
            .sign(key.privateKey);
        },
      };
      issuers.set(path, issuer);
      return issuer;
    },
  };
}
