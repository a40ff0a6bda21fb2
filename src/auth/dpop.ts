/**
 * DPoP (RFC 9449) keys. A DPoP-bound refresh token needs the same key pair for every later refresh, so
 * the private key is stored next to the refresh token, in the same store (keychain or memory), as a JWK.
 * It is re-imported non-extractable; only the public half can be exported again.
 */
import { createHash, KeyObject, randomUUID, sign, webcrypto } from 'node:crypto';
import type * as Client from 'openid-client';
import type { Idp } from './oidc.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export interface DpopKey {
  pair: webcrypto.CryptoKeyPair;
  /** The private JWK, for the store. */
  jwk: webcrypto.JsonWebKey;
}

/** Whether the IdP advertises DPoP with an algorithm we use (ES256). */
export function idpSupportsDpop(idp: Idp): boolean {
  const algs = idp.config.serverMetadata().dpop_signing_alg_values_supported;
  return Array.isArray(algs) && algs.includes('ES256');
}

export async function newDpopKey(): Promise<DpopKey> {
  const pair = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const jwk = await webcrypto.subtle.exportKey('jwk', pair.privateKey);
  return { pair: await importDpopKey(jwk), jwk };
}

export async function importDpopKey(jwk: webcrypto.JsonWebKey): Promise<webcrypto.CryptoKeyPair> {
  const { d: _d, key_ops: _ops, ext: _ext, ...publicJwk } = jwk;
  const [privateKey, publicKey] = await Promise.all([
    webcrypto.subtle.importKey('jwk', { ...jwk, key_ops: ['sign'] }, ALG, false, ['sign']),
    webcrypto.subtle.importKey('jwk', { ...publicJwk, key_ops: ['verify'] }, ALG, true, ['verify']),
  ]);
  return { privateKey, publicKey };
}

export function dpopOptions(idp: Idp, key: webcrypto.CryptoKeyPair | undefined): Client.DPoPOptions {
  return key ? { DPoP: idp.client.getDPoPHandle(idp.config, key as Client.CryptoKeyPair) } : {};
}

// Per key and per token, what does not change between proofs: the header with the public JWK, the signing
// KeyObject and `ath`. Signing synchronously with node:crypto avoids three thread-pool round trips per
// request (measured by bench/tunnel.ts: ~190 µs → ~35 µs a proof).
const proofHeaders = new WeakMap<webcrypto.CryptoKey, string>();
const signingKeys = new WeakMap<webcrypto.CryptoKey, KeyObject>();
// `ath` of the token last used with each key (no module-wide state shared between keys).
const lastAth = new WeakMap<webcrypto.CryptoKey, { token: string; ath: string }>();

/**
 * A DPoP proof for one request to a resource server (RFC 9449 §4.2, §7): the key's public JWK in the
 * header, the method, the URL without query or fragment, a fresh jti, and `ath`, the token's hash.
 */
export async function createProof(
  pair: webcrypto.CryptoKeyPair,
  request: { method: string; url: string; accessToken: string; now: number },
): Promise<string> {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  let header = proofHeaders.get(pair.publicKey);
  if (header === undefined) {
    const { kty, crv, x, y } = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
    header = enc({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } });
    proofHeaders.set(pair.publicKey, header);
  }
  let key = signingKeys.get(pair.privateKey);
  if (key === undefined) {
    key = KeyObject.from(pair.privateKey);
    signingKeys.set(pair.privateKey, key);
  }
  let ath = lastAth.get(pair.privateKey);
  if (ath?.token !== request.accessToken) {
    ath = {
      token: request.accessToken,
      ath: createHash('sha256').update(request.accessToken).digest('base64url'),
    };
    lastAth.set(pair.privateKey, ath);
  }
  const htu = new URL(request.url);
  htu.search = '';
  htu.hash = '';
  const payload = enc({
    jti: randomUUID(),
    htm: request.method.toUpperCase(),
    htu: htu.href,
    iat: Math.floor(request.now / 1000),
    ath: ath.ath,
  });
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${header}.${payload}.${signature.toString('base64url')}`;
}
