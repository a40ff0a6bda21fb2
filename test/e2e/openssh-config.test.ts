/**
 * ~/.ssh/config as OpenSSH reads it, for both transports (ssh2 resolves it with `ssh -G` where ssh exists).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deviceLogin } from '../../sandbox/device-login.js';
import { generateEd25519 } from '../../sandbox/ssh-keys.js';
import { runCli } from '../helpers/cli.js';
import { alice, opensshNeeds, opensshStack } from '../helpers/openssh-stack.js';
import { gate } from '../helpers/requires.js';

const _exec = promisify(execFile);
const g = gate(await opensshNeeds());
const stack = opensshStack(g);

/**
 * ~/.ssh/config the way OpenSSH reads it, for both transports (ssh2 resolves it with `ssh -G` where ssh
 * exists): a Host alias defined in an Included file, a Match block, HostKeyAlias, IdentitiesOnly with seven
 * wrong keys in the agent (more than sshd's MaxAuthTries of 6), and a ProxyCommand (OpenSSH runs it; ssh2
 * says in one line that it cannot).
 */
const CONFIG_CASES: Array<{
  name: string;
  config(o: {
    port: number;
    keyFile: string;
    root: string;
    fp: string;
  }): Promise<{ main: string; files?: Record<string, string>; knownHosts?: string; bastion: string }>;
  agentKeys?: number;
  ssh2: 'ok' | 'proxycommand';
}> = [
  {
    name: 'a Host alias from an Included file (HostName, Port, User, IdentityFile)',
    config: async ({ port, keyFile, root }) => ({
      main: `Include ${join(root, 'conf.d')}/*.conf\n`,
      files: {
        'conf.d/bastion.conf': `Host corp-bastion\n  HostName 127.0.0.1\n  Port ${port}\n  User ${stack.caSshd.username}\n  IdentityFile ${keyFile}\n`,
      },
      bastion: 'corp-bastion',
    }),
    ssh2: 'ok',
  },
  {
    name: 'a Match host block with a %h token',
    config: async ({ port, keyFile }) => ({
      main: `Match host matched-bastion\n  HostName 127.0.0.1\n  Port ${port}\n  IdentityFile ${keyFile}\n  User ${stack.caSshd.username}\n`,
      bastion: 'matched-bastion',
    }),
    ssh2: 'ok',
  },
  {
    name: 'HostKeyAlias: the key is known under the alias name only',
    config: async ({ port, keyFile }) => ({
      main: `Host aliased\n  HostName 127.0.0.1\n  Port ${port}\n  User ${stack.caSshd.username}\n  IdentityFile ${keyFile}\n  HostKeyAlias bastion.corp.example\n`,
      knownHosts: 'alias',
      bastion: 'aliased',
    }),
    ssh2: 'ok',
  },
  {
    name: 'IdentitiesOnly with seven wrong keys in the agent',
    config: async ({ port, keyFile }) => ({
      main: `Host only-mine\n  HostName 127.0.0.1\n  Port ${port}\n  User ${stack.caSshd.username}\n  IdentityFile ${keyFile}\n  IdentitiesOnly yes\n`,
      bastion: 'only-mine',
    }),
    agentKeys: 7,
    ssh2: 'ok',
  },
  {
    name: 'a ProxyCommand (the host reached through a command, like SSM or cloudflared)',
    config: async ({ port, keyFile }) => ({
      main: `Host via-command\n  HostName 127.0.0.1\n  Port ${port}\n  User ${stack.caSshd.username}\n  IdentityFile ${keyFile}\n  ProxyCommand ${process.execPath} -e "const s=require('net').connect(%p,'%h');process.stdin.pipe(s).pipe(process.stdout)"\n`,
      bastion: 'via-command',
    }),
    ssh2: 'proxycommand',
  },
];

for (const transport of ['openssh', 'ssh2'] as const) {
  for (const c of CONFIG_CASES) {
    g.test(`${transport} transport, ~/.ssh/config: ${c.name}`, async () => {
      const { sshd } = await stack.multiKeySshd();
      const u = await stack.user({ keyFile: true, settings: {}, noLogin: true });
      const keyFile = u.keyFile;
      const cfg = await c.config({ port: sshd.port, keyFile, root: u.root, fp: sshd.fingerprint });
      await mkdir(join(u.home, '.ssh'), { recursive: true, mode: 0o700 });
      await writeFile(join(u.home, '.ssh', 'config'), cfg.main, { mode: 0o600 });
      for (const [name, text] of Object.entries(cfg.files ?? {})) {
        await mkdir(join(u.root, name, '..'), { recursive: true });
        await writeFile(join(u.root, name), text, { mode: 0o600 });
      }
      const hostLine = sshd.knownHostsLine.split(' ').slice(1).join(' ');
      await writeFile(
        join(u.home, '.ssh', 'known_hosts'),
        `${cfg.knownHosts === 'alias' ? 'bastion.corp.example' : `[127.0.0.1]:${sshd.port}`} ${hostLine}\n`,
      );
      const extra: Record<string, string> = {};
      let agentStop: (() => void) | undefined;
      if (c.agentKeys) {
        const { startAgent } = await import('../helpers/ssh-agent.js');
        const wrong = Array.from({ length: c.agentKeys }, (_, i) => generateEd25519(`wrong-${i}`).private);
        const agent = await startAgent(u.root, wrong);
        extra['SSH_AUTH_SOCK'] = agent.sock;
        agentStop = agent.stop;
      }
      try {
        for (const [k, v] of Object.entries({
          bastion: cfg.bastion,
          mcp_url: stack.plane.url,
          ssh_transport: transport,
        })) {
          assert.equal((await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env())).code, 0);
        }
        assert.equal((await deviceLogin(u.env(), alice)).code, 0);
        const r = await stack.connectOnce(u, extra);
        if (transport === 'ssh2' && c.ssh2 === 'proxycommand') {
          assert.equal(r.code, 2, r.stderr);
          assert.match(r.stderr, /ProxyCommand .* the ssh2 transport cannot run — use the OpenSSH transport/);
        } else assert.equal(r.code, 0, r.stderr);
      } finally {
        agentStop?.();
      }
    });
  }
}
