/**
 * `mcp-secure mcp --tenant acme` end to end: an MCP SDK client spawns the real CLI over stdio (as Claude
 * Desktop or Cursor would) and reaches the sandbox control plane through the ssh2 bastion, with the
 * tenant token injected and no TCP listener in the CLI.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { BIN, baseEnv } from '../helpers/cli.js';
import { type AliceStack, aliceStack } from '../helpers/stack.js';

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
