/**
 * Hostile IdPs (issue 13, items 7 and 11), replayed with the real CLI against servers written to attack it:
 * a discovery document that sends the credential to a plain-http endpoint off loopback, and answers far too
 * big to hold in memory. Names under `.invalid` never resolve (RFC 2606), so no packet leaves the machine;
 * the refusal must come from the CLI's rule, before any lookup, not from a failed DNS query.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { BIN, runCli } from '../helpers/cli.js';
import { userEnv } from '../helpers/env.js';
import { discovery, json, serve } from '../helpers/http.js';
let user;
const servers = [];
const DEVICE_CODE = 'DC-hostile-idp-device-0123456789';
before(async () => {
    user = await userEnv();
});
after(async () => {
    for (const s of servers)
        await s.close();
});
async function server(routes) {
    const s = await serve(routes);
    servers.push(s);
    return s.origin;
}
const deviceAnswer = (_req, res, origin) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
        device_code: DEVICE_CODE,
        user_code: 'WDJB-MJHT',
        verification_uri: `${origin}/device`,
        expires_in: 60,
        interval: 1,
    }));
};
function login(issuer) {
    return runCli([
        'login',
        '--device',
        '--storage',
        'memory',
        '--issuer',
        issuer,
        '--client-id',
        'mcp-secure',
        '--insecure-http',
    ], user.env());
}
function oneLineError(stderr) {
    const errors = stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, stderr);
    assert.doesNotMatch(stderr, /\n\s+at |unexpected error/, 'no stack trace');
    return errors[0];
}
// --- item 7: one rule for every URL a credential goes to -------------------------------------------------
for (const endpoint of ['token_endpoint', 'device_authorization_endpoint']) {
    test(`discovery names a plain-http ${endpoint} off loopback: refused before any request (exit 5)`, async () => {
        let hits = 0;
        const issuer = await server({
            '/.well-known/openid-configuration': discovery({ [endpoint]: 'http://idp-endpoint.invalid/steal' }),
            '/device/auth': (req, res, origin) => {
                hits++;
                deviceAnswer(req, res, origin);
            },
            '/token': json(400, { error: 'authorization_pending' }),
        });
        const r = await login(issuer);
        assert.equal(r.code, 5, r.stderr);
        const line = oneLineError(r.stderr);
        assert.match(line, /refusing plain-http endpoint http:\/\/idp-endpoint\.invalid: tokens would cross the network in clear/);
        assert.doesNotMatch(r.stderr, /ENOTFOUND|EAI_AGAIN/, 'refused by the rule, not by a failed lookup');
        if (endpoint === 'token_endpoint')
            assert.equal(hits, 1, 'the device code was asked for on loopback');
    });
}
test('discovery names a plain-http endpoint on another loopback address (127.0.0.2): allowed with --insecure-http', async () => {
    // A second server on 127.0.0.2: loopback, so the opt-in covers it; it answers access_denied.
    let hits = 0;
    const other = createServer((_req, res) => {
        hits++;
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'access_denied', error_description: 'the user said no' }));
    });
    await new Promise((resolve) => other.listen(0, '127.0.0.2', resolve));
    try {
        const port = other.address().port;
        const issuer = await server({
            '/.well-known/openid-configuration': discovery({ token_endpoint: `http://127.0.0.2:${port}/token` }),
            '/device/auth': deviceAnswer,
        });
        const r = await login(issuer);
        assert.equal(hits, 1, r.stderr);
        assert.notEqual(r.code, 0);
        assert.doesNotMatch(r.stderr, /refusing plain-http/);
    }
    finally {
        other.closeAllConnections();
        await new Promise((resolve) => other.close(resolve));
    }
});
// --- item 11: every body read from a server is capped ------------------------------------------------------
const TOTAL = 300 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x20);
/**
 * Streams up to 300 MB of JSON-looking whitespace (never allocated at once: one 64 KiB chunk, written
 * again with back-pressure) and records how much the client took before it hung up.
 */
function flood(sent, declareLength) {
    return (_req, res) => {
        res.writeHead(200, {
            'content-type': 'application/json',
            ...(declareLength ? { 'content-length': String(TOTAL + 2) } : {}),
        });
        res.write('{');
        const started = Date.now();
        const pump = () => {
            // Bounded by size and by time: a client that never reads cannot keep this loop alive.
            while (sent.bytes < TOTAL && Date.now() - started < 60_000 && !res.destroyed) {
                sent.bytes += CHUNK.length;
                if (!res.write(CHUNK)) {
                    res.once('drain', pump);
                    return;
                }
            }
            if (!res.destroyed)
                res.end('}');
        };
        res.once('close', () => {
            sent.closed = true;
        });
        pump();
    };
}
for (const [where, declareLength] of [
    ['discovery document, streamed without a length', false],
    ['discovery document, with a 300 MB Content-Length', true],
    ['device authorization answer', false],
]) {
    test(`a 300 MB ${where}: one line, exit 1, and the CLI stops reading after about 1 MiB`, async (t) => {
        const { access } = await import('node:fs/promises');
        if (!(await access('/usr/bin/time').then(() => true, () => false))) {
            t.skip('needs /usr/bin/time to measure peak RSS (Debian package: time)');
            return;
        }
        const sent = { bytes: 0, closed: false };
        const issuer = await server(where.startsWith('device')
            ? { '/.well-known/openid-configuration': discovery(), '/device/auth': flood(sent, declareLength) }
            : { '/.well-known/openid-configuration': flood(sent, declareLength) });
        const r = await timed(loginArgs(issuer));
        assert.equal(r.code, 1, r.stderr);
        const line = oneLineError(r.stderr);
        assert.match(line, /sent an answer over 1024 KiB; refusing it/);
        const peakKiB = r.peakKiB;
        t.diagnostic(`peak RSS ${Math.round(peakKiB / 1024)} MiB; the server got to send ${Math.round(sent.bytes / 1024)} KiB`);
        assert.ok(peakKiB > 0 && peakKiB < 200 * 1024, `peak RSS ${peakKiB} KiB`);
        // The server could push at most the cap plus what sockets buffer before the CLI hung up.
        assert.ok(sent.bytes < 64 * 1024 * 1024, `server sent ${sent.bytes} bytes`);
    });
}
function loginArgs(issuer) {
    return [
        'login',
        '--device',
        '--storage',
        'memory',
        '--issuer',
        issuer,
        '--client-id',
        'mcp-secure',
        '--insecure-http',
    ];
}
/**
 * The real CLI under /usr/bin/time (Debian: time), which reports its peak RSS as the kernel measured it
 * (getrusage ru_maxrss), on a file of its own so stderr stays the CLI's.
 */
async function timed(args) {
    const { mkdtemp, readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(user.tmp, 'time-'));
    const out = join(dir, 'rss');
    const child = spawn('/usr/bin/time', ['-o', out, '-f', '%M', process.execPath, BIN, ...args], {
        env: user.env(),
        stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
        stderr += d.toString();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise((resolve) => child.once('close', resolve));
    clearTimeout(killer);
    return { code, stderr, peakKiB: Number((await readFile(out, 'utf8')).trim().split('\n').at(-1)) };
}
