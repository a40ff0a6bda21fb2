/**
 * tunnel/tls.ts and auth/client-cert.ts against real local servers: a node:tls server with a certificate
 * from the sandbox CA (sessions resumed, per client identity), and the sandbox control plane's
 * client-certificate endpoint (an ephemeral key, renewed on an injected clock).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { after, before, test } from 'node:test';
import * as tls from 'node:tls';
import { createCa } from '../../sandbox/x509.js';
import { EphemeralClientCert } from '../../src/auth/client-cert.js';
import { UpstreamTls } from '../../src/tunnel/tls.js';
let ca;
let clientCa;
let server;
let port = 0;
const peers = [];
before(async () => {
    [ca, clientCa] = await Promise.all([createCa('unit server CA'), createCa('unit client CA')]);
    const cert = await ca.issue({
        subject: 'CN=localhost',
        dns: ['localhost'],
        usage: 'server',
        notAfter: new Date(Date.now() + 86_400_000),
    });
    server = tls.createServer({
        key: cert.keyPem,
        cert: cert.certPem,
        requestCert: true,
        rejectUnauthorized: false,
        ca: clientCa.certPem,
    });
    server.on('secureConnection', (s) => {
        peers.push(s.getPeerX509Certificate()?.subject);
        s.end('ok');
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = server.address().port;
});
after(() => new Promise((resolve) => server.close(resolve)));
function socket() {
    return new Promise((resolve, reject) => {
        const s = netConnect(port, '127.0.0.1');
        s.once('connect', () => resolve(s)).once('error', reject);
    });
}
async function readAll(s) {
    let out = '';
    for await (const chunk of s)
        out += String(chunk);
    return out;
}
test('the second connection resumes the first one’s TLS session (no full handshake)', async () => {
    const t = new UpstreamTls({ host: 'localhost', ca: { pem: ca.certPem, file: 'ca.pem' } });
    for (let i = 0; i < 4; i++) {
        const s = await t.wrap(await socket());
        assert.equal(await readAll(s), 'ok');
    }
    assert.deepEqual(t.handshakes, { full: 1, resumed: 3 });
});
test('a session is never resumed under another client certificate', async () => {
    const ids = await Promise.all(['one', 'two'].map(async (cn) => {
        const c = await clientCa.issue({
            subject: `CN=${cn}`,
            usage: 'client',
            notAfter: new Date(Date.now() + 60_000),
        });
        return { certPem: c.certPem, keyPem: c.keyPem, id: cn };
    }));
    let current = ids[0];
    const t = new UpstreamTls({
        host: 'localhost',
        ca: { pem: ca.certPem, file: 'ca.pem' },
        identity: async () => current,
    });
    peers.length = 0;
    await readAll(await t.wrap(await socket()));
    await readAll(await t.wrap(await socket()));
    current = ids[1];
    await readAll(await t.wrap(await socket()));
    assert.deepEqual(t.handshakes, { full: 2, resumed: 1 });
    // The server saw the second certificate on the connection after the change (a full handshake).
    assert.equal(peers.at(-1), 'CN=two');
});
test('the ephemeral client certificate: a new key per certificate, renewed when a third of its life is left (injected clock)', async () => {
    let now = Date.now();
    let requests = 0;
    const life = 900_000;
    // A real HTTP endpoint issuing from the client CA, valid `life` from the injected now.
    const http = await import('node:http');
    const issuer = http.createServer(async (req, res) => {
        requests += 1;
        let body = '';
        for await (const c of req)
            body += String(c);
        const { public_key } = JSON.parse(body);
        assert.equal(req.headers.authorization, 'Bearer tenant-token');
        const c = await clientCa.issue({
            subject: 'CN=alice, O=acme',
            usage: 'client',
            publicKeyPem: public_key,
            notBefore: new Date(now - 1000),
            notAfter: new Date(now + life),
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ certificate: c.certPem }));
    });
    await new Promise((resolve) => issuer.listen(0, '127.0.0.1', resolve));
    try {
        const e = new EphemeralClientCert({
            endpoint: new URL(`http://127.0.0.1:${issuer.address().port}/tls/client-certificate`),
            token: () => ({ value: 'tenant-token', type: 'Bearer' }),
            proof: async () => '',
            fetch,
            now: () => now,
        });
        const first = await e.identity();
        assert.equal(requests, 1);
        assert.ok(new X509Certificate(first.certPem).checkPrivateKey((await import('node:crypto')).createPrivateKey(first.keyPem)));
        now += life / 2;
        assert.equal((await e.identity()).id, first.id, 'half-way: the same certificate');
        assert.equal(requests, 1);
        now += life / 4; // a quarter left: due; this connection still gets the valid one, a new one is asked for
        assert.equal((await e.identity()).id, first.id);
        for (let i = 0; i < 50 && requests < 2; i++)
            await new Promise((r) => setImmediate(r));
        await e.renew();
        const second = await e.identity();
        assert.notEqual(second.id, first.id);
        assert.notEqual(second.keyPem, first.keyPem, 'a new key with the new certificate');
        now += life * 2; // long past: the next connection waits for a new one
        const third = await e.identity();
        assert.notEqual(third.id, second.id);
    }
    finally {
        await new Promise((resolve) => issuer.close(resolve));
    }
});
