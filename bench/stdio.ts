/**
 * The stdio mode and the proxy through the sandbox's ssh2 bastion (the bastion bench/tunnel.ts does not
 * use: it measures against OpenSSH's sshd):
 *
 *   stdio start-up   an MCP SDK client spawns `mcp-secure mcp --tenant acme` (StdioClientTransport) and
 *                    waits for its first answer (initialize, then the first tools/call): process start,
 *                    keychain, token exchange, SSH handshake, the SDK's transports, the MCP handshake
 *                    (shared tunnel, the default: the first start opens the agent's tunnel, later ones
 *                    join it; and --own-tunnel: each start its own token exchange and SSH connection)
 *   stdio per call   sequential tools/call on that spawned process, both ways
 *   connect per call the same calls through `mcp-secure connect` (an SDK client on 127.0.0.1)
 *
 * The upstream is the sandbox control plane (a real MCP SDK server that checks the tenant token and
 * writes the audit feed) behind an ssh2 bastion; the IdP and a real Secret Service are in this process.
 *
 * Usage: npm run bench:stdio [-- --calls N] [-- --starts N] [-- --bastion-nagle] [-- --json FILE]
 *   --bastion-nagle  the bastion's upstream sockets with Nagle on (TCP_NODELAY off), as before the fix
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { generateUserKey, startBastion } from '../sandbox/bastion.js';
import { startControlPlane } from '../sandbox/control-plane.js';
import { deviceLogin } from '../sandbox/device-login.js';
import { startIdp, USERS } from '../sandbox/idp.js';
import { startSecretService } from '../sandbox/keychain.js';
import { writeSandboxProfile } from '../sandbox/profile.js';

const BIN = fileURLToPath(new URL('../../bin/mcp-secure.js', import.meta.url));
const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const value = (name: string, fallback: number) => {
  const at = argv.indexOf(name);
  const n = at >= 0 ? Number(argv[at + 1]) : fallback;
  return Number.isFinite(n) && n > 0 ? Math.min(n, 100_000) : fallback;
};
const calls = value('--calls', 300);
const starts = value('--starts', 7);
const jsonAt = argv.indexOf('--json');
const jsonFile = jsonAt >= 0 ? argv[jsonAt + 1] : undefined;
const nagle = flag('--bastion-nagle');

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : Number.NaN;
}
const log = (line: string) => process.stderr.write(`${line}\n`);

async function timeCalls(client: Client, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await client.callTool({ name: 'list_workflows', arguments: {} });
    out.push(performance.now() - t);
  }
  return out;
}

const keyring = await startSecretService();
const idp = await startIdp({ deviceInterval: 1 });
const plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
const key = generateUserKey('mcp-secure-bench-stdio');
const bastion = await startBastion({
  authorizedKeys: [key.publicKey],
  allow: [{ host: '127.0.0.1', port: plane.port }],
  noDelay: !nagle,
});
const root = await mkdtemp(join(tmpdir(), 'mcp-secure-bench-stdio-'));
const home = join(root, 'home');
await mkdir(home, { recursive: true });
const env: Record<string, string> = {
  PATH: process.env['PATH'] ?? '/usr/bin:/bin',
  HOME: home,
  XDG_CONFIG_HOME: join(home, '.config'),
  NO_COLOR: '1',
  LANG: 'C.UTF-8',
  ...(keyring.env as Record<string, string>),
};
const keyFile = join(home, 'id_bench');
await writeFile(keyFile, key.privateKey, { mode: 0o600 });
await writeSandboxProfile(idp, env, 'sandbox', {
  bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
  identityFile: keyFile,
  fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
  mcpUrl: plane.url,
});
const login = await deviceLogin(env, USERS.find((u) => u.username === 'alice')!);
if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);

const results: Record<string, unknown> = {
  calls,
  starts,
  bastion_nagle: nagle,
  cpus: (await import('node:os')).cpus().length,
};
try {
  // stdio: start-up to the first answer, several times; per-call latency on the last one. Both ways: the
  // tunnel the agent shares (default; the first start opens it, later ones join it while it lingers) and
  // --own-tunnel (every start dials its own SSH connection and gets its own tenant token).
  for (const mode of ['shared', 'own'] as const) {
    const startup: number[] = [];
    const firstCall: number[] = [];
    let stdioCalls: number[] = [];
    for (let i = 0; i < starts; i++) {
      const t0 = performance.now();
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [
          BIN,
          '--profile',
          'sandbox',
          'mcp',
          '--tenant',
          'acme',
          ...(mode === 'own' ? ['--own-tunnel'] : []),
        ],
        env,
        stderr: 'ignore',
      });
      const client = new Client({ name: 'bench', version: '1.0.0' });
      await client.connect(transport);
      startup.push(performance.now() - t0);
      await client.callTool({ name: 'list_workflows', arguments: {} });
      firstCall.push(performance.now() - t0);
      if (i === starts - 1) stdioCalls = await timeCalls(client, calls);
      await client.close();
    }
    const key = mode === 'shared' ? 'stdio' : 'stdio_own_tunnel';
    // The shared tunnel's first start opens it (token exchange + SSH in the agent); the others join it.
    const warm = mode === 'shared' ? startup.slice(1) : startup;
    results[`${key}_startup_ms`] = {
      p50: pct(warm.length > 0 ? warm : startup, 0.5),
      min: Math.min(...startup),
      max: Math.max(...startup),
      ...(mode === 'shared' ? { first_start_opening_the_tunnel: startup[0] } : {}),
    };
    results[`${key}_first_tool_answer_ms`] = {
      p50: pct(mode === 'shared' && firstCall.length > 1 ? firstCall.slice(1) : firstCall, 0.5),
      ...(mode === 'shared' ? { first_start_opening_the_tunnel: firstCall[0] } : {}),
    };
    results[`${key}_call_ms`] = {
      p50: pct(stdioCalls, 0.5),
      p90: pct(stdioCalls, 0.9),
      p99: pct(stdioCalls, 0.99),
    };
  }

  // connect: the same calls through the proxy.
  const child = spawn(
    process.execPath,
    [BIN, '--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  const local = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connect did not listen: ${err}`)), 30_000);
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = err.match(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  const client = new Client({ name: 'bench', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(local)));
  await timeCalls(client, 20); // warm-up: the channel pool, the JIT
  const connectCalls = await timeCalls(client, calls);
  await client.close();
  child.kill('SIGINT');
  results['connect_call_ms'] = {
    p50: pct(connectCalls, 0.5),
    p90: pct(connectCalls, 0.9),
    p99: pct(connectCalls, 0.99),
  };
} finally {
  await bastion.close();
  await plane.close();
  await idp.close();
  await keyring.stop();
}
const f = (x: unknown) => JSON.stringify(x);
log(
  `# stdio bench (${calls} calls, ${starts} starts, bastion Nagle ${nagle ? 'on' : 'off'}, ${results['cpus']} CPUs)`,
);
for (const [key, label] of [
  ['stdio', 'stdio, shared tunnel'],
  ['stdio_own_tunnel', 'stdio --own-tunnel'],
] as const) {
  log(`${label}: start-up to initialize answered: ${f(results[`${key}_startup_ms`])} ms`);
  log(`${label}: start-up to the first tools/call answered: ${f(results[`${key}_first_tool_answer_ms`])} ms`);
  log(`${label}: per call: ${f(results[`${key}_call_ms`])} ms`);
}
log(`connect per call: ${f(results['connect_call_ms'])} ms`);
if (jsonFile) await writeFile(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
