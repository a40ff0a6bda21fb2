/**
 * The agent's trust boundaries end to end, as real processes (the rest is in agent.test.ts): the CLI started as a user would, the agent it starts on
 * demand, the sandbox IdP (DPoP-binding), control plane and bastion — and no keychain unless a test asks
 * for one. Each user has a runtime directory of its own; every agent a test starts is stopped (or ends
 * with its socket when the user's directory is removed at exit).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, webcrypto } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { generateUserKey, startBastion } from '../../sandbox/bastion.js';
import { startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { haveSecretServiceTools, startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { agentPaths } from '../../src/auth/agent-paths.js';
import { runCli } from '../helpers/cli.js';
import { userEnv } from '../helpers/env.js';
const exec = promisify(execFile);
const alice = USERS.find((u) => u.username === 'alice');
let idp;
let plane;
let bastion;
const key = generateUserKey('agent-test');
const users = [];
before(async () => {
    idp = await startIdp({ deviceInterval: 1 });
    plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource, heartbeatMs: 200 });
    bastion = await startBastion({
        authorizedKeys: [key.publicKey],
        allow: [{ host: '127.0.0.1', port: plane.port }],
    });
});
after(async () => {
    // Every agent a test started, stopped; then nothing of this file may still run.
    await Promise.all(users.map(({ env }) => runCli(['agent', 'stop'], env)));
    for (const { user } of users)
        assert.deepEqual(await agentPids(user), [], 'no agent left running');
    await bastion?.close();
    await plane?.close();
    await idp?.close();
});
/** A user with no keychain (no D-Bus) and a runtime directory of its own, the sandbox profile set. */
async function newUser(extra = {}) {
    const user = await userEnv();
    const runtime = join(user.root, 'run');
    await mkdir(runtime, { mode: 0o700 });
    const keyFile = join(user.home, 'id_test');
    await writeFile(keyFile, key.privateKey, { mode: 0o600 });
    const env = user.env({ XDG_RUNTIME_DIR: runtime, ...extra });
    await writeSandboxProfile(idp, env, 'sandbox', {
        bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
        identityFile: keyFile,
        fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
        mcpUrl: plane.url,
    });
    users.push({ user, env });
    return {
        user,
        env,
        runtime,
        cli: (...args) => runCli(['--profile', 'sandbox', ...args], env),
        paths: agentPaths(env, user.configDir),
    };
}
async function login(u, args = []) {
    const result = await deviceLogin(u.env, alice, { args });
    assert.equal(result.code, 0, result.stderr);
    return result;
}
/** The pids of agent processes started for this user (found by their HOME, as `ps e` would). */
async function agentPids(user) {
    const pids = [];
    for (const entry of await readdir('/proc')) {
        if (!/^\d+$/.test(entry))
            continue;
        try {
            const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
            if (!(cmdline.includes('agent') && cmdline.includes('run')))
                continue;
            const environ = (await readFile(`/proc/${entry}/environ`, 'utf8')).split('\0');
            if (environ.includes(`HOME=${user.home}`))
                pids.push(Number(entry));
        }
        catch {
            // gone meanwhile, or not ours to read
        }
    }
    return pids;
}
async function agentPid(u) {
    const result = await runCli(['--json', 'agent', 'status'], u.env);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout).pid;
}
/** Waits (bounded) until the process is gone. */
async function gone(pid, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
        try {
            process.kill(pid, 0);
        }
        catch {
            return true;
        }
        await new Promise((r) => setTimeout(r, 50));
    }
    return false;
}
test('another uid cannot talk to the agent: the kernel refuses the directory; exposed, the agent refuses it', {
    skip: process.getuid?.() !== 0 ? 'needs root to run a process as nobody (su -s /bin/sh nobody)' : false,
}, async () => {
    const u = await newUser();
    await login(u);
    // nobody may walk to the runtime directory but not into the agent's own.
    await chmod(u.user.root, 0o755);
    await chmod(u.runtime, 0o755);
    const script = `
    const net = require('node:net'); const fs = require('node:fs');
    const out = {};
    try { fs.readFileSync(process.env.COOKIE); out.cookie = 'read'; } catch (e) { out.cookie = e.code; }
    const s = net.connect(process.env.SOCK);
    let buf = ''; let step = 0;
    s.on('error', (e) => { out.connect = e.code; console.log(JSON.stringify(out)); process.exit(0); });
    s.on('data', (d) => {
      buf += d; let nl;
      while ((nl = buf.indexOf('\\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, nl)); buf = buf.slice(nl + 1);
        if (step === 0) { out.connect = 'connected'; step = 1;
          s.write(JSON.stringify({ v: 1, id: 1, op: 'exchange', params: {} }) + '\\n'); }
        else { out.answer = line.ok === false ? line.error.code : 'ok'; }
      }
    });
    s.on('close', () => { console.log(JSON.stringify(out)); process.exit(0); });
    setTimeout(() => { out.timeout = true; console.log(JSON.stringify(out)); process.exit(0); }, 5000);`;
    const asNobody = async () => {
        const { stdout } = await exec('su', ['-s', '/bin/sh', 'nobody', '-c', 'exec "$NODE" -e "$SCRIPT"'], {
            env: {
                PATH: process.env['PATH'] ?? '',
                NODE: process.execPath,
                SCRIPT: script,
                SOCK: u.paths.socket,
                COOKIE: u.paths.cookie,
            },
            timeout: 20_000,
        });
        return JSON.parse(stdout.trim());
    };
    assert.deepEqual(await asNobody(), { cookie: 'EACCES', connect: 'EACCES' }, 'the 0700 directory stops nobody');
    // Exposed anyway (a loosened directory, a bind mount): nobody reaches the socket, cannot read the
    // cookie, so the agent answers nothing but a refusal.
    await chmod(u.paths.dir, 0o711);
    await chmod(u.paths.socket, 0o666);
    try {
        const exposed = await asNobody();
        assert.equal(exposed['connect'], 'connected');
        assert.equal(exposed['cookie'], 'EACCES');
        assert.equal(exposed['answer'], 'unauthenticated', 'the agent refuses a client that did not answer its challenge');
    }
    finally {
        await chmod(u.paths.dir, 0o700);
        await chmod(u.paths.socket, 0o600);
    }
    assert.equal((await u.cli('token', '--tenant', 'acme')).code, 0, 'the owner still can');
});
const noKeychain = (await haveSecretServiceTools())
    ? false
    : 'needs a Secret Service: install gnome-keyring, dbus and libsecret-tools';
test('keychain: the item holds no private key; the stolen refresh token replayed from outside is refused for lack of a proof', {
    skip: noKeychain,
}, async () => {
    const keyring = await startSecretService();
    try {
        const u = await newUser(keyring.env);
        await login(u);
        // What any same-user process reads (secret-tool, as the attack did).
        const text = await keyring.lookup({ service: 'mcp-secure', username: 'profile:sandbox' });
        assert.ok(text, 'the refresh token is in the keychain');
        const item = JSON.parse(text);
        assert.equal(item['dpop_jwk'], undefined);
        assert.doesNotMatch(text, /"d"\s*:/, 'no private key member anywhere in the item');
        assert.match(String(item['dpop_jkt']), /^[A-Za-z0-9_-]{43}$/);
        const stolen = String(item['refresh_token']);
        const meta = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json());
        const refresh = (headers) => fetch(meta.token_endpoint, {
            method: 'POST',
            headers,
            body: new URLSearchParams({
                grant_type: 'refresh_token',
                refresh_token: stolen,
                client_id: idp.clientId,
            }),
        });
        const bare = await refresh({});
        assert.equal(bare.status, 400, 'without a proof');
        const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
            'sign',
            'verify',
        ]));
        const own = await refresh({ dpop: await proof(pair, 'POST', meta.token_endpoint) });
        assert.equal(own.status, 400, "with a proof from the attacker's own key");
        const body = (await own.json());
        assert.match(body.error, /invalid_grant|invalid_dpop_proof/);
        // The agent, which has the key, still can; stopped, the login is over and every command says so.
        assert.equal((await u.cli('token', '--tenant', 'acme')).code, 0);
        assert.equal((await runCli(['agent', 'stop'], u.env)).code, 0);
        for (const args of [['status'], ['token', '--tenant', 'acme']]) {
            const result = await u.cli(...args);
            assert.equal(result.code, 4, result.stderr);
            assert.match(result.stdout + result.stderr, /ended with the mcp-secure agent that held its DPoP key/);
            assert.match(result.stdout + result.stderr, /run `mcp-secure login --profile sandbox`/);
        }
        await runCli(['agent', 'stop'], u.env);
    }
    finally {
        await keyring.stop();
    }
});
test('keychain without DPoP (--no-dpop): the login survives the agent', { skip: noKeychain }, async () => {
    const keyring = await startSecretService();
    try {
        const u = await newUser(keyring.env);
        const logged = await login(u, ['--no-dpop']);
        assert.match(logged.stderr, /and OS keychain \(Secret Service\) \(kept across restarts\)/);
        const first = await agentPid(u);
        assert.equal((await runCli(['agent', 'stop'], u.env)).code, 0);
        assert.ok(await gone(first));
        const token = await u.cli('token', '--tenant', 'acme', '--json');
        assert.equal(token.code, 0, token.stderr);
        assert.equal(JSON.parse(token.stdout).token_type, 'Bearer');
        assert.notEqual(await agentPid(u), first, 'a new agent read the login back from the keychain');
        await runCli(['agent', 'stop'], u.env);
    }
    finally {
        await keyring.stop();
    }
});
/** A DPoP proof (RFC 9449 §4.2) for the token endpoint, from a key the attacker made. */
async function proof(pair, htm, htu) {
    const enc = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const { kty, crv, x, y } = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
    const header = enc({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } });
    const payload = enc({ jti: webcrypto.randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000) });
    const signature = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, Buffer.from(`${header}.${payload}`));
    void createHash;
    return `${header}.${payload}.${Buffer.from(signature).toString('base64url')}`;
}
