/**
 * Faults on the way to the control plane, as a user of `connect` meets them: a bastion that refuses, one
 * that hangs up mid-handshake, one whose host key changes between two re-dials; an MCP upstream that is
 * slow or resets a stream mid-response. Each case asserts what the user sees: the exit code, one error
 * line with the next step, the tunnel staying up where it should, and no listener left behind.
 * (Upstream down → 502 JSON-RPC and the bastion dying and coming back are in connect.test.ts.)
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { type Bastion, generateUserKey, startBastion, type UserKey } from '../../sandbox/bastion.js';
import { type ControlPlane, startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { fingerprintOf, freeLoopbackPort, generateEd25519, parsePrivateKey } from '../../sandbox/ssh-keys.js';
import { type CliRun, connectArgs, runCli, startCli } from '../helpers/cli.js';
import type { UserEnv } from '../helpers/env.js';
import { gate, missing } from '../helpers/requires.js';
import { bastionUser } from '../helpers/stack.js';

const { after, before, test } = gate(missing('secret-service'));

const alice = USERS.find((u) => u.username === 'alice')!;
let idp: SandboxIdp;
let keyring: SecretService;
let plane: ControlPlane;
let bastion: Bastion;
let key: UserKey;
let user: UserEnv;
let hostile: { port: number; close(): Promise<void>; inFlight(): number };
const running: CliRun[] = [];
const servers: Server[] = [];

/**
 * An HTTP upstream that misbehaves on request: a JSON-RPC call whose method is `slow` is never answered,
 * `reset` gets half a chunked answer and then a TCP reset; anything else gets a normal answer.
 */
async function hostileUpstream() {
  const hanging = new Set<ServerResponse>();
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      const method = (JSON.parse(body || '{}') as { method?: string }).method;
      if (method === 'slow') {
        hanging.add(res);
        res.once('close', () => hanging.delete(res));
        return;
      }
      if (method === 'reset') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"first half');
        setTimeout(() => (req.socket as Socket).resetAndDestroy(), 50);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', result: { ok: true }, id: 1 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    inFlight: () => hanging.size,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function tcpServer(onSocket: (s: Socket) => void): Promise<number> {
  const server = createServer(onSocket);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

before(async () => {
  keyring = await startSecretService();
  idp = await startIdp({ deviceInterval: 1 });
  plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
  hostile = await hostileUpstream();
  let keyFile: string;
  ({ key, bastion, user, keyFile } = await bastionUser(idp, {
    name: 'faults-tunnel',
    allow: [plane.port, hostile.port],
    env: keyring.env,
  }));
  await writeSandboxProfile(idp, user.env());
  const set = await runCli(['--profile', 'sandbox', 'config', 'set', 'identity_file', keyFile], user.env());
  assert.equal(set.code, 0, set.stderr);
  // These faults are the ssh2 transport's (hostile servers it talks to in-process); the OpenSSH transport's
  // errors are openssh.test.ts's.
  const transport = await runCli(
    ['--profile', 'sandbox', 'config', 'set', 'ssh_transport', 'ssh2'],
    user.env(),
  );
  assert.equal(transport.code, 0, transport.stderr);
  assert.equal((await deviceLogin(user.env(), alice)).code, 0);
});

after(async () => {
  for (const r of running) r.child.kill('SIGKILL');
  for (const s of servers) s.close();
  await bastion?.close();
  await hostile?.close();
  await plane?.close();
  await idp?.close();
  await keyring?.stop();
});

/** The tunnel settings for one run, as environment variables (they win over the profile). */
function via(b: { port: number; fingerprint?: string }, mcpUrl = plane.url) {
  return user.env({
    MCP_SECURE_BASTION: `dev@127.0.0.1:${b.port}`,
    MCP_SECURE_MCP_URL: mcpUrl,
    ...(b.fingerprint ? { MCP_SECURE_HOST_KEY_FINGERPRINTS: `[127.0.0.1]:${b.port}=${b.fingerprint}` } : {}),
  });
}

async function connect(env: Record<string, string>, extra: string[] = []) {
  const run = startCli(connectArgs(...extra), env, 60_000);
  run.child.stdin.end();
  running.push(run);
  const [, local] = await run.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 20_000);
  return { run, local: local!, port: Number(new URL(local!).port) };
}

function assertOneLineError(stderr: string, pattern: RegExp) {
  const errors = stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, stderr);
  assert.match(errors[0]!, pattern);
  assert.match(errors[0]!, / — \S/, 'the error names the next step');
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
}

async function portClosed(port: number): Promise<void> {
  await assert.rejects(
    new Promise((resolve, reject) =>
      netConnect(port, '127.0.0.1').once('connect', resolve).once('error', reject),
    ),
    /ECONNREFUSED/,
    `nothing listens on ${port} any more`,
  );
}

const rpc = (local: string, method: string, signal?: AbortSignal) =>
  fetch(local, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method }),
    ...(signal ? { signal } : {}),
  });

test('a bastion that refuses the connection, or hangs up mid-handshake: exit 1, one line naming it, nothing listening', async () => {
  const refused = await freeLoopbackPort();
  const afterBanner = await tcpServer((s) => s.end('SSH-2.0-OpenSSH_9.6\r\n'));
  const atOnce = await tcpServer((s) => s.destroy());
  const garbage = await tcpServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  const cases = [
    {
      name: 'refused',
      port: refused,
      error: /cannot reach the bastion dev@127\.0\.0\.1:\d+ \(ECONNREFUSED\)/,
    },
    {
      name: 'banner then close',
      port: afterBanner,
      error:
        /dev@127\.0\.0\.1:\d+ closed the connection during the handshake|cannot reach the bastion .*\((ECONNRESET|EPIPE)\)/,
    },
    {
      name: 'close at once',
      port: atOnce,
      // Which one depends on whether our banner was on its way when the socket went: both say so.
      error: /cannot reach the bastion .*\((Connection lost before handshake|ECONNRESET|EPIPE)\)/,
    },
    {
      name: 'not SSH',
      port: garbage,
      error: /cannot reach the bastion .*\((Connection lost before handshake|ECONNRESET|EPIPE)\)/,
    },
  ];
  for (const c of cases) {
    const started = Date.now();
    const result = await runCli(
      connectArgs(),
      via({ port: c.port, fingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }),
    );
    assert.equal(result.code, 1, `${c.name}: ${result.stderr}`);
    assert.equal(result.stdout, '', c.name);
    assertOneLineError(result.stderr, c.error);
    assert.doesNotMatch(result.stderr, /Listening on/, `${c.name}: no listener before the tunnel is up`);
    assert.ok(Date.now() - started < 15_000, `${c.name}: fails fast, not after a long timeout`);
  }
});

test('a bastion that hangs up during authentication (exit 1), or does not take our key (exit 4): one line each', async () => {
  const hostKey = generateEd25519().private;
  const fingerprint = fingerprintOf(parsePrivateKey(hostKey).getPublicSSH());
  const hangUp = new ssh2.Server({ hostKeys: [hostKey] }, (conn) => {
    conn.on('error', () => undefined);
    conn.on('authentication', () => conn.end());
  });
  await new Promise<void>((r) => hangUp.listen(0, '127.0.0.1', r));
  const stranger = await startBastion({
    authorizedKeys: [generateUserKey('someone-else').publicKey],
    allow: [{ host: '127.0.0.1', port: plane.port }],
  });
  try {
    const hungUp = await runCli(
      connectArgs(),
      via({ port: (hangUp.address() as AddressInfo).port, fingerprint }),
    );
    assert.equal(hungUp.code, 1, hungUp.stderr);
    assertOneLineError(hungUp.stderr, /dev@127\.0\.0\.1:\d+ closed the connection during the handshake/);
    const refused = await runCli(connectArgs(), via(stranger));
    assert.equal(refused.code, 4, refused.stderr);
    assertOneLineError(
      refused.stderr,
      /dev@127\.0\.0\.1:\d+ refused every key offered — check that the bastion has your public key/,
    );
  } finally {
    hangUp.close();
    await stranger.close();
  }
});

test("the bastion's host key changes between two re-dials: the re-dial refuses (exit 5) and records nothing", async () => {
  const first = await startBastion({
    authorizedKeys: [key.publicKey],
    allow: [{ host: '127.0.0.1', port: plane.port }],
  });
  let impostor: Bastion | undefined;
  try {
    // Trusted on first use, as `StrictHostKeyChecking=accept-new` would.
    const { run, port } = await connect(via({ port: first.port }), ['--accept-new-host-key']);
    await run.waitFor(/Permanently added \[127\.0\.0\.1\]:\d+/);
    const knownHosts = join(user.home, '.ssh', 'known_hosts');
    const recorded = await (await import('node:fs/promises')).readFile(knownHosts, 'utf8');

    // Someone else answers on the same address with another key.
    const samePort = first.port;
    await first.close();
    impostor = await startBastion({
      authorizedKeys: [key.publicKey],
      allow: [{ host: '127.0.0.1', port: plane.port }],
      port: samePort,
    });
    const result = await run.done;
    assert.equal(result.code, 5, result.stderr);
    assert.match(result.stderr, /SSH connection lost/);
    assert.match(result.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
    assertOneLineError(
      result.stderr,
      /the host key of \[127\.0\.0\.1\]:\d+ has changed; refusing to connect/,
    );
    assert.equal(
      await (await import('node:fs/promises')).readFile(knownHosts, 'utf8'),
      recorded,
      '--accept-new-host-key never replaces a known key',
    );
    await portClosed(port);
  } finally {
    await first.close();
    await impostor?.close();
  }
});

test('a slow MCP upstream: the client may give up, the tunnel stays usable, and Ctrl-C still ends at once', async () => {
  const { run, local, port } = await connect(
    via({ port: bastion.port, fingerprint: bastion.fingerprint }, `http://127.0.0.1:${hostile.port}/mcp`),
  );
  await assert.rejects(rpc(local, 'slow', AbortSignal.timeout(500)), /TimeoutError|aborted/);
  const fine = await rpc(local, 'ping');
  assert.equal(fine.status, 200);
  assert.deepEqual(await fine.json(), { jsonrpc: '2.0', result: { ok: true }, id: 1 });

  // One request hangs while the user stops the session.
  const pending = rpc(local, 'slow').then(
    (r) => r.text(),
    (err: unknown) => err,
  );
  // Through the tunnel to the upstream: bounded by count and by what a loaded machine may need.
  const deadline = Date.now() + 15_000;
  for (let i = 0; i < 750 && hostile.inFlight() === 0 && Date.now() < deadline; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(hostile.inFlight() > 0, 'the request reached the upstream');
  const stopped = Date.now();
  run.child.kill('SIGINT');
  const result = await run.done;
  assert.equal(result.code, 130, result.stderr);
  // Held open, the session would last until the test's killer (60 s, which exits with a signal, not 130).
  assert.ok(Date.now() - stopped < 15_000, 'a hanging request does not hold the session open');
  assert.ok((await pending) instanceof Error, 'the hanging request is cut, not answered with made-up data');
  await portClosed(port);
});

test('an upstream that resets the stream mid-response: the client sees the cut (never a truncated "success"); the next call works', async () => {
  const { run, local } = await connect(
    via({ port: bastion.port, fingerprint: bastion.fingerprint }, `http://127.0.0.1:${hostile.port}/mcp`),
  );
  const cut = await rpc(local, 'reset', AbortSignal.timeout(10_000));
  assert.equal(cut.status, 200, 'the headers had already been sent');
  await assert.rejects(cut.text(), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.notEqual(err.name, 'TimeoutError', 'the cut reaches the client at once, it does not hang');
    return true;
  });
  const next = await rpc(local, 'ping');
  assert.equal(next.status, 200);
  await next.text();
  assert.equal(run.child.exitCode, null, 'connect stays up');
  run.child.kill('SIGINT');
  assert.equal((await run.done).code, 130);
});
