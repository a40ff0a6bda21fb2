/**
 * Hostile input, fuzzed with fast-check (bounded runs, a time bound per run): the config parser, the
 * known_hosts and ssh_config readers, host patterns, the SSE parser, token-exchange answers, IdP errors
 * and audit events. The property everywhere: no crash (only the documented error), no hang (each run well
 * under RUN_BUDGET_MS), no unbounded memory (heap growth bounded), and errors that are one clean line.
 * Runs and the slowest run per target are printed as test diagnostics (`# fuzz …`).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { ChainVerifier, parseEvent } from '../../src/audit/chain.js';
import { SseParser } from '../../src/audit/sse.js';
import { connectIdp, mapIdpError } from '../../src/auth/oidc.js';
import { accessExpiresAt, MAX_ACCESS_LIFETIME_S } from '../../src/auth/stored-login.js';
import { checkTenantToken, MAX_TENANT_TOKEN_LIFETIME_S } from '../../src/auth/tenant.js';
import { readConfigFile } from '../../src/config/load.js';
import { CliError, sanitize, terminalSafeJson } from '../../src/errors.js';
import { globMatch } from '../../src/tunnel/glob.js';
import { hostFieldMatches, verifyHostKey } from '../../src/tunnel/known-hosts.js';
import { loadSshConfig } from '../../src/tunnel/ssh-config.js';
import { tempDir } from '../helpers/deps.js';
import { discovery, serve } from '../helpers/http.js';
/** Runs per target; the seed is fixed so that a failure is reproducible (fast-check prints it). */
const RUNS = Number(process.env['MCP_SECURE_FUZZ_RUNS'] ?? 500);
const SEED = Number(process.env['MCP_SECURE_FUZZ_SEED'] ?? 20261123);
/** No single input may take longer than this: a regex that backtracks or a loop that spins shows here. */
const RUN_BUDGET_MS = 1000;
let dir;
const heapBefore = process.memoryUsage().heapUsed;
before(async () => {
    dir = await tempDir('mcp-secure-fuzz-');
});
after(() => {
    // Generous: the point is "bounded", not a figure; a parser that kept what it was fed would blow it.
    const grown = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grown < 256 * 1024 * 1024, `heap grew by ${grown} bytes`);
});
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is checked for
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
function oneCleanLine(text, what) {
    assert.ok(!text.includes('\n'), `${what}: one line: ${JSON.stringify(text)}`);
    assert.ok(!CONTROL.test(text), `${what}: no control characters: ${JSON.stringify(text)}`);
}
/** fc.assert with the bounded runs, recording the slowest run; reports both. */
async function fuzz(t, name, arbs, check, runs = RUNS) {
    let slowest = 0;
    let count = 0;
    const property = fc.asyncProperty(...arbs, async (...args) => {
        const started = performance.now();
        await check(...args);
        const took = performance.now() - started;
        count += 1;
        slowest = Math.max(slowest, took);
        assert.ok(took < RUN_BUDGET_MS, `one run took ${Math.round(took)} ms`);
    });
    await fc.assert(property, { numRuns: runs, seed: SEED, endOnFailure: true });
    t.diagnostic(`fuzz ${name}: ${count} runs, slowest ${slowest.toFixed(1)} ms`);
}
// Text that looks like what each parser expects, mixed with anything at all.
const unicode = fc.string({ unit: 'binary', maxLength: 200 });
const hostish = fc.stringMatching(/^[a-zA-Z0-9.*?!\-[\]:|,=+/]{0,40}$/);
test('config files: any text or near-valid JSON gives a config or one clean "invalid config" line', async (t) => {
    const file = join(dir, 'config.json');
    const value = fc.oneof(fc.jsonValue(), unicode, fc.integer(), fc.constantFrom('https://idp.example', 'http://127.0.0.1:1', 'auto', 'memory', 'device', '7700', ''));
    const profile = fc.dictionary(fc.oneof(fc.constantFrom('issuer', 'client_id', 'scopes', 'storage', 'insecure_http', 'login_timeout', 'login_flow', 'bastion', 'jump', 'mcp_url', 'local_port', 'host_key_fingerprints', 'dpop'), fc.string()), value, { maxKeys: 6 });
    const nearValid = fc
        .record({
        default_profile: fc.option(fc.string(), { nil: undefined }),
        profiles: fc.dictionary(fc.string({ maxLength: 70 }), profile, { maxKeys: 3 }),
    })
        .map((c) => JSON.stringify(c));
    const text = fc.oneof(nearValid, fc.json(), unicode, nearValid.map((s) => s.slice(0, Math.floor(s.length / 2))));
    await fuzz(t, 'config file', [text], async (body) => {
        await writeFile(file, body);
        try {
            const config = await readConfigFile(file);
            assert.ok(config === undefined || typeof config === 'object');
        }
        catch (err) {
            assert.ok(err instanceof CliError, `not a CliError: ${String(err)}`);
            assert.equal(err.exitCode, 1);
            assert.match(err.message, /^invalid config /);
            oneCleanLine(sanitize(err.message, 400), 'config error');
            assert.ok(err.message.length < 2000, 'the error does not echo the file');
        }
    });
});
const keyBlob = (type, body) => {
    const t = Buffer.from(type);
    const out = Buffer.alloc(8 + t.length + body.length);
    out.writeUInt32BE(t.length, 0);
    t.copy(out, 4);
    out.writeUInt32BE(body.length, 4 + t.length);
    body.copy(out, 8 + t.length);
    return out;
};
const theKey = keyBlob('ssh-ed25519', Buffer.alloc(32, 7));
test('known_hosts: any file gives a verdict, never an exception, in bounded time', async (t) => {
    const file = join(dir, 'known_hosts');
    const line = fc.oneof(fc
        .tuple(fc.option(fc.constantFrom('@revoked', '@cert-authority', '@bogus'), { nil: undefined }), fc.array(hostish, { minLength: 1, maxLength: 4 }).map((h) => h.join(',')), fc.constantFrom('ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'x'), fc.oneof(fc.base64String({ maxLength: 80 }), fc.constant(theKey.toString('base64'))))
        .map(([m, h, ty, k]) => [m, h, ty, k].filter(Boolean).join(' ')), fc.constant('|1|c2FsdA==|aGFzaA== ssh-ed25519 AAAA'), unicode);
    await fuzz(t, 'known_hosts', [fc.array(line, { maxLength: 20 }), fc.constantFrom('127.0.0.1', 'bastion.example', 'a'.repeat(60))], async (lines, host) => {
        await writeFile(file, lines.join('\n'));
        const verdict = await verifyHostKey({
            host,
            port: 2222,
            key: theKey,
            knownHostsFiles: [file, join(dir, 'missing')],
            pinned: [],
        });
        assert.ok(['known', 'changed', 'revoked', 'unknown'].includes(verdict.status), verdict.status);
    });
});
test('host patterns: the glob matcher agrees with a regular expression on small inputs, and stays fast on hostile ones', async (t) => {
    const small = fc.stringMatching(/^[ab*?.]{0,8}$/);
    await fuzz(t, 'glob (differential)', [small, fc.stringMatching(/^[ab.]{0,10}$/)], (pattern, text) => {
        const re = new RegExp(`^${pattern.replace(/\./g, '\\.').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
        assert.equal(globMatch(pattern, text), re.test(text), `${pattern} ~ ${text}`);
    });
    const starry = fc
        .tuple(fc.integer({ min: 1, max: 40 }), fc.constantFrom('a', '.', '?'), fc.constantFrom('b', '!', ''))
        .map(([n, c, end]) => `*${c}`.repeat(n) + end);
    await fuzz(t, 'glob (hostile)', [starry, fc.integer({ min: 0, max: 255 })], (pattern, n) => {
        hostFieldMatches(`${pattern},!${pattern}`, 'a'.repeat(n), 22);
        globMatch(pattern, 'a.'.repeat(n));
    });
});
test('ssh_config: any file and destination give a host spec (or a clean error), never a hang', async (t) => {
    const file = join(dir, 'ssh_config');
    const keyword = fc.constantFrom('Host', 'HostName', 'User', 'Port', 'IdentityFile', 'ProxyJump', 'Match', 'Include', 'host', 'PORT');
    const line = fc.oneof(fc
        .tuple(keyword, fc.constantFrom(' ', '=', ' = ', '\t'), fc.oneof(hostish, unicode))
        .map(([k, sep, v]) => `${k}${sep}${v}`), unicode);
    const destination = fc.oneof(fc.constantFrom('dev@127.0.0.1:2222', 'bastion', '[::1]:22', 'a@b@c', ':22', '[x'), hostish);
    await fuzz(t, 'ssh_config', [fc.array(line, { maxLength: 25 }), destination], async (lines, dest) => {
        await writeFile(file, lines.join('\n'));
        const lookup = await loadSshConfig(dir, file);
        try {
            const spec = lookup(dest);
            assert.equal(typeof spec.hostName, 'string');
            assert.ok(Number.isInteger(spec.port) && spec.port >= 1 && spec.port <= 65535, `port ${spec.port}`);
            assert.ok(Array.isArray(spec.proxyJump) && Array.isArray(spec.identityFiles));
        }
        catch (err) {
            assert.ok(err instanceof CliError, `not a CliError: ${String(err)}`);
        }
    });
});
test('SSE: any bytes in any chunks give the same messages as in one piece, or the one bounded-size error', async (t) => {
    const MAX = 4096;
    const field = fc.oneof(fc.constantFrom('data: ', 'data:', 'id: ', 'event: ', ': ', 'retry: ', 'data', 'id'), fc.string({ maxLength: 10 }));
    const line = fc.tuple(field, fc.oneof(unicode, fc.string({ maxLength: 6000 }))).map(([f, v]) => f + v);
    const stream = fc
        .array(fc.tuple(line, fc.constantFrom('\n', '\r\n', '\r', '\n\n')), { maxLength: 30 })
        .map((parts) => parts.map(([l, e]) => l + e).join(''));
    const run = (text, cuts) => {
        const got = [];
        const parser = new SseParser({ message: (m) => got.push(`${m.id}|${m.event}|${m.data}`), comment: () => undefined }, MAX);
        let pos = 0;
        try {
            for (const cut of [...cuts.filter((c) => c < text.length).sort((a, b) => a - b), text.length]) {
                parser.feed(text.slice(pos, cut));
                pos = cut;
            }
            return { got, error: undefined };
        }
        catch (err) {
            assert.ok(err instanceof RangeError, `only the size error: ${String(err)}`);
            assert.match(err.message, /^an SSE (line|event) is (longer|larger) than 4096 bytes$/);
            return { got, error: err.message };
        }
    };
    await fuzz(t, 'SSE parser', [stream, fc.array(fc.nat({ max: 70_000 }), { maxLength: 12 })], (text, cuts) => {
        const whole = run(text, []);
        const chunked = run(text, cuts);
        for (const m of [...whole.got, ...chunked.got])
            assert.ok(m.length <= 2 * MAX + 200, 'bounded message');
        if (whole.error === undefined && chunked.error === undefined)
            assert.deepEqual(chunked.got, whole.got);
    });
});
test('token-exchange answers: a tenant token is used only if it names the tenant and audience and expires soon; anything else is exit 5', async (t) => {
    const now = 1_800_000_000_000;
    const claim = fc.oneof(fc.jsonValue(), fc.constant(undefined));
    const payload = fc.record({
        tenant: fc.oneof(fc.constantFrom('acme', 'globex', 'ACME', 'acme '), claim),
        aud: fc.oneof(fc.constantFrom('https://mcp.example/mcp', 'https://other/mcp'), fc.array(fc.constantFrom('https://mcp.example/mcp', 'x'), { maxLength: 3 }), claim),
        exp: fc.oneof(fc.integer({ min: now / 1000 - 100, max: now / 1000 + 7200 }), fc.double(), fc.constantFrom(1e308, -1, 0), claim),
        iat: fc.oneof(fc.integer(), claim),
        roles: fc.oneof(fc.array(fc.constantFrom('member', 'admin', 42)), claim),
        cnf: fc.oneof(fc.record({ jkt: fc.oneof(fc.string(), claim) }), claim),
        scope: claim,
    }, { requiredKeys: [] });
    const b64 = (v) => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url');
    const token = fc.oneof(payload.map((p) => `${b64({ alg: 'RS256', typ: 'at+jwt' })}.${b64(p)}.c2ln`), unicode, fc.stringMatching(/^[A-Za-z0-9_-]{0,20}\.[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,10}$/));
    const answer = fc.record({
        access_token: token,
        token_type: fc.oneof(fc.constantFrom('Bearer', 'DPoP', 'dpop', 'N_A'), fc.string()),
        scope: fc.option(fc.string(), { nil: undefined }),
    });
    await fuzz(t, 'tenant token answers', [answer, fc.constantFrom('member', 'admin')], (a, role) => {
        const req = {
            tenant: 'acme',
            resource: 'https://mcp.example/mcp',
            role: role,
            subjectToken: 'x',
            user: { sub: 'alice' },
            now: () => now,
            dpop: undefined,
        };
        try {
            const tt = checkTenantToken(a, req);
            assert.equal(tt.tenant, 'acme');
            assert.ok(tt.expiresAt > now && tt.expiresAt <= now + MAX_TENANT_TOKEN_LIFETIME_S * 1000);
            assert.ok(tt.issuedAt <= now);
            if (role === 'admin')
                assert.ok(tt.roles.includes('admin'));
        }
        catch (err) {
            assert.ok(err instanceof CliError, `not a CliError: ${String(err)}`);
            assert.equal(err.exitCode, 5);
            oneCleanLine(err.message, 'exchange refusal');
        }
    });
});
test('IdP errors and token lifetimes: whatever openid-client throws becomes one clean line; any expires_in a printable date', async (t) => {
    const errorShape = fc.oneof(fc.anything(), fc.record({
        error: fc.oneof(unicode, fc.anything()),
        error_description: fc.oneof(unicode, fc.anything()),
        code: fc.oneof(fc.constantFrom('OAUTH_RESPONSE_IS_NOT_JSON', 'OAUTH_RESPONSE_IS_NOT_CONFORM', 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED', 'ECONNRESET', 'UND_ERR_SOCKET'), unicode),
        status: fc.oneof(fc.integer({ min: 100, max: 599 }), fc.anything()),
        name: fc.oneof(fc.constantFrom('TimeoutError', 'AbortError', 'TypeError'), unicode),
        message: unicode,
    }, { requiredKeys: [] }));
    const withCause = fc
        .tuple(errorShape, errorShape)
        .map(([outer, inner]) => outer && typeof outer === 'object' && !Array.isArray(outer) ? { ...outer, cause: inner } : outer);
    await fuzz(t, 'IdP errors', [withCause], (err) => {
        const mapped = mapIdpError(err, 'https://idp.example', 'refresh');
        assert.ok(mapped instanceof CliError);
        oneCleanLine(mapped.message, 'IdP error');
        oneCleanLine(mapped.hint ?? '', 'IdP hint');
    });
    const expiresIn = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(undefined, 1e300, -1, Number.NaN));
    await fuzz(t, 'expires_in', [expiresIn], (e) => {
        const at = accessExpiresAt(1_800_000_000_000, e);
        if (at === undefined)
            return;
        assert.ok(at >= 1_800_000_000_000 && at <= 1_800_000_000_000 + MAX_ACCESS_LIFETIME_S * 1000);
        new Date(at).toISOString();
    });
});
test('JSON output: any value prints with no raw control character and parses back to the same value', async (t) => {
    await fuzz(t, 'terminal-safe JSON', [fc.jsonValue()], (value) => {
        const text = terminalSafeJson(JSON.stringify(value));
        oneCleanLine(text, 'json');
        assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(value)));
    });
});
test('token endpoint answers: whatever a hostile IdP sends to a token request is tokens or one clean error line', async (t) => {
    let answer = { status: 200, type: 'application/json', body: '{}' };
    const idpServer = await serve({
        '/.well-known/openid-configuration': discovery(),
        '/token': (_req, res) => {
            res.writeHead(answer.status, { 'content-type': answer.type });
            res.end(answer.body);
        },
    });
    try {
        const idp = await connectIdp({
            issuer: idpServer.origin,
            clientId: 'mcp-secure',
            insecureHttp: true,
            fetch: globalThis.fetch,
            timeout: 2,
        });
        const field = fc.oneof(fc.jsonValue(), unicode, fc.constant(undefined));
        const tokenish = fc
            .record({
            access_token: fc.oneof(fc.string({ minLength: 1 }), field),
            token_type: fc.oneof(fc.constantFrom('Bearer', 'DPoP', 'bearer', 'mac'), field),
            expires_in: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(1e300, -1, '3600'), field),
            refresh_token: fc.oneof(fc.string(), field),
            id_token: fc.oneof(fc.constant('eyJhbGciOiJub25lIn0.e30.'), fc.string(), field),
            scope: field,
            error: fc.oneof(fc.constantFrom('invalid_grant', 'authorization_pending', 'server_error'), field),
            error_description: fc.oneof(unicode, field),
        }, { requiredKeys: [] })
            .map((o) => JSON.stringify(o));
        const reply = fc.record({
            status: fc.constantFrom(200, 200, 200, 400, 401, 429, 500, 502, 503),
            type: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/html', 'text/plain'),
            body: fc.oneof(tokenish, fc.json(), unicode),
        });
        await fuzz(t, 'token endpoint answers', [reply], async (r) => {
            answer = r;
            const now = Date.now();
            try {
                const tokens = await idp.client.genericGrantRequest(idp.config, 'urn:ietf:params:oauth:grant-type:device_code', { device_code: 'x' });
                assert.equal(typeof tokens.access_token, 'string');
                const at = accessExpiresAt(now, tokens.expiresIn());
                if (at !== undefined)
                    new Date(at).toISOString();
            }
            catch (err) {
                const mapped = mapIdpError(err, idp.issuer, 'device login');
                assert.ok(mapped instanceof CliError);
                assert.ok(!/unexpected error/.test(mapped.message), mapped.message);
                oneCleanLine(mapped.message, 'token error');
            }
        }, Math.min(RUNS, 300));
    }
    finally {
        await idpServer.close();
    }
});
test('audit events: any data is an event or a named reason; the chain verifier never throws and stays bounded', async (t) => {
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
    const event = fc.record({
        seq: fc.oneof(fc.integer({ min: -2, max: 40 }), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER), fc.string()),
        ts: fc.oneof(fc.string(), fc.anything()),
        tenant: fc.oneof(fc.constantFrom('acme', 'globex'), fc.string(), fc.anything()),
        actor: fc.string(),
        tool: fc.oneof(fc.string(), fc.string({ minLength: 5000, maxLength: 5001 })),
        downstream: fc.string(),
        outcome: fc.oneof(fc.constantFrom('allowed', 'denied', 'error'), fc.anything()),
        reason: fc.oneof(fc.string(), fc.anything()),
        cross_tenant: fc.oneof(fc.boolean(), fc.anything()),
        prev: fc.oneof(hex, fc.string()),
        hash: fc.oneof(hex, fc.string()),
    }, { requiredKeys: [] });
    const data = fc.oneof(event.map((e) => JSON.stringify(e)), fc.json(), unicode);
    await fuzz(t, 'audit events', [fc.array(data, { maxLength: 30 })], (items) => {
        const verifier = new ChainVerifier('acme');
        let problems = 0;
        for (const d of items) {
            const e = parseEvent(d);
            if (typeof e === 'string') {
                oneCleanLine(e, 'reason');
                continue;
            }
            assert.ok(Number.isSafeInteger(e.seq) && e.seq >= 1);
            verifier.check(e, () => {
                problems += 1;
            });
        }
        assert.equal(problems, verifier.problems.length);
        assert.ok(problems <= 4 * items.length);
    });
});
