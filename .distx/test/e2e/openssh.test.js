/**
 * The OpenSSH transport and "no SSH key on disk", end to end: the real CLI, the real `ssh`, the real sshd;
 * the sandbox control plane's SSH CA issues the session's certificate; sshd trusts only that CA (no
 * authorized_keys). User certificates from a file too (expired and not-yet-valid refused), and ssh2
 * saying in one line that certificates need OpenSSH.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { generateEd25519 } from '../../sandbox/ssh-keys.js';
import { haveSshd, startSshd } from '../../sandbox/sshd.js';
import { runCli, startCli } from '../helpers/cli.js';
import { userEnv } from '../helpers/env.js';
const exec = promisify(execFile);
const alice = USERS.find((u) => u.username === 'alice');
async function haveSsh() {
    return exec('ssh', ['-V']).then(() => true, () => false);
}
const skip = !(await haveSshd())
    ? 'OpenSSH sshd is not installed (Debian: openssh-server)'
    : !(await haveSsh())
        ? 'the OpenSSH client is not installed (Debian: openssh-client)'
        : undefined;
let keyring;
let idp;
let plane;
/** Trusts only the control plane's CA; no authorized_keys. */
let caSshd;
const running = [];
before(async () => {
    if (skip)
        return;
    keyring = await startSecretService();
    idp = await startIdp({ deviceInterval: 1 });
    plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
    caSshd = await startSshd({
        authorizedKeys: [],
        permitOpen: [{ host: '127.0.0.1', port: plane.port }],
        trustedUserCaKeys: [plane.sshCa.publicKeyLine],
        authorizedPrincipals: [alice.sub],
    });
});
after(async () => {
    for (const r of running)
        r.child.kill('SIGKILL');
    await caSshd?.close();
    await plane?.close();
    await idp?.close();
    await keyring?.stop();
});
/**
 * A user logged in as alice. `runtime`: every command of this user (the agent holding the login
 * included) gets an $XDG_RUNTIME_DIR of its own, `<root>/run`, so a test can look inside it.
 */
async function loggedIn(settings, runtime = false) {
    const base = await userEnv(keyring.env);
    const run = join(base.root, 'run');
    if (runtime)
        await mkdir(run, { mode: 0o700 });
    const u = runtime
        ? { ...base, env: (extra = {}) => base.env({ XDG_RUNTIME_DIR: run, ...extra }) }
        : base;
    await writeSandboxProfile(idp, u.env());
    for (const [k, v] of Object.entries(settings)) {
        const r = await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env());
        assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await deviceLogin(u.env(), alice)).code, 0);
    return u;
}
function text(result) {
    const content = result.content ?? [];
    return content.map((c) => c.text ?? '').join('\n');
}
/** Every file under `dir` (bounded), for the key-material scan. */
async function files(dir, depth = 0) {
    if (depth > 8)
        return [];
    const out = [];
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const p = join(dir, e.name);
        if (e.isDirectory())
            out.push(...(await files(p, depth + 1)));
        else if (e.isFile())
            out.push(p);
    }
    return out.slice(0, 5000);
}
// An OpenSSH or PEM private key, in any of its armours (built from parts: this file is no key itself).
const PRIVATE_KEY = new RegExp(['PRIVATE', 'KEY-----'].join(' ') + '|' + ['b3BlbnNzaC1rZXktdjE'].join(''));
test('no SSH key on disk: an in-memory key, a certificate from the sandbox CA, an agent on a 0600 socket; sshd has no authorized_keys', {
    skip,
}, async () => {
    const u = await loggedIn({
        bastion: `${caSshd.username}@127.0.0.1:${caSshd.port}`,
        host_key_fingerprints: `[127.0.0.1]:${caSshd.port}=${caSshd.fingerprint}`,
        mcp_url: plane.url,
        ssh_ca_endpoint: plane.sshCaEndpoint,
        ssh_transport: 'openssh',
    }, true);
    // The private dir goes under $XDG_RUNTIME_DIR: one of this user's own, to find it.
    const runtime = join(u.root, 'run');
    const run = startCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--json'], u.env({ XDG_RUNTIME_DIR: runtime }), 60_000);
    run.child.stdin.end();
    running.push(run);
    const [, local] = await run.waitFor(/"local":"(http:\/\/127\.0\.0\.1:\d+\/mcp)"/, 30_000);
    const client = new Client({ name: 'test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(local)));
    assert.match(text(await client.callTool({ name: 'list_workflows', arguments: {} })), /wf-acme-deploy/);
    await client.close();
    assert.ok(plane
        .records()
        .some((r) => r.tool === 'ssh_certificate' && r.tenant === 'acme' && r.outcome === 'allowed'), 'the certificate came from the CA, for alice');
    // The session's private dir: 0700, the agent's socket 0600, and no private key anywhere.
    const dirs = (await readdir(runtime)).filter((d) => d.startsWith('mcp-secure-'));
    assert.equal(dirs.length, 1, `one private dir in ${runtime}: ${dirs.join(', ')}`);
    const dir = join(runtime, dirs[0]);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, 'agent.sock'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'upstream.sock'))).mode & 0o777, 0o600);
    for (const f of [...(await files(dir)), ...(await files(u.home)), ...(await files(runtime))]) {
        const content = await readFile(f, 'latin1').catch(() => '');
        assert.doesNotMatch(content, PRIVATE_KEY, `key material in ${f}`);
    }
    // The agent holds the session's identity only: the certificate and its key, nothing can be added.
    const listed = await exec('ssh-add', ['-L'], {
        env: { ...process.env, SSH_AUTH_SOCK: join(dir, 'agent.sock') },
    });
    assert.match(listed.stdout, /^ssh-ed25519-cert-v01@openssh\.com /m);
    const { private: other } = generateEd25519('intruder');
    const otherFile = join(u.root, 'intruder');
    await writeFile(otherFile, other, { mode: 0o600 });
    await assert.rejects(exec('ssh-add', [otherFile], { env: { ...process.env, SSH_AUTH_SOCK: join(dir, 'agent.sock') } }), 'the session agent refuses to add keys');
    run.child.kill('SIGINT');
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr);
    await assert.rejects(stat(dir), 'the private dir is removed at the end');
});
test('openssh transport: a pin never overrides known_hosts — another key listed for the hop is refused (exit 5) though the real key is pinned', {
    skip,
}, async () => {
    const u = await loggedIn({
        bastion: `${caSshd.username}@127.0.0.1:${caSshd.port}`,
        host_key_fingerprints: `[127.0.0.1]:${caSshd.port}=${caSshd.fingerprint}`,
        mcp_url: plane.url,
        ssh_ca_endpoint: plane.sshCaEndpoint,
        ssh_transport: 'openssh',
    });
    // known_hosts says this hop has another ed25519 key: OpenSSH's "changed" verdict must stand.
    const other = generateEd25519('not-the-bastion');
    await mkdir(join(u.home, '.ssh'), { recursive: true, mode: 0o700 });
    await writeFile(join(u.home, '.ssh', 'known_hosts'), `[127.0.0.1]:${caSshd.port} ${other.public}\n`);
    const r = await runCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--max-session', '1'], u.env());
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /HOST IDENTIFICATION HAS CHANGED|has changed/i);
});
test('ssh_ca_endpoint with the ssh2 transport: one line naming the OpenSSH transport (exit 2)', {
    skip,
}, async () => {
    const u = await loggedIn({
        bastion: `${caSshd.username}@127.0.0.1:${caSshd.port}`,
        host_key_fingerprints: `[127.0.0.1]:${caSshd.port}=${caSshd.fingerprint}`,
        mcp_url: plane.url,
        ssh_ca_endpoint: plane.sshCaEndpoint,
        ssh_transport: 'ssh2',
    });
    const r = await runCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], u.env());
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /error: ssh_ca_endpoint .* needs the OpenSSH transport.* — install openssh-client/);
});
/** A user key on disk with a certificate beside it (`-cert.pub`), as `ssh-keygen -s` users have. */
async function certFileUser(validAfter, validBefore) {
    const u = await userEnv(keyring.env);
    const key = generateEd25519('cert-user');
    const keyFile = join(u.home, 'id_cert');
    await writeFile(keyFile, key.private, { mode: 0o600 });
    const cert = plane.sshCa.issue({
        publicKey: key.public,
        type: 'user',
        keyId: 'alice-file',
        principals: [alice.sub],
        validAfter,
        validBefore,
        extensions: ['permit-port-forwarding'],
    });
    await writeFile(`${keyFile}-cert.pub`, `${cert}\n`);
    await writeSandboxProfile(idp, u.env());
    for (const [k, v] of Object.entries({
        bastion: `${caSshd.username}@127.0.0.1:${caSshd.port}`,
        host_key_fingerprints: `[127.0.0.1]:${caSshd.port}=${caSshd.fingerprint}`,
        mcp_url: plane.url,
        identity_file: keyFile,
        ssh_transport: 'openssh',
    })) {
        assert.equal((await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env())).code, 0);
    }
    assert.equal((await deviceLogin(u.env(), alice)).code, 0);
    return u;
}
const nowS = () => Math.floor(Date.now() / 1000);
const CERT_CASES = [
    {
        name: 'a valid user certificate beside the identity file: accepted',
        after: () => nowS() - 60,
        before: () => nowS() + 600,
        code: 0,
    },
    {
        name: 'an expired user certificate: refused (exit 4)',
        after: () => nowS() - 7200,
        before: () => nowS() - 3600,
        code: 4,
    },
    {
        name: 'a not-yet-valid user certificate: refused (exit 4)',
        after: () => nowS() + 3600,
        before: () => nowS() + 7200,
        code: 4,
    },
];
for (const c of CERT_CASES) {
    test(`OpenSSH transport: ${c.name}`, { skip }, async () => {
        const u = await certFileUser(c.after(), c.before());
        const r = await runCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--max-session', '1'], u.env());
        assert.equal(r.code, c.code, r.stderr);
        if (c.code === 4)
            assert.match(r.stderr, /refused authentication \(ssh: .*Permission denied/);
        else
            assert.match(r.stderr, /OpenSSH transport/);
    });
}
/** An sshd with ed25519, ECDSA and RSA host keys, as most real ones have; the user's own key file. */
let multiKey;
let otherSshd;
const userKey = generateEd25519('known-hosts-user');
async function multiKeySshd() {
    if (!multiKey) {
        multiKey = await startSshd({
            authorizedKeys: [userKey.public],
            permitOpen: [{ host: '127.0.0.1', port: plane.port }],
            extraHostKeyTypes: ['ecdsa', 'rsa'],
        });
        // Another host's ECDSA key: the "someone else answers on that address" case.
        otherSshd = await startSshd({ authorizedKeys: [], permitOpen: [], extraHostKeyTypes: ['ecdsa'] });
    }
    return { sshd: multiKey, other: otherSshd };
}
after(async () => {
    await multiKey?.close();
    await otherSshd?.close();
});
const KNOWN_HOSTS_CASES = [
    {
        name: 'known_hosts holds only the ECDSA key: accepted',
        file: 'known_hosts',
        line: (s) => s.extraHostKeys[0].knownHostsLine,
        code: 0,
    },
    {
        name: 'known_hosts holds only the RSA key: accepted',
        file: 'known_hosts',
        line: (s) => s.extraHostKeys[1].knownHostsLine,
        code: 0,
    },
    {
        name: 'the key is in known_hosts2: accepted',
        file: 'known_hosts2',
        line: (s) => s.extraHostKeys[0].knownHostsLine,
        code: 0,
    },
    {
        name: 'known_hosts holds another ECDSA key for the address: refused (exit 5)',
        file: 'known_hosts',
        line: (s, other) => other.extraHostKeys[0].knownHostsLine.replace(/^\[127\.0\.0\.1\]:\d+/, `[127.0.0.1]:${s.port}`),
        code: 5,
    },
];
for (const transport of ['openssh', 'ssh2']) {
    for (const c of KNOWN_HOSTS_CASES) {
        test(`${transport} transport: ${c.name}`, { skip }, async () => {
            const { sshd, other } = await multiKeySshd();
            const u = await userEnv(keyring.env);
            const keyFile = join(u.home, 'id_user');
            await writeFile(keyFile, userKey.private, { mode: 0o600 });
            await mkdir(join(u.home, '.ssh'), { recursive: true, mode: 0o700 });
            await writeFile(join(u.home, '.ssh', c.file), `${c.line(sshd, other)}\n`);
            await writeSandboxProfile(idp, u.env());
            for (const [k, v] of Object.entries({
                bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
                mcp_url: plane.url,
                identity_file: keyFile,
                ssh_transport: transport,
            })) {
                assert.equal((await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env())).code, 0);
            }
            assert.equal((await deviceLogin(u.env(), alice)).code, 0);
            const r = await runCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--max-session', '1'], u.env());
            assert.equal(r.code, c.code, r.stderr);
            if (c.code === 5) {
                assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
                assert.match(r.stderr, /error: the host key of \[127\.0\.0\.1\]:\d+ has changed; refusing to connect/);
            }
        });
    }
}
