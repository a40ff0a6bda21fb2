/**
 * A hostile repository (issue 13, item 1), replayed with the real CLI as the attack run did it: the user
 * runs `mcp-secure` inside a checkout whose `.mcp-secure.json` someone else wrote. Hostile servers written
 * for this test record what they receive; the attack fails when they receive nothing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { fingerprintOf, generateEd25519, parsePrivateKey } from '../../sandbox/ssh-keys.js';
import { runCli, startCli } from '../helpers/cli.js';
import { gate, missing } from '../helpers/requires.js';
import { aliceStack } from '../helpers/stack.js';
import { tmuxServer } from '../helpers/tmux.js';
const { after, before, test } = gate(missing('secret-service'));
const withTmux = gate(missing('secret-service', 'tmux'));
const { Server } = ssh2;
/**
 * The planted bastion: an ssh2 server that lets anyone in, opens every forward, and keeps whatever an
 * HTTP request through it carries in Authorization or DPoP (a stolen tenant token and proof).
 */
async function hostileBastion() {
    const hostKey = generateEd25519().private;
    const blob = parsePrivateKey(hostKey).getPublicSSH();
    const seen = { connections: 0, authenticated: 0, channels: 0, stolen: [] };
    const ssh = new Server({ hostKeys: [hostKey] }, (conn) => {
        seen.connections++;
        conn.on('error', () => { });
        conn.on('authentication', (ctx) => ctx.accept());
        conn.on('ready', () => {
            seen.authenticated++;
        });
        conn.on('session', (_a, reject) => reject());
        conn.on('tcpip', (accept) => {
            seen.channels++;
            const channel = accept();
            let text = '';
            channel.on('data', (d) => {
                text += d.toString('latin1');
                for (const m of text.matchAll(/^(authorization|dpop):\s*(.+?)\r$/gim))
                    seen.stolen.push(m[2]);
                if (text.includes('\r\n\r\n')) {
                    channel.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
                }
            });
            channel.on('error', () => { });
        });
    });
    const sockets = new Set();
    const listener = net.createServer((socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        socket.on('error', () => { });
        ssh.injectSocket(socket);
    });
    await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const port = listener.address().port;
    return {
        port,
        fingerprint: fingerprintOf(blob),
        seen,
        close: async () => {
            for (const s of sockets)
                s.destroy();
            await new Promise((resolve) => listener.close(resolve));
        },
    };
}
/** The attacker's plain-http "exchange endpoint": records every request body (an IdP access token). */
async function hostileExchange() {
    const bodies = [];
    const server = createHttpServer((req, res) => {
        let body = '';
        req.on('data', (d) => {
            body += d.toString();
        });
        req.on('end', () => {
            bodies.push(body);
            res.writeHead(400, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: 'invalid_grant' }));
        });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
        url: `http://127.0.0.1:${server.address().port}/token`,
        bodies,
        close: () => {
            server.closeAllConnections();
            return new Promise((resolve) => server.close(resolve));
        },
    };
}
let stack;
let evil;
let exchange;
const running = [];
before(async () => {
    stack = await aliceStack('hostile-repo');
    evil = await hostileBastion();
    exchange = await hostileExchange();
    // The user's own known_hosts has another key for the planted bastion's address (as in the attack run).
    await mkdir(join(stack.user.home, '.ssh'), { recursive: true, mode: 0o700 });
    const other = parsePrivateKey(generateEd25519().private).getPublicSSH();
    await writeFile(join(stack.user.home, '.ssh', 'known_hosts'), `[127.0.0.1]:${evil.port} ssh-ed25519 ${other.toString('base64')}\n`);
});
after(async () => {
    for (const r of running)
        r.child.kill('SIGKILL');
    await exchange?.close();
    await evil?.close();
    await stack?.close();
});
async function repo(name, profile) {
    const dir = join(stack.user.root, name);
    await mkdir(dir, { recursive: true });
    const file = join(dir, '.mcp-secure.json');
    await writeFile(file, `${JSON.stringify({ profiles: { sandbox: profile } }, null, 2)}\n`);
    return { dir, file };
}
/** What the user would have recorded by answering yes to the trust prompt for this exact file. */
async function approve(file) {
    const configFile = join(stack.user.configDir, 'config.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    const sha = createHash('sha256')
        .update(await readFile(file))
        .digest('hex');
    config.trusted_projects = { ...config.trusted_projects, [file]: sha };
    await writeFile(configFile, JSON.stringify(config), { mode: 0o600 });
}
/**
 * `connect` in the repository, as the user would; if it gets as far as listening, an MCP client request goes
 * through it, which is what hands the tenant token to whatever bastion it dialled.
 */
async function connectIn(dir, extra = []) {
    const run = startCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', ...extra], stack.user.env(), 60_000, {
        cwd: dir,
    });
    run.child.stdin.end();
    running.push(run);
    const listening = await run
        .waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 20_000)
        .catch(() => undefined);
    if (listening) {
        await fetch(listening[1], {
            method: 'POST',
            headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
        }).catch(() => undefined);
        run.child.kill('SIGINT');
    }
    return run.done;
}
test('a planted bastion + pin in a repository: refused naming the file and keys (exit 2); the bastion gets nothing', async () => {
    const { dir, file } = await repo('planted-bastion', {
        bastion: `evil@127.0.0.1:${evil.port}`,
        host_key_fingerprints: [`[127.0.0.1]:${evil.port}=${evil.fingerprint}`],
    });
    const r = await connectIn(dir);
    assert.equal(r.code, 2, r.stderr);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, r.stderr);
    assert.ok(errors[0].includes(file), errors[0]);
    assert.match(errors[0], /sets bastion, host_key_fingerprints, which only your own config may set/);
    assert.doesNotMatch(r.stderr, /host keys verified/i);
    assert.deepEqual(evil.seen, { connections: 0, authenticated: 0, channels: 0, stolen: [] });
});
test('the same file approved by the user: the pin cannot override known_hosts (changed key, exit 5); no token leaves', async () => {
    const { dir, file } = await repo('planted-bastion-approved', {
        bastion: `evil@127.0.0.1:${evil.port}`,
        host_key_fingerprints: [`[127.0.0.1]:${evil.port}=${evil.fingerprint}`],
    });
    await approve(file);
    const before = { ...evil.seen, stolen: [...evil.seen.stolen] };
    const r = await connectIn(dir);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
    assert.match(r.stderr, new RegExp(`error: the host key of \\[127\\.0\\.0\\.1\\]:${evil.port} has changed`));
    assert.equal(evil.seen.authenticated, before.authenticated, 'no SSH authentication to the planted bastion');
    assert.equal(evil.seen.channels, before.channels);
    assert.deepEqual(evil.seen.stolen, []);
});
test('the same with the OpenSSH transport: a pin cannot override the changed key known_hosts holds (exit 5); no token leaves', async (t) => {
    const { execFileSync } = await import('node:child_process');
    try {
        execFileSync('ssh', ['-V'], { stdio: 'ignore' });
    }
    catch {
        t.skip('needs the OpenSSH client (Debian package: openssh-client)');
        return;
    }
    const { dir, file } = await repo('planted-bastion-openssh', {
        bastion: `evil@127.0.0.1:${evil.port}`,
        host_key_fingerprints: [`[127.0.0.1]:${evil.port}=${evil.fingerprint}`],
    });
    await approve(file);
    const before = { ...evil.seen, stolen: [...evil.seen.stolen] };
    const r = await connectIn(dir, ['--ssh-transport', 'openssh']);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(evil.seen.authenticated, before.authenticated, 'no SSH authentication to the planted bastion');
    assert.equal(evil.seen.channels, before.channels);
    assert.deepEqual(evil.seen.stolen, []);
});
test('dpop: false + a plain-http exchange_endpoint in a repository: no login without DPoP, no token to the attacker', async () => {
    const { dir, file } = await repo('downgrade', { dpop: false, exchange_endpoint: exchange.url });
    const token = await runCli(['--profile', 'sandbox', 'token', '--tenant', 'acme'], stack.user.env(), undefined, {
        cwd: dir,
    });
    assert.equal(token.code, 2, token.stderr);
    assert.ok(token.stderr.includes(file), token.stderr);
    assert.match(token.stderr, /sets dpop: false, an unsafe mode/);
    assert.equal(token.stdout, '');
    const login = startCli(['--profile', 'sandbox', 'login', '--device'], stack.user.env(), 30_000, {
        cwd: dir,
    });
    login.child.stdin.end();
    const l = await login.done;
    assert.equal(l.code, 2, l.stderr);
    assert.doesNotMatch(l.stderr, /device\?user_code=/, 'no login was started');
    assert.deepEqual(exchange.bodies, [], 'the attacker received no request');
});
test('exchange_endpoint over plain http off loopback is refused even from the user config (exit 5), before any lookup', async () => {
    const set = await runCli(['--profile', 'sandbox', 'config', 'set', 'exchange_endpoint', 'http://exchange.invalid/token'], stack.user.env());
    assert.equal(set.code, 0, set.stderr);
    try {
        const r = await runCli(['--profile', 'sandbox', 'token', '--tenant', 'acme'], stack.user.env());
        assert.equal(r.code, 5, r.stderr);
        assert.match(r.stderr, /error: refusing plain-http exchange_endpoint http:\/\/exchange\.invalid: tokens would cross the network in clear/);
        assert.doesNotMatch(r.stderr, /ENOTFOUND|EAI_AGAIN/);
        assert.equal(r.stdout, '');
    }
    finally {
        await runCli(['--profile', 'sandbox', 'config', 'unset', 'exchange_endpoint'], stack.user.env());
    }
    // The user is still logged in as alice afterwards (nothing above touched the login).
    assert.equal((await runCli(['--profile', 'sandbox', 'status'], stack.user.env())).code, 0);
});
withTmux.test('on a real terminal (tmux): the trust prompt shows the file and its values; yes is remembered until the file changes', async (t) => {
    const { execFileSync } = await import('node:child_process');
    try {
        execFileSync('tmux', ['-V']);
    }
    catch {
        t.skip('needs tmux (Debian package: tmux)');
        return;
    }
    const { dir, file } = await repo('prompted', { scopes: ['profile', 'email', 'groups'] });
    const tmux = tmuxServer(`mcp-secure-trust-${process.pid}`);
    const status = ['--profile', 'sandbox', 'status'];
    try {
        await tmux.start('ask', stack.user.env(), status, { cwd: dir });
        const asked = await tmux.waitFor('ask', /Trust this project file\? \[y\/N\]/);
        assert.ok(asked.includes(file), asked);
        assert.match(asked, /is new here and sets what only your own config should:/);
        assert.match(asked, /scopes = profile email groups/);
        await tmux.run('send-keys', '-t', 'ask', 'y', 'Enter');
        const done = await tmux.waitFor('ask', /exit \d+/);
        assert.match(done, /exit 0/, done);
        const config = JSON.parse(await readFile(join(stack.user.configDir, 'config.json'), 'utf8'));
        assert.match(config.trusted_projects[file], /^[0-9a-f]{64}$/);
        await tmux.start('again', stack.user.env(), status, { cwd: dir });
        const again = await tmux.waitFor('again', /exit \d+/);
        assert.match(again, /exit 0/);
        assert.doesNotMatch(again, /Trust this project file/, 'the same file is not asked about again');
        await writeFile(file, JSON.stringify({ profiles: { sandbox: { scopes: ['profile', 'email', 'admin'] } } }));
        await tmux.start('changed', stack.user.env(), status, { cwd: dir });
        const changed = await tmux.waitFor('changed', /Trust this project file/);
        assert.match(changed, /has CHANGED since you trusted it/);
        await tmux.run('send-keys', '-t', 'changed', 'Enter');
        const refused = await tmux.waitFor('changed', /exit \d+/);
        assert.match(refused, /exit 2/, refused);
    }
    finally {
        await tmux.kill();
    }
});
