/**
 * `npm run demo`: the whole story against the sandbox, without a person. This story: a device
 * login as alice (approved by the headless helper, as a person would in a browser), then `status`,
 * then `logout`. It uses a throwaway config directory and, when the machine has no session keychain,
 * a throwaway Secret Service (gnome-keyring in a private D-Bus session), so nothing of yours is touched.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approveDevice } from './approve.js';
import { startIdp, USERS } from './idp.js';
import { haveSecretServiceTools, type SecretService, startSecretService } from './keychain.js';
import { BIN, writeSandboxProfile } from './profile.js';

const say = (line: string) => process.stdout.write(`\n\u001b[1m▶ ${line}\u001b[22m\n`);

function run(
  args: string[],
  env: NodeJS.ProcessEnv,
  onStderr?: (text: string) => void,
  captureStdout = false,
): Promise<number> {
  say(`mcp-secure ${args.join(' ')}${captureStdout ? '   # stdout captured: a token is a secret' : ''}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env,
      stdio: ['ignore', captureStdout ? 'pipe' : 'inherit', 'pipe'],
    });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('close', () => {
      if (captureStdout && out.trim()) {
        process.stdout.write(
          `  (demo) got a tenant token: ${out.trim().slice(0, 10)}… (${out.trim().length} characters)\n`,
        );
      }
    });
    child.stderr?.on('data', (d: Buffer) => {
      process.stderr.write(d);
      onStderr?.(d.toString());
    });
    child.once('error', reject);
    child.once('close', (code) => resolve(code ?? 1));
  });
}

async function demo(): Promise<number> {
  const configDir = await mkdtemp(join(tmpdir(), 'mcp-secure-demo-'));
  let keyring: SecretService | undefined;
  const idp = await startIdp({ deviceInterval: 1 });
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, MCP_SECURE_CONFIG_DIR: configDir };
    if (!env['DBUS_SESSION_BUS_ADDRESS'] && (await haveSecretServiceTools())) {
      keyring = await startSecretService();
      Object.assign(env, keyring.env);
      say('No desktop session here: using a throwaway keychain (gnome-keyring in a private D-Bus session)');
    }
    say(`Sandbox IdP at ${idp.issuer}; profile "sandbox" in ${configDir}`);
    await writeSandboxProfile(idp, env);

    const alice = USERS.find((u) => u.username === 'alice')!;
    let approving: Promise<void> | undefined;
    let seen = '';
    const loginCode = await run(['--profile', 'sandbox', 'login', '--device'], env, (text) => {
      seen += text;
      const url = seen.match(/https?:\/\/\S+\/device\S*/)?.[0];
      if (url && !approving) {
        process.stdout.write(`\n  (demo) approving as alice in a headless browser session: ${url}\n`);
        approving = approveDevice(url, { username: alice.username, password: alice.password });
        approving.catch((err: unknown) => process.stderr.write(`approval failed: ${String(err)}\n`));
      }
    });
    await approving;
    if (loginCode !== 0) return loginCode;
    // The tenant layer: alice's IdP token exchanged (RFC 8693) for 15-minute tokens naming one tenant.
    for (const tenant of ['acme', 'globex']) {
      const code = await run(['--profile', 'sandbox', 'token', '--tenant', tenant], env, undefined, true);
      if (code !== 0) return code;
    }
    const refused = await run(['--profile', 'sandbox', 'token', '--tenant', 'initech'], env, undefined, true);
    if (refused !== 4) return 1;
    process.stdout.write('  (demo) refused as it should be: alice is not a member of initech (exit 4)\n');
    const statusCode = await run(['--profile', 'sandbox', 'status'], env);
    if (statusCode !== 0) return statusCode;
    const logoutCode = await run(['--profile', 'sandbox', 'logout'], env);
    if (logoutCode !== 0) return logoutCode;
    await run(['--profile', 'sandbox', 'status'], env);
    say(
      `Done: device login, tenant tokens for acme and globex, a refused tenant, status, logout (revocations seen by the IdP: ${idp.revokedCount()}).`,
    );
    return 0;
  } finally {
    await idp.close();
    await keyring?.stop();
    await rm(configDir, { recursive: true, force: true });
  }
}

process.exitCode = await demo();
