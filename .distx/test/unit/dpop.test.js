/**
 * DPoP proofs (RFC 9449 §4.2) signed with the non-extractable key: checked by jose (an independent JWS
 * implementation), and made without any warning on the terminal (Node 24 deprecates KeyObject.from() on a
 * non-extractable CryptoKey, DEP0204, and printed that during every `connect`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EmbeddedJWK, jwtVerify } from 'jose';
import { accessTokenHash, newDpopKey, proofTarget, signProof } from '../../src/auth/dpop.js';
/** A proof as a client asks the agent for one: method, target without query, the token's hash. */
function createProof(pair, r) {
    return signProof(pair, {
        htm: r.method.toUpperCase(),
        htu: proofTarget(r.url),
        ath: accessTokenHash(r.accessToken),
        now: r.now,
    });
}
const DPOP = fileURLToPath(new URL('../../src/auth/dpop.js', import.meta.url));
test('a proof verifies with the public key in its header and carries htm, htu without query, ath, iat, jti', async () => {
    const key = await newDpopKey();
    assert.equal(key.pair.privateKey.extractable, false, 'the private key cannot be exported');
    const now = Date.UTC(2026, 11, 1, 12, 0, 0);
    const token = 'eyJhbGciOiJFUzI1NiJ9.e30.c2ln';
    const proofs = new Set();
    for (let i = 0; i < 3; i++) {
        const proof = await createProof(key.pair, {
            method: 'post',
            url: 'http://mcp.internal:4000/mcp?x=1#frag',
            accessToken: token,
            now,
        });
        proofs.add(proof);
        const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
            typ: 'dpop+jwt',
            algorithms: ['ES256'],
            currentDate: new Date(now),
        });
        assert.ok(!('d' in (protectedHeader.jwk ?? {})), 'no private part in the header');
        assert.equal(payload['htm'], 'POST');
        assert.equal(payload['htu'], 'http://mcp.internal:4000/mcp');
        assert.equal(payload['iat'], now / 1000);
        assert.equal(payload['ath'], createHash('sha256').update(token).digest('base64url'));
        assert.match(String(payload['jti']), /^[0-9a-f-]{36}$/);
    }
    assert.equal(proofs.size, 3, 'a fresh jti each time');
});
test('making proofs prints nothing: no DeprecationWarning (DEP0204) on this Node', () => {
    // A process of its own: Node prints each deprecation once per process, and this one may have printed it.
    const script = `
    const { newDpopKey, signProof, accessTokenHash } = await import(${JSON.stringify(DPOP)});
    const key = await newDpopKey();
    for (let i = 0; i < 3; i++)
      await signProof(key.pair, { htm: 'GET', htu: 'http://127.0.0.1/audit/stream', ath: accessTokenHash('t' + i), now: Date.now() });
    await new Promise((r) => setImmediate(r));
    process.stdout.write('done');
  `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
        timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'done');
    assert.equal(r.stderr, '', `Node ${process.version} printed: ${r.stderr}`);
});
