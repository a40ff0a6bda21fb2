/**
 * What agent.test.ts and agent-trust.test.ts share: the sandbox IdP (DPoP-binding), control plane and an
 * ssh2 bastion for the whole file, and users with no keychain (no D-Bus) and a runtime directory of their
 * own. Every agent a test starts is stopped in the file's `after`, which then checks none is left running.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { type Bastion, generateUserKey, startBastion } from '../../sandbox/bastion.js';
import { type ControlPlane, startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type SandboxIdp, startIdp } from '../../sandbox/idp.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { agentPaths } from '../../src/auth/agent-paths.js';
import { runCli } from './cli.js';
import { type UserEnv, userEnv } from './env.js';
import { alice } from './stack.js';

export interface TestUser {
  user: UserEnv;
  env: Record<string, string>;
  runtime: string;
  cli(...args: string[]): ReturnType<typeof runCli>;
  paths: ReturnType<typeof agentPaths>;
}

export interface AgentFile {
  readonly idp: SandboxIdp;
  readonly plane: ControlPlane;
  readonly bastion: Bastion;
  /** The SSH key every user's identity file holds. */
  key: ReturnType<typeof generateUserKey>;
  /** A user with no keychain (no D-Bus) and a runtime directory of its own, the sandbox profile set. */
  newUser(extra?: Record<string, string>): Promise<TestUser>;
  /** Alice's device login for `u` (exit 0 asserted). */
  login(u: TestUser, args?: string[]): ReturnType<typeof deviceLogin>;
  /** The pids of agent processes started for this user (found by their HOME, as `ps e` would). */
  agentPids(user: UserEnv): Promise<number[]>;
  /** The pid `agent status --json` reports. */
  agentPid(u: TestUser): Promise<number>;
  /** Waits (bounded) until the process is gone. */
  gone(pid: number, timeoutMs?: number): Promise<boolean>;
}

async function agentPids(user: UserEnv): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      if (!(cmdline.includes('agent') && cmdline.includes('run'))) continue;
      const environ = (await readFile(`/proc/${entry}/environ`, 'utf8')).split('\0');
      if (environ.includes(`HOME=${user.home}`)) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

async function agentPid(u: TestUser): Promise<number> {
  const result = await runCli(['--json', 'agent', 'status'], u.env);
  assert.equal(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { pid: number }).pid;
}

async function gone(pid: number, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** Registers the file's `before` and `after`; `keyName` is the SSH key's comment. */
export function agentFile(keyName = 'agent-test'): AgentFile {
  let idp: SandboxIdp | undefined;
  let plane: ControlPlane | undefined;
  let bastion: Bastion | undefined;
  const key = generateUserKey(keyName);
  const users: Array<{ user: UserEnv; env: Record<string, string> }> = [];
  const started = <T>(part: T | undefined): T => {
    if (part === undefined) throw new Error('the agent test stack is not started (used outside a test?)');
    return part;
  };

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
    for (const { user } of users) assert.deepEqual(await agentPids(user), [], 'no agent left running');
    await bastion?.close();
    await plane?.close();
    await idp?.close();
  });

  return {
    get idp() {
      return started(idp);
    },
    get plane() {
      return started(plane);
    },
    get bastion() {
      return started(bastion);
    },
    key,
    async newUser(extra = {}) {
      const b = started(bastion);
      const user = await userEnv();
      const runtime = join(user.root, 'run');
      await mkdir(runtime, { mode: 0o700 });
      const keyFile = join(user.home, 'id_test');
      await writeFile(keyFile, key.privateKey, { mode: 0o600 });
      const env = user.env({ XDG_RUNTIME_DIR: runtime, ...extra });
      await writeSandboxProfile(started(idp), env, 'sandbox', {
        bastion: `${b.username}@127.0.0.1:${b.port}`,
        identityFile: keyFile,
        fingerprints: [`[127.0.0.1]:${b.port}=${b.fingerprint}`],
        mcpUrl: started(plane).url,
      });
      users.push({ user, env });
      return {
        user,
        env,
        runtime,
        cli: (...args) => runCli(['--profile', 'sandbox', ...args], env),
        paths: agentPaths(env, user.configDir),
      };
    },
    async login(u, args = []) {
      const result = await deviceLogin(u.env, alice, { args });
      assert.equal(result.code, 0, result.stderr);
      return result;
    },
    agentPids,
    agentPid,
    gone,
  };
}
