/**
 * The two hooks into ssh2's internals (src/tunnel/ack-nudge.ts, batch-writes.ts) are feature-detected and
 * do nothing when ssh2 changes: silently, the 41 ms stalls come back (bench/tunnel.ts). These tests fail
 * instead, on the ssh2 that is installed, against a real ssh2 Server on loopback. package.json pins ssh2
 * to the range they pass on; widen it only with these tests green.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import ssh2 from 'ssh2';
import { generateEd25519 } from '../../sandbox/ssh-keys.js';
import { nudgeUnanswered, UNANSWERED } from '../../src/tunnel/ack-nudge.js';
import { batchWrites } from '../../src/tunnel/batch-writes.js';

const { Server } = ssh2;
type Client = InstanceType<typeof ssh2.Client>;

async function connected(): Promise<{ client: Client; close(): Promise<void> }> {
  // Not ssh2's generateKeyPairSync directly: one ed25519 key in 256 comes out malformed (generateEd25519).
  const hostKey = generateEd25519().private;
  const server = new Server({ hostKeys: [hostKey] }, (conn) => {
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = new ssh2.Client();
  const ready = once(client, 'ready');
  client.connect({
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    username: 'hooks',
    hostVerifier: () => true,
    readyTimeout: 10_000,
  });
  await ready;
  return {
    client,
    close: async () => {
      client.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test('the installed ssh2 is in the range package.json pins (the range these hooks are tested on)', async () => {
  const installed = JSON.parse(
    await readFile(new URL('../../../node_modules/ssh2/package.json', import.meta.url), 'utf8'),
  ) as { version: string };
  const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  assert.equal(pkg.dependencies['ssh2'], '~1.17.0');
  assert.match(installed.version, /^1\.17\.\d+$/);
});

for (const message of UNANSWERED) {
  test(`ack-nudge attaches to ssh2's ${message} handler`, async (t) => {
    const { client, close } = await connected();
    t.after(close);
    const handlers = (client as unknown as { _protocol?: { _handlers?: Record<string, unknown> } })._protocol
      ?._handlers;
    assert.ok(handlers, 'ssh2 Client has no _protocol._handlers');
    const before = handlers[message];
    assert.equal(typeof before, 'function', `ssh2 has no ${message} handler to wrap`);
    assert.equal(nudgeUnanswered(client), true);
    assert.notEqual(handlers[message], before, `${message} was not wrapped`);
  });
}

test('ack-nudge: the wrapped handler still runs ssh2 and sends an SSH_MSG_IGNORE without breaking the connection', async (t) => {
  const { client, close } = await connected();
  t.after(close);
  assert.equal(nudgeUnanswered(client), true);
  // A global request's reply (REQUEST_FAILURE from this server) goes through the wrapped handler, which
  // then writes an IGNORE packet with ssh2's own writer; a broken writer would end the connection.
  const sock = (client as unknown as { _sock: { write: (...a: unknown[]) => boolean } })._sock;
  let writes = 0;
  const write = sock.write.bind(sock);
  sock.write = (...a: unknown[]) => {
    writes += 1;
    return write(...a);
  };
  const replied = new Promise<Error | undefined>((resolve) =>
    client.forwardIn('127.0.0.1', 0, (err) => resolve(err)),
  );
  const err = await replied;
  assert.ok(err, 'the server refuses the forward: a REQUEST_FAILURE came back');
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(writes >= 2, `the request and the IGNORE after its reply: ${writes} writes`);
  const exec = await new Promise<Error | undefined>((resolve) => client.exec('true', (e) => resolve(e)));
  assert.ok(exec, 'the connection still answers (this server refuses sessions)');
});

test('batch-writes attaches to the socket ssh2 writes to', async (t) => {
  const { client, close } = await connected();
  t.after(close);
  const sock = (client as unknown as { _sock?: { write?: unknown; cork?: unknown } })._sock;
  assert.ok(sock, 'ssh2 Client has no _sock');
  const before = sock.write;
  assert.equal(typeof before, 'function');
  assert.equal(typeof sock.cork, 'function');
  assert.equal(batchWrites(client), true);
  assert.notEqual(sock.write, before, 'write was not wrapped');
  // Still a working connection: a refused global request gets its answer through the corked writes.
  const err = await new Promise<Error | undefined>((resolve) =>
    client.forwardIn('127.0.0.1', 0, (e) => resolve(e)),
  );
  assert.ok(err);
});
