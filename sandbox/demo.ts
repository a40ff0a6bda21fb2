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
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { approveDevice } from './approve.js';
import { USERS } from './idp.js';
import { haveSecretServiceTools, type SecretService, startSecretService } from './keychain.js';
import { BIN } from './profile.js';
import { type Stack, startStack } from './stack.js';

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

/** `connect --tenant acme`, then an MCP SDK client through the local port: one allowed call, one denied. */
async function connectStory(env: NodeJS.ProcessEnv): Promise<number> {
  const port = await freePort(7700);
  const args = ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', String(port)];
  say(`mcp-secure ${args.join(' ')}`);
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'inherit', 'pipe'] });
  let seen = '';
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('connect did not start listening within 30 s')), 30_000);
    child.stderr.on('data', (d: Buffer) => {
      process.stderr.write(d);
      seen += d.toString();
      const url = seen.match(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve(url);
      }
    });
    child.once('close', (code) => reject(new Error(`connect exited (${code})`)));
  });
  const exited = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? 1)));
  try {
    const url = await listening;
    const client = new Client({ name: 'demo', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    const show = (label: string, result: unknown) => {
      const r = result as { isError?: boolean; content?: Array<{ text?: string }> };
      const text = (r.content ?? [])
        .map((c) => c.text ?? '')
        .join(' ')
        .replace(/\s+/g, ' ')
        .slice(0, 160);
      process.stdout.write(`  (demo) MCP ${label} → ${r.isError ? 'DENIED' : 'ok'}: ${text}\n`);
    };
    say(`An MCP client (no token of its own) on ${url}`);
    show('list_workflows', await client.callTool({ name: 'list_workflows', arguments: {} }));
    show(
      'run_workflow wf-acme-deploy',
      await client.callTool({ name: 'run_workflow', arguments: { workflow_id: 'wf-acme-deploy' } }),
    );
    show(
      'run_workflow wf-globex-etl (another tenant)',
      await client.callTool({ name: 'run_workflow', arguments: { workflow_id: 'wf-globex-etl' } }),
    );
    await client.close();
    // The audit layer: the feed of those very calls, through the running session, chain verified.
    const auditCode = await run(
      [
        '--profile',
        'sandbox',
        'audit',
        'tail',
        '--tenant',
        'acme',
        '--no-follow',
        '--verify',
        '--pretty',
        '--quiet',
      ],
      env,
    );
    if (auditCode !== 0) throw new Error(`audit tail exited ${auditCode}`);
  } catch (err) {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
    child.kill('SIGINT');
    await exited;
    return 1;
  }
  say('Ctrl-C: ending the connect session');
  child.kill('SIGINT');
  const code = await exited;
  return code === 130 ? 0 : code;
}

/** 7700 when it is free, else any free port: the demo must not fail because something else runs. */
async function freePort(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  const tryPort = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  return tryPort(preferred).catch(() => tryPort(0));
}

async function demo(): Promise<number> {
  const configDir = await mkdtemp(join(tmpdir(), 'mcp-secure-demo-'));
  let keyring: SecretService | undefined;
  let stack: Stack | undefined;
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, MCP_SECURE_CONFIG_DIR: configDir };
    if (!env['DBUS_SESSION_BUS_ADDRESS'] && (await haveSecretServiceTools())) {
      keyring = await startSecretService();
      Object.assign(env, keyring.env);
      say('No desktop session here: using a throwaway keychain (gnome-keyring in a private D-Bus session)');
    }
    stack = await startStack({ configDir, env });
    const { idp, plane, bastion } = stack;
    say(
      `Sandbox: IdP ${idp.issuer}, bastion ${bastion.username}@127.0.0.1:${bastion.port}, in-cluster MCP ${plane.url} (told only to the bastion); profile "sandbox" in ${configDir}`,
    );

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
    // The transport layer: connect opens the tunnel; an MCP client talks to 127.0.0.1 with no token.
    const connectCode = await connectStory(env);
    if (connectCode !== 0) return connectCode;
    const statusCode = await run(['--profile', 'sandbox', 'status'], env);
    if (statusCode !== 0) return statusCode;
    const logoutCode = await run(['--profile', 'sandbox', 'logout'], env);
    if (logoutCode !== 0) return logoutCode;
    await run(['--profile', 'sandbox', 'status'], env);
    say(
      `Done: device login, tenant tokens, a refused tenant, connect + MCP calls through the tunnel (one denied cross-tenant), their audit trail, status, logout (revocations seen by the IdP: ${idp.revokedCount()}).`,
    );
    return 0;
  } finally {
    await stack?.close();
    await keyring?.stop();
    await rm(configDir, { recursive: true, force: true });
  }
}

process.exitCode = await demo();
