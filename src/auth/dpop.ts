/**
 * DPoP (RFC 9449) keys. A DPoP-bound refresh token needs the same key pair for every later refresh, so
 * the private key is stored next to the refresh token, in the same store (keychain or memory), as a JWK.
 * It is re-imported non-extractable; only the public half can be exported again.
 */
import { webcrypto } from 'node:crypto';
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

/**
 * A DPoP proof for one request to a resource server (RFC 9449 §4.2, §7): the key's public JWK in the
 * header, the method, the URL without query or fragment, a fresh jti, and `ath`, the token's hash.
 */
export async function createProof(
  pair: webcrypto.CryptoKeyPair,
  request: { method: string; url: string; accessToken: string; now: number },
): Promise<string> {
  const { kty, crv, x, y } = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const htu = new URL(request.url);
  htu.search = '';
  htu.hash = '';
  const header = enc({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } });
  const payload = enc({
    jti: webcrypto.randomUUID(),
    htm: request.method.toUpperCase(),
    htu: htu.href,
    iat: Math.floor(request.now / 1000),
    ath: Buffer.from(await webcrypto.subtle.digest('SHA-256', Buffer.from(request.accessToken))).toString(
      'base64url',
    ),
  });
  const signature = await webcrypto.subtle.sign(
    { name: 'ECDSA', hash: 'SHA-256' },
    pair.privateKey,
    Buffer.from(`${header}.${payload}`),
  );
  return `${header}.${payload}.${Buffer.from(signature).toString('base64url')}`;
}
