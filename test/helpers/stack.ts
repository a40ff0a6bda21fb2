/**
 * The stack most end-to-end tests need, started once per file: a private-D-Bus gnome-keyring, the sandbox
 * IdP, the control plane (MCP server + audit feed), an ssh2 bastion that may reach it only, a user with a
 * `sandbox` profile pointing at all of it and an SSH key generated now; alice logged in (device flow).
 * `aliceFile()` is that stack for a whole test file, started in its `before` and closed in its `after`.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Bastion, generateUserKey, startBastion, type UserKey } from '../../sandbox/bastion.js';
import { type ControlPlane, startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { type SandboxTunnel, writeSandboxProfile } from '../../sandbox/profile.js';
import { type UserEnv, userEnv } from './env.js';
import { type Gated, gate, missing, type NeedName } from './requires.js';

export const alice = USERS.find((u) => u.username === 'alice')!;

export interface AliceStack {
  keyring: SecretService;
  idp: SandboxIdp;
  plane: ControlPlane;
  bastion: Bastion;
  user: UserEnv;
  /** The user's SSH private key (OpenSSH format), also written to `keyFile`. */
  keyText: string;
  keyFile: string;
  close(): Promise<void>;
}

/** An ssh2 bastion for a key made now, and a user with that key on disk: see bastionUser. */
export interface BastionUser {
  bastion: Bastion;
  key: UserKey;
  user: UserEnv;
  keyFile: string;
  /** The profile's tunnel settings for this bastion and key (the mcp_url added by the caller). */
  tunnel: Omit<SandboxTunnel, 'mcpUrl'>;
}

/**
 * The part of a stack every e2e file with a bastion builds the same way: an SSH key generated now, an ssh2
 * bastion that lets it in and may reach only `allow` (ports on 127.0.0.1), a fresh user (`env`: e.g. the
 * Secret Service's D-Bus address) with the key on disk, 0600, as `keyFileName` in its home. With `mcpUrl`,
 * the user's `sandbox` profile is written too, pinning the bastion's host key.
 */
export async function bastionUser(
  idp: SandboxIdp,
  options: {
    name: string;
    allow: number[];
    env?: Record<string, string>;
    keyFileName?: string;
    mcpUrl?: string;
    auditLogKey?: string;
  },
): Promise<BastionUser> {
  const key = generateUserKey(options.name);
  const bastion = await startBastion({
    authorizedKeys: [key.publicKey],
    allow: options.allow.map((port) => ({ host: '127.0.0.1', port })),
  });
  const user = await userEnv(options.env);
  const keyFile = join(user.home, options.keyFileName ?? 'id_test');
  await writeFile(keyFile, key.privateKey, { mode: 0o600 });
  const tunnel = {
    bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
    identityFile: keyFile,
    fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
  };
  if (options.mcpUrl !== undefined)
    await writeSandboxProfile(idp, user.env(), 'sandbox', {
      ...tunnel,
      mcpUrl: options.mcpUrl,
      ...(options.auditLogKey !== undefined ? { auditLogKey: options.auditLogKey } : {}),
    });
  return { bastion, key, user, keyFile, tunnel };
}

/** Starts the stack; `login: false` leaves alice logged out. */
export async function aliceStack(name: string, options: { login?: boolean } = {}): Promise<AliceStack> {
  const keyring = await startSecretService();
  const idp = await startIdp({ deviceInterval: 1 });
  const plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource, heartbeatMs: 200 });
  const { bastion, user, key, keyFile } = await bastionUser(idp, {
    name,
    allow: [plane.port],
    env: keyring.env,
    mcpUrl: plane.url,
    auditLogKey: plane.logKey.vkey,
  });
  if (options.login !== false) assert.equal((await deviceLogin(user.env(), alice)).code, 0);
  return {
    keyring,
    idp,
    plane,
    bastion,
    user,
    keyText: key.privateKey,
    keyFile,
    async close() {
      await bastion.close();
      await plane.close();
      await idp.close();
      await keyring.stop();
    },
  };
}

/** The stack of one test file (see aliceFile): its parts, readable once the file's `before` has run. */
export interface AliceFile extends Gated, Readonly<Omit<AliceStack, 'close'>> {
  /** Tests of the file that also need `needs` (as gate(missing('secret-service', ...needs)) gives them). */
  also(...needs: NeedName[]): Gated;
}

/**
 * One AliceStack for a whole file: started in `before` (with `events` audit events for acme appended), closed
 * in `after` (`beforeClose` first). The file's tests come from the returned `test`: gnome-keyring is
 * needed by every one of them (the stack starts it), so on a machine without it each is skipped naming the
 * Debian packages (a failure under MCP_SECURE_TEST_STRICT=1, see requires.ts).
 */
export function aliceFile(
  name: string,
  options: { events?: number; beforeClose?(stack: AliceStack): unknown } = {},
): AliceFile {
  const gated = gate(missing('secret-service'));
  let stack: AliceStack | undefined;
  const started = (): AliceStack => {
    if (stack === undefined) throw new Error(`the stack of ${name} is not started (used outside a test?)`);
    return stack;
  };
  gated.before(async () => {
    stack = await aliceStack(name);
    for (let i = 0; i < (options.events ?? 0); i++)
      stack.plane.appendAudit('acme', { actor: 'alice', tool: 'list_workflows' });
  });
  gated.after(async () => {
    if (stack !== undefined) await options.beforeClose?.(stack);
    await stack?.close();
  });
  const file = { ...gated, also: (...needs: NeedName[]) => gate(missing('secret-service', ...needs)) };
  const parts = ['keyring', 'idp', 'plane', 'bastion', 'user', 'keyText', 'keyFile'] as const;
  for (const part of parts)
    Object.defineProperty(file, part, { get: () => started()[part], enumerable: true });
  return file as AliceFile;
}
