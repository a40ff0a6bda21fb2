/**
 * The one rule for every URL a credential goes to (issue 13, item 7), applied by the fetch every IdP and
 * exchange request goes through: whatever URL discovery names (token, device, revocation, JWKS), the
 * request is refused before it is made unless it is https, or plain http to loopback with the opt-in.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guardedFetch, readCapped } from '../../src/auth/oidc.js';
import { requestSshCertificate } from '../../src/auth/ssh-ca.js';
import { CliError } from '../../src/errors.js';
const cases = [
    ['https://idp.example/oauth/revoke', false, 'sent'],
    ['https://idp.example/jwks', true, 'sent'],
    ['http://127.0.0.1:8080/token', true, 'sent'],
    ['http://127.0.0.2:8080/revoke', true, 'sent'],
    ['http://[::1]:8080/device', true, 'sent'],
    ['http://localhost:8080/jwks', true, 'sent'],
    ['http://127.0.0.1:8080/token', false, 2],
    ['http://idp.invalid/revoke', true, 5],
    ['http://idp.invalid/jwks', false, 5],
    ['http://10.0.0.1/token', true, 5],
    ['http://127.0.0.1.nip.io/token', true, 5],
    ['ftp://idp.example/token', true, 2],
];
for (const [url, insecureHttp, expected] of cases) {
    test(`${url} with${insecureHttp ? '' : 'out'} --insecure-http: ${expected === 'sent' ? 'sent' : `refused (exit ${expected})`}`, async () => {
        let sent = 0;
        const fetch = guardedFetch(async () => {
            sent++;
            return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
        }, { insecureHttp, debug: undefined });
        if (expected === 'sent') {
            const res = await fetch(url, { method: 'POST', headers: {}, redirect: 'manual' });
            assert.equal(res.status, 200);
            assert.equal(sent, 1);
        }
        else {
            await assert.rejects(fetch(url, { method: 'POST', headers: {}, redirect: 'manual' }), (err) => err instanceof CliError && err.exitCode === expected);
            assert.equal(sent, 0, 'nothing was sent');
        }
    });
}
test('readCapped: an answer at the cap passes; one byte over is refused in one line', async () => {
    const cap = 1024;
    const ok = await readCapped(new Response(Buffer.alloc(cap, 0x41)), 'https://idp.example/x', cap);
    assert.equal((await ok.arrayBuffer()).byteLength, cap);
    await assert.rejects(readCapped(new Response(Buffer.alloc(cap + 1, 0x41)), 'https://idp.example/x', cap), (err) => err instanceof CliError &&
        err.exitCode === 1 &&
        /sent an answer over 1 KiB; refusing it/.test(err.message));
});
const certRequest = (endpoint, insecureHttp, body) => {
    let sent = 0;
    return {
        sent: () => sent,
        run: () => requestSshCertificate({
            endpoint,
            publicKeyLine: 'ssh-ed25519 AAAA test',
            token: { value: 'tenant-token-value', type: 'Bearer' },
            proof: async () => '',
            fetch: async () => {
                sent++;
                return body();
            },
            insecureHttp,
        }),
    };
};
test('the SSH CA gets the tenant token only over https or loopback http with --insecure-http', async () => {
    const ok = () => new Response(JSON.stringify({ certificate: 'ssh-ed25519-cert-v01@openssh.com AAAA' }));
    for (const [endpoint, insecureHttp, exit] of [
        ['http://127.0.0.1:9/ssh-ca', false, 2],
        ['http://ca.invalid/ssh-ca', true, 5],
    ]) {
        const r = certRequest(endpoint, insecureHttp, ok);
        await assert.rejects(r.run(), (err) => err instanceof CliError && err.exitCode === exit, endpoint);
        assert.equal(r.sent(), 0, `${endpoint}: nothing sent`);
    }
    const good = certRequest('http://127.0.0.1:9/ssh-ca', true, ok);
    assert.match(await good.run(), /^ssh-ed25519-cert/);
});
test('an SSH CA answer over 64 KiB is refused in one line, read no further', async () => {
    let pulled = 0;
    const huge = () => new Response(new ReadableStream({
        pull(controller) {
            pulled++;
            if (pulled > 10_000)
                controller.close();
            else
                controller.enqueue(new Uint8Array(16 * 1024));
        },
    }));
    const r = certRequest('https://ca.example/ssh-ca', false, huge);
    await assert.rejects(r.run(), (err) => err instanceof CliError && /sent an answer over 64 KiB; refusing it/.test(err.message));
    assert.ok(pulled < 20, `read ${pulled} chunks`);
});
