/**
 * Both transports against what OpenSSH itself does, part 4: every known_hosts source the interop run found
 * "unknown" (a port-less entry for a non-22 port, GlobalKnownHostsFile, hashed entries under a mixed-case
 * HostName, `@revoked` ed25519 beside a valid ECDSA key) with the real `ssh` as the oracle for the verdict;
 * `@cert-authority` with ssh2. (Encrypted keys in the agent and dropbear: openssh-servers.test.ts.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Sshd } from '../../sandbox/sshd.js';
import { startSshd } from '../../sandbox/sshd.js';
import type { UserEnv } from '../helpers/env.js';
import { opensshNeeds, opensshStack } from '../helpers/openssh-stack.js';
import { gate } from '../helpers/requires.js';

const exec = promisify(execFile);
const g = gate(await opensshNeeds());
const stack = opensshStack(g);
const TRANSPORTS = ['openssh', 'ssh2'] as const;

/** The key part (`TYPE AAAA…`) of a known_hosts line. */
const keyOf = (line: string) => line.split(' ').slice(1, 3).join(' ');

/**
 * The oracle: what the real `ssh` decides about the host key with the same files (the user's config, its
 * known_hosts and known_hosts2, whatever GlobalKnownHostsFile the config names), strictly and without a
 * terminal. sshd's ForceCommand is /bin/false, so an accepted host ends with exit 1 and no verification error.
 */
async function sshVerdict(u: UserEnv, keyFile: string, destination: string): Promise<'accepted' | 'refused'> {
  const config = join(u.home, '.ssh', 'config');
  const hasConfig = await readFile(config).then(
    () => true,
    () => false,
  );
  const r = await exec(
    'ssh',
    [
      '-F',
      hasConfig ? config : '/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${join(u.home, '.ssh', 'known_hosts')} ${join(u.home, '.ssh', 'known_hosts2')}`,
      '-o',
      'IdentitiesOnly=yes',
      '-i',
      keyFile,
      '-o',
      'ConnectTimeout=15',
      ...(destination.includes(':')
        ? ['-p', destination.split(':')[1]!, destination.split(':')[0]!]
        : [destination]),
      'true',
    ],
    { timeout: 30_000 },
  ).then(
    () => ({ stderr: '', code: 0 }),
    (err: { stderr?: string; code?: number }) => ({ stderr: err.stderr ?? '', code: err.code ?? -1 }),
  );
  if (/Host key verification failed|HOST IDENTIFICATION HAS CHANGED|REVOKED HOST KEY/.test(r.stderr))
    return 'refused';
  assert.doesNotMatch(
    r.stderr,
    /Permission denied|Connection refused/,
    `the oracle did not get in: ${r.stderr}`,
  );
  return 'accepted';
}

/** Hashes every host name of a known_hosts text the way `ssh-keygen -H` does (HashKnownHosts). */
async function hashed(root: string, text: string): Promise<string> {
  const file = join(root, `hash-${Math.random().toString(36).slice(2)}`);
  await writeFile(file, text, { mode: 0o600 });
  await exec('ssh-keygen', ['-H', '-f', file]);
  const out = await readFile(file, 'utf8');
  await rm(file, { force: true });
  await rm(`${file}.old`, { force: true });
  assert.match(out, /^\|1\|/);
  return out;
}

interface SourceCase {
  name: string;
  /** Files under ~/.ssh, the bastion setting, and files elsewhere (the global known_hosts). */
  setup(o: { sshd: Sshd; other: Sshd; root: string; keyFile: string }): Promise<{
    ssh: Record<string, string>;
    bastion: string;
    files?: Record<string, string>;
  }>;
}

const SOURCE_CASES: SourceCase[] = [
  {
    // OpenSSH looks up `[host]:port` for any port but 22, then, when nothing is listed under that name,
    // the bare host: the very same key there is accepted ("found matching key w/out port", OpenSSH 9.2).
    name: 'a port-less known_hosts entry, the bastion on another port than 22',
    setup: async ({ sshd }) => ({
      ssh: { known_hosts: `127.0.0.1 ${keyOf(sshd.knownHostsLine)}\n` },
      bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
    }),
  },
  {
    // The system-wide source, /etc/ssh/ssh_known_hosts by default: root's file on a machine the tests share,
    // so the test names its own with GlobalKnownHostsFile (ssh_config(5)), which both transports read.
    name: 'the key only in the global known_hosts (GlobalKnownHostsFile)',
    setup: async ({ sshd, root, keyFile }) => ({
      ssh: {
        config: `Host global-bastion\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  User ${sshd.username}\n  IdentityFile ${keyFile}\n  GlobalKnownHostsFile ${join(root, 'global', 'ssh_known_hosts')}\n`,
      },
      bastion: 'global-bastion',
      files: { 'global/ssh_known_hosts': `${sshd.extraHostKeys[0]!.knownHostsLine}\n` },
    }),
  },
  {
    // ssh.c lower-cases the host name before known_hosts is consulted, so the entry hashed from the lower-case
    // name matches a HostName written `LocalHost`.
    name: 'a hashed known_hosts entry, HostName in mixed case',
    setup: async ({ sshd, root, keyFile }) => ({
      ssh: {
        config: `Host mixed\n  HostName LocalHost\n  Port ${sshd.port}\n  User ${sshd.username}\n  IdentityFile ${keyFile}\n`,
        known_hosts: await hashed(root, `[localhost]:${sshd.port} ${keyOf(sshd.knownHostsLine)}\n`),
      },
      bastion: 'mixed',
    }),
  },
  {
    // ... and a different key under the bare name is not "changed": nothing is known (ssh refuses, strictly).
    name: 'a port-less known_hosts entry with another key, the bastion on another port than 22',
    setup: async ({ sshd, other }) => ({
      ssh: { known_hosts: `127.0.0.1 ${keyOf(other.extraHostKeys[0]!.knownHostsLine)}\n` },
      bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
    }),
  },
  {
    name: 'the ed25519 key @revoked, the ECDSA key valid',
    setup: async ({ sshd }) => ({
      ssh: {
        known_hosts: `@revoked [127.0.0.1]:${sshd.port} ${keyOf(sshd.knownHostsLine)}\n${sshd.extraHostKeys[0]!.knownHostsLine}\n`,
      },
      bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
    }),
  },
  {
    name: 'a hashed entry for the ECDSA key only (the server prefers ed25519)',
    setup: async ({ sshd, root }) => ({
      ssh: { known_hosts: await hashed(root, `${sshd.extraHostKeys[0]!.knownHostsLine}\n`) },
      bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
    }),
  },
];

for (const c of SOURCE_CASES) {
  for (const transport of TRANSPORTS) {
    g.test(`${transport} transport decides as ssh does: ${c.name}`, async () => {
      const { sshd, other } = await stack.multiKeySshd();
      const u = await stack.user({ keyFile: true, settings: {}, noLogin: true });
      const set = await c.setup({ sshd, other, root: u.root, keyFile: u.keyFile });
      await mkdir(join(u.home, '.ssh'), { recursive: true, mode: 0o700 });
      for (const [name, text] of Object.entries(set.ssh))
        await writeFile(join(u.home, '.ssh', name), text, { mode: 0o600 });
      for (const [name, text] of Object.entries(set.files ?? {})) {
        await mkdir(join(u.root, name, '..'), { recursive: true });
        await writeFile(join(u.root, name), text, { mode: 0o644 });
      }
      const expected = await sshVerdict(u, u.keyFile, set.bastion);
      const settings: Record<string, string> = {
        bastion: set.bastion,
        mcp_url: stack.plane.url,
        ssh_transport: transport,
        ...(set.bastion.includes('@') ? { identity_file: u.keyFile } : {}),
      };
      const { runCli } = await import('../helpers/cli.js');
      for (const [k, v] of Object.entries(settings))
        assert.equal((await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env())).code, 0);
      const { deviceLogin } = await import('../../sandbox/device-login.js');
      const { alice } = await import('../helpers/openssh-stack.js');
      assert.equal((await deviceLogin(u.env(), alice)).code, 0);
      const r = await stack.connectOnce(u);
      assert.equal(r.code, expected === 'accepted' ? 0 : 5, `ssh ${expected} the host; we said: ${r.stderr}`);
      if (expected === 'refused') assert.match(r.stderr, /^error: .*host key/m);
    });
  }
}

g.test(
  'ssh2 transport: a host certificate trusted by @cert-authority is refused in one line naming the OpenSSH transport (exit 5); ssh accepts it',
  async () => {
    const { createSshCa } = await import('../../sandbox/ssh-ca.js');
    const hostCa = createSshCa('host-ca');
    const nowSec = Math.floor(Date.now() / 1000);
    const sshd = await startSshd({
      authorizedKeys: [stack.userKey.public],
      permitOpen: [{ host: '127.0.0.1', port: stack.plane.port }],
      hostCertificate: (publicKey) =>
        hostCa.issue({
          publicKey,
          type: 'host',
          keyId: 'bastion',
          principals: ['127.0.0.1'],
          validAfter: nowSec - 60,
          validBefore: nowSec + 3600,
        }),
    });
    try {
      const u = await stack.user({
        keyFile: true,
        ssh: { known_hosts: `@cert-authority * ${hostCa.publicKeyLine}\n` },
        settings: {
          bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
          mcp_url: stack.plane.url,
          identity_file: '{keyFile}',
          ssh_transport: 'ssh2',
        },
      });
      assert.equal(await sshVerdict(u, u.keyFile, `${sshd.username}@127.0.0.1:${sshd.port}`), 'accepted');
      const r = await stack.connectOnce(u);
      assert.equal(r.code, 5, r.stderr);
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
      assert.equal(errors.length, 1, r.stderr);
      assert.match(
        errors[0]!,
        /@cert-authority.*ssh2 transport cannot check host certificates — use the OpenSSH transport/,
      );
    } finally {
      await sshd.close();
    }
  },
);
