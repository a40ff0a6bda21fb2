/**
 * The OpenSSH and ssh2 transports against real sshds, part 2: the MCP endpoint on IPv6 and on a Unix socket,
 * a post-quantum-only sshd, a 2FA bastion on a terminal, host certificates (@cert-authority).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startBastion } from '../../sandbox/bastion.js';
import { startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { generateEd25519 } from '../../sandbox/ssh-keys.js';
import { haveSshd, startSshd } from '../../sandbox/sshd.js';
import { runCli, startCli } from '../helpers/cli.js';
import { userEnv } from '../helpers/env.js';
import { tmuxServer } from '../helpers/tmux.js';
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
function text(result) {
    const content = result.content ?? [];
    return content.map((c) => c.text ?? '').join('\n');
}
/** An sshd with ed25519, ECDSA and RSA host keys, as most real ones have; the user's own key file. */
let multiKey;
let otherSshd;
const userKey = generateEd25519('known-hosts-user');
after(async () => {
    await multiKey?.close();
    await otherSshd?.close();
});
/** A byte pipe from `listen` to the control plane: the MCP endpoint on [::1] or on a Unix socket. */
async function relay(listenOn) {
    const { createServer, connect } = await import('node:net');
    const server = createServer((s) => {
        const up = connect(plane.port, '127.0.0.1');
        s.pipe(up).pipe(s);
        s.on('error', () => up.destroy());
        up.on('error', () => s.destroy());
    });
    await new Promise((resolve) => server.listen(listenOn, resolve));
    const addr = server.address();
    return { port: typeof addr === 'object' && addr ? addr.port : 0, close: () => server.close() };
}
for (const transport of ['openssh', 'ssh2']) {
    for (const where of ['ipv6', 'unix']) {
        const title = where === 'ipv6'
            ? 'an IPv6 mcp_url http://[::1]:P/mcp works'
            : 'an MCP endpoint on a Unix socket on the bastion (http+unix://%2F…sock/mcp) works';
        test(`${transport} transport: ${title}`, { skip }, async () => {
            const u = await userEnv(keyring.env);
            const sock = join(u.root, 'mcp.sock');
            const r = await relay(where === 'ipv6' ? { host: '::1', port: 0 } : { path: sock });
            const sshd = await startSshd({
                authorizedKeys: [userKey.public],
                permitOpen: where === 'ipv6' ? [{ host: '::1', port: r.port }] : [],
                // sshd connects forwards with its AddressFamily; a Unix socket needs streamlocal forwarding, and
                // PermitOpen applies to socket paths too (channels.c channel_connect_to_path) with no way to name one.
                extraConfig: where === 'ipv6' ? ['AddressFamily any'] : ['AllowStreamLocalForwarding local', 'PermitOpen any'],
            });
            try {
                const keyFile = join(u.home, 'id_user');
                await writeFile(keyFile, userKey.private, { mode: 0o600 });
                await writeSandboxProfile(idp, u.env());
                const mcpUrl = where === 'ipv6' ? `http://[::1]:${r.port}/mcp` : `http+unix://${encodeURIComponent(sock)}/mcp`;
                for (const [k, v] of Object.entries({
                    bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
                    host_key_fingerprints: `[127.0.0.1]:${sshd.port}=${sshd.fingerprint}`,
                    mcp_url: mcpUrl,
                    identity_file: keyFile,
                    ssh_transport: transport,
                    // The control plane checks a DPoP proof's htu against its own URL; the relay changes the URL.
                    dpop: 'false',
                })) {
                    const set = await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env());
                    assert.equal(set.code, 0, set.stderr);
                }
                assert.equal((await deviceLogin(u.env(), alice)).code, 0);
                const run = startCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], u.env(), 60_000);
                run.child.stdin.end();
                running.push(run);
                const [, local] = await run.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 30_000);
                const client = new Client({ name: 'test', version: '1.0.0' });
                await client.connect(new StreamableHTTPClientTransport(new URL(local)));
                assert.match(text(await client.callTool({ name: 'list_workflows', arguments: {} })), /wf-acme-deploy/);
                await client.close();
                run.child.kill('SIGINT');
                assert.equal((await run.done).code, 130);
            }
            finally {
                r.close();
                await sshd.close();
            }
        });
    }
}
for (const transport of ['openssh', 'ssh2']) {
    test(`${transport} transport: an sshd allowing only sntrup761x25519-sha512 (post-quantum) kex`, {
        skip,
    }, async () => {
        const sshd = await startSshd({
            authorizedKeys: [userKey.public],
            permitOpen: [{ host: '127.0.0.1', port: plane.port }],
            extraConfig: ['KexAlgorithms sntrup761x25519-sha512@openssh.com'],
        });
        try {
            const u = await userEnv(keyring.env);
            const keyFile = join(u.home, 'id_user');
            await writeFile(keyFile, userKey.private, { mode: 0o600 });
            await writeSandboxProfile(idp, u.env());
            for (const [k, v] of Object.entries({
                bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
                host_key_fingerprints: `[127.0.0.1]:${sshd.port}=${sshd.fingerprint}`,
                mcp_url: plane.url,
                identity_file: keyFile,
                ssh_transport: transport,
            })) {
                assert.equal((await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env())).code, 0);
            }
            assert.equal((await deviceLogin(u.env(), alice)).code, 0);
            const r = await runCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--max-session', '1'], u.env());
            if (transport === 'openssh')
                assert.equal(r.code, 0, r.stderr);
            else {
                assert.equal(r.code, 1, r.stderr);
                assert.match(r.stderr, /ssh2 has no post-quantum key exchange.* — use the OpenSSH transport/);
                assert.equal(r.stderr
                    .trim()
                    .split('\n')
                    .filter((l) => l.startsWith('error:')).length, 1);
            }
        }
        finally {
            await sshd.close();
        }
    });
}
test('a 2FA bastion (publickey, then keyboard-interactive): ssh asks for the code on the terminal (tmux); no terminal → exit 4', {
    skip,
}, async () => {
    const bastion = await startBastion({
        authorizedKeys: [userKey.public],
        allow: [{ host: '127.0.0.1', port: plane.port }],
        secondFactor: { prompt: 'One-time code: ', answer: '424242' },
    });
    const tmux = tmuxServer('mcp-secure-2fa');
    try {
        const u = await userEnv(keyring.env);
        const keyFile = join(u.home, 'id_user');
        await writeFile(keyFile, userKey.private, { mode: 0o600 });
        await writeSandboxProfile(idp, u.env());
        for (const [k, v] of Object.entries({
            bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
            host_key_fingerprints: `[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`,
            mcp_url: plane.url,
            identity_file: keyFile,
            ssh_transport: 'openssh',
        })) {
            assert.equal((await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env())).code, 0);
        }
        assert.equal((await deviceLogin(u.env(), alice)).code, 0);
        const noTty = await runCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], u.env());
        assert.equal(noTty.code, 4, noTty.stderr);
        assert.match(noTty.stderr, /refused authentication \(ssh: .*Permission denied/);
        await tmux.start('otp', u.env(), [
            '--profile',
            'sandbox',
            'connect',
            '--tenant',
            'acme',
            '--port',
            '0',
            '--max-session',
            '3',
        ]);
        assert.match(await tmux.waitFor('otp', /One-time code/), /One-time code: /);
        await tmux.run('send-keys', '-t', 'otp', '424242', 'Enter');
        const screen = await tmux.waitFor('otp', /Listening on/);
        assert.match(screen, /Listening on http:\/\/127\.0\.0\.1:\d+\/mcp/);
        assert.doesNotMatch(screen, /424242/, 'the code is not echoed');
    }
    finally {
        await tmux.kill();
        await bastion.close();
    }
});
/** A host CA: sshd presents a host certificate; known_hosts trusts the CA with `@cert-authority`. */
const HOST_CA_CASES = [
    {
        name: 'a host certificate from a CA in known_hosts (@cert-authority): accepted without a prompt',
        trusted: 'same',
        code: 0,
    },
    {
        name: 'a host certificate from another CA than the @cert-authority one: refused (exit 5)',
        trusted: 'other',
        code: 5,
    },
];
for (const c of HOST_CA_CASES) {
    test(`openssh transport: ${c.name}`, { skip }, async () => {
        const { createSshCa } = await import('../../sandbox/ssh-ca.js');
        const hostCa = createSshCa('host-ca');
        const otherCa = createSshCa('other-ca');
        const nowSec = Math.floor(Date.now() / 1000);
        const sshd = await startSshd({
            authorizedKeys: [userKey.public],
            permitOpen: [{ host: '127.0.0.1', port: plane.port }],
            hostCertificate: (publicKey) => hostCa.issue({
                publicKey,
                type: 'host',
                keyId: 'bastion',
                principals: ['127.0.0.1'],
                validAfter: nowSec - 60,
                validBefore: nowSec + 3600,
            }),
        });
        try {
            const u = await userEnv(keyring.env);
            const keyFile = join(u.home, 'id_user');
            await writeFile(keyFile, userKey.private, { mode: 0o600 });
            await mkdir(join(u.home, '.ssh'), { recursive: true, mode: 0o700 });
            const ca = c.trusted === 'same' ? hostCa : otherCa;
            await writeFile(join(u.home, '.ssh', 'known_hosts'), `@cert-authority * ${ca.publicKeyLine}\n`);
            await writeSandboxProfile(idp, u.env());
            for (const [k, v] of Object.entries({
                bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
                mcp_url: plane.url,
                identity_file: keyFile,
                ssh_transport: 'openssh',
            })) {
                assert.equal((await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env())).code, 0);
            }
            assert.equal((await deviceLogin(u.env(), alice)).code, 0);
            const r = await runCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--max-session', '1'], u.env());
            assert.equal(r.code, c.code, r.stderr);
            assert.doesNotMatch(r.stderr, /Permanently added/, 'nothing recorded: the CA vouches for the host');
        }
        finally {
            await sshd.close();
        }
    });
}
