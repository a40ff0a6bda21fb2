/**
 * The agent end to end, as real processes: the CLI started as a user would, the agent it starts on
 * demand, the sandbox IdP (DPoP-binding), control plane and bastion — and no keychain unless a test asks
 * for one. Each user has a runtime directory of its own; every agent a test starts is stopped (or ends
 * with its socket when the user's directory is removed at exit).
 */
import assert from 'node:assert/strict';
import { chmod, chown, lstat, mkdir, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect } from 'node:net';
import { test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { agentFile, type TestUser } from '../helpers/agent-users.js';
import { runCli, startCli } from '../helpers/cli.js';

const agents = agentFile();
const { newUser, login, agentPids, agentPid, gone } = agents;

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error: '));
}

test('no keychain: login in one command, then token, connect, audit tail and status in later ones, the agent holding the login', async () => {
  const u = await newUser();
  const logged = await login(u);
  const pid = await agentPid(u);
  assert.match(logged.stderr, new RegExp(`Token kept in: held in memory by the agent \\(pid ${pid}\\)`));

  const status = await u.cli('status');
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`Token store: +held in memory by the agent \\(pid ${pid}\\)`));
  assert.match(status.stdout, /DPoP: +tokens bound to a non-extractable key in the agent/);

  const token = await u.cli('token', '--tenant', 'acme', '--json');
  assert.equal(token.code, 0, token.stderr);
  assert.equal(JSON.parse(token.stdout).tenant, 'acme');

  // audit tail with its own session (no connect for globex runs)
  agents.plane.appendAudit('globex', { actor: 'alice-0001', tool: 'list_workflows', outcome: 'allowed' });
  const tail = await u.cli(
    'audit',
    'tail',
    '--tenant',
    'globex',
    '--no-follow',
    '--json',
    '--accept-new-log-key',
  );
  assert.equal(tail.code, 0, tail.stderr);
  assert.match(tail.stdout, /"tool":"list_workflows"/);

  const connect = startCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], u.env);
  try {
    const [, url] = await connect.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 30_000);
    const client = new Client({ name: 'agent-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url!)));
    const listed = (await client.callTool({ name: 'list_workflows', arguments: {} })) as {
      isError?: boolean;
    };
    assert.notEqual(listed.isError, true, 'a DPoP-bound call through the proxy, proofs signed by the agent');
    await client.close();
  } finally {
    connect.child.kill('SIGINT');
    assert.equal((await connect.done).code, 130);
  }
  assert.equal(await agentPid(u), pid, 'one agent served every command');

  // The agent ends: a memory-only login ends with it, and every command says to log in again.
  assert.equal((await runCli(['agent', 'stop'], u.env)).code, 0);
  assert.ok(await gone(pid), 'the agent has exited');
  for (const args of [['status'], ['token', '--tenant', 'acme']]) {
    const result = await u.cli(...args);
    assert.equal(result.code, 4, `${args[0]}: ${result.stderr}`);
    assert.match(result.stdout + result.stderr, /[Nn]ot logged in.*run `mcp-secure login --profile sandbox`/);
  }
});

test('the agent killed mid-session: connect and audit tail each end with one clear line, nothing hangs', async () => {
  const u = await newUser();
  await login(u);
  const pid = await agentPid(u);
  const connect = startCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], u.env);
  const tail = startCli(
    [
      '--profile',
      'sandbox',
      'audit',
      'tail',
      '--tenant',
      'globex',
      '--follow',
      '--json',
      '--accept-new-log-key',
    ],
    u.env,
  );
  try {
    await connect.waitFor(/Press Ctrl-C/, 30_000);
    // audit tail has its session (a token from the agent, SSH up) once an event comes through.
    agents.plane.appendAudit('globex', {
      actor: 'alice-0001',
      tool: 'mid_session_probe',
      outcome: 'allowed',
    });
    await tail.waitFor(/mid_session_probe/, 30_000);
    process.kill(pid, 'SIGKILL');
    const started = Date.now();
    const [c, t] = await Promise.all([connect.done, tail.done]);
    assert.ok(Date.now() - started < 15_000, 'both ended promptly');
    for (const [name, r] of [
      ['connect', c],
      ['audit tail', t],
    ] as const) {
      assert.equal(r.code, 4, `${name}: ${r.stderr}`);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, `${name}: one error line: ${r.stderr}`);
      assert.match(
        lines[0]!,
        new RegExp(
          `the mcp-secure agent \\(pid ${pid}\\) stopped during .*; the logins it held in memory ended with it — run \`mcp-secure login\``,
        ),
      );
    }
  } finally {
    connect.child.kill('SIGKILL');
    tail.child.kill('SIGKILL');
  }
});

test('racing starts end with one agent', async () => {
  const u = await newUser();
  const results = await Promise.all(
    Array.from({ length: 6 }, () => runCli(['--json', 'agent', 'start'], u.env)),
  );
  const pids = new Set<number>();
  for (const r of results) {
    assert.equal(r.code, 0, r.stderr);
    pids.add((JSON.parse(r.stdout) as { pid: number }).pid);
  }
  assert.equal(pids.size, 1, `every starter reached the same agent (${[...pids].join(', ')})`);
  // Losers of the race have exited by now; allow them a moment on a loaded machine.
  const deadline = Date.now() + 10_000;
  let running = await agentPids(u.user);
  for (let i = 0; i < 200 && running.length > 1 && Date.now() < deadline; i++) {
    await new Promise((r) => setTimeout(r, 50));
    running = await agentPids(u.user);
  }
  assert.deepEqual(running, [...pids], 'exactly one agent process');
});

test('a stale socket (a crashed agent) is replaced by a new agent', async () => {
  const u = await newUser();
  assert.equal((await runCli(['agent', 'start'], u.env)).code, 0);
  const first = await agentPid(u);
  process.kill(first, 'SIGKILL');
  assert.ok(await gone(first));
  assert.ok((await lstat(u.paths.socket)).isSocket(), 'the dead agent left its socket behind');
  const started = await runCli(['--json', 'agent', 'start'], u.env);
  assert.equal(started.code, 0, started.stderr);
  const second = (JSON.parse(started.stdout) as { pid: number; started: boolean }).pid;
  assert.notEqual(second, first);
  assert.equal(await agentPid(u), second);
});

const MODE_CASES: Array<{ name: string; spoil(u: TestUser): Promise<void>; error: RegExp }> = [
  {
    name: 'the agent directory open to others (0755)',
    spoil: (u) => chmod(u.paths.dir, 0o755),
    error:
      /^error: refusing the agent directory .*: its mode is 0755, so other users can reach it — run `chmod 700 /,
  },
  {
    name: 'the socket open to others (0666)',
    spoil: (u) => chmod(u.paths.socket, 0o666),
    error: /^error: refusing the agent socket .*: its mode is 0666, so other users can use it — /,
  },
  {
    name: 'the agent directory owned by another user',
    spoil: (u) => chown(u.paths.dir, 65534, 65534),
    error: /^error: refusing the agent directory .*: it is owned by uid 65534, not you \(uid \d+\) — /,
  },
];

for (const c of MODE_CASES) {
  test(`refused with one line: ${c.name}`, {
    skip: c.name.includes('owned') && process.getuid?.() !== 0 ? 'chown needs root' : false,
  }, async () => {
    const u = await newUser();
    assert.equal((await runCli(['agent', 'start'], u.env)).code, 0);
    const pid = await agentPid(u);
    await c.spoil(u);
    for (const args of [['status'], ['token', '--tenant', 'acme'], ['agent', 'status']]) {
      const result = await runCli(args[0] === 'agent' ? args : ['--profile', 'sandbox', ...args], u.env);
      assert.equal(result.code, 5, `${args.join(' ')}: ${result.stderr}`);
      const lines = errorLines(result.stderr);
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, c.error);
    }
    process.kill(pid, 'SIGTERM');
    assert.ok(await gone(pid));
  });
}

test('version mismatch: a CLI and an agent of different protocol versions say so in one line, with how to restart', async () => {
  const u = await newUser();
  // An agent of a future version (written here) on the socket.
  await mkdir(u.paths.dir, { recursive: true, mode: 0o700 });
  await writeFile(u.paths.cookie, 'x', { mode: 0o600 });
  const server = createServer((s) => {
    s.write(
      `${JSON.stringify({ v: 2, hello: { agent: 'mcp-secure', version: '0.9.0', pid: 4242, nonce: 'n' } })}\n`,
    );
  });
  const umask = process.umask(0o177);
  await new Promise<void>((resolve) => server.listen(u.paths.socket, resolve));
  process.umask(umask);
  try {
    for (const args of [['status'], ['token', '--tenant', 'acme'], ['agent', 'status']]) {
      const result = await runCli(args[0] === 'agent' ? args : ['--profile', 'sandbox', ...args], u.env);
      assert.equal(result.code, 1, result.stderr);
      const lines = errorLines(result.stderr);
      assert.equal(lines.length, 1, result.stderr);
      assert.match(
        lines[0]!,
        /^error: the running mcp-secure agent \(pid 4242, version 0\.9\.0\) speaks protocol 2; this mcp-secure speaks 1 — stop it with `mcp-secure agent stop`/,
      );
    }
  } finally {
    await new Promise((r) => server.close(r));
  }

  // The other way round: a client of another version, at the real agent.
  assert.equal((await runCli(['agent', 'start'], u.env)).code, 0);
  const answer = await new Promise<string>((resolve, reject) => {
    const s = netConnect(u.paths.socket);
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      const lines = buf.split('\n').filter(Boolean);
      if (lines.length === 1 && buf.endsWith('\n'))
        s.write(`${JSON.stringify({ v: 2, id: 1, op: 'info', params: {} })}\n`);
      if (lines.length >= 2) {
        s.destroy();
        resolve(lines[1]!);
      }
    });
    s.on('error', reject);
  });
  const parsed = JSON.parse(answer) as { ok: boolean; error: { code: string; message: string } };
  assert.equal(parsed.ok, false);
  assert.equal(parsed.error.code, 'version');
  assert.match(parsed.error.message, /speaks protocol 1, not 2/);
});

test('SIGTERM ends the agent and removes its socket; so does the logout of its last login', async () => {
  const u = await newUser();
  await login(u);
  const pid = await agentPid(u);
  process.kill(pid, 'SIGTERM');
  assert.ok(await gone(pid));
  await assert.rejects(lstat(u.paths.socket), { code: 'ENOENT' });
  await assert.rejects(lstat(u.paths.cookie), { code: 'ENOENT' });

  await login(u);
  const second = await agentPid(u);
  const out = await u.cli('logout');
  assert.equal(out.code, 0, out.stderr);
  assert.ok(await gone(second), 'the agent ends with its last login');
});

test('agent_idle_timeout: an agent nobody uses ends', async () => {
  const u = await newUser({ MCP_SECURE_AGENT_IDLE_TIMEOUT: '1' });
  // The pid from the login's own output: asking the agent (`agent status`, a second process) could come
  // after it has ended already (idle for 1 s, and a loaded machine takes that long to start a CLI).
  const logged = await login(u);
  const pid = Number(logged.stderr.match(/held in memory by the agent \(pid (\d+)\)/)?.[1]);
  assert.ok(pid > 0, logged.stderr);
  // The agent looks every 5 s; idle for 1 s, it is gone within two looks.
  assert.ok(await gone(pid, 20_000), 'the idle agent ended');
  const status = await u.cli('status');
  assert.equal(status.code, 4, 'and its memory-only login with it');
});
