/**
 * A request that arrives as the SSH connection dies: when the channel could not even be opened, nothing of
 * the request has left, so it waits for the re-dial and goes through; a refusal by the bastion is final.
 * An answer cut short upstream is cut short for the local client too, at once.
 */
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateUserKey } from '../../sandbox/bastion.js';
import { CliError } from '../../src/errors.js';
import { listen, upstreamRequest } from '../../src/tunnel/local.js';
import { type Chain, dialChain } from '../../src/tunnel/ssh.js';
import { Supervisor } from '../../src/tunnel/supervisor.js';
import { tempDir } from '../helpers/deps.js';

type ForwardOut = (
  srcIP: string,
  srcPort: number,
  dstIP: string,
  dstPort: number,
  cb: (err: Error | undefined, stream?: unknown) => void,
) => void;

function fakeChain(forwardOut: ForwardOut): { chain: Chain; close(): void } {
  let close!: () => void;
  const closed = new Promise<void>((resolve) => {
    close = resolve;
  });
  const last = { forwardOut };
  const open = (t: { host: string; port: number }) =>
    new Promise((resolve, reject) =>
      forwardOut('127.0.0.1', 0, t.host, t.port, (err, stream) => (err ? reject(err) : resolve(stream))),
    );
  return {
    chain: { kind: 'ssh2', clients: [last], last, open, closed, close: () => undefined } as unknown as Chain,
    close,
  };
}

/** A fake ssh2 client as a transport (transport.ts): open() is a direct-tcpip channel via forwardOut. */
function withOpen<T extends { forwardOut: ForwardOut }>(c: T) {
  return {
    ...c,
    kind: 'ssh2' as const,
    open: (t: { host: string; port: number }) =>
      new Promise((resolve, reject) => {
        try {
          c.forwardOut('127.0.0.1', 0, t.host, t.port, (err, stream) =>
            err ? reject(err) : resolve(stream),
          );
        } catch (err) {
          reject(err);
        }
      }),
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('supervisor.client(avoid): a client found dead is not handed back; the next chain is', async () => {
  const ac = new AbortController();
  const chains = [fakeChain(() => undefined), fakeChain(() => undefined)];
  let dials = 0;
  const supervisor = new Supervisor({
    dial: async () => chains[dials++]!.chain,
    sleep: async () => undefined,
    random: () => 0,
    signal: ac.signal,
  });
  await supervisor.start();
  const first = await supervisor.client();
  assert.equal(await supervisor.client(), first, 'without avoid: the current client');
  let second: unknown;
  const waiting = supervisor.client(first).then((c) => {
    second = c;
  });
  await tick();
  assert.equal(second, undefined, 'the dead client is not handed back while the supervisor still holds it');
  chains[0]!.close(); // the connection closes: the supervisor re-dials
  await waiting;
  assert.equal(second, chains[1]!.chain);
  assert.equal(dials, 2);
  ac.abort();
  supervisor.close();
});

async function upstreamServer() {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(String(req.headers.authorization));
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { port, seen, close: () => new Promise((resolve) => server.close(resolve)) };
}

function through(supervisor: unknown, port: number) {
  return upstreamRequest(
    {
      supervisor: supervisor as Supervisor,
      upstream: new URL(`http://127.0.0.1:${port}/mcp`),
      token: () => ({ value: 'tenant-token', type: 'Bearer' }),
      proof: async () => '',
    },
    { method: 'GET', path: '/mcp', headers: {} },
  );
}

test('the channel could not be opened (connection gone): the request waits for the re-dial and goes through once', async () => {
  const upstream = await upstreamServer();
  const dead = withOpen({
    forwardOut: () => {
      throw new Error('Not connected'); // what ssh2 throws once its socket is gone
    },
  });
  const alive = withOpen({
    forwardOut: ((_s, _p, host, port, cb) => {
      const socket = connect(port, host);
      socket.once('connect', () => cb(undefined, socket));
    }) as ForwardOut,
  });
  const asked: unknown[] = [];
  const supervisor = {
    client: async (avoid?: unknown) => {
      asked.push(avoid);
      return avoid === dead ? alive : dead;
    },
  };
  const req = await through(supervisor, upstream.port);
  const status = await new Promise<number | undefined>((resolve, reject) => {
    req.once('response', (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.once('error', reject);
    req.end();
  });
  assert.equal(status, 200);
  assert.deepEqual(asked, [undefined, dead], 'asked again, avoiding the dead client');
  assert.deepEqual(upstream.seen, ['Bearer tenant-token'], 'sent once');
  await upstream.close();
});

test('a refusal by the bastion (channel open failure with a reason) is final: no second try', async () => {
  const refusing = withOpen({
    forwardOut: ((_s, _p, _h, _port, cb) => {
      cb(Object.assign(new Error('(SSH) Channel open failure: administratively prohibited'), { reason: 1 }));
    }) as ForwardOut,
  });
  let asked = 0;
  const supervisor = {
    client: async () => {
      asked++;
      return refusing;
    },
  };
  const req = await through(supervisor, 9);
  const err = await new Promise<Error>((resolve) => {
    req.once('error', resolve);
    req.end();
  });
  assert.match(err.message, /administratively prohibited/);
  assert.equal(asked, 1);
});

test('an answer cut short upstream (SSE headers sent, then the connection dies): the local client learns at once', async () => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: one\n\ndata: {"half an ev'); // cut mid-event
    setTimeout(() => res.socket?.destroy(), 50); // the SSH channel dies mid-answer
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = withOpen({
    forwardOut: ((_s, _p, host, dst, cb) => {
      const socket = connect(dst, host);
      socket.once('connect', () => cb(undefined, socket));
    }) as ForwardOut,
  });
  const listener = await listen(
    {
      supervisor: { client: async () => client } as unknown as Supervisor,
      upstream: new URL(`http://127.0.0.1:${port}/mcp`),
      raw: false,
      token: () => ({ value: 'tenant-token', type: 'Bearer' }),
      proof: async () => '',
      stats: { open: 0, total: 0, bytesIn: 0, bytesOut: 0, lastActivity: 0 },
      now: () => 0,
    },
    { host: '127.0.0.1', port: 0, allowNonLoopback: false },
  );
  try {
    const res = await fetch(`http://127.0.0.1:${listener.port}/mcp`);
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.match(Buffer.from(first.value ?? []).toString(), /data: one/);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      reader.read().then(
        (r) => (r.done ? 'ended cleanly' : 'more data'),
        () => 'cut',
      ),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve('still waiting after 5 s'), 5_000);
      }),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, 'cut', 'the local client sees the answer fail, not a clean end and not a hang');

    // An MCP request whose SSE answer breaks off: finished with a JSON-RPC error for that request's id (an
    // MCP client would otherwise wait to resume it until its own timeout).
    const started = Date.now();
    const post = await fetch(`http://127.0.0.1:${listener.port}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 42, method: 'tools/call', params: { name: 'whoami' } }),
    });
    const text = await post.text();
    assert.ok(Date.now() - started < 5_000);
    const events = text
      .split('\n')
      .filter((l) => l.startsWith('data: {"jsonrpc"')) // the half-written event is left for the client to drop
      .map((l) => JSON.parse(l.slice(6)) as { id?: number; error?: { message: string } });
    assert.equal(events.length, 1);
    assert.equal(events.at(-1)?.id, 42);
    assert.match(
      events.at(-1)?.error?.message ?? '',
      /mcp-secure: the SSH connection was lost before the answer arrived/,
    );
  } finally {
    await listener.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('a bastion that accepts and resets before the SSH handshake: the dial fails with one error, and nothing crashes', async () => {
  // ssh2 emits two errors then: the socket's ECONNRESET, and 'Connection lost before handshake' on close.
  // Reset once the client's identification string has arrived: it is connected, and has seen no header.
  const server = createNetServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const dir = await tempDir();
  const keyFile = join(dir, 'id_test');
  await writeFile(keyFile, generateUserKey().privateKey, { mode: 0o600 });
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    for (let i = 0; i < 5; i++) {
      await assert.rejects(
        dialChain({
          hops: [{ host: '127.0.0.1', port, user: 'dev', identityFiles: [keyFile] }],
          knownHostsFiles: [],
          knownHostsWrite: join(dir, 'known_hosts'),
          pinned: [],
          acceptNew: false,
          agentSocket: undefined,
          info: () => undefined,
          warn: () => undefined,
        }),
        (err: Error) =>
          err instanceof CliError && /cannot reach the bastion|closed the connection/.test(err.message),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100)); // a late second error would surface here
    assert.deepEqual(uncaught, []);
  } finally {
    process.off('uncaughtException', onUncaught);
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  }
});
