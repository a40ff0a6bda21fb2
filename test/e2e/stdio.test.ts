/**
 * `mcp-secure mcp --tenant acme` end to end: an MCP SDK client spawns the real CLI over stdio (as Claude
 * Desktop or Cursor would) and reaches the sandbox control plane through the ssh2 bastion, with the
 * tenant token injected and no TCP listener in the CLI.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { BIN, baseEnv, runCli } from '../helpers/cli.js';
import { gate, missing } from '../helpers/requires.js';
import { type AliceStack, aliceStack } from '../helpers/stack.js';

const { after, before, test } = gate(missing('secret-service'));

let stack: AliceStack;

before(async () => {
  stack = await aliceStack('mcp-secure-stdio');
});
after(async () => {
  await stack?.close();
});

function text(result: unknown): string {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content ?? [];
  return content.map((c) => c.text ?? '').join('\n');
}

/** The spawned CLI as an MCP client's server; its stderr is collected, never mixed into stdout. */
async function stdioClient(args: string[] = []) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, '--profile', 'sandbox', 'mcp', '--tenant', 'acme', ...args],
    env: baseEnv(stack.user.env()),
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const client = new Client({ name: 'stdio-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport, stderr: () => stderr };
}

/** Listening TCP sockets held by a process (Linux /proc): the stdio mode must have none. */
async function listeningSockets(pid: number): Promise<number> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const rows = (await readFile(table, 'utf8').catch(() => '')).split('\n').slice(1);
    for (const row of rows) {
      const f = row.trim().split(/\s+/);
      if (f[3] === '0A' && f[9]) inodes.add(f[9]);
    }
  }
  let n = 0;
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = link.match(/^socket:\[(\d+)\]$/);
    if (m && inodes.has(m[1]!)) n += 1;
  }
  return n;
}

test('an MCP client spawns `mcp --tenant acme`: tools listed and called with the tenant token, no listening socket, DELETE on stdin EOF', async () => {
  const { client, transport, stderr } = await stdioClient();
  const tools = await client.listTools();
  assert.ok(tools.tools.some((t) => t.name === 'list_workflows'));
  const own = await client.callTool({ name: 'list_workflows', arguments: {} });
  assert.match(text(own), /wf-acme-deploy/);
  assert.doesNotMatch(text(own), /globex/);
  const cross = await client.callTool({ name: 'run_workflow', arguments: { workflow_id: 'wf-globex-etl' } });
  assert.equal(cross.isError, true);
  assert.ok(
    stack.plane
      .records()
      .some((r) => r.tenant === 'acme' && r.cross_tenant === true && r.outcome === 'denied'),
  );
  const pid = transport.pid;
  assert.ok(pid);
  assert.equal(await listeningSockets(pid), 0, 'the stdio mode listens on no TCP port');
  const exited = new Promise<number | null>((resolve) => {
    transport.onclose = () => resolve(0);
  });
  await client.close();
  await exited;
  assert.match(stderr(), /stdio MCP server for acme/);
  assert.match(stderr(), /Session ended \(the MCP client closed stdin\)/);
});

test('mcp-config --write entries, spawned exactly as written (command + args, no shell), reach the tenant for every client', async () => {
  const home = stack.user.home;
  const files: Record<string, [string, string]> = {
    'claude-desktop': [join(home, '.config', 'Claude', 'claude_desktop_config.json'), 'mcpServers'],
    'claude-code': [join(home, '.claude.json'), 'mcpServers'],
    cursor: [join(home, '.cursor', 'mcp.json'), 'mcpServers'],
    vscode: [join(home, '.config', 'Code', 'User', 'mcp.json'), 'servers'],
  };
  for (const [client, [file, key]] of Object.entries(files)) {
    const scope = client === 'claude-code' || client === 'vscode' ? ['--scope', 'user'] : [];
    const w = await runCli(
      ['--profile', 'sandbox', 'mcp-config', '--client', client, '--tenant', 'acme', ...scope, '--write'],
      stack.user.env(),
    );
    assert.equal(w.code, 0, w.stderr);
    const entry = JSON.parse(await readFile(file, 'utf8'))[key]['mcp-secure-acme'] as {
      command: string;
      args: string[];
    };
    assert.ok(isAbsolute(entry.command) && isAbsolute(entry.args[0]!), JSON.stringify(entry));
    const transport = new StdioClientTransport({
      command: entry.command,
      args: entry.args,
      env: baseEnv(stack.user.env()),
      stderr: 'pipe',
    });
    const client_ = new Client({ name: client, version: '1.0.0' });
    await client_.connect(transport);
    const own = await client_.callTool({ name: 'list_workflows', arguments: {} });
    assert.match(text(own), /wf-acme-deploy/, client);
    await client_.close();
  }
});

test('three MCP clients spawn `mcp --tenant acme` at once: one SSH connection through the agent for all, each its own MCP session; --own-tunnel dials its own', async () => {
  const opened = await Promise.all([stdioClient(), stdioClient(), stdioClient()]);
  try {
    for (const o of opened) {
      const own = await o.client.callTool({ name: 'list_workflows', arguments: {} });
      assert.match(text(own), /wf-acme-deploy/);
    }
    // Every MCP client reached the server through the one SSH connection the agent holds.
    assert.equal(stack.bastion.activeConnections(), 1, 'one SSH connection for three MCP clients');
    const said = opened.map((o) => o.stderr()).join('\n');
    assert.match(said, /the tunnel the agent shares/);
    assert.equal((said.match(/joined the tunnel the agent shares/g) ?? []).length >= 2, true, said);
    // `agent status` names it, with its clients (and no token).
    const status = await runCli(['--profile', 'sandbox', 'agent', 'status'], stack.user.env());
    assert.equal(status.code, 0, status.stderr);
    assert.match(
      status.stdout,
      /Shared tunnel: +sandbox\/acme → http:\/\/\S+\/mcp: 3 mcp processes, (openssh|ssh2), re-dials 0/,
    );
    assert.doesNotMatch(status.stdout, /eyJ/);
    const sessions = new Set(opened.map((o) => o.transport.pid));
    assert.equal(sessions.size, 3);
    for (const o of opened) assert.equal(await listeningSockets(o.transport.pid!), 0);
    // Its own: a second SSH connection, the shared one untouched.
    const own = await stdioClient(['--own-tunnel']);
    try {
      const r = await own.client.callTool({ name: 'list_workflows', arguments: {} });
      assert.match(text(r), /wf-acme-deploy/);
      assert.equal(stack.bastion.activeConnections(), 2);
      assert.doesNotMatch(own.stderr(), /the agent shares/);
    } finally {
      await own.client.close();
    }
    // One MCP client gone does not end the tunnel of the others.
    await opened[0]!.client.close();
    const after = await opened[1]!.client.callTool({ name: 'list_workflows', arguments: {} });
    assert.match(text(after), /wf-acme-deploy/);
  } finally {
    await Promise.all(opened.slice(1).map((o) => o.client.close()));
  }
  // The last one gone, the tunnel is held by nobody and closes after its linger (LINGER_MS); until then
  // a client restarting its server joins it again. Bounded by count and time.
  let status = '';
  for (let i = 0; i < 100; i++) {
    status = (await runCli(['--profile', 'sandbox', 'agent', 'status'], stack.user.env())).stdout;
    if (/Shared tunnel: +sandbox\/acme .*: 0 mcp processes \(closing soon\)/.test(status)) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.match(status, /Shared tunnel: +sandbox\/acme .*: 0 mcp processes \(closing soon\)/);
});
