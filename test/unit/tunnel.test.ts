/**
 * A request that arrives as the SSH connection dies: when the channel could not even be opened, nothing of
 * the request has left, so it waits for the re-dial and goes through; a refusal by the bastion is final.
 * An answer cut short upstream is cut short for the local client too, at once.
 */
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer, Socket } from 'node:net';
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

/** The local proxy's options for a fake SSH client whose channels reach 127.0.0.1:`port`; a fixed token. */
function proxyOptions(client: unknown, port: number) {
  return {
    supervisor: { client: async () => client } as unknown as Supervisor,
    upstream: new URL(`http://127.0.0.1:${port}/mcp`),
    raw: false,
    token: () => ({ value: 'tenant-token', type: 'Bearer' as const }),
    proof: async () => '',
    stats: { open: 0, total: 0, refused: 0, bytesIn: 0, bytesOut: 0, lastActivity: 0 },
    now: () => 0,
  };
}
const LOOPBACK = { host: '127.0.0.1', port: 0, allowNonLoopback: false };

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

/** A channel that is a plain TCP connection to the destination (no SSH): the proxy's own behaviour alone. */
const directForward = ((_s, _p, host, dst, cb) => {
  const socket = connect(dst, host);
  socket.once('connect', () => cb(undefined, socket));
}) as ForwardOut;

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

test('supervisor.close() during the first dial: the chain that dial brings afterwards is closed, not kept (an ssh child would keep connect alive)', async () => {
  const ac = new AbortController();
  let finishDial!: () => void;
  let closedChain = 0;
  const chain = { ...fakeChain(() => undefined).chain, close: () => closedChain++ } as Chain;
  const supervisor = new Supervisor({
    dial: () =>
      new Promise<Chain>((resolve) => {
        finishDial = () => resolve(chain);
      }),
    sleep: async () => undefined,
    random: () => 0,
    signal: ac.signal,
  });
  const started = supervisor.start();
  await tick();
  // The session ends while SSH is still being dialled (a refused tenant token), then the dial completes.
  ac.abort();
  supervisor.close();
  finishDial();
  await assert.rejects(started, { kind: 'interrupted' });
  assert.equal(closedChain, 1, 'the late chain was closed');
  assert.equal(supervisor.up, false);
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
  const client = withOpen({ forwardOut: directForward });
  const listener = await listen(proxyOptions(client, port), LOOPBACK);
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

    // An MCP request whose SSE answer (no event ids: not resumable) breaks off while SSH stays up: finished
    // with a JSON-RPC error for that request's id naming the bastion→server connection (an MCP client
    // would otherwise wait to resume it until its own timeout).
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
      /mcp-secure: the connection from the bastion to the MCP server closed before the answer arrived/,
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

/**
 * How the proxy ends an SSE answer that breaks off, one case per row: an upstream MCP server (plain HTTP)
 * behind a fake SSH client whose channels are TCP connections to it; `drop` is what goes wrong.
 */
const CUT_CASES: Array<{
  name: string;
  /** The SSE body the server writes before things go wrong. */
  body: string;
  drop: 'server-socket' | 'ssh' | 'server-ends';
  /** The JSON-RPC error the client gets, or undefined when the connection is just closed. */
  error: RegExp | undefined;
  /** Whether the local client's stream fails (cut) rather than ending cleanly. */
  cut: boolean;
}> = [
  {
    name: 'resumable (events with ids), bastion→server connection cut: the connection is closed, nothing made up',
    body: 'id: ev-1\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n',
    drop: 'server-socket',
    error: undefined,
    cut: true,
  },
  {
    name: 'resumable (a priming event with an id), SSH lost: the connection is closed, nothing made up',
    body: 'id: prime-0\ndata: \n\n',
    drop: 'ssh',
    error: undefined,
    cut: true,
  },
  {
    name: 'not resumable, SSH lost: an error for the request naming SSH',
    body: 'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n',
    drop: 'ssh',
    error: /the SSH connection was lost before the answer arrived/,
    cut: false,
  },
  {
    name: 'not resumable, bastion→server connection cut: an error naming that connection',
    body: 'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n',
    drop: 'server-socket',
    error: /the connection from the bastion to the MCP server closed before the answer arrived/,
    cut: false,
  },
  {
    name: 'not resumable, the server ends the stream cleanly without answering: an error naming the server',
    body: 'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n',
    drop: 'server-ends',
    error: /the MCP server ended the stream without answering/,
    cut: false,
  },
  {
    name: 'not resumable but already answered, then cut: no error added for the answered request',
    body: 'data: {"jsonrpc":"2.0","id":42,"result":{"content":[]}}\n\n',
    drop: 'server-socket',
    error: undefined,
    cut: true,
  },
];

for (const c of CUT_CASES) {
  test(`cut SSE answer: ${c.name}`, async () => {
    const sockets = new Set<import('node:net').Socket>();
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(c.body);
      setTimeout(() => {
        if (c.drop === 'server-ends') res.end();
        else if (c.drop === 'server-socket') res.socket?.destroy();
        else {
          // SSH goes: the transport says so (its `closed`), its streams die with it.
          lose();
          for (const s of sockets) s.destroy();
        }
      }, 50);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    let lose: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => {
      lose = resolve;
    });
    const client = {
      ...withOpen({
        forwardOut: ((_s, _p, host, dst, cb) => {
          const socket = connect(dst, host);
          sockets.add(socket);
          socket.once('connect', () => cb(undefined, socket));
        }) as ForwardOut,
      }),
      closed,
    };
    const listener = await listen(proxyOptions(client, port), LOOPBACK);
    try {
      const post = await fetch(`http://127.0.0.1:${listener.port}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 42, method: 'tools/call', params: { name: 'slow' } }),
      });
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        post.text().then(
          (text) => ({ cut: false, text }),
          () => ({ cut: true, text: '' }),
        ),
        new Promise<{ cut: boolean; text: string }>((resolve) => {
          timer = setTimeout(() => resolve({ cut: false, text: 'still waiting after 5 s' }), 5_000);
        }),
      ]);
      clearTimeout(timer);
      assert.equal(outcome.cut, c.cut, `cut: ${outcome.text}`);
      const errors = outcome.text
        .split('\n')
        .filter((l) => l.startsWith('data: {"jsonrpc":"2.0","error"'))
        .map((l) => JSON.parse(l.slice(6)) as { id?: number; error?: { message: string } });
      if (c.error) {
        assert.equal(errors.length, 1, outcome.text);
        assert.equal(errors[0]?.id, 42);
        assert.match(errors[0]?.error?.message ?? '', c.error);
      } else assert.equal(errors.length, 0, outcome.text);
    } finally {
      await listener.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
}

test('Nagle: the proxy and the stdio bridge send a request head and its JSON body in one write to the channel', async () => {
  const { tunnelFetch } = await import('../../src/tunnel/fetch.js');
  const server = createServer((req, res) => {
    req.resume();
    req.once('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  /** Every write the tunnel makes to a channel, in order. */
  const writes: string[] = [];
  const client = withOpen({
    forwardOut: ((_s, _p, host, dst, cb) => {
      const socket = connect(dst, host);
      const write = socket.write.bind(socket) as (...a: unknown[]) => boolean;
      socket.write = ((chunk: unknown, ...rest: unknown[]) => {
        const encoding = (typeof rest[0] === 'string' ? rest[0] : 'utf8') as BufferEncoding;
        const text = (Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), encoding)).toString(
          'latin1',
        );
        // An empty write sends no SSH packet (ssh2's Channel._write loops over the bytes).
        if (text.length > 0) writes.push(text);
        return write(chunk, ...rest);
      }) as typeof socket.write;
      socket.once('connect', () => cb(undefined, socket));
    }) as ForwardOut,
  });
  const options = proxyOptions(client, port);
  const listener = await listen(options, LOOPBACK);
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'é' } });
  try {
    for (const via of ['proxy', 'bridge'] as const) {
      writes.length = 0;
      const res =
        via === 'proxy'
          ? await fetch(`http://127.0.0.1:${listener.port}/mcp`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body,
            })
          : await tunnelFetch(options)(options.upstream, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body,
            });
      assert.equal(res.status, 200, via);
      await res.text();
      assert.equal(writes.length, 1, `${via}: ${JSON.stringify(writes)}`);
      assert.match(
        writes[0]!,
        /^POST \/mcp HTTP\/1\.1\r\n[\s\S]*authorization: Bearer tenant-token\r\n[\s\S]*\r\n\r\n\{"jsonrpc"/i,
      );
      // The body's bytes arrive intact (latin1 carries each byte as one character).
      assert.ok(writes[0]!.endsWith(Buffer.from(body).toString('latin1')), via);
    }
  } finally {
    await listener.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('a chunked answer whose head and first chunk came together leaves the proxy in one write to the client', async () => {
  // Head and body in one write upstream (writeHead, then end(data): Node sends them together, chunked).
  const server = createServer((req, res) => {
    req.resume();
    req.once('end', () =>
      res
        .writeHead(200, { 'content-type': 'text/event-stream' })
        .end('event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = withOpen({ forwardOut: directForward });
  const listener = await listen(proxyOptions(client, port), LOOPBACK);
  // What reaches the kernel: each call of net.Socket's _writeGeneric is one write(2) or writev(2) (node's
  // lib/net.js; corked writes are joined before it). Only the proxy's sockets toward the local client.
  const proto = Socket.prototype as unknown as { _writeGeneric?: (...a: unknown[]) => unknown };
  const original = proto._writeGeneric;
  assert.equal(typeof original, 'function', "node's net.Socket has no _writeGeneric to count writes with");
  let toClient = 0;
  proto._writeGeneric = function (this: Socket, ...args: unknown[]) {
    if (this.localPort === listener.port) toClient += 1;
    return original!.apply(this, args);
  };
  const body = '{"jsonrpc":"2.0","id":1,"method":"tools/call"}';
  try {
    for (let i = 0; i < 5; i++) {
      toClient = 0;
      const res = await fetch(`http://127.0.0.1:${listener.port}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      assert.equal(await res.text(), 'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n');
      assert.equal(toClient, 1, `answer ${i + 1}: ${toClient} writes to the client`);
    }
  } finally {
    proto._writeGeneric = original;
    await listener.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test("shared tunnel (the agent's proxy on a Unix socket, socketFetch): the proxy sets the token, the client's own Authorization and Cookie never pass, other paths are refused, the socket is 0600", async () => {
  const { socketFetch } = await import('../../src/tunnel/fetch.js');
  const { listenUnix } = await import('../../src/tunnel/local.js');
  const { stat } = await import('node:fs/promises');
  const seen: Array<{ url: string; headers: Record<string, unknown>; body: string }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
    });
    req.once('end', () => {
      seen.push({ url: req.url ?? '', headers: req.headers, body });
      // An SSE answer, streamed: the Response's body must be readable as it comes.
      res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': 's-1' });
      res.write('event: message\nid: 1\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n');
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = withOpen({ forwardOut: directForward });
  const dir = await tempDir();
  const path = join(dir, 'tunnel-test.sock');
  const upstream = new URL(`http://127.0.0.1:${port}/mcp`);
  const listener = await listenUnix(proxyOptions(client, port), path);
  const fetch = socketFetch({ socketPath: path, upstream });
  try {
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'é' } });
    const res = await fetch(upstream, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: 'Bearer from-the-client',
        cookie: 'a=b',
      },
      body,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('mcp-session-id'), 's-1');
    assert.match(await res.text(), /"result":\{\}/);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.url, '/mcp');
    assert.equal(seen[0]!.headers['authorization'], 'Bearer tenant-token');
    assert.equal(seen[0]!.headers['cookie'], undefined);
    assert.equal(seen[0]!.headers['host'], `127.0.0.1:${port}`);
    assert.equal(seen[0]!.body, body);
    // Only the MCP endpoint: the proxy's own admission (refuseRequest), as for connect.
    await assert.rejects(
      fetch(new URL('http://evil.example/mcp'), { method: 'GET' }),
      /not the tunnel's upstream/,
    );
    const other = await fetch(new URL(`http://127.0.0.1:${port}/admin`), { method: 'GET' });
    assert.ok(other.status >= 400, String(other.status));
    await other.text();
    assert.equal(seen.length, 1, 'a refused request never reached the server');
  } finally {
    fetch.close();
    await listener.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  }
});
