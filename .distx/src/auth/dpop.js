/**
 * DPoP (RFC 9449) keys, held by the agent only. The private key is generated non-extractable
 * (WebCrypto `extractable: false`): not even the agent can export it, so it never reaches the keychain, a
 * file or the socket. A DPoP-bound refresh token is useless without it, which is the point: a copy of the
 * keychain item refreshes nothing. When the agent ends, the key ends, and so does the login.
 */
import { createHash, randomUUID, webcrypto } from 'node:crypto';
const ALG = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN = { name: 'ECDSA', hash: 'SHA-256' };
/** Whether the IdP advertises DPoP with an algorithm we use (ES256). */
export function idpSupportsDpop(idp) {
    const algs = idp.config.serverMetadata().dpop_signing_alg_values_supported;
    return Array.isArray(algs) && algs.includes('ES256');
}
/** RFC 7638 §3.2: SHA-256 over the required members in lexicographic order, no whitespace. */
export function thumbprint(jwk) {
    const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
    return createHash('sha256').update(canonical).digest('base64url');
}
/** A new key pair whose private half cannot be exported (`extractable: false`). */
export async function newDpopKey() {
    const pair = (await webcrypto.subtle.generateKey(ALG, false, [
        'sign',
        'verify',
    ]));
    const publicJwk = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
    return { pair, jkt: thumbprint(publicJwk) };
}
/**
 * A key pair from a v0.1 login, whose private JWK was stored in the keychain: imported non-extractable so
 * that from now on it lives only in the agent (the keychain item is rewritten without it).
 */
export async function importLegacyDpopKey(jwk) {
    const { d: _d, key_ops: _ops, ext: _ext, ...publicJwk } = jwk;
    const [privateKey, publicKey] = await Promise.all([
        webcrypto.subtle.importKey('jwk', { ...jwk, key_ops: ['sign'] }, ALG, false, ['sign']),
        webcrypto.subtle.importKey('jwk', { ...publicJwk, key_ops: ['verify'] }, ALG, true, ['verify']),
    ]);
    return { pair: { privateKey, publicKey }, jkt: thumbprint(publicJwk) };
}
export function dpopOptions(idp, key) {
    return key ? { DPoP: idp.client.getDPoPHandle(idp.config, key) } : {};
}
// The header with the public JWK does not change between proofs of one key.
const proofHeaders = new WeakMap();
/** `ath` (RFC 9449 §4.2): base64url(SHA-256(access token)). Clients compute it; the agent signs it. */
export function accessTokenHash(accessToken) {
    return createHash('sha256').update(accessToken).digest('base64url');
}
/** RFC 9449 §4.2: `htu` is the target URI without query and fragment. */
export function proofTarget(url) {
    const htu = new URL(url);
    htu.search = '';
    htu.hash = '';
    return htu.href;
}
/**
 * A DPoP proof for one request to a resource server (RFC 9449 §4.2, §7): the key's public JWK in the
 * header, the method, the URL without query or fragment, a fresh jti, and `ath`, the token's hash.
 * Signed with WebCrypto: node:crypto's KeyObject.from() would need the key extractable (DEP0204).
 */
export async function signProof(pair, request) {
    const enc = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    let header = proofHeaders.get(pair.publicKey);
    if (header === undefined) {
        const { kty, crv, x, y } = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
        header = enc({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } });
        proofHeaders.set(pair.publicKey, header);
    }
    const payload = enc({
        jti: randomUUID(),
        htm: request.htm.toUpperCase(),
        htu: proofTarget(request.htu),
        iat: Math.floor(request.now / 1000),
        ath: request.ath,
    });
    const signature = await webcrypto.subtle.sign(SIGN, pair.privateKey, Buffer.from(`${header}.${payload}`));
    return `${header}.${payload}.${Buffer.from(signature).toString('base64url')}`;
}
