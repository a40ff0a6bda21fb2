import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkTenantName, checkTenantToken, verifyTenantSignature, } from '../../src/auth/tenant.js';
import { TenantRefresher } from '../../src/auth/tenant-refresher.js';
import { CliError } from '../../src/errors.js';
function jwt(claims) {
    const enc = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    return `${enc({ alg: 'RS256', typ: 'at+jwt' })}.${enc(claims)}.c2ln`;
}
const NOW = Date.UTC(2026, 10, 23, 12, 0, 0);
const request = {
    tenant: 'acme',
    resource: 'https://mcp.example/mcp',
    role: 'member',
    subjectToken: 'x',
    user: { sub: 'alice-0001', preferred_username: 'alice' },
    now: () => NOW,
    dpop: {},
};
const good = {
    tenant: 'acme',
    aud: 'https://mcp.example/mcp',
    exp: NOW / 1000 + 900,
    iat: NOW / 1000,
    roles: ['member'],
};
const answer = (claims) => ({
    access_token: typeof claims === 'string' ? claims : jwt(claims),
    token_type: 'bearer',
});
test('a tenant token is used if it names the tenant and audience asked for and expires soon', () => {
    const ok = checkTenantToken(answer(good), request);
    assert.equal(ok.tenant, 'acme');
    assert.equal(ok.expiresAt, NOW + 900_000);
});
const refused = [
    ['another tenant', { ...good, tenant: 'globex' }, /names tenant "globex", not acme/],
    ['two tenants', { ...good, tenant: ['acme', 'globex'] }, /names tenant/],
    ['no tenant', { ...good, tenant: undefined }, /names tenant/],
    ['another audience', { ...good, aud: 'https://other/mcp' }, /audience/],
    ['no expiry', { ...good, exp: undefined }, /no expiry/],
    ['24 hours', { ...good, exp: NOW / 1000 + 86_400 }, /lives 1440 min/],
    ['already expired', { ...good, exp: NOW / 1000 - 5 }, /already expired/],
    ['opaque', 'opaque-token-value', /not a JWT/],
    ['a tenants claim besides tenant', { ...good, tenants: ['acme', 'globex'] }, /carries a "tenants" claim/],
    ['an extra audience', { ...good, aud: ['https://mcp.example/mcp', 'https://other/mcp'] }, /not exactly/],
    ['no audience', { ...good, aud: undefined }, /audience/],
];
for (const [name, claims, message] of refused) {
    test(`a tenant token is refused: ${name}`, () => {
        assert.throws(() => checkTenantToken(answer(claims), request), (err) => err instanceof CliError && err.exitCode === 5 && message.test(err.message), name);
    });
}
test('a tenant token whose aud is a one-element list of the resource is used', () => {
    assert.equal(checkTenantToken(answer({ ...good, aud: [good.aud] }), request).tenant, 'acme');
});
/** The signature check against a JWKS, with keys made here: the issuer's, and a stranger's. */
async function signatureCase(sign) {
    const jose = await import('jose');
    const issuer = await jose.generateKeyPair('ES256');
    const stranger = await jose.generateKeyPair('ES256');
    const jwk = { ...(await jose.exportJWK(issuer.publicKey)), kid: 'k1', alg: 'ES256' };
    const token = await sign(jose, { issuer: issuer.privateKey, stranger: stranger.privateKey });
    return verifyTenantSignature(token, {
        ...request,
        verifier: { issuer: 'https://idp.example', keys: jose.createLocalJWKSet({ keys: [jwk] }) },
    });
}
const signed = (iss, alg = 'ES256') => async (jose, key) => new jose.SignJWT(good).setProtectedHeader({ alg, kid: 'k1' }).setIssuer(iss).sign(key);
test("tenant token signature: signed by the issuer's key, with its iss: accepted", async () => {
    await signatureCase((jose, k) => signed('https://idp.example')(jose, k.issuer));
});
const badSignatures = [
    [
        'alg none',
        async (jose) => `${new jose.UnsecuredJWT(good).setIssuer('https://idp.example').encode()}`,
        /unsigned or signed with an algorithm not allowed/,
    ],
    [
        'HS256 with a shared secret',
        (jose) => signed('https://idp.example', 'HS256')(jose, new TextEncoder().encode('x'.repeat(32))),
        /unsigned or signed with an algorithm not allowed/,
    ],
    [
        "a stranger's key under the issuer's kid",
        (jose, k) => signed('https://idp.example')(jose, k.stranger),
        /not signed by a key of https:\/\/idp\.example/,
    ],
    [
        'another iss',
        (jose, k) => signed('https://evil.example')(jose, k.issuer),
        /issued by someone else than https:\/\/idp\.example/,
    ],
];
for (const [name, sign, message] of badSignatures) {
    test(`tenant token signature: ${name} is refused (exit 5)`, async () => {
        await assert.rejects(signatureCase(sign), (err) => err instanceof CliError && err.exitCode === 5 && message.test(err.message));
    });
}
test('a tenant token is refused: member roles when admin was asked for', () => {
    assert.throws(() => checkTenantToken(answer(good), { ...request, role: 'admin' }), (err) => err instanceof CliError && err.exitCode === 5 && /admin role was asked for/.test(err.message));
});
for (const ok of ['acme', 'globex', 'a', 'team-42', 'x'.repeat(63)]) {
    test(`tenant names: ${JSON.stringify(ok.slice(0, 20))} (length ${ok.length}) is one`, () => {
        assert.equal(checkTenantName(ok), ok);
    });
}
for (const bad of [
    'Acme',
    'ac me',
    '-acme',
    'acme-',
    'ac_me',
    '',
    'x'.repeat(64),
    'acme\u001b[31m',
    '../etc',
]) {
    test(`tenant names: ${JSON.stringify(bad.slice(0, 20))} (length ${bad.length}) is a usage error`, () => {
        assert.throws(() => checkTenantName(bad), (err) => err instanceof CliError && err.exitCode === 2, bad);
    });
}
/** A clock that only moves when the session sleeps: no real waiting. */
function fakeClock(start) {
    let now = start;
    const sleeps = [];
    return {
        now: () => now,
        sleeps,
        sleep: async (ms, signal) => {
            if (signal?.aborted)
                throw signal.reason;
            sleeps.push(ms);
            now += ms;
        },
    };
}
function token(issuedAt, lifetimeMs = 900_000, n = 0) {
    return {
        token: `t${n}`,
        tokenType: 'Bearer',
        tenant: 'acme',
        roles: ['member'],
        audience: 'https://mcp.example/mcp',
        scope: undefined,
        issuedAt,
        expiresAt: issuedAt + lifetimeMs,
        jkt: undefined,
    };
}
for (const [random, expected] of [
    [0.5, 720_000],
    [0, 675_000],
    [0.999999, 765_000],
]) {
    test(`refresh at 80% of the lifetime with bounded jitter, on a fake clock: random ${random}`, async () => {
        const clock = fakeClock(NOW);
        const controller = new AbortController();
        let n = 0;
        const session = new TenantRefresher({
            obtain: async () => {
                n += 1;
                if (n === 4)
                    controller.abort(new Error('stop'));
                return token(clock.now(), 900_000, n);
            },
            now: clock.now,
            sleep: clock.sleep,
            random: () => random,
            signal: controller.signal,
        });
        await session.run().catch(() => undefined);
        assert.equal(n, 4);
        assert.equal(Math.round(clock.sleeps[0]), expected, `random ${random}`);
        assert.equal(session.current()?.token, 't4');
    });
}
test('IdP unreachable during a refresh: back off, keep the current token until it really expires', async () => {
    const clock = fakeClock(NOW);
    const controller = new AbortController();
    const events = [];
    let calls = 0;
    let validDuringOutage = 0;
    let session;
    session = new TenantRefresher({
        obtain: async () => {
            calls += 1;
            if (calls === 1)
                return token(clock.now(), 900_000, 1);
            if (session.current())
                validDuringOutage += 1;
            if (calls < 12)
                throw new CliError('error', 'cannot reach the IdP (ECONNREFUSED)');
            controller.abort(new Error('stop'));
            return token(clock.now(), 900_000, 2);
        },
        now: clock.now,
        sleep: clock.sleep,
        random: () => 0.5,
        signal: controller.signal,
        onEvent: (e) => events.push(e),
    });
    await session.run().catch(() => undefined);
    const retries = events.filter((e) => e.type === 'retry').map((e) => e.delayMs);
    assert.deepEqual(retries.slice(0, 4), [750, 1500, 3000, 6000], 'exponential backoff with jitter');
    assert.ok(retries.every((d) => d <= 60_000), 'backoff is capped');
    assert.ok(validDuringOutage >= 3, 'the current token stayed in use during the outage');
    assert.equal(events.filter((e) => e.type === 'expired').length, 1, 'expiry is reported once');
    assert.equal(session.current()?.token, 't2');
});
test('an error retrying cannot fix (login revoked) ends the session', async () => {
    const clock = fakeClock(NOW);
    let calls = 0;
    const session = new TenantRefresher({
        obtain: async () => {
            calls += 1;
            if (calls === 1)
                return token(clock.now());
            throw new CliError('auth', 'your login has expired or was revoked at the IdP');
        },
        now: clock.now,
        sleep: clock.sleep,
        random: () => 0.5,
        signal: new AbortController().signal,
    });
    await assert.rejects(session.run(), (err) => err instanceof CliError && err.exitCode === 4);
    assert.equal(calls, 2);
});
