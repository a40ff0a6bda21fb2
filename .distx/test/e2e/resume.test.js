/**
 * Resumable streams through the tunnel (MCP Streamable HTTP §"Resumability and Redelivery"): an MCP SDK
 * server with an EventStore answers a tool call over SSE; mid-answer the bastion→server connection is cut
 * (a relay in between), or the SSH connection drops and the bastion is back at once. The client — an SDK
 * client through `connect`, or through the stdio mode — resumes with Last-Event-ID and ends with the
 * server's result, not a made-up error.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { BIN, baseEnv, startCli } from '../helpers/cli.js';
import { gate, missing } from '../helpers/requires.js';
import { upstreamStack } from '../helpers/upstream-stack.js';
const { after, before, test } = gate(missing('secret-service'));
/** The tool's progress has reached the client; the test then breaks the path and lets the tool finish. */
let onProgress = () => undefined;
let release = () => undefined;
let server;
let stack;
const running = [];
function mcpServer() {
    const mcp = new McpServer({ name: 'resumable', version: '1.0.0' });
    mcp.registerTool('slow', { description: 'progress, then waits for the test, then answers' }, async (extra) => {
        const token = extra._meta?.progressToken;
        if (token !== undefined) {
            await extra.sendNotification({
                method: 'notifications/progress',
                params: { progressToken: token, progress: 1, total: 2 },
            });
        }
        await new Promise((resolve) => {
            release = resolve;
        });
        return { content: [{ type: 'text', text: 'finished after the cut' }] };
    });
    return mcp;
}
before(async () => {
    const sessions = new Map();
    server = createServer(async (req, res) => {
        const id = req.headers['mcp-session-id'];
        let transport = typeof id === 'string' ? sessions.get(id) : undefined;
        if (!transport) {
            if (req.method !== 'POST' || id !== undefined) {
                res.writeHead(404).end();
                return;
            }
            transport = new StreamableHTTPServerTransport({
                sessionIdGenerator: () => randomUUID(),
                eventStore: new InMemoryEventStore(),
                onsessioninitialized: (sid) => {
                    sessions.set(sid, transport);
                },
            });
            await mcpServer().connect(transport);
        }
        await transport.handleRequest(req, res);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    stack = await upstreamStack('mcp-secure-resume', typeof address === 'object' && address ? address.port : 0);
});
after(async () => {
    for (const r of running)
        r.child.kill('SIGKILL');
    await stack?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
});
async function throughConnect() {
    const run = startCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], stack.user.env(), 90_000);
    run.child.stdin.end();
    running.push(run);
    const [, local] = await run.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 20_000);
    const client = new Client({ name: 'resume-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(local)));
    return { client, run };
}
async function throughStdio() {
    const client = new Client({ name: 'resume-test', version: '1.0.0' });
    await client.connect(new StdioClientTransport({
        command: process.execPath,
        args: [BIN, '--profile', 'sandbox', 'mcp', '--tenant', 'acme'],
        env: baseEnv(stack.user.env()),
        stderr: 'ignore',
    }));
    return { client, run: undefined };
}
const CASES = [
    { via: 'connect', cut: 'the bastion→server connection' },
    { via: 'connect', cut: 'the SSH connection (bastion back at once)' },
    { via: 'stdio', cut: 'the bastion→server connection' },
    { via: 'stdio', cut: 'the SSH connection (bastion back at once)' },
];
for (const c of CASES) {
    test(`through ${c.via}: a tool call's SSE answer is cut (${c.cut}) and resumed; the client gets the result`, async () => {
        const { client, run } = c.via === 'connect' ? await throughConnect() : await throughStdio();
        try {
            const progressed = new Promise((resolve) => {
                onProgress = resolve;
            });
            const call = client.callTool({ name: 'slow', arguments: {} }, undefined, {
                onprogress: () => onProgress(),
                timeout: 30_000,
            });
            await progressed;
            const before = stack.relay.connections();
            if (c.cut.startsWith('the SSH'))
                await stack.bastion.restart();
            else
                stack.relay.cut();
            release();
            const result = await call;
            assert.equal(result.isError, undefined, JSON.stringify(result));
            assert.deepEqual(result.content, [{ type: 'text', text: 'finished after the cut' }]);
            // It came back over a new connection: the resumption GET.
            assert.ok(stack.relay.connections() > before);
        }
        finally {
            await client.close().catch(() => undefined);
            if (run) {
                run.child.kill('SIGINT');
                await run.done;
            }
        }
    });
}
