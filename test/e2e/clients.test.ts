/**
 * Third-party MCP clients, pinned devDependencies run from node_modules (nothing fetched at run time),
 * against @modelcontextprotocol/server-everything behind the sandbox's ssh2 bastion:
 *
 * - the MCP Inspector CLI (@modelcontextprotocol/inspector-cli 1.0.3, what `npx @modelcontextprotocol/
 *   inspector --cli` runs) with a URL — server-everything directly and `mcp-secure connect`'s — and with a
 *   command: it spawns `mcp-secure mcp --tenant acme` over stdio. Its JSON output must be the same all
 *   three ways.
 * - mcp-remote 0.15.1 (the stdio↔HTTP proxy Claude Desktop configs used to fetch with npx) pointed at
 *   `connect`'s URL, driven by an SDK client over stdio as Claude Desktop drives it; the same as pointed at
 *   the server directly. mcp-remote only speaks to URLs, so it cannot drive the stdio mode.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { freeLoopbackPort } from '../../sandbox/ssh-keys.js';
import { BIN, baseEnv, type CliRun, startCli } from '../helpers/cli.js';
import { gate, missing } from '../helpers/requires.js';
import { type UpstreamStack, upstreamStack } from '../helpers/upstream-stack.js';

const { after, before, test } = gate(missing('secret-service'));

const root = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));
const EVERYTHING = root('node_modules/@modelcontextprotocol/server-everything/dist/index.js');
// The CLI itself: the `mcp-inspector-cli --cli` launcher (build/cli.js) only prints a deprecation notice and
// runs `node build/index.js` with the same arguments — one node start per call fewer (the file must finish
// within the runner's per-file bound, scripts/test.js, on a loaded machine).
const INSPECTOR_BIN = root('node_modules/@modelcontextprotocol/inspector-cli/build/index.js');
// inspector-cli 1.0.3 looks for "../package.json" relative to the working directory but imports it
// relative to its module (build/index.js), so it fails with "Cannot find module …/@modelcontextprotocol/
// package.json" unless run from a directory whose parent holds a package.json: its own build/ is one.
const INSPECTOR_CWD = root('node_modules/@modelcontextprotocol/inspector-cli/build');
const MCP_REMOTE = root('node_modules/mcp-remote/dist/proxy.js');

let everything: ChildProcess;
let everythingLog = '';
let directUrl: string;
let stack: UpstreamStack;
let connect: CliRun;
let connectUrl: string;
let remoteHome: string;

before(async () => {
  const port = await freeLoopbackPort();
  everything = spawn(process.execPath, [EVERYTHING, 'streamableHttp'], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const onLog = (d: Buffer) => {
    everythingLog += d.toString();
  };
  everything.stdout?.on('data', onLog);
  everything.stderr?.on('data', onLog);
  const deadline = Date.now() + 20_000;
  for (let i = 0; i < 1000 && !/listening on port/.test(everythingLog); i++) {
    if (Date.now() > deadline || everything.exitCode !== null)
      throw new Error(`server-everything did not start: ${everythingLog}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  directUrl = `http://127.0.0.1:${port}/mcp`;
  stack = await upstreamStack('mcp-secure-clients', port);
  connect = startCli(
    ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'],
    stack.user.env(),
    600_000,
  );
  connect.child.stdin.end();
  [, connectUrl = ''] = await connect.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 30_000);
  // mcp-remote keeps OAuth state under ~/.mcp-auth: a throwaway home, not the user's.
  remoteHome = await mkdtemp(join(tmpdir(), 'mcp-secure-mcp-remote-'));
});

after(async () => {
  connect?.child.kill('SIGINT');
  await connect?.done;
  await stack?.close();
  everything?.kill('SIGINT');
  if (remoteHome) await rm(remoteHome, { recursive: true, force: true });
});

type Via = 'direct' | 'connect' | 'stdio';

/** The Inspector CLI (`mcp-inspector-cli --cli <target> …`) as a user runs it; its stdout (JSON) parsed. */
function inspector(via: Via, args: string[]): Promise<{ json: unknown; stderr: string }> {
  const target =
    via === 'direct'
      ? [directUrl]
      : via === 'connect'
        ? [connectUrl]
        : // The inspector spawns the command with its own environment (the user's): HOME, XDG_*, D-Bus.
          [process.execPath, BIN, '--profile', 'sandbox', 'mcp', '--tenant', 'acme'];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [INSPECTOR_BIN, ...target, ...args],
      { cwd: INSPECTOR_CWD, env: baseEnv(stack.user.env()), timeout: 60_000, maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`inspector ${via} ${args.join(' ')}: ${err.message}\n${stderr}`));
          return;
        }
        try {
          resolve({ json: JSON.parse(stdout), stderr });
        } catch {
          reject(new Error(`inspector ${via}: not JSON on stdout: ${stdout.slice(0, 300)}\n${stderr}`));
        }
      },
    );
  });
}

const INSPECTOR_CASES: Array<{ name: string; args: string[]; check(json: unknown): void }> = [
  {
    name: 'tools/list',
    args: ['--method', 'tools/list'],
    check: (j) =>
      assert.ok((j as { tools: Array<{ name: string }> }).tools.some((t) => t.name === 'get-sum')),
  },
  {
    name: 'tools/call echo',
    args: ['--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'message=through the tunnel'],
    check: (j) => assert.match(JSON.stringify(j), /Echo: through the tunnel/),
  },

  {
    name: 'tools/call get-tiny-image (binary content)',
    args: ['--method', 'tools/call', '--tool-name', 'get-tiny-image'],
    check: (j) => assert.match(JSON.stringify(j), /"type":"image"/),
  },
  {
    name: 'resources/list',
    args: ['--method', 'resources/list'],
    check: (j) => assert.ok((j as { resources: unknown[] }).resources.length > 0),
  },

  {
    name: 'resources/read',
    args: ['--method', 'resources/read', '--uri', 'demo://resource/static/document/features.md'],
    check: (j) => assert.ok((j as { contents: unknown[] }).contents.length === 1),
  },

  {
    name: 'prompts/get with arguments',
    args: [
      '--method',
      'prompts/get',
      '--prompt-name',
      'args-prompt',
      '--prompt-args',
      'city=Lyon',
      'state=ARA',
    ],
    check: (j) => assert.match(JSON.stringify(j), /Lyon/),
  },
  {
    name: 'logging/setLevel',
    args: ['--method', 'logging/setLevel', '--log-level', 'debug'],
    check: (j) => assert.deepEqual(j, {}),
  },
];

for (const c of INSPECTOR_CASES) {
  test(`MCP Inspector CLI ${c.name}: the same JSON directly, through connect's URL and spawning the stdio mode`, async () => {
    const [direct, viaConnect, viaStdio] = await Promise.all(
      (['direct', 'connect', 'stdio'] as const).map((via) => inspector(via, c.args)),
    );
    c.check(direct!.json);
    assert.deepEqual(viaConnect!.json, direct!.json, 'through connect');
    assert.deepEqual(viaStdio!.json, direct!.json, 'through the stdio mode');
  });
}

/** An SDK client driving mcp-remote over stdio, as Claude Desktop does; sampling answered the same way. */
async function viaMcpRemote(url: string) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [MCP_REMOTE, url, '--transport', 'http-only'],
    env: baseEnv({ HOME: remoteHome }),
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const client = new Client(
    { name: 'mcp-remote-test', version: '1.0.0' },
    { capabilities: { sampling: {} } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
    model: 'test-model',
    role: 'assistant',
    content: { type: 'text', text: `sampled ${req.params.messages.length} message(s)` },
  }));
  await client.connect(transport);
  return { client, stderr: () => stderr };
}

async function remoteSession(url: string) {
  const { client, stderr } = await viaMcpRemote(url);
  try {
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'via mcp-remote' } });
    const sum = await client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } });
    const sampled = await client.callTool({
      name: 'trigger-sampling-request',
      arguments: { prompt: 'hello', maxTokens: 10 },
    });
    const read = await client.readResource({ uri: 'demo://resource/static/document/features.md' });
    const prompt = await client.getPrompt({ name: 'simple-prompt' });
    return { tools, echo, sum, sampled, read, prompt, stderr: stderr() };
  } finally {
    await client.close();
  }
}

test('mcp-remote 0.15.1 pointed at connect: tools, sampling, resources and prompts as pointed at the server directly', async () => {
  const [direct, proxied] = await Promise.all([remoteSession(directUrl), remoteSession(connectUrl)]);
  assert.ok(direct.tools.includes('trigger-sampling-request'), direct.tools.join(', '));
  assert.match(JSON.stringify(direct.sampled), /sampled 1 message/);
  assert.match(proxied.stderr, /Connected to remote server using StreamableHTTPClientTransport/);
  const { stderr: _a, ...d } = direct;
  const { stderr: _b, ...p } = proxied;
  assert.deepEqual(p, d);
});
