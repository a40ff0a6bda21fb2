/**
 * The stack the OpenSSH-transport e2e files share (test/e2e/openssh*.test.ts): a real Secret Service, the
 * sandbox IdP and control plane, an sshd that trusts only the control plane's SSH CA, and on demand an sshd
 * with ed25519, ECDSA and RSA host keys that knows `userKey`. `user()` makes a fresh user logged in as alice
 * with a profile set through the product's own `config set`.
 *
 *   const g = gate(opensshNeeds());
 *   const stack = opensshStack(g);
 *   g.test('…', async () => { const u = await stack.user({ settings: { … } }); … });
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ControlPlane, startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { generateEd25519 } from '../../sandbox/ssh-keys.js';
import { haveSshd, type Sshd, startSshd } from '../../sandbox/sshd.js';
import { type CliRun, runCli } from './cli.js';
import { type UserEnv, userEnv } from './env.js';
import { type Gated, missing } from './requires.js';

export const alice = USERS.find((u) => u.username === 'alice')!;

/** Why the OpenSSH e2e files cannot run here (a Debian package to install), or undefined. */
export async function opensshNeeds(): Promise<string | undefined> {
  const absent = missing('sshd', 'ssh', 'secret-service');
  if (absent) return absent;
  return (await haveSshd())
    ? undefined
    : 'sshd cannot start here: its privilege-separation dir /run/sshd is missing and cannot be made (Debian: openssh-server)';
}

export interface UserOptions {
  /** Profile settings after the sandbox's own (bastion, mcp_url, …), each through `config set`. */
  settings: Record<string, string>;
  /** `<root>/run` as $XDG_RUNTIME_DIR for every command of this user (the agent included). */
  runtime?: boolean;
  /** Writes `userKey` to `<home>/id_user` (0600) first; `{keyFile}` in settings is replaced by its path. */
  keyFile?: boolean;
  /** Files under ~/.ssh (known_hosts, config, …), written before the profile. */
  ssh?: Record<string, string>;
  /** Skip the device login (a test that logs in itself). */
  noLogin?: boolean;
}

export interface StackUser extends UserEnv {
  keyFile: string;
}

export interface OpenSshStack {
  readonly keyring: SecretService;
  readonly idp: SandboxIdp;
  readonly plane: ControlPlane;
  /** Trusts only the control plane's CA; no authorized_keys. */
  readonly caSshd: Sshd;
  /** A user key that `multiKeySshd()` (and any sshd a test starts with it) accepts. */
  readonly userKey: { private: string; public: string };
  /** CLI runs killed at the end of the file. */
  readonly running: CliRun[];
  /** An sshd with ed25519, ECDSA and RSA host keys knowing `userKey`, and another host's (ECDSA) sshd. */
  multiKeySshd(): Promise<{ sshd: Sshd; other: Sshd }>;
  user(o: UserOptions): Promise<StackUser>;
  /** `connect --tenant acme --port 0 --max-session 1` for this user: connects, then ends (exit 0) or fails. */
  connectOnce(u: UserEnv, extraEnv?: Record<string, string>): ReturnType<typeof runCli>;
}

export interface StackOptions {
  /** The sandbox IdP's tenant-token lifetime in seconds (default 900): short, to see renewals. */
  tenantTokenTtl?: number;
}

export function opensshStack(g: Gated, opts: StackOptions = {}): OpenSshStack {
  let keyring: SecretService | undefined;
  let idp: SandboxIdp | undefined;
  let plane: ControlPlane | undefined;
  let caSshd: Sshd | undefined;
  let multi: Promise<{ sshd: Sshd; other: Sshd }> | undefined;
  const running: CliRun[] = [];
  const userKey = generateEd25519('known-hosts-user');
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what} is not started (used outside a test?)`);
    return v;
  };

  g.before(async () => {
    keyring = await startSecretService();
    idp = await startIdp({
      deviceInterval: 1,
      ...(opts.tenantTokenTtl ? { tenantTokenTtl: opts.tenantTokenTtl } : {}),
    });
    plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
    caSshd = await startSshd({
      authorizedKeys: [],
      permitOpen: [{ host: '127.0.0.1', port: plane.port }],
      trustedUserCaKeys: [plane.sshCa.publicKeyLine],
      authorizedPrincipals: [alice.sub],
    });
  });
  g.after(async () => {
    for (const r of running) r.child.kill('SIGKILL');
    const m = await multi?.catch(() => undefined);
    await m?.sshd.close();
    await m?.other.close();
    await caSshd?.close();
    await plane?.close();
    await idp?.close();
    await keyring?.stop();
  });

  const stack: OpenSshStack = {
    get keyring() {
      return need(keyring, 'the Secret Service');
    },
    get idp() {
      return need(idp, 'the IdP');
    },
    get plane() {
      return need(plane, 'the control plane');
    },
    get caSshd() {
      return need(caSshd, 'the CA sshd');
    },
    userKey,
    running,
    multiKeySshd() {
      multi ??= (async () => {
        const sshd = await startSshd({
          authorizedKeys: [userKey.public],
          permitOpen: [{ host: '127.0.0.1', port: stack.plane.port }],
          extraHostKeyTypes: ['ecdsa', 'rsa'],
        });
        // Another host's ECDSA key: the "someone else answers on that address" case.
        const other = await startSshd({ authorizedKeys: [], permitOpen: [], extraHostKeyTypes: ['ecdsa'] });
        return { sshd, other };
      })();
      return multi;
    },
    async user(o) {
      const base = await userEnv(stack.keyring.env);
      const run = join(base.root, 'run');
      if (o.runtime) await mkdir(run, { mode: 0o700 });
      const u: UserEnv = o.runtime
        ? { ...base, env: (extra = {}) => base.env({ XDG_RUNTIME_DIR: run, ...extra }) }
        : base;
      const keyFile = join(u.home, 'id_user');
      if (o.keyFile) await writeFile(keyFile, userKey.private, { mode: 0o600 });
      if (o.ssh) {
        await mkdir(join(u.home, '.ssh'), { recursive: true, mode: 0o700 });
        for (const [name, content] of Object.entries(o.ssh))
          await writeFile(join(u.home, '.ssh', name), content, { mode: 0o600 });
      }
      await writeSandboxProfile(stack.idp, u.env());
      for (const [k, v] of Object.entries(o.settings)) {
        const r = await runCli(
          ['--profile', 'sandbox', 'config', 'set', k, v.replaceAll('{keyFile}', keyFile)],
          u.env(),
        );
        assert.equal(r.code, 0, r.stderr);
      }
      if (!o.noLogin) assert.equal((await deviceLogin(u.env(), alice)).code, 0);
      return { ...u, keyFile };
    },
    connectOnce(u, extraEnv = {}) {
      return runCli(
        ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--max-session', '1'],
        u.env(extraEnv),
      );
    },
  };
  return stack;
}

/** The text of an MCP tool result. */
export function toolText(result: unknown): string {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content ?? [];
  return content.map((c) => c.text ?? '').join('\n');
}

/** Every file under `dir` (bounded), for the key-material scan. */
export async function filesUnder(dir: string, depth = 0): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  if (depth > 8) return [];
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p, depth + 1)));
    else if (e.isFile()) out.push(p);
  }
  return out.slice(0, 5000);
}

/** An OpenSSH or PEM private key, in any of its armours (built from parts: this file is no key itself). */
export const PRIVATE_KEY = new RegExp(
  `${['PRIVATE', 'KEY-----'].join(' ')}|${['b3BlbnNzaC1rZXktdjE'].join('')}`,
);
