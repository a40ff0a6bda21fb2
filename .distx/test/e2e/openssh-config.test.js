/**
 * ~/.ssh/config as OpenSSH reads it, for both transports (ssh2 resolves it with `ssh -G` where ssh exists).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { generateEd25519 } from '../../sandbox/ssh-keys.js';
import { haveSshd, startSshd } from '../../sandbox/sshd.js';
import { runCli } from '../helpers/cli.js';
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
/**
 * ~/.ssh/config the way OpenSSH reads it, for both transports (ssh2 resolves it with `ssh -G` where ssh
 * exists): a Host alias defined in an Included file, a Match block, HostKeyAlias, IdentitiesOnly with seven
 * wrong keys in the agent (more than sshd's MaxAuthTries of 6), and a ProxyCommand (OpenSSH runs it; ssh2
 * says in one line that it cannot).
 */
const CONFIG_CASES = [
    {
        name: 'a Host alias from an Included file (HostName, Port, User, IdentityFile)',
        config: async ({ port, keyFile, root }) => ({
            main: `Include ${join(root, 'conf.d')}/*.conf\n`,
            files: {
                'conf.d/bastion.conf': `Host corp-bastion\n  HostName 127.0.0.1\n  Port ${port}\n  User ${caSshd.username}\n  IdentityFile ${keyFile}\n`,
            },
            bastion: 'corp-bastion',
        }),
        ssh2: 'ok',
    },
    {
        name: 'a Match host block with a %h token',
        config: async ({ port, keyFile }) => ({
            main: `Match host matched-bastion\n  HostName 127.0.0.1\n  Port ${port}\n  IdentityFile ${keyFile}\n  User ${caSshd.username}\n`,
            bastion: 'matched-bastion',
        }),
        ssh2: 'ok',
    },
    {
        name: 'HostKeyAlias: the key is known under the alias name only',
        config: async ({ port, keyFile }) => ({
            main: `Host aliased\n  HostName 127.0.0.1\n  Port ${port}\n  User ${caSshd.username}\n  IdentityFile ${keyFile}\n  HostKeyAlias bastion.corp.example\n`,
            knownHosts: 'alias',
            bastion: 'aliased',
        }),
        ssh2: 'ok',
    },
    {
        name: 'IdentitiesOnly with seven wrong keys in the agent',
        config: async ({ port, keyFile }) => ({
            main: `Host only-mine\n  HostName 127.0.0.1\n  Port ${port}\n  User ${caSshd.username}\n  IdentityFile ${keyFile}\n  IdentitiesOnly yes\n`,
            bastion: 'only-mine',
        }),
        agentKeys: 7,
        ssh2: 'ok',
    },
    {
        name: 'a ProxyCommand (the host reached through a command, like SSM or cloudflared)',
        config: async ({ port, keyFile }) => ({
            main: `Host via-command\n  HostName 127.0.0.1\n  Port ${port}\n  User ${caSshd.username}\n  IdentityFile ${keyFile}\n  ProxyCommand ${process.execPath} -e "const s=require('net').connect(%p,'%h');process.stdin.pipe(s).pipe(process.stdout)"\n`,
            bastion: 'via-command',
        }),
        ssh2: 'proxycommand',
    },
];
for (const transport of ['openssh', 'ssh2']) {
    for (const c of CONFIG_CASES) {
        test(`${transport} transport, ~/.ssh/config: ${c.name}`, { skip }, async () => {
            const { sshd } = await multiKeySshd();
            const u = await userEnv(keyring.env);
            const keyFile = join(u.home, 'id_user');
            await writeFile(keyFile, userKey.private, { mode: 0o600 });
            const cfg = await c.config({ port: sshd.port, keyFile, root: u.root, fp: sshd.fingerprint });
            await mkdir(join(u.home, '.ssh'), { recursive: true, mode: 0o700 });
            await writeFile(join(u.home, '.ssh', 'config'), cfg.main, { mode: 0o600 });
            for (const [name, text] of Object.entries(cfg.files ?? {})) {
                await mkdir(join(u.root, name, '..'), { recursive: true });
                await writeFile(join(u.root, name), text, { mode: 0o600 });
            }
            const hostLine = sshd.knownHostsLine.split(' ').slice(1).join(' ');
            await writeFile(join(u.home, '.ssh', 'known_hosts'), `${cfg.knownHosts === 'alias' ? 'bastion.corp.example' : `[127.0.0.1]:${sshd.port}`} ${hostLine}\n`);
            const extra = {};
            let agentStop;
            if (c.agentKeys) {
                const { startAgent } = await import('../helpers/ssh-agent.js');
                const wrong = Array.from({ length: c.agentKeys }, (_, i) => generateEd25519(`wrong-${i}`).private);
                const agent = await startAgent(u.root, wrong);
                extra['SSH_AUTH_SOCK'] = agent.sock;
                agentStop = agent.stop;
            }
            try {
                await writeSandboxProfile(idp, u.env());
                for (const [k, v] of Object.entries({
                    bastion: cfg.bastion,
                    mcp_url: plane.url,
                    ssh_transport: transport,
                })) {
                    assert.equal((await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env())).code, 0);
                }
                assert.equal((await deviceLogin(u.env(), alice)).code, 0);
                const r = await runCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--max-session', '1'], u.env(extra));
                if (transport === 'ssh2' && c.ssh2 === 'proxycommand') {
                    assert.equal(r.code, 2, r.stderr);
                    assert.match(r.stderr, /ProxyCommand .* the ssh2 transport cannot run — use the OpenSSH transport/);
                }
                else
                    assert.equal(r.code, 0, r.stderr);
            }
            finally {
                agentStop?.();
            }
        });
    }
}
